// The azure source against the Key Vault / Entra / IMDS stand-in (tests/fixtures/azure_fixture.py),
// which issues and checks bearer tokens, enforces Key Vault RBAC and answers as Key Vault does.
#include "credbroker/backends/azure/azure_source.h"

#include <fstream>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/testing/broker_process.h"
#include "credbroker/testing/fake_http_client.h"
#include "credbroker/testing/jwt_signer.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace credbroker::backends::azure {
namespace {

using ::credbroker::testing::ChildProcess;
using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kTenant[] = "72f988bf-0000-4000-8000-00000000f1c5";
constexpr char kClientId[] = "11111111-2222-4333-8444-555555555555";
constexpr char kIssuer[] = "https://oidc.aks.example/issuer";
constexpr char kSecret[] = "credbroker-lumenfall";
const std::string kKey1 = "lmnfl_azone.0123456789abcdef";
const std::string kKey2 = "lmnfl_aztwo.fedcba9876543210";

class RecordingSleeper final : public http::Sleeper {
 public:
  void Sleep(absl::Duration d) override { slept.push_back(d); }
  std::vector<absl::Duration> slept;
};

class RecordingStats final : public secrets::SourceStats {
 public:
  void TokenRefresh(absl::string_view source, absl::string_view result) override {
    refreshes.push_back(std::string(result));
  }
  void Throttled(absl::string_view source) override { ++throttled; }
  std::vector<std::string> refreshes;
  int throttled = 0;
};

google::protobuf::Struct ParseStruct(const std::string& json) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok()) << json;
  return s;
}

class AzureSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto proc = ChildProcess::Start({"/usr/bin/python3", CB_AZURE_FIXTURE, "--port-file",
                                     dir_.Join("azure.port"), "--tenant", kTenant},
                                    dir_.Join("azure.port"), dir_.Join("azure.log"));
    ASSERT_THAT(proc.status(), IsOk());
    fixture_.emplace(std::move(*proc));
    endpoint_ = absl::StrCat("http://127.0.0.1:", fixture_->port());
    control_ = std::move(*http::CurlHttpClient::Create(http::TlsOptions{}));
    Control("/__fixture/managed-identity", R"({"principal":"mi-broker"})");
    Grant("mi-broker", "Key Vault Secrets Officer");
  }

  std::string Control(const std::string& path, const std::string& body,
                      const std::string& method = "POST") {
    http::HttpRequest req;
    req.method = method;
    req.url = endpoint_ + path;
    req.body = body;
    auto r = control_->Send(req);
    EXPECT_THAT(r, IsOk());
    if (r.ok()) {
      EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    }
    return r.ok() ? r->body : "";
  }

  void Grant(const std::string& principal, const std::string& role) {
    Control("/__fixture/identity",
            absl::StrCat(R"({"principal":")", principal, R"(","roles":[{"role":")", role,
                         R"(","secret":"*"}]})"));
  }

  // Seeds kSecret; answers the version ids in the order given.
  std::vector<std::string> Seed(const std::string& versions_json) {
    auto answer = ParseStruct(
        Control("/__fixture/secret",
                absl::StrCat(R"({"name":")", kSecret, R"(","versions":)", versions_json, "}")));
    std::vector<std::string> ids;
    for (const auto& v : answer.fields().at("versions").list_value().values()) {
      ids.push_back(v.string_value());
    }
    return ids;
  }

  int TokensIssued(const std::string& principal) {
    auto state = ParseStruct(Control("/__fixture/state", "", "GET"));
    const auto& issued = state.fields().at("tokens_issued").struct_value().fields();
    auto it = issued.find(principal);
    return it == issued.end() ? 0 : static_cast<int>(it->second.number_value());
  }

  v1::AzureSourceConfig ManagedConfig() {
    v1::AzureSourceConfig config;
    config.set_vault_url(endpoint_);
    config.set_name_prefix("credbroker-");
    config.mutable_auth()->mutable_managed_identity()->set_endpoint(
        endpoint_ + "/metadata/identity/oauth2/token");
    return config;
  }

  std::unique_ptr<AzureSecretSource> Source(const v1::AzureSourceConfig& config) {
    secrets::SourceContext ctx;
    ctx.clock = &clock_;
    ctx.stats = &stats_;
    ctx.env = [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
    AzureSourceDeps deps;
    deps.transport = std::move(*http::CurlHttpClient::Create(http::TlsOptions{}));
    auto token = AzureTokenFromConfig(config, ctx, deps.transport.get(), "prod");
    EXPECT_THAT(token, IsOk());
    if (!token.ok()) return nullptr;
    deps.token = *std::move(token);
    deps.clock = &clock_;
    deps.sleeper = &sleeper_;
    deps.stats = &stats_;
    deps.jitter = [] { return 0.5; };
    auto source = AzureSecretSource::Create("prod", config, std::move(deps));
    EXPECT_THAT(source, IsOk());
    return source.ok() ? std::move(*source) : nullptr;
  }

  std::unique_ptr<AzureSecretSource> Source() { return Source(ManagedConfig()); }

  // Registers a workload identity federated credential and writes a projected token signed with
  // `signer` to the token file; answers the config using it.
  v1::AzureSourceConfig WorkloadConfig(const testing::JwtKey& registered,
                                       const testing::JwtKey& signer) {
    Control("/__fixture/federated-credential",
            absl::StrCat(R"({"tenant":")", kTenant, R"(","client_id":")", kClientId,
                         R"(","issuer":")", kIssuer,
                         R"(","subject":"system:serviceaccount:ai:credbroker","public_key_pem":)",
                         JsonQuote(registered.PublicKeyPem()), R"(,"principal":"wi-broker"})"));
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    const std::string jwt =
        signer.Sign(absl::StrCat(R"({"alg":"RS256","typ":"JWT","kid":")", signer.kid(), R"("})"),
                    testing::K8sClaims(kIssuer, "api://AzureADTokenExchange", "ai", "credbroker",
                                       now + 3600, now - 10));
    assertion_ = jwt;
    std::ofstream(dir_.Join("azure-identity-token")) << jwt;
    v1::AzureSourceConfig config = ManagedConfig();
    auto* w = config.mutable_auth()->mutable_workload_identity();
    w->set_tenant_id(kTenant);
    w->set_client_id(kClientId);
    w->set_token_file(dir_.Join("azure-identity-token"));
    w->set_authority_host(endpoint_ + "/");
    return config;
  }

  static std::string JsonQuote(const std::string& s) {
    google::protobuf::Value v;
    v.set_string_value(s);
    std::string out;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(v, &out).ok());
    return out;
  }

  testing::TempDir dir_;
  std::optional<ChildProcess> fixture_;
  std::string endpoint_;
  std::unique_ptr<http::HttpClient> control_;
  core::FakeClock clock_{absl::Now()};
  RecordingSleeper sleeper_;
  RecordingStats stats_;
  std::string assertion_;
};

