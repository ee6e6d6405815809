// Service tier: the real gRPC services on an in-process server (loopback, port 0), with the real
// leasing::LeaseBroker, KeyRing and LeaseTable over fakes for the secret source and the clock.
#include <grpcpp/grpcpp.h>

#include <set>

#include "admin_service.h"
#include "broker_fixture.h"  // libs/leasing/tests
#include "credbroker/core/ids.h"
#include "credbroker/rotation/rotation_engine.h"
#include "credbroker/testing/fake_http_client.h"
#include "credbroker/testing/grpc_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lease_service.h"

namespace credbroker::broker {
namespace {

using leasing::BrokerFixture;
using leasing::kLmnV1;
using leasing::kLmnV2;

using ::testing::HasSubstr;

std::string Reason(const grpc::Status& s) { return testing::ErrorReason(s); }

class GrpcServiceTest : public ::testing::Test, public BrokerFixture {
 protected:
  // Lets a test case change the policy and limits before the services are built.
  virtual void Configure() {}

  void SetUp() override {
    Configure();
    v1::IdentityConfig ids;
    auto* a = ids.add_static_tokens();
    a->set_service("billing");
    a->set_token("billing-token-0123456789");
    auto* b = ids.add_static_tokens();
    b->set_service("ops");
    b->set_token("ops-token-0123456789abc");
    b->set_admin(true);
    auth_ = *identity::StaticTokenAuthenticator::Create(ids);
    Edge edge{auth_.get(), metrics.get(), policy_.get(), nullptr};
    lease_service_ = std::make_unique<LeaseServiceImpl>(broker.get(), edge, limits_);
    probe_ = std::make_unique<rotation::HttpProviderProbe>(&provider_http_);
    engine_ = std::make_unique<rotation::RotationEngine>(
        ring.get(), &catalog,
        absl::flat_hash_map<std::string, secrets::SecretSource*>{{"lumenfall", &source}},
        probe_.get(), nullptr, nullptr, &clock, metrics.get(), rotation::RotationEngineOptions{});
    leadership_.Set(1);
    admin_service_ = std::make_unique<AdminServiceImpl>(broker.get(), edge, &catalog, engine_.get(),
                                                        &leadership_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(lease_service_.get());
    builder.RegisterService(admin_service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    lease_ = v1::LeaseService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }
  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  grpc::Status Acquire(const std::string& token, const std::string& provider, v1::Lease* out) {
    v1::AcquireLeaseRequest req;
    req.set_provider(provider);
    return lease_->AcquireLease(Ctx(token).get(), req, out);
  }

  std::unique_ptr<identity::Policy> policy_;
  WatchLimits limits_;
  const std::string kApp = "billing-token-0123456789";
  const std::string kAdmin = "ops-token-0123456789abc";
  std::unique_ptr<identity::Authenticator> auth_;
  std::unique_ptr<LeaseServiceImpl> lease_service_;
  // The provider accepts kLmnV1 and kLmnV2 and refuses anything else.
  testing::FakeHttpClient provider_http_{[](const http::HttpRequest& r) {
    std::string auth = testing::HeaderOf(r, "Authorization");
    bool known = auth == "Bearer " + kLmnV1 || auth == "Bearer " + kLmnV2;
    return testing::FakeHttpClient::Answer(known ? 200 : 401);
  }};
  std::unique_ptr<rotation::HttpProviderProbe> probe_;
  std::unique_ptr<rotation::RotationEngine> engine_;
  state::ManualLeadership leadership_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::LeaseService::Stub> lease_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TEST_F(GrpcServiceTest, AcquireReturnsKeyAndReadyMadeHeader) {
  v1::Lease lease;
  grpc::Status s = Acquire(kApp, "lumenfall", &lease);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(lease.api_key() == kLmnV1);
  EXPECT_EQ(lease.key_fingerprint(), core::Fingerprint(kLmnV1));
  EXPECT_EQ(lease.header_name(), "Authorization");
  EXPECT_TRUE(lease.header_value() == "Bearer " + kLmnV1);
  EXPECT_EQ(lease.base_url(), "https://api.lumenfall.ai/openai/v1");
  EXPECT_EQ(lease.key_state(), v1::KEY_STATE_CURRENT);
  EXPECT_FALSE(lease.has_key_retires_at());
  EXPECT_EQ(lease.expires_at().seconds() - lease.issued_at().seconds(), 15 * 60);
}

TEST_F(GrpcServiceTest, MissingOrWrongTokenIsUnauthenticated) {
  v1::Lease lease;
  grpc::Status none = Acquire("", "lumenfall", &lease);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Reason(none), "MISSING_CREDENTIALS");
  grpc::Status wrong = Acquire("not-a-configured-token", "lumenfall", &lease);
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Reason(wrong), "INVALID_CREDENTIALS");
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_caller_auth_failures_total{reason="missing"} 1)"));
}

TEST_F(GrpcServiceTest, RenewReleaseAndErrorsCarryReasons) {
  v1::Lease lease;
  ASSERT_TRUE(Acquire(kApp, "lumenfall", &lease).ok());
  v1::RenewLeaseRequest renew;
  renew.set_lease_id(lease.lease_id());
  renew.mutable_ttl()->set_seconds(600);
  v1::Lease renewed;
  ASSERT_TRUE(lease_->RenewLease(Ctx(kApp).get(), renew, &renewed).ok());
  EXPECT_EQ(renewed.renew_count(), 1);
  EXPECT_TRUE(renewed.api_key() == kLmnV1);
  v1::ReleaseLeaseRequest rel;
  rel.set_lease_id(lease.lease_id());
  v1::ReleaseLeaseResponse resp;
  ASSERT_TRUE(lease_->ReleaseLease(Ctx(kApp).get(), rel, &resp).ok());
  grpc::Status again = lease_->ReleaseLease(Ctx(kApp).get(), rel, &resp);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(again), "LEASE_NOT_FOUND");
  grpc::Status unknown = Acquire(kApp, "nope", &lease);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(unknown), "UNKNOWN_PROVIDER");
}

