// End to end: Leases over gRPC: acquire, renew, release, errors, expiry, and leases that survive
// kill -9.
#include <filesystem>
#include <set>
#include <thread>

#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

TEST_F(EndToEndTest, AcquireRenewReleaseOverGrpc) {
  StartBroker();
  v1::Lease lease;
  grpc::Status s = Acquire("lumenfall", &lease);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(lease.key_version(), "v1");
  EXPECT_EQ(core::Fingerprint(lease.api_key()), core::Fingerprint(kLmnV1));
  EXPECT_EQ(core::Fingerprint(lease.header_value()), core::Fingerprint("Bearer " + kLmnV1));
  EXPECT_EQ(lease.expires_at().seconds() - lease.issued_at().seconds(), 600);

  v1::Lease renewed;
  ASSERT_TRUE(Renew(lease.lease_id(), &renewed).ok());
  EXPECT_EQ(renewed.renew_count(), 1);
  EXPECT_EQ(renewed.lease_id(), lease.lease_id());

  v1::ReleaseLeaseRequest rel;
  rel.set_lease_id(lease.lease_id());
  v1::ReleaseLeaseResponse resp;
  ASSERT_TRUE(lease_->ReleaseLease(Ctx().get(), rel, &resp).ok());
  grpc::Status gone = Renew(lease.lease_id(), &renewed);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(gone), "LEASE_NOT_FOUND");
  EXPECT_THAT(broker_->Logs(), Not(HasSubstr(kLmnV1)));
}

// Ping checks a caller's setup: who the broker thinks it is, with the payload echoed; without
// credentials it fails like every other call, and an oversized payload is refused.
TEST_F(EndToEndTest, PingAnswersWithTheCallersIdentity) {
  StartBroker();
  v1::PingRequest req;
  req.set_payload(std::string(200, 'x'));
  v1::PingResponse resp;
  grpc::Status s = lease_->Ping(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.caller(), "e2e-app");
  EXPECT_EQ(resp.payload(), req.payload());
  EXPECT_EQ(lease_->Ping(Ctx("").get(), req, &resp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  req.set_payload(std::string(1025, 'x'));
  grpc::Status big = lease_->Ping(Ctx().get(), req, &resp);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reason(big), "PAYLOAD_TOO_LARGE");
}

TEST_F(EndToEndTest, BadRequestsGetClearErrors) {
  StartBroker();
  v1::Lease lease;
  grpc::Status no_token = Acquire("lumenfall", &lease, "");
  EXPECT_EQ(no_token.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status bad_token = Acquire("lumenfall", &lease, "wrong-token-0123456789");
  EXPECT_EQ(bad_token.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status unknown = Acquire("openai", &lease);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(unknown), "UNKNOWN_PROVIDER");
  grpc::Status bad_id = Renew("not-a-lease", &lease);
  EXPECT_EQ(bad_id.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status unknown_id = Renew(core::NewLeaseId(), &lease);
  EXPECT_EQ(unknown_id.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListProvidersResponse providers;
  grpc::Status not_admin =
      admin_->ListProviders(Ctx().get(), v1::ListProvidersRequest(), &providers);
  EXPECT_EQ(not_admin.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(
      admin_->ListProviders(Ctx(kAdminToken).get(), v1::ListProvidersRequest(), &providers).ok());
  EXPECT_EQ(providers.providers_size(), 2);
}

TEST_F(EndToEndTest, ExpiredLeaseIsRefusedAndSwept) {
  StartBroker();
  v1::AcquireLeaseRequest req;
  req.set_provider("lumenfall");
  req.mutable_ttl()->set_seconds(1);
  v1::Lease lease;
  ASSERT_TRUE(lease_->AcquireLease(Ctx().get(), req, &lease).ok());
  EXPECT_EQ(lease.expires_at().seconds() - lease.issued_at().seconds(), 1);
  const absl::Time expires = absl::FromUnixSeconds(lease.expires_at().seconds()) +
                             absl::Nanoseconds(lease.expires_at().nanos());
  ASSERT_TRUE(Eventually([&] { return absl::Now() > expires; }));
  v1::Lease renewed;
  grpc::Status s = Renew(lease.lease_id(), &renewed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(Reason(s), ::testing::AnyOf("LEASE_EXPIRED", "LEASE_NOT_FOUND"));
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(), R"(credbroker_leases_expired_total{caller="e2e-app",provider="lumenfall"} 1)");
  }));
  EXPECT_THAT(Metrics(),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="lumenfall"} 0)"));
}

TEST_F(EndToEndTest, LeaseSurvivesKill9AndRestart) {
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  broker_->Kill();  // SIGKILL: no shutdown hooks run
  broker_.reset();
  StartBroker();
  v1::Lease renewed;
  grpc::Status s = Renew(lease.lease_id(), &renewed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(renewed.lease_id(), lease.lease_id());
  EXPECT_EQ(renewed.renew_count(), 1);
  EXPECT_EQ(core::Fingerprint(renewed.api_key()), core::Fingerprint(kLmnV1));
  EXPECT_THAT(Metrics(),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="lumenfall"} 1)"));
}

// `state: {memory: {}}` serves the same API from this process's memory, says so at start, and
// keeps nothing: after a restart the lease is unknown.
TEST_F(EndToEndTest, MemoryStateServesLeasesAndForgetsThemOnRestart) {
  WriteFile(dir_.Join("broker.yaml"), std::string(kConfig) + "state: {memory: {}}\n");
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  v1::Lease renewed;
  ASSERT_TRUE(Renew(lease.lease_id(), &renewed).ok());
  EXPECT_EQ(renewed.renew_count(), 1);
  EXPECT_THAT(broker_->Logs(), HasSubstr("state.memory"));
  EXPECT_THAT(broker_->Logs(), HasSubstr(R"("store":"memory")"));
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("data/state.db")));
  ASSERT_EQ(broker_->Stop(), 0);
  broker_.reset();
  StartBroker();
  grpc::Status gone = Renew(lease.lease_id(), &renewed);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(gone), "LEASE_NOT_FOUND");
}

