// End to end: starts the real `credbroker` binary on free loopback ports and talks gRPC to it,
// rewrites key files the way the kubelet does, scrapes /metrics, kills -9 and restarts it.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "credbroker/core/ids.h"
#include "credbroker/testing/broker_process.h"
#include "credbroker/testing/grpc_status.h"
#include "credbroker/testing/jwt_signer.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "credbroker/v1/admin.grpc.pb.h"
#include "credbroker/v1/lease.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"

namespace credbroker {
namespace {

using ::credbroker::testing::BinaryFromEnv;
using ::credbroker::testing::BrokerProcess;
using ::credbroker::testing::HttpGet;
using ::credbroker::testing::RunCommand;
using ::credbroker::testing::TempDir;
using ::credbroker::testing::WriteFile;
using ::credbroker::testing::WriteK8sSecretDir;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kLmnV1 = "lmnfl_e2eone.0123456789abcdef0123";
const std::string kLmnV2 = "lmnfl_e2etwo.fedcba9876543210fedc";
const std::string kFlxV1 = "flx_live_" + std::string(40, 'c');
const std::string kAppToken = "e2e-app-token-0123456789";
const std::string kAdminToken = "e2e-admin-token-0123456789";

constexpr char kConfig[] = R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: local
    file:
      root: keys
    refresh_interval: 1s
providers:
  # Fake keys: no provider to probe (ProbeEndToEndTest covers probes).
  - name: lumenfall
    probe: {disabled: true}
  - name: fluximage
    probe: {disabled: true}
leases:
  default_ttl: 10m
  max_ttl: 1h
  min_ttl: 1s
  sweep_interval: 1s
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: e2e-admin
      token_file: admin.token
      admin: true
)";

std::string Reason(const grpc::Status& s) { return testing::ErrorReason(s); }

class EndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Paths of the binaries built alongside this test (overridable for an installed broker).
    binary_ = BinaryFromEnv("CREDBROKER_BIN");
    if (binary_.empty()) binary_ = CREDBROKER_BIN;
    credctl_ = BinaryFromEnv("CREDCTL_BIN");
    if (credctl_.empty()) credctl_ = CREDCTL_BIN;
    WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1 + "\n"}});
    WriteK8sSecretDir(dir_.Join("keys/fluximage"), {{"v1", kFlxV1}});
    WriteFile(dir_.Join("admin.token"), kAdminToken + "\n");
    WriteFile(dir_.Join("broker.yaml"), kConfig);
  }

  void TearDown() override {
    if (!broker_) return;
    int code = broker_->Stop();
    std::string logs = broker_->Logs();
    // Under the asan preset the broker itself is instrumented: its reports land in its log.
    EXPECT_THAT(logs, Not(HasSubstr("Sanitizer")));
    EXPECT_THAT(logs, Not(HasSubstr("runtime error:")));
    EXPECT_EQ(code, 0) << "broker did not exit cleanly on SIGTERM";
  }

  void StartBroker() {
    auto proc = BrokerProcess::Start(binary_, {"--config", dir_.Join("broker.yaml")}, dir_.path());
    ASSERT_THAT(proc.status(), testing::IsOk());
    broker_.emplace(std::move(*proc));
    channel_ = grpc::CreateChannel(broker_->grpc_address(), grpc::InsecureChannelCredentials());
    lease_ = v1::LeaseService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = kAppToken) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  grpc::Status Acquire(const std::string& provider, v1::Lease* out,
                       const std::string& token = kAppToken) {
    v1::AcquireLeaseRequest req;
    req.set_provider(provider);
    return lease_->AcquireLease(Ctx(token).get(), req, out);
  }

  grpc::Status Renew(const std::string& id, v1::Lease* out) {
    v1::RenewLeaseRequest req;
    req.set_lease_id(id);
    return lease_->RenewLease(Ctx().get(), req, out);
  }

  std::string Metrics() {
    auto body = HttpGet(broker_->metrics_address(), "/metrics");
    return body.ok() ? *body : "";
  }

  // Polls until `pred` holds (file watching and refreshes are asynchronous).
  template <typename Pred>
  bool Eventually(Pred pred, absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (pred()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return pred();
  }

  testing::ProcessResult Credctl(std::vector<std::string> args,
                                 const std::string& token = kAppToken) {
    std::vector<std::string> argv = {credctl_, "--addr", broker_->grpc_address(), "--token", token};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  TempDir dir_;
  std::string binary_;
  std::string credctl_;
  std::optional<BrokerProcess> broker_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::LeaseService::Stub> lease_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

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
  absl::SleepFor(absl::Milliseconds(1100));
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

TEST_F(EndToEndTest, MetricsPassPromtoolCheck) {
  StartBroker();
  // Fill a few families first: a lease, a renewal, a refused token.
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  ASSERT_TRUE(Renew(lease.lease_id(), &lease).ok());
  EXPECT_FALSE(Acquire("lumenfall", &lease, "wrong-token-0123456789").ok());
  auto check = RunCommand({std::string(CB_SOURCE_DIR) + "/scripts/check-prometheus.sh", "--metrics",
                           absl::StrCat("http://", broker_->metrics_address(), "/metrics")});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_THAT(check.output, HasSubstr("OK"));
}

TEST_F(EndToEndTest, WatchSeesAKeyRotationWrittenAsFiles) {
  StartBroker();
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchKeysRequest req;
  req.add_providers("lumenfall");
  auto reader = lease_->WatchKeys(&ctx, req);
  v1::KeyEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.type(), v1::KeyEvent::SNAPSHOT);
  EXPECT_EQ(e.key_version(), "v1");
  ASSERT_TRUE(reader->Read(&e));
  ASSERT_EQ(e.type(), v1::KeyEvent::SYNCED);

  v1::Lease old_lease;
  ASSERT_TRUE(Acquire("lumenfall", &old_lease).ok());

  // The kubelet-style atomic update adds v2.
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  bool rotated = false;
  while (!rotated && reader->Read(&e)) {
    rotated = e.type() == v1::KeyEvent::ROTATED && e.key_version() == "v2";
  }
  ASSERT_TRUE(rotated);
  EXPECT_EQ(e.key_fingerprint(), core::Fingerprint(kLmnV2));

  v1::Lease fresh;
  ASSERT_TRUE(Acquire("lumenfall", &fresh).ok());
  EXPECT_EQ(fresh.key_version(), "v2");
  EXPECT_EQ(core::Fingerprint(fresh.api_key()), core::Fingerprint(kLmnV2));
  // The old lease still renews on the now-PREVIOUS v1, and says when v1 retires.
  v1::Lease renewed;
  ASSERT_TRUE(Renew(old_lease.lease_id(), &renewed).ok());
  EXPECT_EQ(renewed.key_version(), "v1");
  EXPECT_EQ(renewed.key_state(), v1::KEY_STATE_PREVIOUS);
  EXPECT_TRUE(renewed.has_key_retires_at());
  ctx.TryCancel();
  (void)reader->Finish();
}

TEST_F(EndToEndTest, MalformedKeyIsRejectedCountedAndOldKeyKeepsServing) {
  StartBroker();
  const std::string bad = "sk-definitely-not-lumenfall";
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", bad}});
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(),
        R"(credbroker_key_versions_rejected_total{provider="lumenfall",reason="format"} 1)");
  })) << Metrics();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");
  std::string logs = broker_->Logs();
  EXPECT_THAT(logs, HasSubstr(core::Fingerprint(bad)));
  EXPECT_THAT(logs, Not(HasSubstr(bad)));
  EXPECT_THAT(Metrics(), Not(HasSubstr(bad)));
}