TEST_F(AzureSourceTest, ListsEveryPageOldestFirstWithAttributesAndFetches) {
  std::string versions = "[";
  for (int i = 0; i < 30; ++i) {
    absl::StrAppend(&versions, i == 0 ? "" : ",", R"({"value":"lmnfl_v)", i,
                    R"(.0123456789abcdef","created":)", 1'700'000'000 + i);
    if (i == 1) absl::StrAppend(&versions, R"(,"enabled":false)");
    if (i == 2) absl::StrAppend(&versions, R"(,"nbf":1800000000,"exp":1900000000)");
    versions += "}";
  }
  versions += "]";
  const std::vector<std::string> ids = Seed(versions);
  ASSERT_EQ(ids.size(), 30u);
  auto source = Source();
  auto listed = source->ListVersions("lumenfall");
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 30u);  // two pages of at most 25
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ((*listed)[i].version_id, ids[i]);
    EXPECT_EQ((*listed)[i].created_at, absl::FromUnixSeconds(1'700'000'000 + i));
    EXPECT_EQ((*listed)[i].stage, secrets::BackendStage::kNone);
    EXPECT_TRUE(absl::StartsWith((*listed)[i].etag, ids[i] + "@"));
  }
  EXPECT_TRUE((*listed)[0].enabled);
  EXPECT_EQ((*listed)[0].not_before, absl::InfinitePast());
  EXPECT_EQ((*listed)[0].expires_at, absl::InfiniteFuture());
  EXPECT_FALSE((*listed)[1].enabled);
  EXPECT_EQ((*listed)[2].not_before, absl::FromUnixSeconds(1'800'000'000));
  EXPECT_EQ((*listed)[2].expires_at, absl::FromUnixSeconds(1'900'000'000));

  auto v = source->FetchVersion("lumenfall", ids[29]);
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->material.reveal() == "lmnfl_v29.0123456789abcdef");
  auto disabled = source->FetchVersion("lumenfall", ids[1]);
  EXPECT_THAT(disabled,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("SecretDisabled")));
  EXPECT_EQ(core::ReasonOf(disabled.status()), "disabled");
  auto missing = source->FetchVersion("lumenfall", "0123456789abcdef0123456789abcdef");
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(missing.status()), "not_found");
  EXPECT_THAT(source->ListVersions("unknown"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(source->ListVersions("bad/name"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(TokensIssued("mi-broker"), 1);
  EXPECT_THAT(stats_.refreshes, ElementsAre("ok"));
}

TEST_F(AzureSourceTest, AMintedKeyIsSetAsTheNewestVersion) {
  Seed(absl::StrCat(R"([{"value":")", kKey1, R"(","created":1700000000}])"));
  auto source = Source();
  auto written = source->WriteVersion("lumenfall", core::SecretBytes(kKey2));
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->version_id.size(), 32u);
  auto v = source->FetchVersion("lumenfall", written->version_id);
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->material.reveal() == kKey2);
  auto listed = source->ListVersions("lumenfall");
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ(listed->back().version_id, written->version_id);
  EXPECT_THAT(source->PromoteVersion("lumenfall", written->version_id), IsOk());
}

TEST_F(AzureSourceTest, ASecretsUserCanReadButNotWrite) {
  const auto ids = Seed(absl::StrCat(R"([{"value":")", kKey1, R"("}])"));
  Grant("mi-broker", "Key Vault Secrets User");
  auto source = Source();
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  ASSERT_THAT(source->FetchVersion("lumenfall", ids[0]), IsOk());
  auto refused = source->WriteVersion("lumenfall", core::SecretBytes(kKey2));
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("ForbiddenByRbac")));
  EXPECT_EQ(core::ReasonOf(refused.status()), "permission_denied");
  EXPECT_THAT(refused.status().ToString(), Not(HasSubstr(kKey2)));
}

TEST_F(AzureSourceTest, AnExpiredTokenIsFetchedAnewOnceThenTheErrorStands) {
  Seed(absl::StrCat(R"([{"value":")", kKey1, R"("}])"));
  auto source = Source();
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(TokensIssued("mi-broker"), 1);
  // Key Vault refuses the cached token (401 challenge): dropped, a new one, success.
  Control("/__fixture/expire", R"({"principal":"mi-broker"})");
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(TokensIssued("mi-broker"), 2);

  // Every new token is born expired: one refetch, then PERMISSION_DENIED (auth_failed).
  Control("/__fixture/token-lifetime", R"({"seconds":0})");
  Control("/__fixture/expire", R"({"principal":"mi-broker"})");
  auto refused = source->ListVersions("lumenfall");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("401")));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  EXPECT_EQ(TokensIssued("mi-broker"), 3);
  EXPECT_TRUE(sleeper_.slept.empty());
}

TEST_F(AzureSourceTest, WorkloadIdentityExchangesTheProjectedToken) {
  Seed(absl::StrCat(R"([{"value":")", kKey1, R"("}])"));
  Grant("wi-broker", "Key Vault Secrets User");
  auto key = testing::JwtKey::NewRsa("aks-1");
  auto source = Source(WorkloadConfig(*key, *key));
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(TokensIssued("wi-broker"), 1);
  EXPECT_EQ(TokensIssued("mi-broker"), 0);
}

