// End to end: Rotation end to end against the fake provider: probes, revocation detection, minting.
#include "provider_fixture.h"

namespace credbroker::e2e {
namespace {

TEST_F(ProbeEndToEndTest, StagedVersionIsPromotedOnlyOnceTheProviderAcceptsIt) {
  WriteConfig("keys");
  StartBroker();
  // Calibrated: the provider refused the broker's deliberately invalid key.
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_probe_calibrated{provider="lumenfall"} 1)");
  })) << broker_->Logs();
  v1::Lease old_lease;
  ASSERT_TRUE(Acquire("lumenfall", &old_lease).ok());
  EXPECT_EQ(old_lease.key_version(), "v1");

  // The operator stages v2 before the provider has activated it: PENDING, the probe fails,
  // v1 keeps serving and the alert metric is raised.
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_probe_failing{provider="lumenfall"} 1)");
  })) << broker_->Logs();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");
  auto keys = Credctl({"keys", "lumenfall"}, kAdminToken);
  EXPECT_THAT(keys.output, HasSubstr("PENDING"));

  // Activated at the provider: promoted at the next probe.
  Control("/__fixture/issue", kLmnV2);
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(),
        R"(credbroker_key_version_info{key_version="v2",provider="lumenfall",state="CURRENT"} 1)");
  })) << broker_->Logs();
  v1::Lease fresh;
  ASSERT_TRUE(Acquire("lumenfall", &fresh).ok());
  EXPECT_EQ(fresh.key_version(), "v2");
  EXPECT_THAT(Metrics(), HasSubstr(R"(credbroker_probe_failing{provider="lumenfall"} 0)"));

  // The old lease stays valid on the now-PREVIOUS v1 (renewable up to its retire time)...
  v1::Lease renewed;
  ASSERT_TRUE(Renew(old_lease.lease_id(), &renewed).ok()) << broker_->Logs();
  EXPECT_EQ(renewed.key_version(), "v1");
  EXPECT_EQ(renewed.key_state(), v1::KEY_STATE_PREVIOUS);
  EXPECT_TRUE(renewed.has_key_retires_at());
  // ...and past the overlap (2s) v1 does not retire while the leases hold it: the rotation loop
  // decided so (it logs the wait once) and the key list agrees.
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(broker_->Logs(), "key version retirement waits for leases");
  })) << broker_->Logs();
  keys = Credctl({"keys", "lumenfall"}, kAdminToken);
  EXPECT_THAT(keys.output, HasSubstr("PREVIOUS"));
  EXPECT_THAT(Audit(), Not(HasSubstr(R"("decision":"RETIRED")")));
  for (const std::string& id : {old_lease.lease_id(), lease.lease_id()}) {
    v1::ReleaseLeaseRequest rel;
    rel.set_lease_id(id);
    v1::ReleaseLeaseResponse resp;
    ASSERT_TRUE(lease_->ReleaseLease(Ctx().get(), rel, &resp).ok());
  }
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Audit(), R"("key_version":"v1")") &&
           absl::StrContains(Audit(), R"("decision":"RETIRED")");
  })) << Audit();
  // Every transition was audited.
  for (const char* state : {"PENDING", "CURRENT", "PREVIOUS", "RETIRED"}) {
    EXPECT_THAT(Audit(), HasSubstr(absl::StrCat(R"("action":"KeyTransition")")));
    EXPECT_THAT(Audit(), HasSubstr(absl::StrCat(R"("decision":")", state, R"(")")));
  }
  EXPECT_THAT(broker_->Logs(), Not(HasSubstr(kLmnV2)));
  EXPECT_THAT(Audit(), Not(HasSubstr(kLmnV2)));
}