TEST_F(GrpcServiceTest, WatchSendsStateThenSyncedThenChanges) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + kApp);
  v1::WatchKeysRequest req;
  req.add_providers("lumenfall");
  auto reader = lease_->WatchKeys(&ctx, req);
  v1::KeyEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.type(), v1::KeyEvent::SNAPSHOT);
  EXPECT_EQ(e.key_version(), "v1");
  EXPECT_EQ(e.state(), v1::KEY_STATE_CURRENT);
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.type(), v1::KeyEvent::SYNCED);

  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_TRUE(ring->RefreshProvider("lumenfall", source).ok());
  std::map<v1::KeyEvent::Type, v1::KeyEvent> got;
  for (int i = 0; i < 2 && reader->Read(&e); ++i) got[e.type()] = e;
  ASSERT_TRUE(got.count(v1::KeyEvent::ROTATED));
  EXPECT_EQ(got[v1::KeyEvent::ROTATED].key_version(), "v2");
  EXPECT_EQ(got[v1::KeyEvent::ROTATED].key_fingerprint(), core::Fingerprint(kLmnV2));
  ASSERT_TRUE(got.count(v1::KeyEvent::RETIRING));
  EXPECT_EQ(got[v1::KeyEvent::RETIRING].key_version(), "v1");
  EXPECT_TRUE(got[v1::KeyEvent::RETIRING].has_retires_at());
  ctx.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(GrpcServiceTest, WatchRejectsUnknownProviderAndMissingToken) {
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + kApp);
    v1::WatchKeysRequest req;
    req.add_providers("nope");
    auto reader = lease_->WatchKeys(&ctx, req);
    v1::KeyEvent e;
    EXPECT_FALSE(reader->Read(&e));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  grpc::ClientContext ctx;
  auto reader = lease_->WatchKeys(&ctx, v1::WatchKeysRequest());
  v1::KeyEvent e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// billing may lease lumenfall only; ops is an admin; at most 3 streams, 2 per caller.
class WatchScopeTest : public GrpcServiceTest {
 protected:
  void Configure() override {
    v1::PolicyConfig config;
    auto* rule = config.add_rules();
    rule->add_identities("billing");
    rule->add_providers("lumenfall");
    policy_ = std::make_unique<identity::Policy>(config, &clock);
    limits_ = WatchLimits{3, 2};
    source.Put("fluximage", "v1", "flx_live_" + std::string(40, 'c'));
    ASSERT_TRUE(ring->RefreshProvider("fluximage", source).ok());
  }