// A lease acknowledged to a client is committed: kill -9 in the middle of a burst of concurrent
// acquires (whose writes are group-committed) loses none of them.
TEST_F(EndToEndTest, EveryAcknowledgedLeaseSurvivesKill9InTheMiddleOfABurst) {
  StartBroker();
  std::mutex mu;
  std::condition_variable enough;
  std::vector<std::string> acknowledged;
  constexpr size_t kKillAfter = 300;
  constexpr int kThreads = 8;
  constexpr int kMaxPerThread = 2000;  // bounded, whatever happens
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < kMaxPerThread; ++i) {
        v1::Lease lease;
        if (!Acquire("lumenfall", &lease).ok()) return;  // the broker is gone
        std::lock_guard<std::mutex> lock(mu);
        acknowledged.push_back(lease.lease_id());
        if (acknowledged.size() >= kKillAfter) enough.notify_all();
      }
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(enough.wait_for(lock, std::chrono::seconds(60),
                                [&] { return acknowledged.size() >= kKillAfter; }));
  }
  broker_->Kill();  // the clients are still sending
  for (std::thread& t : clients) t.join();
  broker_.reset();

  StartBroker();
  v1::ListLeasesResponse listed;
  ASSERT_TRUE(admin_->ListLeases(Ctx(kAdminToken).get(), v1::ListLeasesRequest(), &listed).ok());
  std::set<std::string> present;
  for (const v1::LeaseInfo& l : listed.leases()) present.insert(l.lease_id());
  size_t missing = 0;
  for (const std::string& id : acknowledged) missing += present.contains(id) ? 0 : 1;
  EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged leases";
  EXPECT_GE(present.size(), acknowledged.size());
  // And they work: the last one acknowledged renews.
  v1::Lease renewed;
  grpc::Status s = Renew(acknowledged.back(), &renewed);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace credbroker::e2e