// The provider misbehaves while a staged key waits for its probe: errors and rate limits are
// inconclusive, a 403 refuses the key, a hanging probe times out without holding up leases; the
// current key serves throughout, and the staged one is promoted once the provider answers again.
TEST_F(ProbeEndToEndTest, ProviderFaultsDuringTheProbeKeepTheCurrentKey) {
  Control("/__fixture/issue", kLmnV2);
  WriteConfig("keys", "    probe: {path: /models, timeout: 1s}\n");
  StartBroker();
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_probe_calibrated{provider="lumenfall"} 1)");
  })) << broker_->Logs();
  const std::string models = R"(["/openai/v1/models"])";
  ControlJson("/__fixture/fail", absl::StrCat(R"({"status":503,"count":-1,"paths":)", models, "}"));
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  ASSERT_TRUE(Eventually([&] { return Probes("promotion", "error") >= 1; })) << Metrics();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");
  EXPECT_THAT(Metrics(), HasSubstr(R"(credbroker_probe_failing{provider="lumenfall"} 1)"));

  ControlJson("/__fixture/fail",
              absl::StrCat(R"({"status":429,"count":-1,"retry_after":1,"paths":)", models, "}"));
  const double errors = Probes("promotion", "error");
  ASSERT_TRUE(Eventually([&] { return Probes("promotion", "error") > errors; }, absl::Seconds(20)));
  ControlJson("/__fixture/fail", absl::StrCat(R"({"status":403,"count":-1,"paths":)", models, "}"));
  ASSERT_TRUE(Eventually([&] { return Probes("promotion", "rejected") >= 1; }, absl::Seconds(20)))
      << Metrics();
  EXPECT_FALSE(IsCurrent("v2"));

  // A probe that never returns: the broker's request is held at the provider, leases go on.
  ControlJson("/__fixture/fail", R"({"clear":true})");
  ControlJson("/__fixture/hang", absl::StrCat(R"({"on":true,"paths":)", models, "}"));
  ASSERT_TRUE(Eventually([&] { return ProviderCount("hanging") >= 1; }, absl::Seconds(20)))
      << ProviderState();
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");
  const double before = Probes("promotion", "error");
  ASSERT_TRUE(Eventually([&] { return Probes("promotion", "error") > before; }))
      << "the probe timed out";
  EXPECT_FALSE(IsCurrent("v2"));
  ControlJson("/__fixture/hang", R"({"on":false})");
  ASSERT_TRUE(Eventually([&] { return IsCurrent("v2"); }, absl::Seconds(20))) << broker_->Logs();
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v2");
}

// A provider that answers 200 to any key (as some models/usage endpoints do) fails calibration:
// its probe is never trusted, and a staged key the provider would in truth refuse is not promoted.
TEST_F(ProbeEndToEndTest, LyingProbeIsNotTrusted) {
  ControlJson("/__fixture/lying", R"({"lying":true})");
  WriteConfig("keys");
  StartBroker();
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_probe_calibrated{provider="lumenfall"} 0)") &&
           Probes("calibration", "accepted") >= 1;
  })) << Metrics();
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(broker_->Logs(), "the probe cannot be trusted");
  })) << broker_->Logs();
  EXPECT_FALSE(IsCurrent("v2"));
  EXPECT_EQ(Probes("promotion", "accepted"), 0) << "an untrusted probe is not even sent";
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");
  EXPECT_THAT(Metrics(), HasSubstr(R"(credbroker_probe_failing{provider="lumenfall"} 1)"));
}

TEST_F(ProbeEndToEndTest, KeyRevokedAtTheProviderIsQuarantinedAfterReportsFromSeveralCallers) {
  Control("/__fixture/issue", kLmnV2);
  WriteConfig("keys");
  StartBroker();
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  ASSERT_TRUE(Eventually([&] {
    v1::Lease fresh;
    return Acquire("lumenfall", &fresh).ok() && fresh.key_version() == "v2";
  })) << broker_->Logs();

  grpc::ClientContext watch_ctx;
  watch_ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchKeysRequest watch_req;
  auto reader = lease_->WatchKeys(&watch_ctx, watch_req);

  const std::vector<std::string> tokens = {kAppToken, "billing-token-0123456789",
                                           "search-token-0123456789"};
  std::vector<std::string> leases;
  for (const std::string& t : tokens) {
    v1::Lease l;
    ASSERT_TRUE(Acquire("lumenfall", &l, t).ok());
    leases.push_back(l.lease_id());
  }
  // 403 and 429 from everyone while v2 still works change nothing. Were they counted, they would
  // complete a burst whose probe finds v2 valid, and within the window the 401 burst below would
  // not start another check: no quarantine, and the suspicion count below would be off.
  for (size_t i = 0; i < tokens.size(); ++i) {
    ASSERT_TRUE(Report(leases[i], 403, tokens[i]).ok());
    ASSERT_TRUE(Report(leases[i], 429, tokens[i]).ok());
  }
  v1::Lease still;
  ASSERT_TRUE(Acquire("lumenfall", &still).ok());
  EXPECT_EQ(still.key_version(), "v2");
  // The provider revokes v2.
  Control("/__fixture/revoke", kLmnV2);
  // 401s from three distinct callers: probed, refused, quarantined; v1 serves again.
  for (size_t i = 0; i < tokens.size(); ++i) ASSERT_TRUE(Report(leases[i], 401, tokens[i]).ok());
  ASSERT_TRUE(ReadUntil(*reader, v1::KeyEvent::QUARANTINED, "v2")) << broker_->Logs();
  v1::Lease after;
  ASSERT_TRUE(Acquire("lumenfall", &after).ok());
  EXPECT_EQ(after.key_version(), "v1");
  v1::Lease renewed;
  EXPECT_EQ(Renew(leases[0], &renewed).error_code(), grpc::StatusCode::NOT_FOUND);
  // ...and a caller still renewing a lease revoked with the quarantined key is an anomaly.
  std::string metrics = Metrics();
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(credbroker_anomalies_total{action="alert",kind="retired_key_use",provider="lumenfall"} 1)"));
  EXPECT_THAT(
      metrics,
      HasSubstr(
          R"(credbroker_key_quarantines_total{provider="lumenfall",reason="revoked_at_provider"} 1)"));
  EXPECT_THAT(metrics,
              HasSubstr(R"(credbroker_revocation_suspected_total{provider="lumenfall"} 1)"));
  watch_ctx.TryCancel();
  (void)reader->Finish();
}