TEST_F(EndToEndTest, MetricsEndpointServesTheMetricSet) {
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  v1::ReportAuthFailureRequest report;
  report.set_lease_id(lease.lease_id());
  report.set_http_status(401);
  report.set_error_code("INVALID_API_KEY");
  v1::ReportAuthFailureResponse resp;
  ASSERT_TRUE(lease_->ReportAuthFailure(Ctx().get(), report, &resp).ok());
  EXPECT_FALSE(resp.newer_key_available());
  std::string m = Metrics();
  EXPECT_THAT(
      m, HasSubstr(R"(credbroker_leases_issued_total{caller="e2e-app",provider="lumenfall"} 1)"));
  EXPECT_THAT(m, HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="lumenfall"} 1)"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(credbroker_auth_failure_reports_total{caller="e2e-app",http_status="401",key_version="v1",provider="lumenfall"} 1)"));
  EXPECT_THAT(m, HasSubstr("credbroker_grpc_request_duration_seconds_bucket"));
  EXPECT_THAT(m,
              HasSubstr(R"(credbroker_backend_last_success_timestamp_seconds{backend="local"})"));
  EXPECT_THAT(m, Not(HasSubstr(lease.lease_id())));
  EXPECT_THAT(m, Not(HasSubstr(kLmnV1)));
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

TEST_F(EndToEndTest, KeyVersionStateSurvivesKill9) {
  StartBroker();
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  auto previous = [&]() -> std::optional<v1::KeyVersionInfo> {
    v1::ListKeyVersionsRequest req;
    req.set_provider("lumenfall");
    v1::ListKeyVersionsResponse resp;
    if (!admin_->ListKeyVersions(Ctx(kAdminToken).get(), req, &resp).ok()) return std::nullopt;
    for (const auto& v : resp.versions()) {
      if (v.key_version() == "v1" && v.state() == v1::KEY_STATE_PREVIOUS) return v;
    }
    return std::nullopt;
  };
  ASSERT_TRUE(Eventually([&] { return previous().has_value(); }));
  const v1::KeyVersionInfo before = *previous();
  broker_->Kill();
  broker_.reset();
  absl::SleepFor(absl::Seconds(1));  // a restart later must not restart the overlap
  StartBroker();
  std::optional<v1::KeyVersionInfo> after = previous();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->retires_at().seconds(), before.retires_at().seconds());
  EXPECT_EQ(after->created_at().seconds(), before.created_at().seconds());
}