TEST_F(AzureSourceTest, ARefusedAssertionIsPermissionDeniedWithoutTheAssertion) {
  Seed(absl::StrCat(R"([{"value":")", kKey1, R"("}])"));
  Grant("wi-broker", "Key Vault Secrets User");
  auto registered = testing::JwtKey::NewRsa("aks-1");
  auto other = testing::JwtKey::NewRsa("aks-1");
  auto source = Source(WorkloadConfig(*registered, *other));
  auto refused = source->ListVersions("lumenfall");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied,
                                HasSubstr("invalid_client: AADSTS700027")));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  EXPECT_THAT(refused.status().ToString(), Not(HasSubstr(assertion_.substr(0, 40))));
  EXPECT_THAT(refused.status().ToString(), Not(HasSubstr("Trace ID")));
  EXPECT_THAT(stats_.refreshes, ElementsAre("error"));
}

TEST_F(AzureSourceTest, ManagedIdentityRefusedIsPermissionDeniedAndRetriedOnNextCall) {
  Seed(absl::StrCat(R"([{"value":")", kKey1, R"("}])"));
  Control("/__fixture/managed-identity", R"({"principal":null})");
  auto source = Source();
  auto refused = source->ListVersions("lumenfall");
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("unauthorized_client")));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  EXPECT_TRUE(sleeper_.slept.empty());
  Control("/__fixture/managed-identity", R"({"principal":"mi-broker"})");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_THAT(stats_.refreshes, ElementsAre("error", "ok"));
}

TEST_F(AzureSourceTest, AnUnreachableTokenEndpointIsUnavailableAfterBackoff) {
  Seed(absl::StrCat(R"([{"value":")", kKey1, R"("}])"));
  v1::AzureSourceConfig config = ManagedConfig();
  // Nothing listens on loopback port 1 (privileged, unused): the connection is refused.
  config.mutable_auth()->mutable_managed_identity()->set_endpoint(
      "http://127.0.0.1:1/metadata/identity/oauth2/token");
  auto source = Source(config);
  auto down = source->ListVersions("lumenfall");
  EXPECT_THAT(down, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(core::ReasonOf(down.status()), "unavailable");
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200),
                                          absl::Milliseconds(400)));
}

TEST_F(AzureSourceTest, ThrottlingHonoursRetryAfterElseBacksOff) {
  Seed(absl::StrCat(R"([{"value":")", kKey1, R"("}])"));
  auto source = Source();
  Control("/__fixture/throttle", R"({"count":2,"retry_after":3})");
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Seconds(3), absl::Seconds(3)));
  EXPECT_EQ(stats_.throttled, 2);

  sleeper_.slept.clear();
  Control("/__fixture/throttle", R"({"count":1,"retry_after":3600})");
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Seconds(60)));  // capped

  sleeper_.slept.clear();
  Control("/__fixture/throttle", R"({"count":2})");
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  // Full jitter (0.5 here) over 200ms, then 400ms.
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200)));

  sleeper_.slept.clear();
  Control("/__fixture/throttle", R"({"count":10})");
  auto throttled = source->ListVersions("lumenfall");
  EXPECT_THAT(throttled, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("Throttled")));
  EXPECT_EQ(core::ReasonOf(throttled.status()), "throttled");
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200),
                                          absl::Milliseconds(400)));  // 4 attempts
}

TEST_F(AzureSourceTest, AnOutageIsUnavailable) {
  Seed(absl::StrCat(R"([{"value":")", kKey1, R"("}])"));
  auto source = Source();
  Control("/__fixture/outage", R"({"on":true})");
  auto down = source->ListVersions("lumenfall");
  EXPECT_THAT(down, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(core::ReasonOf(down.status()), "unavailable");
  EXPECT_EQ(sleeper_.slept.size(), 3u);
  Control("/__fixture/outage", R"({"on":false})");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());
}

class FixedToken final : public http::TokenSource<AzureToken> {
 public:
  absl::StatusOr<std::shared_ptr<const AzureToken>> Fetch() override {
    auto t = std::make_shared<AzureToken>();
    t->access_token = core::SecretBytes("fixed-bearer-token");
    return std::shared_ptr<const AzureToken>(std::move(t));
  }
};