// example-ai documents EXPIRED_API_KEY: one caller reporting it is enough for the broker to probe
// the key and, when the provider refuses it, quarantine it (a plain 401 needs several callers).
// The fake provider's OpenAI-style probe path stands in for example-ai's API here.
TEST_F(ProbeEndToEndTest, OneExpiredKeyReportQuarantinesTheKey) {
  const std::string v1 = "exai-e2e-key-one-0123456789";
  const std::string v2 = "exai-e2e-key-two-0123456789";
  Control("/__fixture/issue", v1);
  Control("/__fixture/issue", v2);
  WriteK8sSecretDir(dir_.Join("keys/example-ai"), {{"v1", v1}});
  WriteConfig("keys", absl::StrCat("  - name: example-ai\n    base_url: ", provider_url_,
                                   "/openai/v1\n    overlap: 2s\n    probe: {path: /models}\n"));
  StartBroker();
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_probe_calibrated{provider="example-ai"} 1)");
  })) << broker_->Logs();
  WriteK8sSecretDir(dir_.Join("keys/example-ai"), {{"v1", v1}, {"v2", v2}});
  v1::Lease lease;
  ASSERT_TRUE(Eventually([&] {
    return Acquire("example-ai", &lease).ok() && lease.key_version() == "v2";
  })) << broker_->Logs();

  grpc::ClientContext watch_ctx;
  watch_ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchKeysRequest watch_req;
  watch_req.add_providers("example-ai");
  auto reader = lease_->WatchKeys(&watch_ctx, watch_req);

  Control("/__fixture/revoke", v2);
  v1::ReportAuthFailureRequest req;
  req.set_lease_id(lease.lease_id());
  req.set_http_status(401);
  req.set_body(R"({"success":false,"error":{"code":"EXPIRED_API_KEY","message":"The API key has )"
               R"(expired","details":{"expired_at":"2024-01-01T00:00:00Z"}}})");
  v1::ReportAuthFailureResponse resp;
  ASSERT_TRUE(lease_->ReportAuthFailure(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.classification(), "key_expired");
  ASSERT_TRUE(ReadUntil(*reader, v1::KeyEvent::QUARANTINED, "v2")) << broker_->Logs();
  v1::Lease after;
  ASSERT_TRUE(Acquire("example-ai", &after).ok());
  EXPECT_EQ(after.key_version(), "v1");
  watch_ctx.TryCancel();
  (void)reader->Finish();
}