TEST_F(EndToEndTest, GracefulStopExitsZeroEvenWithAWatcherOpen) {
  StartBroker();
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  auto reader = lease_->WatchKeys(&ctx, v1::WatchKeysRequest());
  v1::KeyEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(broker_->Stop(), 0);
  EXPECT_THAT(broker_->Logs(), HasSubstr("credbroker stopped"));
  broker_.reset();
  while (reader->Read(&e)) {
  }
  // Watchers are told at once, so they can reconnect to another replica.
  grpc::Status end = reader->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE) << end.error_message();
}

// Raw-bytes unary call through the generic stub (no generated health stubs are installed).
grpc::Status RawUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                      const std::string& request, std::string* response) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1);
  grpc::ByteBuffer resp;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
    std::lock_guard<std::mutex> lock(mu);
    status = s;
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  std::vector<grpc::Slice> slices;
  if (status.ok() && resp.Dump(&slices).ok()) {
    for (auto& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

TEST_F(EndToEndTest, HealthCheckAnswersWithoutAToken) {
  StartBroker();
  // HealthCheckRequest{service: ""} is the empty message; SERVING is field 1 = 1.
  std::string response;
  grpc::Status s = RawUnary(channel_, "/grpc.health.v1.Health/Check", "", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response, std::string("\x08\x01", 2));
  // HealthCheckRequest{service: "readiness"}.
  response.clear();
  s = RawUnary(channel_, "/grpc.health.v1.Health/Check", std::string("\x0a\x09readiness"),
               &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response, std::string("\x08\x01", 2));
}

TEST_F(EndToEndTest, ReflectionListsTheServices) {
  StartBroker();
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer req(&slice, 1);
  call->Write(req, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer resp;
  call->Read(&resp, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp.Dump(&slices).ok());
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_THAT(bytes, HasSubstr("credbroker.v1.LeaseService"));
  EXPECT_THAT(bytes, HasSubstr("credbroker.v1.AdminService"));
  ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(4)) {
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(EndToEndTest, CredctlWorksForHumansAndScripts) {
  StartBroker();
  auto acquired = Credctl({"--json", "lease", "acquire", "lumenfall", "--ttl", "5m"});
  ASSERT_EQ(acquired.exit_code, 0) << acquired.output;
  EXPECT_THAT(acquired.output, HasSubstr("\"key_version\":\"v1\""));
  EXPECT_THAT(acquired.output, Not(HasSubstr(kLmnV1))) << "no key without --reveal-key";
  std::string id = acquired.output.substr(acquired.output.find("\"lease_id\":\"") + 12, 22);
  auto renewed = Credctl({"lease", "renew", id});
  ASSERT_EQ(renewed.exit_code, 0) << renewed.output;
  EXPECT_THAT(renewed.output, HasSubstr("renew_count:  1"));
  auto revealed = Credctl({"--json", "--reveal-key", "lease", "renew", id});
  ASSERT_EQ(revealed.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(revealed.output, kLmnV1)) << "--reveal-key prints the key";
  auto released = Credctl({"lease", "release", id});
  EXPECT_EQ(released.exit_code, 0);
  auto again = Credctl({"lease", "release", id});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.output, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(again.output, HasSubstr("LEASE_NOT_FOUND"));

  auto keys = Credctl({"keys"}, kAdminToken);
  ASSERT_EQ(keys.exit_code, 0) << keys.output;
  EXPECT_THAT(keys.output, HasSubstr(core::Fingerprint(kLmnV1)));
  EXPECT_THAT(keys.output, HasSubstr("CURRENT"));
  EXPECT_THAT(keys.output, HasSubstr("DUE"));
  auto providers = Credctl({"--json", "providers"}, kAdminToken);
  ASSERT_EQ(providers.exit_code, 0);
  EXPECT_THAT(providers.output, HasSubstr("\"name\":\"fluximage\""));
  EXPECT_THAT(providers.output, HasSubstr("\"single_key\":true"));
  auto denied = Credctl({"providers"});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_THAT(denied.output, HasSubstr("PERMISSION_DENIED"));

  auto not_admin = Credctl({"quarantine", "lumenfall", "v1"});
  EXPECT_NE(not_admin.exit_code, 0);
  auto quarantined =
      Credctl({"quarantine", "fluximage", "v1", "--reason", "leaked in CI logs"}, kAdminToken);
  ASSERT_EQ(quarantined.exit_code, 0) << quarantined.output;
  auto gone = Credctl({"lease", "acquire", "fluximage"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.output, HasSubstr("NO_KEY")) << "its only key is quarantined";
  EXPECT_THAT(broker_->Logs(), HasSubstr("key version quarantined"));

  auto watch = Credctl({"--json", "watch", "lumenfall", "--count", "2"});
  ASSERT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_THAT(watch.output, HasSubstr("\"type\":\"SNAPSHOT\""));
  EXPECT_THAT(watch.output, HasSubstr("\"type\":\"SYNCED\""));
}

TEST_F(EndToEndTest, BadConfigExitsNonZeroNamingTheField) {
  WriteFile(dir_.Join("bad.yaml"), std::string(kConfig) + "      rotation_period: 7d\n");
  // The appended line lands under the last static token: an unknown field there.
  const int line = static_cast<int>(std::count(kConfig, kConfig + sizeof(kConfig), '\n')) + 1;
  auto r = RunCommand({binary_, "--config", dir_.Join("bad.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("bad.yaml:", line, ":")));
  EXPECT_THAT(r.output, HasSubstr("identity.static_tokens[1].rotation_period"));

  WriteFile(dir_.Join("bad2.yaml"), R"(sources: [{name: local, file: {root: keys}}]
providers:
  - name: lumenfall
    rotation_period: 120d
)");
  auto check = RunCommand({binary_, "--check-config", dir_.Join("bad2.yaml")});
  EXPECT_EQ(check.exit_code, 2);
  EXPECT_THAT(check.output,
              HasSubstr("bad2.yaml:4: providers[0].rotation_period: must be between 30d and 90d"));
  auto ok = RunCommand({binary_, "--check-config", dir_.Join("broker.yaml")});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  auto ctl = RunCommand({credctl_, "check-config", dir_.Join("bad2.yaml")});
  EXPECT_NE(ctl.exit_code, 0);
  EXPECT_THAT(ctl.output, HasSubstr("rotation_period"));
  auto missing = RunCommand({binary_, "--config", dir_.Join("nope.yaml")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output, HasSubstr("nope.yaml"));
  auto flag = RunCommand({binary_, "--bogus"});
  EXPECT_EQ(flag.exit_code, 2);
}

TEST_F(EndToEndTest, PortInUseIsAClearStartupError) {
  StartBroker();
  auto second = RunCommand({binary_, "--config", dir_.Join("broker.yaml"), "--listen",
                            broker_->grpc_address(), "--data-dir", dir_.Join("data2")});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.output, HasSubstr("cannot listen"));
}

TEST_F(EndToEndTest, ShippedExampleConfigServesDemoKeys) {
  const std::string src = CB_SOURCE_DIR;
  auto proc = BrokerProcess::Start(
      binary_,
      {"--config", src + "/examples/local.yaml", "--listen", "127.0.0.1:0", "--metrics-listen",
       "127.0.0.1:0", "--data-dir", dir_.Join("demo-data")},
      dir_.path());
  ASSERT_THAT(proc.status(), testing::IsOk());
  auto channel = grpc::CreateChannel(proc->grpc_address(), grpc::InsecureChannelCredentials());
  auto stub = v1::LeaseService::NewStub(channel);
  for (const char* provider : {"fluximage", "lumenfall", "firemoon", "magichour", "example-ai"}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer demo-app-token-change-me");
    v1::AcquireLeaseRequest req;
    req.set_provider(provider);
    v1::Lease lease;
    grpc::Status s = stub->AcquireLease(&ctx, req, &lease);
    EXPECT_TRUE(s.ok()) << provider << ": " << s.error_message();
  }
}

// The broker with a Vault source, against the Vault stand-in (tests/fixtures/vault_fixture.py).
class VaultEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    WriteFile(dir_.Join("jwt"), "projected-sa-token-e2e\n");
    auto vault = testing::ChildProcess::Start(
        {"/usr/bin/python3", CB_VAULT_FIXTURE, "--port-file", dir_.Join("vault.port"), "--k8s-role",
         "credbroker", "--k8s-jwt-file", dir_.Join("jwt")},
        dir_.Join("vault.port"), dir_.Join("vault.log"));
    ASSERT_THAT(vault.status(), testing::IsOk());
    vault_.emplace(std::move(*vault));
    vault_address_ = absl::StrCat("http://127.0.0.1:", vault_->port());
    Seed(kLmnV1);
    WriteFile(dir_.Join("broker.yaml"), absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: vault
    vault:
      address: )",
                                                     vault_address_, R"(
      path_prefix: credbroker
      auth:
        kubernetes:
          role: credbroker
          jwt_file: jwt
      max_attempts: 2
    refresh_interval: 200ms
    max_staleness: 2s
providers:
  - name: lumenfall
    probe: {disabled: true}
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
)"));
  }

  void Post(const std::string& path, const std::string& body) {
    auto r = RunCommand({"/usr/bin/curl", "-sf", "-X", "POST", "-d", body, vault_address_ + path});
    ASSERT_EQ(r.exit_code, 0) << path << ": " << r.output;
  }
  void Seed(const std::string& key) {
    Post("/__fixture/put", absl::StrCat(R"({"mount":"secret","path":"credbroker/lumenfall",)",
                                        R"("data":{"api_key":")", key, R"("}})"));
  }

  std::optional<testing::ChildProcess> vault_;
  std::string vault_address_;
};

TEST_F(VaultEndToEndTest, ServesVaultKeysRotatesAndFailsClosedAfterMaxStaleness) {
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok()) << broker_->Logs();
  EXPECT_EQ(lease.key_version(), "1");
  EXPECT_EQ(core::Fingerprint(lease.api_key()), core::Fingerprint(kLmnV1));

  // `vault kv put` of a new version: picked up by the next refresh.
  Seed(kLmnV2);
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    return Acquire("lumenfall", &l).ok() && l.key_version() == "2";
  }));

  // Vault sealed: cached keys keep serving, loudly, until max_staleness; then UNAVAILABLE.
  Post("/__fixture/seal", "{}");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(),
                             R"(credbroker_backend_errors_total{backend="vault",reason="sealed"})");
  }));
  v1::Lease during;
  EXPECT_TRUE(Acquire("lumenfall", &during).ok()) << "within max_staleness";
  grpc::Status stale;
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    stale = Acquire("lumenfall", &l);
    return stale.error_code() == grpc::StatusCode::UNAVAILABLE;
  }));
  EXPECT_EQ(Reason(stale), "BACKEND_STALE");
  EXPECT_THAT(stale.error_message(), HasSubstr("sealed"));
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_provider_servable{provider="lumenfall"} 0)");
  }));

  // Unsealed: recovers without a restart.
  Post("/__fixture/unseal", "{}");
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    return Acquire("lumenfall", &l).ok();
  }));
  EXPECT_THAT(broker_->Logs(), Not(HasSubstr(kLmnV2)));
  EXPECT_THAT(broker_->Logs(), Not(HasSubstr("projected-sa-token-e2e")));
}

