// End to end: the C++ client library (libs/client) against the real broker: a rotation mid-use,
// a quarantine pushed to the client, a broker restart, the broker down past the lease, and
// auth-failure reports.
#include "absl/strings/str_replace.h"
#include "credbroker/client/lease_client.h"
#include "credbroker/client/lease_connection.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/proto_time.h"
#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

class ClientEndToEndTest : public EndToEndTest {
 protected:
  std::unique_ptr<client::LeaseClient> MakeClient(absl::Duration ttl = absl::ZeroDuration()) {
    client::ClientOptions options;
    options.address = broker_->grpc_address();
    options.token = client::StaticToken(kAppToken);
    auto connection = client::MakeLeaseConnection(options);
    EXPECT_THAT(connection, testing::IsOk());
    client::LeaseClientOptions lease_options;
    lease_options.retry_interval = absl::Milliseconds(50);
    lease_options.ttl = ttl;
    return std::make_unique<client::LeaseClient>(*connection, lease_options);
  }
  // The fingerprint of the key in the client's header now, or the error (never the key).
  static std::string KeyIn(client::LeaseClient& c) {
    absl::StatusOr<client::LeaseClient::Header> h = c.AuthorizationHeader("lumenfall");
    if (!h.ok()) return h.status().ToString();
    return core::Fingerprint(absl::StripPrefix(h->value, "Bearer "));
  }
  void StageV2() {
    WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1 + "\n"}, {"v2", kLmnV2 + "\n"}});
    ASSERT_TRUE(Eventually([&] {
      v1::ListKeyVersionsRequest req;
      req.set_provider("lumenfall");
      v1::ListKeyVersionsResponse resp;
      return admin_->ListKeyVersions(Ctx(kAdminToken).get(), req, &resp).ok() &&
             resp.versions_size() == 2;
    }));
  }
};

// Every call during a rotation gets a key, and once the broker pushed ROTATED the header carries
// the new one: the service never sees an error or restarts.
TEST_F(ClientEndToEndTest, ARotationMidUseReachesTheHeaderWithoutAnError) {
  StartBroker();
  auto c = MakeClient();
  EXPECT_EQ(KeyIn(*c), core::Fingerprint(kLmnV1));
  StageV2();
  v1::RotateKeyRequest rotate;
  rotate.set_provider("lumenfall");
  v1::RotateKeyResponse rotated;
  // Promotes v2 (or finds it promoted already: this provider has no probe to wait for).
  grpc::Status s = admin_->RotateKey(Ctx(kAdminToken).get(), rotate, &rotated);
  ASSERT_TRUE(s.ok() || Reason(s) == "NO_PENDING_VERSION") << s.error_message();
  EXPECT_TRUE(Eventually([&] {
    const std::string key = KeyIn(*c);
    EXPECT_TRUE(key == core::Fingerprint(kLmnV1) || key == core::Fingerprint(kLmnV2)) << key;
    return key == core::Fingerprint(kLmnV2);
  }));
  // The client released its lease on the old key when it moved.
  v1::ListLeasesRequest list;
  list.set_provider("lumenfall");
  list.set_key_version("v1");
  v1::ListLeasesResponse leases;
  EXPECT_TRUE(Eventually([&] {
    return admin_->ListLeases(Ctx(kAdminToken).get(), list, &leases).ok() &&
           leases.leases_size() == 0;
  }));
}

// A quarantine is pushed: the quarantined key is dropped at once and the next header carries the
// key the broker promoted in its place.
TEST_F(ClientEndToEndTest, AQuarantinedKeyIsDroppedAndReplaced) {
  StartBroker();
  auto c = MakeClient();
  EXPECT_EQ(KeyIn(*c), core::Fingerprint(kLmnV1));
  StageV2();
  v1::QuarantineKeyVersionRequest q;
  q.set_provider("lumenfall");
  q.set_key_version("v1");
  q.set_reason("leaked in a log");
  v1::QuarantineKeyVersionResponse qr;
  ASSERT_TRUE(admin_->QuarantineKeyVersion(Ctx(kAdminToken).get(), q, &qr).ok());
  EXPECT_TRUE(Eventually([&] { return KeyIn(*c) == core::Fingerprint(kLmnV2); })) << KeyIn(*c);
}

