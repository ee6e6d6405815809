// End to end: Anomaly detection end to end.
#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

TEST_F(EndToEndTest, AnomalousNewCallerIsSuspendedAuditedAndPushed) {
  WriteFile(dir_.Join("broker.yaml"), R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: local
    file: {root: keys}
providers:
  - name: lumenfall
    probe: {disabled: true}
leases:
  sweep_interval: 1s
anomaly_detection:
  bucket: 1s
  learning_period: 3s
  new_caller_action: suspend
  suspend_for: 1h
audit:
  path: audit.log
policy:
  rules:
    - identities: [e2e-app, newcomer, latecomer]
      providers: ["*"]
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: newcomer
      token: newcomer-token-0123456789
    - service: latecomer
      token: latecomer-token-0123456789
    - service: e2e-admin
      token_file: admin.token
      admin: true
)");
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());  // during the learning period: baseline
  // An admin's stream: ANOMALY events about other callers reach admins only.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + kAdminToken);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = lease_->WatchKeys(&ctx, v1::WatchKeysRequest());
  v1::KeyEvent e;
  while (reader->Read(&e) && e.type() != v1::KeyEvent::SYNCED) {
  }
  // Learning is over when the broker says so (its own clock and start, not a guess here).
  std::optional<double> learning_until =
      MetricValue("credbroker_anomaly_learning_until_timestamp_seconds");
  ASSERT_TRUE(learning_until.has_value()) << Metrics();
  ASSERT_TRUE(
      Eventually([&] { return absl::Now() > absl::UnixEpoch() + absl::Seconds(*learning_until); }));

  // A caller never seen before: with new_caller_action "suspend" it never gets a key.
  const std::string newcomer = "newcomer-token-0123456789";
  v1::Lease refused_lease;
  grpc::Status refused = Acquire("lumenfall", &refused_lease, newcomer);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(refused), "CALLER_SUSPENDED");
  EXPECT_THAT(refused.error_message(), HasSubstr("suspended on lumenfall until"));
  bool anomaly = false;
  while (!anomaly && reader->Read(&e)) anomaly = e.type() == v1::KeyEvent::ANOMALY;
  ASSERT_TRUE(anomaly);
  EXPECT_EQ(e.caller(), "newcomer");
  EXPECT_EQ(e.anomaly_kind(), "new_caller");
  EXPECT_THAT(e.reason(), HasSubstr("suspended until"));
  EXPECT_EQ(Acquire("lumenfall", &refused_lease, newcomer).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::Lease again;
  // The known caller is unaffected.
  ASSERT_TRUE(Renew(lease.lease_id(), &again).ok());
  std::string metrics = Metrics();
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(credbroker_anomalies_total{action="suspend",kind="new_caller",provider="lumenfall"} 1)"));
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_suspended_callers{provider="lumenfall"} 1)");
  }));
  // The audit writer is asynchronous: wait for the lines.
  std::string audit;
  EXPECT_TRUE(Eventually([&] {
    audit = testing::ReadFile(dir_.Join("audit.log"));
    return absl::StrContains(audit, R"("decision":"deny","reason":"CALLER_SUSPENDED")");
  })) << audit;
  EXPECT_THAT(audit, HasSubstr(R"("action":"Anomaly","caller":"newcomer")"));
  ctx.TryCancel();
  (void)reader->Finish();

  // A restart (a deploy) keeps what was learned: no new learning window opens, so a caller never
  // seen before is caught at once, and the known caller is not "new".
  EXPECT_EQ(broker_->Stop(), 0);
  broker_.reset();
  StartBroker();
  ASSERT_TRUE(Acquire("lumenfall", &again).ok()) << broker_->Logs();
  grpc::Status late = Acquire("lumenfall", &again, "latecomer-token-0123456789");
  EXPECT_EQ(late.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(late), "CALLER_SUSPENDED");
  EXPECT_THAT(broker_->Logs(), HasSubstr("anomaly baselines restored"));
  // And a suspension does not end with the process.
  EXPECT_EQ(Reason(Acquire("lumenfall", &again, newcomer)), "CALLER_SUSPENDED");
}

}  // namespace
}  // namespace credbroker::e2e