// Makes a CA, or a leaf certificate signed by `ca`, with the openssl CLI.
void MakeCa(const std::string& dir, const std::string& name) {
  auto r = RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/" + name + ".key",
                       "-out", dir + "/" + name + ".crt", "-subj", "/CN=" + name, "-days", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

void MakeLeaf(const std::string& dir, const std::string& name, const std::string& ca,
              const std::string& san, const std::string& usage) {
  WriteFile(dir + "/" + name + ".ext", absl::StrCat("basicConstraints=CA:FALSE\nsubjectAltName=",
                                                    san, "\nextendedKeyUsage=", usage, "\n"));
  auto csr = RunCommand({"/usr/bin/openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/" + name + ".key",
                         "-out", dir + "/" + name + ".csr", "-subj", "/CN=" + name});
  ASSERT_EQ(csr.exit_code, 0) << csr.output;
  auto sign = RunCommand({"/usr/bin/openssl", "x509", "-req", "-in", dir + "/" + name + ".csr",
                          "-CA", dir + "/" + ca + ".crt", "-CAkey", dir + "/" + ca + ".key",
                          "-CAcreateserial", "-out", dir + "/" + name + ".crt", "-days", "2",
                          "-extfile", dir + "/" + name + ".ext"});
  ASSERT_EQ(sign.exit_code, 0) << sign.output;
}

// TLS, client certificates, Kubernetes JWTs, policy and the audit log, through the real binary.
class SecurityEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    const std::string d = dir_.path();
    MakeCa(d, "ca");
    MakeCa(d, "ca2");
    MakeCa(d, "rogue-ca");
    MakeLeaf(d, "server", "ca", "DNS:localhost,IP:127.0.0.1", "serverAuth");
    MakeLeaf(d, "server2", "ca2", "DNS:localhost,IP:127.0.0.1", "serverAuth");
    MakeLeaf(d, "billing", "ca", "URI:spiffe://cluster.local/ns/billing/sa/api", "clientAuth");
    MakeLeaf(d, "foreign", "ca", "URI:spiffe://evil.example/ns/billing/sa/api", "clientAuth");
    MakeLeaf(d, "rogue", "rogue-ca", "URI:spiffe://cluster.local/ns/billing/sa/api", "clientAuth");
    std::filesystem::copy_file(dir_.Join("server.crt"), dir_.Join("tls.crt"));
    std::filesystem::copy_file(dir_.Join("server.key"), dir_.Join("tls.key"));
    jwt_key_ = testing::JwtKey::NewRsa("k8s-1");
    WriteFile(dir_.Join("jwks.json"), testing::Jwks({jwt_key_.get()}));
    WriteFile(dir_.Join("broker.yaml"), R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
  tls:
    cert_file: tls.crt
    key_file: tls.key
    client_ca_file: ca.crt
    reload_interval: 1s
sources:
  - name: local
    file: {root: keys}
providers:
  # Fake keys: no provider to probe (ProbeEndToEndTest covers probes).
  - name: lumenfall
    probe: {disabled: true}
  - name: fluximage
    probe: {disabled: true}
identity:
  mtls: {trust_domain: cluster.local}
  kubernetes:
    issuer: https://kubernetes.default.svc.cluster.local
    audience: credbroker
    jwks_file: jwks.json
policy:
  rules:
    - identities: ["billing/*"]
      providers: [lumenfall]
    - identities: [search/indexer]
      providers: ["*"]
      max_active_leases: 1
  admins: ["ops/*"]
audit:
  path: audit.log
)");
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& ca, const std::string& client) {
    grpc::SslCredentialsOptions opts;
    opts.pem_root_certs = testing::ReadFile(dir_.Join(ca + ".crt"));
    if (!client.empty()) {
      opts.pem_private_key = testing::ReadFile(dir_.Join(client + ".key"));
      opts.pem_cert_chain = testing::ReadFile(dir_.Join(client + ".crt"));
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel(broker_->grpc_address(), grpc::SslCredentials(opts), args);
  }

  grpc::Status AcquireOn(const std::shared_ptr<grpc::Channel>& ch, const std::string& provider,
                         const std::string& bearer = "", v1::Lease* out = nullptr) {
    auto stub = v1::LeaseService::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
    v1::AcquireLeaseRequest req;
    req.set_provider(provider);
    v1::Lease lease;
    grpc::Status s = stub->AcquireLease(&ctx, req, &lease);
    if (out) *out = lease;
    return s;
  }

  std::string Jwt(const std::string& ns, const std::string& sa, int64_t exp_in) {
    int64_t now = absl::ToUnixSeconds(absl::Now());
    return jwt_key_->Sign(R"({"alg":"RS256","kid":"k8s-1"})",
                          testing::K8sClaims("https://kubernetes.default.svc.cluster.local",
                                             "credbroker", ns, sa, now + exp_in, now - 5));
  }

  std::unique_ptr<testing::JwtKey> jwt_key_;
};

