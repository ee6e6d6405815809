// End to end, one test per provider: the real broker against a stand-in for that provider that
// follows its own documentation page (tests/fixtures/provider_fakes.py): keys staged as files (or
// minted through firemoon's key API), probed, promoted; then the caller meets each of the
// provider's documented refusals, reports what it saw, and the broker classifies it.
#include "absl/strings/str_replace.h"
#include "e2e_fixture.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::e2e {
namespace {

using ::testing::ElementsAre;

struct Answer {
  int status = 0;
  std::string body;
};

class ProviderPageTest : public EndToEndTest {
 protected:
  // Starts the stand-in for `provider` and writes a broker config serving that provider from a
  // writable folder `plain/<provider>`; `entry` is appended to its providers[] entry (base_url is
  // set here; "{fake}" in `entry` becomes the stand-in's root URL).
  void Start(const std::string& provider, const std::string& base_path, const std::string& entry) {
    provider_ = provider;
    WriteFile(dir_.Join("session.token"), "firemoon-user-session-0123456789\n");
    std::vector<std::string> argv = {"/usr/bin/python3", CB_PROVIDER_FAKES, "--provider",
                                     provider,           "--port-file",     dir_.Join("fake.port")};
    if (provider == "firemoon") {
      argv.emplace_back("--session-token-file");
      argv.push_back(dir_.Join("session.token"));
    }
    auto fake = testing::ChildProcess::Start(argv, dir_.Join("fake.port"), dir_.Join("fake.log"));
    ASSERT_THAT(fake.status(), testing::IsOk());
    fake_.emplace(std::move(*fake));
    fake_url_ = absl::StrCat("http://127.0.0.1:", fake_->port());
    std::filesystem::create_directories(dir_.Join("plain/" + provider));
    const std::string extra = absl::StrReplaceAll(entry, {{"{fake}", fake_url_}});
    WriteFile(dir_.Join("broker.yaml"), absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: local
    file: {root: plain}
    refresh_interval: 1s
providers:
  - name: )",
                                                     provider, R"(
    base_url: )",
                                                     fake_url_, base_path, R"(
    overlap: 2s
)",
                                                     extra, R"(
rotation:
  check_interval: 200ms
  probe_retry_interval: 1s
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
)"));
  }

  // A key version the operator stages: issued at the provider, then written as a file.
  void Stage(const std::string& version, const std::string& key) {
    ControlKey("/__fixture/issue", key);
    WriteFile(dir_.Join(absl::StrCat("plain/", provider_, "/", version)), key);
  }

  void ControlKey(const std::string& path, const std::string& key) {
    Control(path, absl::StrCat(R"({"key":")", key, R"("})"));
  }
  void Control(const std::string& path, const std::string& json) {
    PostJson(fake_url_ + path, json);
  }

  // What a service calling the provider with `key` (none: no Authorization header) gets.
  Answer Call(const std::string& method, const std::string& path, const std::string& key) {
    std::vector<std::string> argv = {"/usr/bin/curl", "-s", "-X", method, "-w", "\n%{http_code}"};
    if (!key.empty()) {
      argv.emplace_back("-H");
      argv.push_back("Authorization: Bearer " + key);
    }
    if (method == "POST") {
      argv.insert(argv.end(), {"-H", "Content-Type: application/json", "-d", R"({"prompt":"a"})"});
    }
    argv.push_back(fake_url_ + path);
    auto r = RunCommand(argv);
    Answer a;
    const size_t nl = r.output.rfind('\n');
    if (nl == std::string::npos) return a;
    a.body = r.output.substr(0, nl);
    (void)absl::SimpleAtoi(r.output.substr(nl + 1), &a.status);
    return a;
  }

  // The caller reports what it saw; the broker's classification.
  std::string Report(const std::string& lease_id, const Answer& a) {
    v1::ReportAuthFailureRequest req;
    req.set_lease_id(lease_id);
    req.set_http_status(a.status);
    req.set_body(a.body);
    v1::ReportAuthFailureResponse resp;
    grpc::Status s = lease_->ReportAuthFailure(Ctx().get(), req, &resp);
    return s.ok() ? resp.classification() : "error: " + s.error_message();
  }

  // Acquires until the lease carries `version` (refreshes and probes are asynchronous).
  v1::Lease LeaseOn(const std::string& version) {
    v1::Lease lease;
    EXPECT_TRUE(Eventually([&] {
      return Acquire(provider_, &lease).ok() && lease.key_version() == version;
    })) << "no lease on "
        << version;
    return lease;
  }

  std::optional<v1::KeyVersionInfo> Version(const std::string& version) {
    v1::ListKeyVersionsRequest req;
    req.set_provider(provider_);
    v1::ListKeyVersionsResponse resp;
    if (!admin_->ListKeyVersions(Ctx(kAdminToken).get(), req, &resp).ok()) return std::nullopt;
    for (const auto& v : resp.versions()) {
      if (v.key_version() == version) return v;
    }
    return std::nullopt;
  }

  std::string provider_;
  std::optional<testing::ChildProcess> fake_;
  std::string fake_url_;
};

