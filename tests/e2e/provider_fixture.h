// The end-to-end fixture for tests that need an AI provider: the fake provider
// (tests/fixtures/fake_provider.py) on a loopback port, its /__fixture/ controls, and a broker
// config that probes it. Shared by rotation_test.cc and soak_test.cc.
#pragma once

#include "e2e_fixture.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::e2e {

class ProbeEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    WriteFile(dir_.Join("provider-admin.token"), "provider-admin-session-0123\n");
    std::vector<std::string> argv = {"/usr/bin/python3",   CB_FAKE_PROVIDER_FIXTURE,
                                     "--port-file",        dir_.Join("provider.port"),
                                     "--admin-token-file", dir_.Join("provider-admin.token")};
    for (const std::string& arg : ProviderFlags()) argv.push_back(arg);
    auto provider =
        testing::ChildProcess::Start(argv, dir_.Join("provider.port"), dir_.Join("provider.log"));
    ASSERT_THAT(provider.status(), testing::IsOk());
    provider_.emplace(std::move(*provider));
    provider_url_ = absl::StrCat("http://127.0.0.1:", provider_->port());
    Control("/__fixture/issue", kLmnV1);
  }

  // Extra command-line flags of the fake provider.
  virtual std::vector<std::string> ProviderFlags() const { return {}; }

  struct ConfigOptions {
    std::string source_root = "keys";
    std::string lumenfall_extra;  // appended to the lumenfall entry
    std::string overlap = "2s";
    std::string retire_grace = "1h";
    std::string top_level;  // more top-level blocks (leases: ...)
  };

  // Staged rotation with the fake provider's probe; `extra` is appended to the lumenfall entry.
  void WriteConfig(const std::string& source_root, const std::string& extra = "") {
    ConfigOptions o;
    o.source_root = source_root;
    o.lumenfall_extra = extra;
    WriteConfig(o);
  }

  void WriteConfig(const ConfigOptions& o) {
    WriteFile(dir_.Join("broker.yaml"),
              absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: local
    file:
      root: )",
                           o.source_root, R"(
    refresh_interval: 1s
providers:
  - name: lumenfall
    base_url: )",
                           provider_url_, R"(/openai/v1
    overlap: )",
                           o.overlap, R"(
    retire_grace: )",
                           o.retire_grace, "\n", o.lumenfall_extra, o.top_level, R"(
rotation:
  check_interval: 200ms
  probe_retry_interval: 1s
  revocation_detection: {min_callers: 3, window: 1m}
audit:
  path: audit.log
policy:
  rules:
    - identities: [e2e-app, billing, search]
      providers: ["*"]
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

  // The lumenfall entry's minted mode against the fake provider's key API.
  std::string MintBlock() const {
    return absl::StrCat(R"(    mint:
      base_url: )",
                        provider_url_, R"(
      create: {method: POST, path: /v1/keys, body: '{"name":"credbroker-{provider}-{timestamp}"}'}
      revoke: {method: DELETE, path: "/v1/keys/{key_id}"}
      key_pointer: /key
      key_id_pointer: /id
      admin_key_file: provider-admin.token
)");
  }

  void Control(const std::string& path, const std::string& key) {
    PostJson(provider_url_ + path, absl::StrCat(R"({"key":")", key, R"("})"));
  }
  // Posts a JSON body to one of the fake provider's /__fixture/ controls.
  void ControlJson(const std::string& path, const std::string& json) {
    PostJson(provider_url_ + path, json);
  }
  // A number from the fake provider's /__fixture/state, e.g. "hanging".
  int64_t ProviderCount(const std::string& field) {
    google::protobuf::Struct state;
    if (!google::protobuf::util::JsonStringToMessage(ProviderState(), &state).ok()) return -1;
    auto it = state.fields().find(field);
    return it == state.fields().end() ? -1 : static_cast<int64_t>(it->second.number_value());
  }
  double Probes(const std::string& purpose, const std::string& result) {
    return MetricValue(absl::StrCat(R"(credbroker_probes_total{provider="lumenfall",purpose=")",
                                    purpose, R"(",result=")", result, R"("})"))
        .value_or(0);
  }
  bool IsCurrent(const std::string& version) {
    return absl::StrContains(Metrics(),
                             absl::StrCat(R"(credbroker_key_version_info{key_version=")", version,
                                          R"(",provider="lumenfall",state="CURRENT"} 1)"));
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

}  // namespace credbroker::e2e