TEST_F(ProbeEndToEndTest, MintedRotationCreatesStoresPromotesAndRevokesKeys) {
  // A writable folder (a mounted Secret is read-only), and the provider's key API.
  WriteFile(dir_.Join("minted/lumenfall/v1"), kLmnV1);
  WriteConfig("minted", MintBlock());
  StartBroker();
  auto providers = Credctl({"providers"}, kAdminToken);
  EXPECT_THAT(providers.output, HasSubstr("minted"));

  auto rotated = Credctl({"rotate", "lumenfall"}, kAdminToken);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output << broker_->Logs();
  EXPECT_THAT(rotated.output, HasSubstr("rotated lumenfall: v2"));
  struct stat st;
  ASSERT_EQ(::stat(dir_.Join("minted/lumenfall/v2").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v2");

  // Rotating again: v2, which the broker minted, retires after the 2s overlap (no lease holds
  // it once released) and is revoked at the provider.
  v1::ReleaseLeaseRequest rel;
  rel.set_lease_id(lease.lease_id());
  v1::ReleaseLeaseResponse resp;
  ASSERT_TRUE(lease_->ReleaseLease(Ctx().get(), rel, &resp).ok());
  rotated = Credctl({"rotate", "lumenfall"}, kAdminToken);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output;
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(ProviderState(), R"("revoked": ["key_1"])");
  })) << ProviderState()
      << broker_->Logs();
  EXPECT_TRUE(Eventually([&] { return absl::StrContains(Audit(), R"("decision":"REVOKED")"); }))
      << Audit();
  // v1 was not minted by the broker: left for the operator, and said so.
  EXPECT_THAT(broker_->Logs(), HasSubstr("retired key was not minted by the broker"));
  auto denied = Credctl({"rotate", "lumenfall"});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_THAT(denied.output, HasSubstr("PERMISSION_DENIED"));
}

// fluximage allows one key per account: creating a new one kills the old one at once
// (reference/providers/fluximage-auth.txt). The fake provider models that (--single-key), and
// the broker must cut over at once and tell every holder, since the old key no longer works.
class SingleKeyEndToEndTest : public ProbeEndToEndTest {
 protected:
  std::vector<std::string> ProviderFlags() const override {
    return {"--single-key", "--mint-format", "fluximage"};
  }
  // What the provider answers its usage endpoint for `key`.
  int UsageStatus(const std::string& key) {
    auto r = RunCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                         "Authorization: Bearer " + key, provider_url_ + "/api/usage"});
    int status = 0;
    return absl::SimpleAtoi(r.output, &status) ? status : -1;
  }
};

TEST_F(SingleKeyEndToEndTest, MintingANewKeyCutsOverAtOnceAndTellsHolders) {
  Control("/__fixture/issue", kFlxV1);
  WriteFile(dir_.Join("minted/fluximage/v1"), kFlxV1);
  WriteFile(dir_.Join("broker.yaml"), absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: local
    file: {root: minted}
    refresh_interval: 1s
providers:
  - name: fluximage
    base_url: )",
                                                   provider_url_, R"(/api
)",
                                                   MintBlock(), R"(rotation:
  check_interval: 200ms
audit:
  path: audit.log
policy:
  rules:
    - {identities: [e2e-app], providers: [fluximage]}
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: e2e-admin
      token_file: admin.token
      admin: true
)"));
  StartBroker();
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_probe_calibrated{provider="fluximage"} 1)");
  })) << broker_->Logs();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("fluximage", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = lease_->WatchKeys(&ctx, v1::WatchKeysRequest());
  v1::KeyEvent e;
  while (reader->Read(&e) && e.type() != v1::KeyEvent::SYNCED) {
  }

  auto rotated = Credctl({"rotate", "fluximage"}, kAdminToken);
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output << broker_->Logs();
  EXPECT_THAT(rotated.output, HasSubstr("rotated fluximage: v2"));
  // At the provider the old key died with the new one's creation.
  EXPECT_EQ(UsageStatus(kFlxV1), 401);
  // Holders hear at once that v1 is gone and v2 is current.
  bool retired = false;
  bool rotated_event = false;
  while (!(retired && rotated_event) && reader->Read(&e)) {
    retired = retired || (e.type() == v1::KeyEvent::RETIRED && e.key_version() == "v1");
    rotated_event = rotated_event || (e.type() == v1::KeyEvent::ROTATED && e.key_version() == "v2");
  }
  EXPECT_TRUE(retired);
  EXPECT_TRUE(rotated_event);
  v1::Lease renewed;
  EXPECT_FALSE(Renew(lease.lease_id(), &renewed).ok()) << "no renewal on a dead key";
  v1::Lease fresh;
  ASSERT_TRUE(Acquire("fluximage", &fresh).ok());
  EXPECT_EQ(fresh.key_version(), "v2");
  EXPECT_EQ(UsageStatus(fresh.api_key()), 200);
  ctx.TryCancel();
  (void)reader->Finish();
}

}  // namespace
}  // namespace credbroker::e2e