TEST_F(ProviderPageTest, ExampleAi) {
  // Probe: the page's one endpoint, which needs the `read` permission.
  Start("example-ai", "/v1", "    probe: {method: GET, path: /generate}\n");
  const std::string k1 = "exai-page-key-0000000001";
  const std::string k2 = "exai-page-key-0000000002";
  Stage("v1", k1);
  StartBroker();
  LeaseOn("v1");
  Stage("v2", k2);
  v1::Lease lease = LeaseOn("v2");  // probed (the provider accepted it) and promoted
  EXPECT_EQ(Call("GET", "/v1/generate", lease.api_key()).status, 200);

  // MISSING_API_KEY: the caller forgot the header. A client bug, never evidence.
  Answer missing = Call("GET", "/v1/generate", "");
  ASSERT_EQ(missing.status, 401);
  EXPECT_THAT(missing.body, HasSubstr("MISSING_API_KEY"));
  EXPECT_EQ(Report(lease.lease_id(), missing), "key_missing");
  // 429 with the page's shape.
  Control("/__fixture/fail", R"({"status":429})");
  EXPECT_EQ(Report(lease.lease_id(), Call("GET", "/v1/generate", lease.api_key())), "rate_limited");
  // A key without `read` gets 403: valid, but not allowed to do this.
  const std::string writer = "exai-page-key-writeonly";
  Control("/__fixture/issue", absl::StrCat(R"({"key":")", writer, R"(","scopes":["write"]})"));
  Answer forbidden = Call("GET", "/v1/generate", writer);
  ASSERT_EQ(forbidden.status, 403);
  EXPECT_EQ(Report(lease.lease_id(), forbidden), "forbidden");
  // INVALID_API_KEY: the key was revoked at the provider.
  const std::string stray = "exai-page-key-revoked01";
  ControlKey("/__fixture/issue", stray);
  ControlKey("/__fixture/revoke", stray);
  Answer invalid = Call("GET", "/v1/generate", stray);
  ASSERT_EQ(invalid.status, 401);
  EXPECT_THAT(invalid.body, HasSubstr("INVALID_API_KEY"));
  EXPECT_EQ(Report(lease.lease_id(), invalid), "key_rejected");
  EXPECT_EQ(Version("v2")->state(), v1::KEY_STATE_CURRENT);  // one caller is not a burst

  // EXPIRED_API_KEY from one caller is enough: the broker probes v2, the provider refuses it,
  // v2 is quarantined and v1 (still accepted) serves again.
  ControlKey("/__fixture/expire", k2);
  Answer expired = Call("GET", "/v1/generate", lease.api_key());
  ASSERT_EQ(expired.status, 401);
  EXPECT_THAT(expired.body, HasSubstr("EXPIRED_API_KEY"));
  EXPECT_EQ(Report(lease.lease_id(), expired), "key_expired");
  EXPECT_TRUE(Eventually([&] {
    auto v = Version("v2");
    return !v || v->state() == v1::KEY_STATE_QUARANTINED;
  }));
  EXPECT_EQ(LeaseOn("v1").key_version(), "v1");
}