  // A client stream, cancelled and finished when it goes out of scope.
  struct Stream {
    Stream() = default;
    Stream(Stream&&) = default;
    Stream& operator=(Stream&&) = default;
    ~Stream() { Close(); }
    grpc::Status Finish() {
      finished = true;
      return reader->Finish();
    }
    void Close() {
      if (reader == nullptr || finished) return;
      ctx->TryCancel();
      (void)Finish();
    }
    std::unique_ptr<grpc::ClientContext> ctx;
    std::unique_ptr<grpc::ClientReader<v1::KeyEvent>> reader;
    bool finished = false;
  };
  Stream Watch(const std::string& token, const std::vector<std::string>& providers = {}) {
    Stream s;
    s.ctx = std::make_unique<grpc::ClientContext>();
    s.ctx->AddMetadata("authorization", "Bearer " + token);
    v1::WatchKeysRequest req;
    for (const std::string& p : providers) req.add_providers(p);
    s.reader = lease_->WatchKeys(s.ctx.get(), req);
    return s;
  }
  // The providers of the stream's SNAPSHOT events, once SYNCED arrived; false if it ended.
  static bool ReadSnapshot(Stream& s, std::set<std::string>* providers) {
    v1::KeyEvent e;
    while (s.reader->Read(&e)) {
      if (e.type() == v1::KeyEvent::SYNCED) return true;
      providers->insert(e.provider());
    }
    return false;
  }
  static grpc::Status Refused(Stream& s) {
    v1::KeyEvent e;
    EXPECT_FALSE(s.reader->Read(&e));
    return s.Finish();
  }
};

TEST_F(WatchScopeTest, ACallerSeesOnlyTheProvidersItMayLease) {
  Stream mine = Watch(kApp);
  std::set<std::string> seen;
  ASSERT_TRUE(ReadSnapshot(mine, &seen));
  EXPECT_EQ(seen, (std::set<std::string>{"lumenfall"}));
  Stream all = Watch(kAdmin);
  seen.clear();
  ASSERT_TRUE(ReadSnapshot(all, &seen));
  EXPECT_EQ(seen, (std::set<std::string>{"lumenfall", "fluximage"}));
  // Asking for a provider without a rule, known or not, is refused alike.
  for (const std::string provider : {"fluximage", "nope"}) {
    Stream refused = Watch(kApp, {provider});
    grpc::Status s = Refused(refused);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << provider;
    EXPECT_EQ(Reason(s), "NO_RULE") << provider;
  }
}

TEST_F(WatchScopeTest, AnomaliesAboutOtherCallersReachAdminsOnly) {
  Stream mine = Watch(kApp);
  Stream all = Watch(kAdmin);
  std::set<std::string> ignored;
  ASSERT_TRUE(ReadSnapshot(mine, &ignored));
  ASSERT_TRUE(ReadSnapshot(all, &ignored));
  for (const std::string caller : {"search", "billing"}) {
    rotation::KeyEvent e;
    e.type = rotation::KeyEvent::Type::kAnomaly;
    e.provider = "lumenfall";
    e.caller = caller;
    e.anomaly_kind = "burst";
    ring->Announce({e});
  }
  // The events arrive in order: billing's first event is about itself, so the one about search,
  // announced before it, was filtered out.
  v1::KeyEvent e;
  ASSERT_TRUE(mine.reader->Read(&e));
  EXPECT_EQ(e.type(), v1::KeyEvent::ANOMALY);
  EXPECT_EQ(e.caller(), "billing");
  ASSERT_TRUE(all.reader->Read(&e));
  EXPECT_EQ(e.caller(), "search");
  ASSERT_TRUE(all.reader->Read(&e));
  EXPECT_EQ(e.caller(), "billing");
}