TEST_F(SecurityEndToEndTest, ClientCertificatesJwtsPolicyAndAudit) {
  StartBroker();
  // A SPIFFE client certificate is the identity billing/api.
  auto billing = Channel("ca", "billing");
  v1::Lease lease;
  grpc::Status s = AcquireOn(billing, "lumenfall", "", &lease);
  ASSERT_TRUE(s.ok()) << s.error_message() << broker_->Logs();
  grpc::Status no_rule = AcquireOn(billing, "fluximage");
  EXPECT_EQ(no_rule.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(no_rule), "NO_RULE");

  // A Kubernetes service-account JWT over TLS (no client certificate).
  auto plain_tls = Channel("ca", "");
  std::string indexer = Jwt("search", "indexer", 600);
  ASSERT_TRUE(AcquireOn(plain_tls, "fluximage", indexer).ok());
  grpc::Status too_many = AcquireOn(plain_tls, "fluximage", indexer);
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Reason(too_many), "TOO_MANY_LEASES");
  grpc::Status expired = AcquireOn(plain_tls, "fluximage", Jwt("search", "indexer", -600));
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Reason(expired), "TOKEN_EXPIRED");
  grpc::Status stranger = AcquireOn(plain_tls, "lumenfall", Jwt("random", "sa", 600));
  EXPECT_EQ(stranger.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Certificates from the wrong trust domain or an untrusted CA, and plaintext, get nowhere.
  grpc::Status foreign = AcquireOn(Channel("ca", "foreign"), "lumenfall");
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Reason(foreign), "UNTRUSTED_DOMAIN");
  EXPECT_EQ(AcquireOn(Channel("ca", "rogue"), "lumenfall").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      AcquireOn(grpc::CreateChannel(broker_->grpc_address(), grpc::InsecureChannelCredentials()),
                "lumenfall")
          .error_code(),
      grpc::StatusCode::UNAVAILABLE);

  std::string m = Metrics();
  EXPECT_THAT(m, HasSubstr(R"(credbroker_caller_auth_failures_total{reason="expired"} 1)"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(credbroker_policy_denials_total{caller="billing/api",provider="fluximage",reason="NO_RULE"} 1)"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(credbroker_policy_denials_total{caller="unknown",provider="lumenfall",reason="NO_RULE"} 1)"));
  EXPECT_THAT(
      m,
      HasSubstr(R"(credbroker_leases_issued_total{caller="billing/api",provider="lumenfall"} 1)"));

  std::string audit = testing::ReadFile(dir_.Join("audit.log"));
  EXPECT_THAT(
      audit,
      HasSubstr(absl::StrCat(
          R"("action":"AcquireLease","caller":"billing/api","provider":"lumenfall","key_version":"v1","key_fingerprint":")",
          core::Fingerprint(kLmnV1), R"(","lease_id":")", lease.lease_id(),
          R"(","decision":"allow"})")));
  EXPECT_THAT(
      audit,
      HasSubstr(
          R"("caller":"billing/api","provider":"fluximage","decision":"deny","reason":"NO_RULE")"));
  EXPECT_THAT(audit, HasSubstr(R"("decision":"deny","reason":"TOKEN_EXPIRED")"));
  EXPECT_THAT(
      audit,
      HasSubstr(
          R"("caller":"search/indexer","provider":"fluximage","decision":"deny","reason":"TOO_MANY_LEASES")"));
  EXPECT_THAT(audit, Not(HasSubstr(kLmnV1)));
  EXPECT_THAT(audit, Not(HasSubstr(kFlxV1)));
  EXPECT_THAT(audit + broker_->Logs(), Not(HasSubstr(indexer.substr(0, 40))));
}