// The broker restarts on the same address (its leases are in SQLite): the client's lease is
// renewed by the new process, and the header never failed meanwhile for longer than the outage.
TEST_F(ClientEndToEndTest, LeasesAreRenewedAfterABrokerRestart) {
  absl::StatusOr<int> port = testing::FreeLoopbackPort();
  ASSERT_THAT(port, testing::IsOk());
  WriteFile(dir_.Join("broker.yaml"),
            absl::StrReplaceAll(kConfig, {{"\n  listen: 127.0.0.1:0\n",
                                           absl::StrCat("\n  listen: 127.0.0.1:", *port, "\n")}}));
  StartBroker();
  // Long enough to outlive the restart, short enough that the renewal (at 2/3) comes after it.
  auto c = MakeClient(absl::Seconds(6));
  absl::StatusOr<v1::Lease> before = c->CurrentLease("lumenfall");
  ASSERT_THAT(before, testing::IsOk());
  ASSERT_EQ(broker_->Stop(), 0);
  broker_.reset();
  StartBroker();
  ASSERT_EQ(broker_->grpc_port(), *port);
  // The renewer reaches the new process: the same lease, with a later expiry than the broker
  // granted before the restart, listed by the new process.
  EXPECT_TRUE(Eventually(
      [&] {
        absl::StatusOr<v1::Lease> now = c->CurrentLease("lumenfall");
        return now.ok() && now->lease_id() == before->lease_id() &&
               now->expires_at().seconds() > before->expires_at().seconds();
      },
      absl::Seconds(20)));
  v1::ListLeasesRequest list;
  list.set_provider("lumenfall");
  v1::ListLeasesResponse leases;
  ASSERT_TRUE(admin_->ListLeases(Ctx(kAdminToken).get(), list, &leases).ok());
  ASSERT_EQ(leases.leases_size(), 1);
  EXPECT_EQ(leases.leases(0).lease_id(), before->lease_id());
  EXPECT_EQ(KeyIn(*c), core::Fingerprint(kLmnV1));
}

// The broker is down for longer than the lease: the held key serves until the lease expires and
// never after; then the caller gets a clear UNAVAILABLE.
TEST_F(ClientEndToEndTest, NoKeyIsHandedOutPastItsLeaseWhileTheBrokerIsDown) {
  StartBroker();
  auto c = MakeClient(absl::Seconds(2));
  absl::StatusOr<v1::Lease> lease = c->CurrentLease("lumenfall");
  ASSERT_THAT(lease, testing::IsOk());
  broker_->Kill();
  broker_.reset();
  const absl::Time expires = core::FromProtoTime(lease->expires_at());
  absl::Status last;
  ASSERT_TRUE(Eventually(
      [&] {
        const absl::Time asked = absl::Now();
        absl::StatusOr<client::LeaseClient::Header> h = c->AuthorizationHeader("lumenfall");
        if (h.ok()) {
          EXPECT_LT(asked, expires) << "a key served past its lease";
          return false;
        }
        last = h.status();
        return true;
      },
      absl::Seconds(20)));
  EXPECT_EQ(last.code(), absl::StatusCode::kUnavailable) << last;
  EXPECT_GE(absl::Now(), expires);
}

// A provider's 401 goes to the broker with the held lease, counted with its classification.
TEST_F(ClientEndToEndTest, AuthFailuresAreReportedWithTheHeldLease) {
  StartBroker();
  auto c = MakeClient();
  ASSERT_THAT(c->AuthorizationHeader("lumenfall"), testing::IsOk());
  absl::StatusOr<std::string> classification =
      c->ReportAuthFailure("lumenfall", 429, "rate_limit_exceeded");
  ASSERT_THAT(classification, testing::IsOk());
  EXPECT_FALSE(classification->empty());
  EXPECT_THAT(Metrics(), HasSubstr("credbroker_auth_failure_reports_total{"));
}

}  // namespace
}  // namespace credbroker::e2e