TEST_F(WatchScopeTest, OpenStreamsAreBoundedPerCallerAndInAll) {
  std::vector<Stream> open;
  std::set<std::string> ignored;
  for (int i = 0; i < 2; ++i) {
    open.push_back(Watch(kApp));
    ASSERT_TRUE(ReadSnapshot(open.back(), &ignored));
  }
  Stream third = Watch(kApp);
  grpc::Status s = Refused(third);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Reason(s), "TOO_MANY_WATCHERS");
  EXPECT_THAT(s.error_message(), HasSubstr("max_watch_streams_per_caller"));
  open.push_back(Watch(kAdmin));  // the third in all
  ASSERT_TRUE(ReadSnapshot(open.back(), &ignored));
  Stream fourth = Watch(kAdmin);
  s = Refused(fourth);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("server.max_watch_streams"));
  // A closed stream gives its place back (once the server has seen it end).
  open[0].Close();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  bool admitted = false;
  while (!admitted && absl::Now() < deadline) {
    Stream again = Watch(kApp);
    admitted = ReadSnapshot(again, &ignored);
    if (!admitted) {
      EXPECT_EQ(Reason(again.Finish()), "TOO_MANY_WATCHERS");
    }
  }
  EXPECT_TRUE(admitted);
}

TEST_F(GrpcServiceTest, AdminNeedsTheAdminRole) {
  v1::ListProvidersResponse providers;
  grpc::Status denied =
      admin_->ListProviders(Ctx(kApp).get(), v1::ListProvidersRequest(), &providers);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(denied), "NOT_ADMIN");
  ASSERT_TRUE(
      admin_->ListProviders(Ctx(kAdmin).get(), v1::ListProvidersRequest(), &providers).ok());
  ASSERT_EQ(providers.providers_size(), 2);
  EXPECT_EQ(providers.providers(0).name(), "lumenfall");
  EXPECT_EQ(providers.providers(0).current_key_version(), "v1");
  EXPECT_TRUE(providers.providers(1).single_key());
  EXPECT_EQ(providers.providers(1).current_key_version(), "");
}

