// The vault source against tests/fixtures/vault_fixture.py, a stand-in that follows Vault's
// documented KV v2 / auth API and rejects what Vault rejects.
#include "credbroker/backends/vault/vault_source.h"

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "credbroker/config/config.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/testing/broker_process.h"
#include "credbroker/testing/fake_http_client.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace credbroker::backends::vault {
namespace {

using ::credbroker::testing::ChildProcess;
using ::credbroker::testing::IsOk;
using ::credbroker::testing::RunCommand;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;
using ::credbroker::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kKey1 = "lmnfl_vaultone.0123456789abcdef";
const std::string kKey2 = "lmnfl_vaulttwo.fedcba9876543210";
constexpr char kRootToken[] = "root-token-for-tests";
// What the README asks operators to grant the broker (Vault's JSON policy syntax): the logins
// below get it through their roles, on top of Vault's `default` policy, which reads no KV.
constexpr char kBrokerPolicy[] = R"({"path": {
  "secret/data/credbroker/*": {"capabilities": ["create", "read", "update"]},
  "secret/metadata/credbroker/*": {"capabilities": ["read", "list"]}}})";

class RecordingSleeper final : public http::Sleeper {
 public:
  void Sleep(absl::Duration d) override { slept.push_back(d); }
  std::vector<absl::Duration> slept;
};

std::vector<std::string> Ids(const std::vector<secrets::VersionInfo>& v) {
  std::vector<std::string> out;
  for (const auto& i : v) out.push_back(i.version_id);
  return out;
}

class VaultSourceTest : public ::testing::Test {
 protected:
  void StartFixture(std::vector<std::string> extra = {}) {
    WriteFile(dir_.Join("jwt"), "k8s-projected-token-for-tests\n");
    WriteFile(dir_.Join("secret-id"), "approle-secret-id-for-tests\n");
    WriteFile(dir_.Join("credbroker-policy.json"), kBrokerPolicy);
    std::vector<std::string> argv = {"/usr/bin/python3",
                                     CB_VAULT_FIXTURE,
                                     "--port-file",
                                     dir_.Join("vault.port"),
                                     "--root-token",
                                     kRootToken,
                                     "--k8s-role",
                                     "credbroker",
                                     "--k8s-jwt-file",
                                     dir_.Join("jwt"),
                                     "--approle-role-id",
                                     "role-id-123",
                                     "--approle-secret-id",
                                     "approle-secret-id-for-tests",
                                     "--policy",
                                     "credbroker=" + dir_.Join("credbroker-policy.json"),
                                     "--k8s-policies",
                                     "credbroker",
                                     "--approle-policies",
                                     "credbroker"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto proc = ChildProcess::Start(argv, dir_.Join("vault.port"), dir_.Join("vault.log"));
    ASSERT_THAT(proc.status(), IsOk());
    fixture_.emplace(std::move(*proc));
    scheme_ = absl::c_linear_search(extra, "--tls-cert") ? "https" : "http";
    address_ = absl::StrCat(scheme_, "://127.0.0.1:", fixture_->port());
    control_ = std::move(*http::CurlHttpClient::Create(http::TlsOptions{ca_file_, "", ""}));
  }

  // Calls a /__fixture/ control endpoint (or any raw path) and returns the body.
  std::string Control(const std::string& method, const std::string& path,
                      const std::string& body = "", const std::string& token = "") {
    http::HttpRequest req;
    req.method = method;
    req.url = address_ + path;
    req.body = body;
    if (!token.empty()) req.headers.emplace_back("X-Vault-Token", token);
    auto r = control_->Send(req);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->body : "";
  }

  void Seed(const std::string& path, const std::string& key) {
    Control("POST", "/__fixture/put",
            absl::StrCat(R"({"mount":"secret","path":")", path, R"(","data":{"api_key":")", key,
                         R"("}})"));
  }

  // How many logged /v1/ requests have a path containing `fragment`.
  int Requests(const std::string& fragment) {
    google::protobuf::ListValue list;
    std::string body = Control("GET", "/__fixture/requests");
    google::protobuf::Value v;
    if (!google::protobuf::util::JsonStringToMessage(body, &v).ok()) return -1;
    int n = 0;
    for (const auto& item : v.list_value().values()) {
      if (absl::StrContains(item.struct_value().fields().at("path").string_value(), fragment)) ++n;
    }
    return n;
  }

  v1::VaultSourceConfig Config() {
    v1::VaultSourceConfig c;
    c.set_address(address_);
    c.set_path_prefix("credbroker");
    c.set_max_attempts(4);
    c.set_ca_file(ca_file_);
    WriteFile(dir_.Join("root.token"), kRootToken);
    c.mutable_auth()->mutable_token()->set_token_file(dir_.Join("root.token"));
    return c;
  }

  v1::VaultSourceConfig KubernetesConfig() {
    v1::VaultSourceConfig c = Config();
    auto* k = c.mutable_auth()->mutable_kubernetes();
    k->set_role("credbroker");
    k->set_jwt_file(dir_.Join("jwt"));
    k->set_mount("kubernetes");
    return c;
  }

  v1::VaultSourceConfig AppRoleConfig() {
    v1::VaultSourceConfig c = Config();
    auto* a = c.mutable_auth()->mutable_approle();
    a->set_role_id("role-id-123");
    a->set_secret_id_file(dir_.Join("secret-id"));
    a->set_mount("approle");
    return c;
  }

  std::unique_ptr<VaultSecretSource> Source(const v1::VaultSourceConfig& c) {
    auto transport = http::CurlHttpClient::Create(http::TlsOptions{c.ca_file(), "", ""});
    EXPECT_THAT(transport, IsOk());
    auto s = VaultSecretSource::Create("vault-test", c, std::move(*transport), &clock_, &sleeper_);
    EXPECT_THAT(s, IsOk());
    return std::move(*s);
  }

  TempDir dir_;
  std::optional<ChildProcess> fixture_;
  std::string scheme_;
  std::string address_;
  std::string ca_file_;
  std::unique_ptr<http::CurlHttpClient> control_;
  core::FakeClock clock_{absl::Now()};
  RecordingSleeper sleeper_;
};