TEST_F(SecurityEndToEndTest, ServerCertificateIsReloadedWithoutRestart) {
  StartBroker();
  ASSERT_TRUE(AcquireOn(Channel("ca", "billing"), "lumenfall").ok());
  EXPECT_EQ(AcquireOn(Channel("ca2", "billing"), "lumenfall").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // cert-manager style renewal: new files under the same names.
  WriteFile(dir_.Join("tls.key"), testing::ReadFile(dir_.Join("server2.key")));
  WriteFile(dir_.Join("tls.crt"), testing::ReadFile(dir_.Join("server2.crt")));
  EXPECT_TRUE(Eventually([&] { return AcquireOn(Channel("ca2", "billing"), "lumenfall").ok(); }))
      << broker_->Logs();
}

TEST_F(SecurityEndToEndTest, JwksFromTheApiServerUrlWithItsBearerToken) {
  WriteFile(dir_.Join("sa.token"), "broker-own-sa-token");
  auto jwks = testing::ChildProcess::Start(
      {"/usr/bin/python3", CB_STATIC_HTTP_FIXTURE, "--file", dir_.Join("jwks.json"), "--port-file",
       dir_.Join("jwks.port"), "--token-file", dir_.Join("sa.token")},
      dir_.Join("jwks.port"), dir_.Join("jwks.log"));
  ASSERT_THAT(jwks.status(), testing::IsOk());
  std::string config = testing::ReadFile(dir_.Join("broker.yaml"));
  std::string url = absl::StrCat("http://127.0.0.1:", jwks->port(), "/openid/v1/jwks");
  config.replace(config.find("jwks_file: jwks.json"), 20,
                 absl::StrCat("jwks_url: ", url, "\n    jwks_bearer_token_file: sa.token"));
  WriteFile(dir_.Join("broker.yaml"), config);
  StartBroker();
  auto tls = Channel("ca", "");
  ASSERT_TRUE(AcquireOn(tls, "fluximage", Jwt("search", "indexer", 600)).ok()) << broker_->Logs();
  // The cluster rotates its signing key: a token with the new kid triggers a re-fetch.
  auto next = testing::JwtKey::NewEc("k8s-2");
  WriteFile(dir_.Join("jwks.json"), testing::Jwks({jwt_key_.get(), next.get()}));
  int64_t now = absl::ToUnixSeconds(absl::Now());
  std::string rotated =
      next->Sign(R"({"alg":"ES256","kid":"k8s-2"})",
                 testing::K8sClaims("https://kubernetes.default.svc.cluster.local", "credbroker",
                                    "billing", "api", now + 600, now - 5));
  EXPECT_TRUE(AcquireOn(tls, "lumenfall", rotated).ok());
}

TEST_F(SecurityEndToEndTest, UnreachableJwksUrlFailsTheStart) {
  std::string config = testing::ReadFile(dir_.Join("broker.yaml"));
  config.replace(config.find("jwks_file: jwks.json"), 20, "jwks_url: http://127.0.0.1:1/jwks");
  WriteFile(dir_.Join("broker.yaml"), config);
  auto r = RunCommand({binary_, "--config", dir_.Join("broker.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("identity.kubernetes: fetching JWKS"));
}

TEST_F(SecurityEndToEndTest, BadTlsFilesFailTheStartNamingTheFile) {
  WriteFile(dir_.Join("tls.crt"), "not a certificate");
  auto r = RunCommand({binary_, "--config", dir_.Join("broker.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("tls.crt is not a PEM certificate"));
}

// A fake provider (tests/fixtures/fake_provider.py) answers the probes and runs a key API: the
// broker's probe-before-promotion, revocation detection and minted rotation, end to end.
class ProbeEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    WriteFile(dir_.Join("provider-admin.token"), "provider-admin-session-0123\n");
    auto provider = testing::ChildProcess::Start(
        {"/usr/bin/python3", CB_FAKE_PROVIDER_FIXTURE, "--port-file", dir_.Join("provider.port"),
         "--admin-token-file", dir_.Join("provider-admin.token")},
        dir_.Join("provider.port"), dir_.Join("provider.log"));
    ASSERT_THAT(provider.status(), testing::IsOk());
    provider_.emplace(std::move(*provider));
    provider_url_ = absl::StrCat("http://127.0.0.1:", provider_->port());
    Control("/__fixture/issue", kLmnV1);
  }

  // Staged rotation with the fake provider's probe; `extra` is appended to the lumenfall entry.
  void WriteConfig(const std::string& source_root, const std::string& extra = "") {
    WriteFile(dir_.Join("broker.yaml"), absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: local
    file:
      root: )",
                                                     source_root, R"(
    refresh_interval: 1s
providers:
  - name: lumenfall
    base_url: )",
                                                     provider_url_, R"(/openai/v1
    overlap: 2s
    retire_grace: 1h
)",
                                                     extra, R"(
rotation:
  check_interval: 200ms
  probe_retry_interval: 1s
  revocation_detection: {min_callers: 3, window: 1m}
audit:
  path: audit.log
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: billing
      token: billing-token-0123456789
    - service: search
      token: search-token-0123456789
    - service: e2e-admin
      token_file: admin.token
      admin: true
)"));
  }

  void Control(const std::string& path, const std::string& key) {
    auto r =
        RunCommand({"/usr/bin/curl", "-sf", "-X", "POST", "-H", "Content-Type: application/json",
                    "-d", absl::StrCat(R"({"key":")", key, R"("})"), provider_url_ + path});
    ASSERT_EQ(r.exit_code, 0) << path;
  }
  std::string ProviderState() {
    auto body = HttpGet(absl::StrCat("127.0.0.1:", provider_->port()), "/__fixture/state");
    return body.ok() ? *body : "";
  }
  grpc::Status Report(const std::string& lease_id, int status, const std::string& token) {
    v1::ReportAuthFailureRequest req;
    req.set_lease_id(lease_id);
    req.set_http_status(status);
    v1::ReportAuthFailureResponse resp;
    return lease_->ReportAuthFailure(Ctx(token).get(), req, &resp);
  }
  std::string Audit() {
    std::ifstream in(dir_.Join("audit.log"));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::optional<testing::ChildProcess> provider_;
  std::string provider_url_;
};

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
  // ...and past the overlap (2s) v1 does not retire while the leases hold it.
  absl::SleepFor(absl::Seconds(3));
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
  // The provider revokes v2. 403 and 429 from everyone change nothing.
  Control("/__fixture/revoke", kLmnV2);
  for (size_t i = 0; i < tokens.size(); ++i) {
    ASSERT_TRUE(Report(leases[i], 403, tokens[i]).ok());
    ASSERT_TRUE(Report(leases[i], 429, tokens[i]).ok());
  }
  absl::SleepFor(absl::Milliseconds(600));
  v1::Lease still;
  ASSERT_TRUE(Acquire("lumenfall", &still).ok());
  EXPECT_EQ(still.key_version(), "v2");
  // 401s from three distinct callers: probed, refused, quarantined; v1 serves again.
  for (size_t i = 0; i < tokens.size(); ++i) ASSERT_TRUE(Report(leases[i], 401, tokens[i]).ok());
  bool quarantined = false;
  v1::KeyEvent e;
  while (!quarantined && reader->Read(&e)) {
    quarantined = e.type() == v1::KeyEvent::QUARANTINED && e.key_version() == "v2";
  }
  ASSERT_TRUE(quarantined) << broker_->Logs();
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

TEST_F(ProbeEndToEndTest, MintedRotationCreatesStoresPromotesAndRevokesKeys) {
  // A writable folder (a mounted Secret is read-only), and the provider's key API.
  WriteFile(dir_.Join("minted/lumenfall/v1"), kLmnV1);
  WriteConfig("minted", absl::StrCat(R"(    mint:
      base_url: )",
                                     provider_url_, R"(
      create: {method: POST, path: /v1/keys, body: '{"name":"credbroker-{provider}-{timestamp}"}'}
      revoke: {method: DELETE, path: "/v1/keys/{key_id}"}
      key_pointer: /key
      key_id_pointer: /id
      admin_key_file: provider-admin.token
)"));
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
  EXPECT_THAT(Audit(), HasSubstr(R"("decision":"REVOKED")"));
  // v1 was not minted by the broker: left for the operator, and said so.
  EXPECT_THAT(broker_->Logs(), HasSubstr("retired key was not minted by the broker"));
  auto denied = Credctl({"rotate", "lumenfall"});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_THAT(denied.output, HasSubstr("PERMISSION_DENIED"));
}

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
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: newcomer
      token: newcomer-token-0123456789
    - service: latecomer
      token: latecomer-token-0123456789
)");
  const absl::Time started = absl::Now();
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());  // during the learning period: baseline
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = lease_->WatchKeys(&ctx, v1::WatchKeysRequest());
  v1::KeyEvent e;
  while (reader->Read(&e) && e.type() != v1::KeyEvent::SYNCED) {
  }
  absl::SleepFor(started + absl::Milliseconds(3500) - absl::Now());  // learning is over

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
  std::ifstream in(dir_.Join("audit.log"));
  std::stringstream audit;
  audit << in.rdbuf();
  EXPECT_THAT(audit.str(), HasSubstr(R"("action":"Anomaly","caller":"newcomer")"));
  EXPECT_THAT(audit.str(), HasSubstr(R"("decision":"deny","reason":"CALLER_SUSPENDED")"));
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
}  // namespace credbroker