TEST_F(ProviderPageTest, Fluximage) {
  Start("fluximage", "/api", "");  // built-in probe: GET /usage
  const std::string k1 = "flx_live_" + std::string(40, 'a');
  const std::string k2 = "flx_live_" + std::string(39, 'b') + "c";
  Stage("v1", k1);
  StartBroker();
  v1::Lease old = LeaseOn("v1");
  EXPECT_EQ(Call("GET", "/api/usage", old.api_key()).status, 200);
  // One key per account: regenerating invalidates the old key at once, and the broker cuts over.
  Stage("v2", k2);
  Answer dead = Call("GET", "/api/usage", old.api_key());
  ASSERT_EQ(dead.status, 401);
  EXPECT_EQ(dead.body, R"({"error": "Unauthorized"})");
  v1::Lease lease = LeaseOn("v2");
  EXPECT_EQ(Version("v2")->key_hint(), "flx_live_bbbbb...bbbc");  // the dashboard's masked prefix
  EXPECT_EQ(Report(old.lease_id(), dead), "key_rejected");
  Control("/__fixture/fail", R"({"status":429})");
  EXPECT_EQ(Report(lease.lease_id(), Call("GET", "/api/usage", lease.api_key())), "rate_limited");
}

TEST_F(ProviderPageTest, Lumenfall) {
  Start("lumenfall", "/openai/v1", "");  // built-in probe: GET /models
  Stage("v1", "lmnfl_page1.0123456789abcdef");
  StartBroker();
  LeaseOn("v1");
  Stage("v2", "lmnfl_page2.fedcba9876543210");
  v1::Lease lease = LeaseOn("v2");
  EXPECT_EQ(Call("GET", "/openai/v1/models", lease.api_key()).status, 200);
  ControlKey("/__fixture/revoke", "lmnfl_page1.0123456789abcdef");
  Answer revoked = Call("GET", "/openai/v1/models", "lmnfl_page1.0123456789abcdef");
  ASSERT_EQ(revoked.status, 401);
  EXPECT_THAT(revoked.body, HasSubstr("invalid_api_key"));
  EXPECT_EQ(Report(lease.lease_id(), revoked), "key_rejected");
  Control("/__fixture/fail", R"({"status":403})");
  EXPECT_EQ(Report(lease.lease_id(), Call("GET", "/openai/v1/models", lease.api_key())),
            "forbidden");
  Control("/__fixture/fail", R"({"status":429})");
  EXPECT_EQ(Report(lease.lease_id(), Call("GET", "/openai/v1/models", lease.api_key())),
            "rate_limited");
}

TEST_F(ProviderPageTest, Magichour) {
  Start("magichour", "/v1", "    probe: {method: GET, path: /ai-image-generator}\n");
  Stage("v1", "mhk_page_key_000000000001");
  StartBroker();
  LeaseOn("v1");
  Stage("v2", "mhk_page_key_000000000002");
  v1::Lease lease = LeaseOn("v2");
  EXPECT_EQ(Version("v2")->key_hint(), "...0002");  // the Developer Hub's last 4 characters
  EXPECT_EQ(Call("GET", "/v1/ai-image-generator", lease.api_key()).status, 200);
  // Revocation is immediate: the very next call is refused.
  ControlKey("/__fixture/revoke", "mhk_page_key_000000000002");
  Answer revoked = Call("GET", "/v1/ai-image-generator", lease.api_key());
  ASSERT_EQ(revoked.status, 401);
  EXPECT_EQ(Report(lease.lease_id(), revoked), "key_rejected");
  Control("/__fixture/fail", R"({"status":429})");
  EXPECT_EQ(Report(lease.lease_id(), Call("GET", "/v1/ai-image-generator", lease.api_key())),
            "rate_limited");
}