TEST_F(VaultSourceTest, ListsFetchesAndWritesWithAStaticToken) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  Seed("credbroker/lumenfall", kKey2);
  auto source = Source(Config());
  auto versions = source->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(Ids(*versions), ElementsAre("1", "2"));
  EXPECT_NE((*versions)[0].created_at, absl::InfinitePast());
  auto v2 = source->FetchVersion("lumenfall", "2");
  ASSERT_THAT(v2, IsOk());
  EXPECT_EQ(core::Fingerprint(v2->material.reveal()), core::Fingerprint(kKey2));
  auto written = source->WriteVersion("lumenfall", core::SecretBytes("lmnfl_new.0000000000000000"));
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->version_id, "3");
  auto v3 = source->FetchVersion("lumenfall", "3");
  ASSERT_THAT(v3, IsOk());
  EXPECT_TRUE(v3->material.reveal() == "lmnfl_new.0000000000000000");
  EXPECT_THAT(source->ListVersions("absent"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(source->FetchVersion("lumenfall", "9"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(source->FetchVersion("lumenfall", "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(source->ListVersions("../sys"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(VaultSourceTest, DeletedAndDestroyedVersionsAreNeverServed) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  Seed("credbroker/lumenfall", kKey2);
  Seed("credbroker/lumenfall", kKey1);
  Control("POST", "/v1/secret/delete/credbroker/lumenfall", R"({"versions":[1]})", kRootToken);
  Control("POST", "/v1/secret/destroy/credbroker/lumenfall", R"({"versions":[2]})", kRootToken);
  clock_.Set(absl::Now() + absl::Seconds(1));  // the deletion is in the past for the broker too
  auto source = Source(Config());
  auto versions = source->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(Ids(*versions), ElementsAre("3"));
  EXPECT_THAT(source->FetchVersion("lumenfall", "1"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("deleted")));
  EXPECT_THAT(source->FetchVersion("lumenfall", "2"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("destroyed")));
}

TEST_F(VaultSourceTest, MissingFieldIsDataLoss) {
  StartFixture();
  Control("POST", "/__fixture/put",
          R"({"mount":"secret","path":"credbroker/lumenfall","data":{"key":"x"}})");
  auto source = Source(Config());
  auto v = source->FetchVersion("lumenfall", "1");
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("api_key")));
}

TEST_F(VaultSourceTest, CustomMetadataScopesNameTheKeysPermissions) {
  StartFixture();
  Seed("credbroker/example-ai", "exai-key-0000000001");
  auto source = Source(Config());
  auto before = source->ListVersions("example-ai");
  ASSERT_THAT(before, IsOk());
  auto plain = source->FetchVersion("example-ai", "1");
  ASSERT_THAT(plain, IsOk());
  EXPECT_TRUE(plain->scopes.empty());
  // custom_metadata is key-level: setting it relabels every version, and changes their etags so
  // the ring fetches them again.
  Control("POST", "/v1/secret/metadata/credbroker/example-ai",
          R"({"custom_metadata":{"scopes":"write, read","owner":"ml-platform"}})", kRootToken);
  auto after = source->ListVersions("example-ai");
  ASSERT_THAT(after, IsOk());
  EXPECT_NE((*after)[0].etag, (*before)[0].etag);
  auto scoped = source->FetchVersion("example-ai", "1");
  ASSERT_THAT(scoped, IsOk());
  EXPECT_THAT(scoped->scopes, ElementsAre("read", "write"));
  EXPECT_EQ(scoped->info.etag, (*after)[0].etag);
  // Metadata that does not parse is never read as "no scopes": the version is not served.
  Control("POST", "/v1/secret/metadata/credbroker/example-ai",
          R"({"custom_metadata":{"scopes":"read; DROP"}})", kRootToken);
  EXPECT_THAT(source->FetchVersion("example-ai", "1"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("custom_metadata.scopes")));
}

// Bumps the secret's version between WriteVersion's metadata read and its write.
class InterposingClient final : public http::HttpClient {
 public:
  InterposingClient(std::unique_ptr<http::HttpClient> inner, std::function<void()> before_write)
      : inner_(std::move(inner)), before_write_(std::move(before_write)) {}
  absl::StatusOr<http::HttpResponse> Send(const http::HttpRequest& r) override {
    if (r.method == "POST" && absl::StrContains(r.url, "/data/")) before_write_();
    return inner_->Send(r);
  }

 private:
  std::unique_ptr<http::HttpClient> inner_;
  std::function<void()> before_write_;
};

TEST_F(VaultSourceTest, CheckAndSetMismatchIsAborted) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  v1::VaultSourceConfig c = Config();
  auto inner = std::move(*http::CurlHttpClient::Create(http::TlsOptions{}));
  auto racing = std::make_unique<InterposingClient>(
      std::move(inner), [this] { Seed("credbroker/lumenfall", kKey2); });
  auto source = VaultSecretSource::Create("vault-test", c, std::move(racing), &clock_, &sleeper_);
  ASSERT_THAT(source, IsOk());
  auto w = (*source)->WriteVersion("lumenfall", core::SecretBytes("lmnfl_x.y"));
  EXPECT_THAT(w, StatusIs(absl::StatusCode::kAborted, HasSubstr("check-and-set")));
  EXPECT_EQ(core::ReasonOf(w.status()), "cas_mismatch");
}

TEST_F(VaultSourceTest, WrongTokenIsPermissionDeniedAndNotRetried) {
  StartFixture();
  v1::VaultSourceConfig c = Config();
  WriteFile(dir_.Join("bad.token"), "not-a-vault-token");
  c.mutable_auth()->mutable_token()->set_token_file(dir_.Join("bad.token"));
  auto source = Source(c);
  auto r = source->ListVersions("lumenfall");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(Requests("lookup-self"), 1);
  EXPECT_TRUE(sleeper_.slept.empty());
}

TEST_F(VaultSourceTest, KubernetesLoginWithTheProjectedToken) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  v1::VaultSourceConfig c = KubernetesConfig();
  auto* k = c.mutable_auth()->mutable_kubernetes();
  auto source = Source(c);
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(Requests("auth/kubernetes/login"), 1);
  ASSERT_THAT(source->FetchVersion("lumenfall", "1"), IsOk());
  EXPECT_EQ(Requests("auth/kubernetes/login"), 1) << "the token is reused";

  // A rotated projected token file is re-read at the next login; a wrong one is refused.
  WriteFile(dir_.Join("jwt2"), "someone-elses-token");
  k->set_jwt_file(dir_.Join("jwt2"));
  auto refused = Source(c)->ListVersions("lumenfall");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  k->set_role("no-such-role");
  k->set_jwt_file(dir_.Join("jwt"));
  EXPECT_THAT(Source(c)->ListVersions("lumenfall"), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(VaultSourceTest, AppRoleLogin) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  v1::VaultSourceConfig c = AppRoleConfig();
  ASSERT_THAT(Source(c)->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(Requests("auth/approle/login"), 1);
  WriteFile(dir_.Join("secret-id"), "wrong");
  EXPECT_THAT(Source(c)->ListVersions("lumenfall"), StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(VaultSourceTest, RenewsBeforeExpiryAndLogsInAgainWhenRenewalIsRefused) {
  StartFixture({"--token-ttl", "60", "--token-max-ttl", "600"});
  Seed("credbroker/lumenfall", kKey1);
  auto source = Source(KubernetesConfig());
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  clock_.Advance(absl::Seconds(20));
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(Requests("renew-self"), 0) << "not yet half way";
  clock_.Advance(absl::Seconds(15));
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(Requests("renew-self"), 1);
  EXPECT_EQ(Requests("auth/kubernetes/login"), 1);

  Control("POST", "/__fixture/deny-renew", R"({"on":true})");
  clock_.Advance(absl::Seconds(35));
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(Requests("renew-self"), 2);
  EXPECT_EQ(Requests("auth/kubernetes/login"), 2) << "renewal refused: log in again";
}

TEST_F(VaultSourceTest, TokenExpiredAtVaultMidRunLogsInAgain) {
  StartFixture({"--token-ttl", "3600"});
  Seed("credbroker/lumenfall", kKey1);
  auto source = Source(AppRoleConfig());
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  // Vault expires the token early (e.g. revoked by an operator or a max TTL we did not know).
  Control("POST", "/__fixture/time-offset", R"({"seconds":7200})");
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(Requests("auth/approle/login"), 2);
}

TEST_F(VaultSourceTest, SealedVaultIsRetriedWithBackoffThenUnavailable) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  auto source = Source(Config());
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  Control("POST", "/__fixture/clear-requests");
  Control("POST", "/__fixture/seal");
  auto r = source->ListVersions("lumenfall");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("sealed")));
  EXPECT_EQ(core::ReasonOf(r.status()), "sealed");
  EXPECT_EQ(Requests("secret/metadata"), 4);
  EXPECT_EQ(sleeper_.slept.size(), 3u);
  Control("POST", "/__fixture/unseal");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());
}

TEST_F(VaultSourceTest, TransientFailureIsRetriedToSuccess) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  auto source = Source(Config());
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  Control("POST", "/__fixture/fail-next", R"({"count":2,"status":502})");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(sleeper_.slept.size(), 2u);
  Control("POST", "/__fixture/fail-next", R"({"count":1,"status":429})");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk()) << "a rate limit is retried";
  EXPECT_EQ(sleeper_.slept.size(), 3u);
}