TEST_F(GrpcServiceTest, AdminListsKeysAndLeasesAndRevokes) {
  v1::Lease lease;
  ASSERT_TRUE(Acquire(kApp, "lumenfall", &lease).ok());
  ASSERT_TRUE(Acquire(kApp, "lumenfall", &lease).ok());
  v1::ListKeyVersionsResponse keys;
  ASSERT_TRUE(admin_->ListKeyVersions(Ctx(kAdmin).get(), v1::ListKeyVersionsRequest(), &keys).ok());
  ASSERT_EQ(keys.versions_size(), 1);
  EXPECT_EQ(keys.versions(0).active_leases(), 2);
  EXPECT_EQ(keys.versions(0).key_fingerprint(), core::Fingerprint(kLmnV1));
  EXPECT_EQ(keys.versions(0).due_at().seconds() - keys.versions(0).created_at().seconds(),
            90 * 86400);

  v1::ListLeasesResponse leases;
  ASSERT_TRUE(admin_->ListLeases(Ctx(kAdmin).get(), v1::ListLeasesRequest(), &leases).ok());
  EXPECT_EQ(leases.leases_size(), 2);
  EXPECT_EQ(leases.leases(0).caller(), "billing");

  v1::RevokeLeasesResponse revoked;
  grpc::Status no_filter =
      admin_->RevokeLeases(Ctx(kAdmin).get(), v1::RevokeLeasesRequest(), &revoked);
  EXPECT_EQ(no_filter.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::RevokeLeasesRequest by_id;
  by_id.set_lease_id(lease.lease_id());
  ASSERT_TRUE(admin_->RevokeLeases(Ctx(kAdmin).get(), by_id, &revoked).ok());
  EXPECT_EQ(revoked.revoked(), 1);
  v1::RenewLeaseRequest renew;
  renew.set_lease_id(lease.lease_id());
  v1::Lease out;
  EXPECT_EQ(lease_->RenewLease(Ctx(kApp).get(), renew, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, AdminQuarantinesAKeyVersion) {
  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_TRUE(ring->RefreshProvider("lumenfall", source).ok());
  ring->SetLeaseView(broker.get());
  v1::Lease lease;
  ASSERT_TRUE(Acquire(kApp, "lumenfall", &lease).ok());
  ASSERT_EQ(lease.key_version(), "v2");
  v1::QuarantineKeyVersionRequest req;
  req.set_provider("lumenfall");
  req.set_key_version("v2");
  req.set_reason("leaked");
  v1::QuarantineKeyVersionResponse resp;
  EXPECT_EQ(admin_->QuarantineKeyVersion(Ctx(kApp).get(), req, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(admin_->QuarantineKeyVersion(Ctx(kAdmin).get(), req, &resp).ok());
  v1::Lease fresh;
  ASSERT_TRUE(Acquire(kApp, "lumenfall", &fresh).ok());
  EXPECT_EQ(fresh.key_version(), "v1");
  v1::RenewLeaseRequest renew;
  renew.set_lease_id(lease.lease_id());
  v1::Lease out;
  EXPECT_EQ(lease_->RenewLease(Ctx(kApp).get(), renew, &out).error_code(),
            grpc::StatusCode::NOT_FOUND)
      << "leases on the quarantined version were revoked";
  req.set_key_version("v9");
  EXPECT_EQ(admin_->QuarantineKeyVersion(Ctx(kAdmin).get(), req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, RotateKeyProbesAndPromotesTheStagedVersion) {
  // As in the broker: versions of providers with a probe wait for it.
  ring->GatePromotions(engine_->GatedProviders());
  v1::RotateKeyRequest req;
  req.set_provider("lumenfall");
  v1::RotateKeyResponse resp;
  grpc::Status none = admin_->RotateKey(Ctx(kAdmin).get(), req, &resp);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(none), "NO_PENDING_VERSION");
  EXPECT_EQ(admin_->RotateKey(Ctx(kApp).get(), req, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // A version the provider does not know is refused; the old key keeps serving.
  source.Put("lumenfall", "v2", "lmnfl_bogus.cccccccccccccccc");
  grpc::Status refused = admin_->RotateKey(Ctx(kAdmin).get(), req, &resp);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(refused), "PROBE_FAILED");
  v1::Lease lease;
  ASSERT_TRUE(Acquire(kApp, "lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");

  source.Put("lumenfall", "v3", kLmnV2);
  grpc::Status s = admin_->RotateKey(Ctx(kAdmin).get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.new_current().key_version(), "v3");
  EXPECT_EQ(resp.new_current().state(), v1::KEY_STATE_CURRENT);
  EXPECT_EQ(resp.new_current().key_fingerprint(), core::Fingerprint(kLmnV2));
  ASSERT_TRUE(Acquire(kApp, "lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v3");
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_probes_total{provider="lumenfall",purpose="promotion",result="accepted"} 1)"));

  req.set_provider("nope");
  EXPECT_EQ(admin_->RotateKey(Ctx(kAdmin).get(), req, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Key decisions are the leader's: another replica refuses them, names the reason, and changes
// nothing (no key minted or quarantined there).
TEST_F(GrpcServiceTest, RotateAndQuarantineOnAReplicaThatDoesNotLeadAreRefused) {
  leadership_.Set(0);
  v1::RotateKeyRequest rotate;
  rotate.set_provider("lumenfall");
  v1::RotateKeyResponse rotated;
  grpc::Status s = admin_->RotateKey(Ctx(kAdmin).get(), rotate, &rotated);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(s), "NOT_LEADER");
  EXPECT_THAT(s.error_message(), HasSubstr("does not lead"));
  v1::QuarantineKeyVersionRequest quarantine;
  quarantine.set_provider("lumenfall");
  quarantine.set_key_version("v1");
  v1::QuarantineKeyVersionResponse resp;
  s = admin_->QuarantineKeyVersion(Ctx(kAdmin).get(), quarantine, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(s), "NOT_LEADER");
  v1::Lease lease;
  ASSERT_TRUE(Acquire(kApp, "lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");  // still CURRENT
  // Leading again, the same request goes through.
  leadership_.Set(2);
  EXPECT_TRUE(admin_->QuarantineKeyVersion(Ctx(kAdmin).get(), quarantine, &resp).ok());
}

TEST_F(GrpcServiceTest, ListProvidersShowsRotationModeAndProbeStatus) {
  engine_->RunOnce();  // calibrates: the provider refuses the invalid key
  v1::ListProvidersResponse resp;
  ASSERT_TRUE(admin_->ListProviders(Ctx(kAdmin).get(), v1::ListProvidersRequest(), &resp).ok());
  ASSERT_EQ(resp.providers_size(), 2);
  for (const v1::ProviderInfo& p : resp.providers()) {
    EXPECT_EQ(p.rotation_mode(), "staged");
    EXPECT_EQ(p.probe_status(), "calibrated") << p.name();
  }
}

}  // namespace
}  // namespace credbroker::broker