TEST(AzureSourceNextLinkTest, ANextLinkOffTheVaultIsNotFollowed) {
  auto fake = std::make_unique<testing::FakeHttpClient>([](const http::HttpRequest&) {
    return testing::FakeHttpClient::Answer(
        200,
        R"({"value":[{"id":"https://v.vault.azure.net/secrets/a/0123456789abcdef0123456789abcdef",)"
        R"("attributes":{"enabled":true,"created":1700000000,"updated":1700000000}}],)"
        R"("nextLink":"https://attacker.example/secrets/a/versions?api-version=7.4"})");
  });
  testing::FakeHttpClient* requests = fake.get();
  core::FakeClock clock;
  AzureSourceDeps deps;
  deps.transport = std::move(fake);
  deps.token = std::make_unique<http::CachingTokenSource<AzureToken>>(
      std::make_unique<FixedToken>(), &clock);
  deps.clock = &clock;
  v1::AzureSourceConfig config;
  config.set_vault_url("https://v.vault.azure.net");
  auto source = AzureSecretSource::Create("prod", config, std::move(deps));
  ASSERT_THAT(source, IsOk());
  auto listed = (*source)->ListVersions("a");
  EXPECT_THAT(listed, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("nextLink")));
  ASSERT_EQ(requests->requests().size(), 1u);
  EXPECT_EQ(requests->requests()[0].url,
            "https://v.vault.azure.net/secrets/a/versions?api-version=7.4&maxresults=25");

  EXPECT_TRUE(SameOrigin("https://v.vault.azure.net", "https://V.vault.azure.net:443/x"));
  EXPECT_FALSE(SameOrigin("https://v.vault.azure.net", "http://v.vault.azure.net/x"));
  EXPECT_FALSE(SameOrigin("https://v.vault.azure.net", "https://v.vault.azure.net.evil/x"));
  EXPECT_FALSE(SameOrigin("https://v.vault.azure.net", "https://v.vault.azure.net@evil/x"));
}

TEST(AzureSourceFactoryTest, ValidatesItsBlockAndReadsTheAzureVariables) {
  auto factory = MakeAzureSourceFactory();
  EXPECT_EQ(factory->type(), "azure");
  v1::SourceConfig config;
  config.set_name("prod");
  config.mutable_azure()->set_name_prefix("credbroker/");
  config.mutable_azure()->set_max_attempts(11);
  std::vector<std::string> fields;
  for (const core::FieldError& e : factory->Validate(config)) fields.push_back(e.field);
  EXPECT_THAT(fields, ElementsAre("vault_url", "name_prefix", "auth", "max_attempts"));

  config.mutable_azure()->Clear();
  config.mutable_azure()->set_vault_url("ftp://v.vault.azure.net");
  config.mutable_azure()->mutable_auth()->mutable_workload_identity()->set_authority_host(
      "login.example");
  fields.clear();
  for (const core::FieldError& e : factory->Validate(config)) fields.push_back(e.field);
  EXPECT_THAT(fields, ElementsAre("vault_url", "auth.workload_identity.authority_host"));

  config.mutable_azure()->Clear();
  config.mutable_azure()->set_vault_url("https://v.vault.azure.net");
  config.mutable_azure()->mutable_auth()->mutable_workload_identity();
  EXPECT_THAT(factory->Validate(config), ::testing::IsEmpty());
  secrets::SourceContext context;
  core::FakeClock clock;
  context.clock = &clock;
  context.env = [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
  EXPECT_THAT(factory->Create(config, context),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AZURE_TENANT_ID")));
  context.env = [](absl::string_view name) -> std::optional<std::string> {
    if (name == "AZURE_TENANT_ID") return std::string(kTenant);
    if (name == "AZURE_CLIENT_ID") return std::string(kClientId);
    if (name == "AZURE_FEDERATED_TOKEN_FILE") return std::string("/nonexistent/token");
    return std::nullopt;
  };
  auto made = factory->Create(config, context);
  ASSERT_THAT(made, IsOk());
  EXPECT_EQ((*made)->type(), "azure");
}

}  // namespace
}  // namespace credbroker::backends::azure