// A token whose policies do not cover the secret gets 403 (Vault's ACLs): the source logs in
// again once (the token may be stale), then reports PERMISSION_DENIED without backing off, since
// no retry can fix a policy.
TEST_F(VaultSourceTest, PolicyThatDoesNotCoverTheSecretIsPermissionDenied) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  auto source = Source(KubernetesConfig());
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  // An operator narrows the broker's policy to another folder.
  Control(
      "POST", "/__fixture/policy",
      R"({"name":"credbroker","policy":{"path":{"secret/data/other/*":{"capabilities":["read"]}}}})");
  auto denied = source->ListVersions("lumenfall");
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(core::ReasonOf(denied.status()), "permission_denied");
  EXPECT_EQ(Requests("auth/kubernetes/login"), 2) << "one fresh login, then the answer stands";
  EXPECT_TRUE(sleeper_.slept.empty());
  EXPECT_THAT(source->FetchVersion("lumenfall", "1"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // With the policy gone the role's tokens hold only `default`, which reads no KV at all.
  Control("POST", "/__fixture/policy", R"({"name":"credbroker","delete":true})");
  EXPECT_THAT(source->ListVersions("lumenfall"), StatusIs(absl::StatusCode::kPermissionDenied));
  // Given back: served again, without a restart.
  Control("POST", "/__fixture/policy",
          absl::StrCat(R"({"name":"credbroker","policy":)", kBrokerPolicy, "}"));
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());
}

// Standby nodes (Vault's HA docs): by default they forward requests to the active node, which
// the client does not notice; without forwarding they answer 307 with the active node's address,
// which the source follows once over the same scheme; a redirect it cannot follow is UNAVAILABLE
// with reason `standby`. A performance standby that is behind answers 412 only to requests that
// carry X-Vault-Index, which the source never sends.
TEST_F(VaultSourceTest, StandbyForwardsOrRedirectsToTheActiveNode) {
  StartFixture();
  Seed("credbroker/lumenfall", kKey1);
  auto source = Source(Config());
  Control("POST", "/__fixture/standby", R"({"mode":"forward"})");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());
  Control("POST", "/__fixture/standby", R"({"mode":"behind"})");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());

  // The active node: another Vault process of the same cluster (same storage, so same secret).
  auto active = ChildProcess::Start({"/usr/bin/python3", CB_VAULT_FIXTURE, "--port-file",
                                     dir_.Join("active.port"), "--root-token", kRootToken},
                                    dir_.Join("active.port"), dir_.Join("active.log"));
  ASSERT_THAT(active.status(), IsOk());
  const std::string active_address = absl::StrCat("http://127.0.0.1:", active->port());
  auto put = RunCommand(
      {"/usr/bin/curl", "-sf", "-X", "POST", "-d",
       absl::StrCat(R"({"path":"credbroker/lumenfall","data":{"api_key":")", kKey1, R"("}})"),
       active_address + "/__fixture/put"});
  ASSERT_EQ(put.exit_code, 0) << put.output;

  Control("POST", "/__fixture/clear-requests");
  Control("POST", "/__fixture/standby",
          absl::StrCat(R"({"mode":"redirect","active":")", active_address, R"("})"));
  auto versions = source->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(Ids(*versions), ElementsAre("1"));
  EXPECT_EQ(Requests("secret/metadata"), 1) << "the standby answered 307 once";
  auto fetched = source->FetchVersion("lumenfall", "1");
  ASSERT_THAT(fetched, IsOk());
  EXPECT_EQ(core::Fingerprint(fetched->material.reveal()), core::Fingerprint(kKey1));

  // Redirected to a node that redirects again: not followed a second time.
  Control("POST", "/__fixture/standby",
          absl::StrCat(R"({"mode":"redirect","active":")", address_, R"("})"));
  auto loop = source->ListVersions("lumenfall");
  EXPECT_THAT(loop, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(core::ReasonOf(loop.status()), "standby");
  // To another scheme: the token is not sent there.
  Control("POST", "/__fixture/standby", R"({"mode":"redirect","active":"https://127.0.0.1:1"})");
  auto other_scheme = source->ListVersions("lumenfall");
  EXPECT_THAT(other_scheme, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(core::ReasonOf(other_scheme.status()), "standby");
}

TEST_F(VaultSourceTest, NamespaceHeaderIsSent) {
  StartFixture({"--namespace", "team-a"});
  Seed("credbroker/lumenfall", kKey1);
  v1::VaultSourceConfig c = Config();
  EXPECT_FALSE(Source(c)->ListVersions("lumenfall").ok()) << "without the namespace";
  c.set_namespace_("team-a");
  EXPECT_THAT(Source(c)->ListVersions("lumenfall"), IsOk());
}

TEST_F(VaultSourceTest, TlsWithAConfiguredCaBundle) {
  std::string cert = dir_.Join("vault.crt");
  std::string key = dir_.Join("vault.key");
  auto gen = RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                         "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"});
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  ca_file_ = cert;
  StartFixture({"--tls-cert", cert, "--tls-key", key});
  Seed("credbroker/lumenfall", kKey1);
  EXPECT_THAT(Source(Config())->ListVersions("lumenfall"), IsOk());
  v1::VaultSourceConfig untrusted = Config();
  untrusted.clear_ca_file();
  auto r = Source(untrusted)->ListVersions("lumenfall");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("TLS")));
}

TEST(VaultStatusTest, MapsVaultErrorsToCodesAndReasons) {
  google::protobuf::Struct body;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(
          R"({"errors":["check-and-set parameter did not match the current version"]})", &body)
          .ok());
  EXPECT_EQ(VaultStatus(400, body, "w").code(), absl::StatusCode::kAborted);
  google::protobuf::Struct empty;
  EXPECT_EQ(VaultStatus(400, empty, "w").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VaultStatus(403, empty, "w").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(VaultStatus(404, empty, "w").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(core::ReasonOf(VaultStatus(503, empty, "w")), "sealed");
  EXPECT_EQ(VaultStatus(500, empty, "w").code(), absl::StatusCode::kUnavailable);
}

// Numbers in Vault's answers are doubles in JSON: a version id that is not a canonical positive
// integer is skipped, and a current_version or written version that is not a whole number in
// range is a malformed answer rather than an out-of-range cast (the inputs fuzz/vault_fuzz.cc
// holds the source to). The real Vault never sends these, so a scripted transport stands in.
TEST(VaultSourceAnswersTest, MalformedNumbersAreRefusedNotConverted) {
  TempDir dir;
  WriteFile(dir.Join("token"), "s.token");
  v1::VaultSourceConfig config;
  config.set_address("http://127.0.0.1:1");
  config.set_path_prefix("credbroker");
  config.set_max_attempts(1);
  config.mutable_auth()->mutable_token()->set_token_file(dir.Join("token"));
  std::string metadata = R"({"data":{"current_version":1e300,"versions":{
      "0":{},"-1":{},"007":{},"+3":{},
      "2":{"created_time":"2026-05-01T00:00:00Z","deletion_time":"","destroyed":false}}}})";
  std::string written = R"({"data":{"version":-3}})";
  auto transport = std::make_unique<testing::FakeHttpClient>([&](const http::HttpRequest& r) {
    return testing::FakeHttpClient::Answer(
        200, absl::StrContains(r.url, "/metadata/") ? metadata : written);
  });
  core::FakeClock clock;
  RecordingSleeper sleeper;
  auto source =
      VaultSecretSource::Create("vault-test", config, std::move(transport), &clock, &sleeper);
  ASSERT_THAT(source, IsOk());
  auto versions = (*source)->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(Ids(*versions), ElementsAre("2"));
  auto write = (*source)->WriteVersion("lumenfall", core::SecretBytes(kKey1));
  EXPECT_THAT(write, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("current_version")));
  EXPECT_EQ(core::ReasonOf(write.status()), "malformed_answer");
  metadata = R"({"data":{"current_version":2}})";
  write = (*source)->WriteVersion("lumenfall", core::SecretBytes(kKey1));
  EXPECT_THAT(write, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("no version")));
}

TEST(VaultSourceFactoryTest, BuildsFromConfigAndRejectsUnreadableCa) {
  auto factory = MakeVaultSourceFactory();
  EXPECT_EQ(factory->type(), "vault");
  v1::SourceConfig config;
  config.set_name("prod");
  config.mutable_vault()->set_address("https://vault.example:8200");
  config.mutable_vault()->mutable_auth()->mutable_token()->set_token_env("VAULT_TOKEN");
  core::FakeClock clock;
  secrets::SourceContext context;
  context.clock = &clock;
  auto ok = factory->Create(config, context);
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ((*ok)->type(), "vault");
  config.mutable_vault()->set_ca_file("/nonexistent/ca.pem");
  EXPECT_THAT(factory->Create(config, context),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ca.pem")));
}

// The vault block is the vault factory's to check; through the config loader each error names
// its field and line.
absl::Status ValidateWithVault(const std::string& yaml) {
  secrets::SourceRegistry registry;
  registry.Register(MakeVaultSourceFactory());
  auto parsed = config::ParseYaml(yaml, "test.yaml");
  if (!parsed.ok()) return parsed.status();
  return config::Validate(*parsed, "test.yaml",
                          [&registry](const v1::BrokerConfig& c) { return registry.Validate(c); });
}

TEST(VaultSourceFactoryTest, VaultBlockIsValidatedPrecisely) {
  EXPECT_THAT(ValidateWithVault(R"(sources:
  - name: vault
    vault:
      address: vault.example:8200
      auth: {}
providers: [{name: lumenfall}]
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml:4: sources[0].vault.address"),
                             HasSubstr("test.yaml:5: sources[0].vault.auth: one method"))));
  EXPECT_THAT(ValidateWithVault(R"(sources:
  - name: vault
    vault:
      address: https://vault.example:8200
      path_prefix: ../escape
      auth:
        kubernetes: {}
providers: [{name: lumenfall}]
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("sources[0].vault.path_prefix"),
                             HasSubstr("sources[0].vault.auth.kubernetes.role: required"))));
  EXPECT_THAT(ValidateWithVault(R"(sources:
  - name: vault
    vault:
      address: https://vault.example:8200
      auth:
        token: {token_file: a, token_env: B}
providers: [{name: lumenfall}]
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("sources[0].vault.auth.token: set exactly one")));
  // Create checks the block too: a source is never built from a block that does not validate.
  v1::SourceConfig bad;
  bad.set_name("prod");
  bad.mutable_vault()->set_address("vault.example:8200");
  secrets::SourceRegistry registry;
  registry.Register(MakeVaultSourceFactory());
  EXPECT_THAT(registry.Create(bad, secrets::SourceContext{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("address: required"), HasSubstr("auth: one method"))));
}

}  // namespace
}  // namespace credbroker::backends::vault