TEST_F(ProviderPageTest, FiremoonMintedThroughItsKeyApiAndDeletedByTheOperator) {
  // No probe: firemoon's only documented call generates an image (it costs money).
  // The preset's key API lives at the root (/api/keys), not under base_url.
  Start("firemoon", "/api/v1",
        "    mint: {preset: firemoon, base_url: \"{fake}\", admin_key_file: session.token}\n");
  StartBroker();
  // No key at all: the broker mints one through POST /api/keys with the session token.
  v1::Lease first = LeaseOn("v1");
  EXPECT_THAT(first.scopes(), ElementsAre("full_access"));
  EXPECT_EQ(Call("POST", "/api/v1/flux/dev", first.api_key()).status, 200);
  // Rotate: a second minted key; the first stays valid for the overlap, then retires.
  auto rotate = Credctl({"rotate", "firemoon"}, kAdminToken);
  ASSERT_EQ(rotate.exit_code, 0) << rotate.output;
  v1::Lease second = LeaseOn("v2");
  v1::ReleaseLeaseRequest release;
  release.set_lease_id(first.lease_id());
  v1::ReleaseLeaseResponse released;
  ASSERT_TRUE(lease_->ReleaseLease(Ctx().get(), release, &released).ok());
  // v1 is out of service but still valid at firemoon, which documents no delete endpoint: an
  // operator task, listed by the name the dashboard shows (its description).
  testing::ProcessResult listed;
  ASSERT_TRUE(Eventually(
      [&] {
        listed = Credctl({"keys-to-delete", "firemoon"}, kAdminToken);
        return absl::StrContains(listed.output, "credbroker firemoon ");
      },
      absl::Seconds(20)))
      << listed.output;
  EXPECT_THAT(listed.output, HasSubstr(core::Fingerprint(first.api_key())));
  EXPECT_THAT(listed.output, Not(HasSubstr(first.api_key())));
  EXPECT_EQ(Call("POST", "/api/v1/flux/dev", first.api_key()).status, 200);  // still live there
  EXPECT_TRUE(Eventually([&] {
    return MetricValue(R"(credbroker_provider_keys_to_delete{provider="firemoon"})") == 1.0;
  }));
  EXPECT_THAT(broker_->Logs(), HasSubstr("the provider has no API to delete it"));

  // The operator deletes it in the dashboard (here: the fixture), then records it.
  ControlKey("/__fixture/revoke", first.api_key());
  auto done = Credctl({"key-deleted", "firemoon", "v1"}, kAdminToken);
  EXPECT_EQ(done.exit_code, 0) << done.output;
  EXPECT_THAT(Credctl({"keys-to-delete"}, kAdminToken).output, HasSubstr("no keys to delete"));
  EXPECT_NE(Credctl({"key-deleted", "firemoon", "v1"}, kAdminToken).exit_code, 0);

  // firemoon's refusals: 401 for the deleted key; a 403 that may mean "no access" or "rate
  // limited" never counts against a key; 429.
  Answer gone = Call("POST", "/api/v1/flux/dev", first.api_key());
  ASSERT_EQ(gone.status, 401);
  EXPECT_EQ(Report(second.lease_id(), gone), "key_rejected");
  Control("/__fixture/fail", R"({"status":403})");
  EXPECT_EQ(Report(second.lease_id(), Call("POST", "/api/v1/flux/dev", second.api_key())),
            "ambiguous");
  Control("/__fixture/fail", R"({"status":429})");
  EXPECT_EQ(Report(second.lease_id(), Call("POST", "/api/v1/flux/dev", second.api_key())),
            "rate_limited");
}

}  // namespace
}  // namespace credbroker::e2e
