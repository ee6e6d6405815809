// The end-to-end fixture shared by tests/e2e/*_test.cc (one file per feature): starts the real
// `credbroker` binary on free loopback ports and talks gRPC to it, rewrites key files the way the
// kubelet does, scrapes /metrics, kills -9 and restarts it.
#pragma once

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
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
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
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"

namespace credbroker::e2e {

using ::credbroker::testing::BinaryFromEnv;
using ::credbroker::testing::BrokerProcess;
using ::credbroker::testing::HttpGet;
using ::credbroker::testing::RunCommand;
using ::credbroker::testing::TempDir;
using ::credbroker::testing::WriteFile;
using ::credbroker::testing::WriteK8sSecretDir;
using ::testing::HasSubstr;
using ::testing::Not;

inline const std::string kLmnV1 = "lmnfl_e2eone.0123456789abcdef0123";
inline const std::string kLmnV2 = "lmnfl_e2etwo.fedcba9876543210fedc";
inline const std::string kFlxV1 = "flx_live_" + std::string(40, 'c');
inline const std::string kAppToken = "e2e-app-token-0123456789";
inline const std::string kAdminToken = "e2e-admin-token-0123456789";

inline constexpr char kConfig[] = R"(server:
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
policy:
  rules:
    - identities: [e2e-app]
      providers: ["*"]
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: e2e-admin
      token_file: admin.token
      admin: true
)";

inline std::string Reason(const grpc::Status& s) { return testing::ErrorReason(s); }

// grpc.health.v1 Check of one service: the call's status, and the serving status in *out.
inline grpc::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& service,
                                grpc::health::v1::HealthCheckResponse::ServingStatus* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp);
  *out = resp.status();
  return s;
}

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

  // The value of the series `name` (with its labels as exposed, e.g. `x{provider="p"}`), if the
  // broker exports it.
  std::optional<double> MetricValue(const std::string& name) {
    for (absl::string_view line : absl::StrSplit(Metrics(), '\n')) {
      if (!absl::ConsumePrefix(&line, name + " ")) continue;
      double value = 0;
      if (absl::SimpleAtod(line, &value)) return value;
    }
    return std::nullopt;
  }

  // Reads a WatchKeys stream until an event of `type` on `version` arrives; false when the stream
  // ends (its deadline) first.
  static bool ReadUntil(grpc::ClientReader<v1::KeyEvent>& reader, v1::KeyEvent::Type type,
                        const std::string& version) {
    v1::KeyEvent e;
    while (reader.Read(&e)) {
      if (e.type() == type && e.key_version() == version) return true;
    }
    return false;
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

  // POSTs a JSON body to a fixture's control endpoint, which must answer 2xx.
  static void PostJson(const std::string& url, const std::string& json) {
    auto r = RunCommand({"/usr/bin/curl", "-sf", "-X", "POST", "-H",
                         "Content-Type: application/json", "-d", json, url});
    ASSERT_EQ(r.exit_code, 0) << url << " " << json;
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

}  // namespace credbroker::e2e
