// The gcp source against the Secret Manager + metadata server + STS stand-in
// (tests/fixtures/gcp_fixture.py), which checks bearer tokens and IAM roles as Google does.
#include "credbroker/backends/gcp/gcp_source.h"

#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/testing/broker_process.h"
#include "credbroker/testing/jwt_signer.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace credbroker::backends::gcp {
namespace {

using ::credbroker::testing::ChildProcess;
using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kProject[] = "credbroker-test";
constexpr char kProjectNumber[] = "123456789012";
constexpr char kSecret[] = "credbroker-lumenfall";
constexpr char kBroker[] = "serviceAccount:broker@credbroker-test.iam.gserviceaccount.com";
constexpr char kToken[] = "ya29.fixture-broker-token-0001";
constexpr char kAudience[] =
    "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/k8s/"
    "providers/cluster";
constexpr char kIssuer[] = "https://kubernetes.default.svc";
const std::string kKey1 = "lmnfl_gcpone.0123456789abcdef";
const std::string kKey2 = "lmnfl_gcptwo.fedcba9876543210";

class RecordingSleeper final : public http::Sleeper {
 public:
  void Sleep(absl::Duration d) override { slept.push_back(d); }
  std::vector<absl::Duration> slept;
};

class RecordingStats final : public secrets::SourceStats {
 public:
  void TokenRefresh(absl::string_view source, absl::string_view result) override {
    refreshes.push_back(absl::StrCat(source, ":", result));
  }
  void Throttled(absl::string_view source) override { throttled.emplace_back(source); }
  std::vector<std::string> refreshes;
  std::vector<std::string> throttled;
};

std::string Version(const std::string& data, const std::string& state, int created) {
  return absl::StrCat(
      R"({"data_b64":")", absl::Base64Escape(data), R"(","state":")", state, R"(","create_time":")",
      absl::FormatTime(absl::RFC3339_full, absl::FromUnixSeconds(1'700'000'000 + created),
                       absl::UTCTimeZone()),
      R"("})");
}

class GcpSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto proc = ChildProcess::Start(
        {"/usr/bin/python3", CB_GCP_FIXTURE, "--port-file", dir_.Join("gcp.port")},
        dir_.Join("gcp.port"), dir_.Join("gcp.log"));
    ASSERT_THAT(proc.status(), IsOk());
    fixture_.emplace(std::move(*proc));
    host_ = absl::StrCat("127.0.0.1:", fixture_->port());
    endpoint_ = absl::StrCat("http://", host_);
    control_ = std::move(*http::CurlHttpClient::Create(http::TlsOptions{}));
    Identity(kBroker, R"([{"role":"roles/secretmanager.admin","secret":"*"}])", kToken);
  }

  std::string Control(const std::string& method, const std::string& path,
                      const std::string& body = "") {
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

  void Identity(const std::string& principal, const std::string& roles,
                const std::string& token = "") {
    Control("POST", "/__fixture/identity",
            absl::StrCat(R"({"principal":)", core::JsonQuote(principal), R"(,"roles":)", roles,
                         token.empty() ? "" : absl::StrCat(R"(,"token":)", core::JsonQuote(token)),
                         "}"));
  }

  void Seed(const std::vector<std::string>& versions) {
    Control("POST", "/__fixture/secret",
            absl::StrCat(R"({"project_id":")", kProject, R"(","project_number":")", kProjectNumber,
                         R"(","secret":")", kSecret, R"(","versions":[)",
                         absl::StrJoin(versions, ","), "]}"));
  }

  std::unique_ptr<GcpSecretSource> Source(std::unique_ptr<http::TokenSource<GcpToken>> inner) {
    v1::GcpSourceConfig config;
    config.set_project(kProject);
    config.set_endpoint(endpoint_);
    config.set_name_prefix("credbroker-");
    GcpSourceDeps deps;
    deps.transport = std::move(*http::CurlHttpClient::Create(http::TlsOptions{}));
    http::CachingTokenSourceOptions options;
    options.on_fetch = [this](absl::string_view r) { stats_.TokenRefresh("prod", r); };
    deps.token = std::make_unique<http::CachingTokenSource<GcpToken>>(
        std::move(inner), core::SystemClock::Get(), std::move(options));
    deps.clock = core::SystemClock::Get();
    deps.sleeper = &sleeper_;
    deps.stats = &stats_;
    deps.jitter = [] { return 0.5; };
    auto source = GcpSecretSource::Create("prod", config, std::move(deps));
    EXPECT_THAT(source, IsOk());
    return std::move(*source);
  }

  std::unique_ptr<GcpSecretSource> MetadataSource() {
    return Source(MakeMetadataTokenSource(std::move(*http::CurlHttpClient::Create({})), host_,
                                          core::SystemClock::Get()));
  }

  testing::TempDir dir_;
  std::optional<ChildProcess> fixture_;
  std::string host_;
  std::string endpoint_;
  std::unique_ptr<http::HttpClient> control_;
  RecordingSleeper sleeper_;
  RecordingStats stats_;
};

TEST_F(GcpSourceTest, ListsVersionsWithTheirStatesOldestFirstAndFetchesThem) {
  Seed({Version(kKey1, "ENABLED", 1), Version("lmnfl_off.aaaaaaaaaaaaaaaa", "DISABLED", 2),
        R"({"state":"DESTROYED","create_time":"2023-11-14T22:13:23Z"})",
        Version(kKey2, "ENABLED", 4)});
  auto source = MetadataSource();
  auto versions = source->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  ASSERT_EQ(versions->size(), 4u);
  std::vector<std::string> ids;
  std::vector<bool> enabled;
  for (const auto& v : *versions) {
    ids.push_back(v.version_id);
    enabled.push_back(v.enabled);
    EXPECT_EQ(v.stage, secrets::BackendStage::kNone);
    EXPECT_FALSE(v.etag.empty());
  }
  EXPECT_THAT(ids, ElementsAre("1", "2", "3", "4"));
  EXPECT_THAT(enabled, ElementsAre(true, false, false, true));
  EXPECT_EQ((*versions)[0].created_at, absl::FromUnixSeconds(1'700'000'001));
  EXPECT_EQ((*versions)[3].created_at, absl::FromUnixSeconds(1'700'000'004));

  auto v = source->FetchVersion("lumenfall", "4");
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->material.reveal() == kKey2);
  EXPECT_EQ(v->info.version_id, "4");
  auto disabled = source->FetchVersion("lumenfall", "2");
  EXPECT_THAT(disabled, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(core::ReasonOf(disabled.status()), "failed_precondition");
  auto missing = source->FetchVersion("lumenfall", "9");
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(missing.status()), "not_found");
  EXPECT_THAT(source->ListVersions("unknown"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(stats_.refreshes, ElementsAre("prod:ok"));  // one token, cached
}

TEST_F(GcpSourceTest, FollowsListPages) {
  std::vector<std::string> versions;
  for (int i = 1; i <= 130; ++i) versions.push_back(Version(absl::StrCat("key-", i), "ENABLED", i));
  Seed(versions);
  auto listed = MetadataSource()->ListVersions("lumenfall");
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 130u);
  EXPECT_EQ(listed->front().version_id, "1");
  EXPECT_EQ(listed->back().version_id, "130");
}

TEST_F(GcpSourceTest, ACorruptChecksumIsDataLossAndTheNextAccessIsFine) {
  Seed({Version(kKey1, "ENABLED", 1)});
  auto source = MetadataSource();
  Control("POST", "/__fixture/corrupt-crc",
          absl::StrCat(R"({"secret":")", kSecret, R"(","version":1})"));
  auto corrupt = source->FetchVersion("lumenfall", "1");
  EXPECT_THAT(corrupt, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("dataCrc32c")));
  EXPECT_EQ(core::ReasonOf(corrupt.status()), "checksum_mismatch");
  EXPECT_THAT(corrupt.status().ToString(), Not(HasSubstr(kKey1)));
  auto fine = source->FetchVersion("lumenfall", "1");
  ASSERT_THAT(fine, IsOk());
  EXPECT_TRUE(fine->material.reveal() == kKey1);
}

TEST_F(GcpSourceTest, AMintedKeyIsAddedAsANewVersion) {
  Seed({Version(kKey1, "ENABLED", 1)});
  auto source = MetadataSource();
  auto written = source->WriteVersion("lumenfall", core::SecretBytes(kKey2));
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->version_id, "2");
  EXPECT_TRUE(written->enabled);
  auto v = source->FetchVersion("lumenfall", "2");
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->material.reveal() == kKey2);
  auto versions = source->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ(versions->back().version_id, "2");
  EXPECT_THAT(source->PromoteVersion("lumenfall", "2"), IsOk());  // no marker to move
}

TEST_F(GcpSourceTest, ATokenWithoutTheRoleIsPermissionDenied) {
  Seed({Version(kKey1, "ENABLED", 1)});
  Identity("serviceAccount:viewer@credbroker-test.iam.gserviceaccount.com",
           R"([{"role":"roles/secretmanager.viewer","secret":"*"}])", "ya29.viewer-token-0002");
  auto source = MetadataSource();
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  auto denied = source->FetchVersion("lumenfall", "1");
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kPermissionDenied,
                               HasSubstr("secretmanager.versions.access")));
  EXPECT_EQ(core::ReasonOf(denied.status()), "permission_denied");
  EXPECT_THAT(denied.status().ToString(), Not(HasSubstr("ya29")));
  EXPECT_THAT(source->WriteVersion("lumenfall", core::SecretBytes(kKey2)),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(stats_.refreshes.size(), 1u);  // a 403 keeps the token
}

TEST_F(GcpSourceTest, AnExpiredTokenIsFetchedAnewOnceThenTheErrorStands) {
  Seed({Version(kKey1, "ENABLED", 1)});
  auto source = MetadataSource();
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  // Revoked early; the metadata server now hands out a new token.
  Control("POST", "/__fixture/expire", absl::StrCat(R"({"token":")", kToken, R"("})"));
  Identity(kBroker, R"([{"role":"roles/secretmanager.admin","secret":"*"}])",
           "ya29.fixture-broker-token-0003");
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_THAT(stats_.refreshes, ElementsAre("prod:ok", "prod:ok"));

  // The metadata server keeps answering the expired token: one refetch, then auth_failed.
  Control("POST", "/__fixture/expire", R"({"token":"ya29.fixture-broker-token-0003"})");
  stats_.refreshes.clear();
  auto refused = source->ListVersions("lumenfall");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("401")));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  EXPECT_THAT(refused.status().ToString(), Not(HasSubstr("ya29")));
  EXPECT_THAT(stats_.refreshes, ElementsAre("prod:ok"));
  EXPECT_TRUE(sleeper_.slept.empty());
}

TEST_F(GcpSourceTest, WorkloadIdentityFederationExchangesTheProjectedToken) {
  Seed({Version(kKey1, "ENABLED", 1)});
  auto key = testing::JwtKey::NewRsa("k8s-key");
  const std::string wif_principal =
      "principal://iam.googleapis.com/projects/123456789012/locations/global/"
      "workloadIdentityPools/k8s/subject/system:serviceaccount:credbroker:credbroker";
  Control("POST", "/__fixture/wif-provider",
          absl::StrCat(R"({"audience":)", core::JsonQuote(kAudience), R"(,"issuer":)",
                       core::JsonQuote(kIssuer), R"(,"public_key_pem":)",
                       core::JsonQuote(key->PublicKeyPem()), R"(,"principal":)",
                       core::JsonQuote(wif_principal), "}"));
  Identity(wif_principal, R"([{"role":"roles/secretmanager.secretAccessor","secret":"*"},)"
                          R"({"role":"roles/secretmanager.viewer","secret":"*"}])");
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  auto write_token = [&](absl::string_view audience) {
    std::string jwt = key->Sign(
        R"({"alg":"RS256","kid":"k8s-key","typ":"JWT"})",
        testing::K8sClaims(kIssuer, audience, "credbroker", "credbroker", now + 3600, now - 10));
    testing::WriteFile(dir_.Join("token"), jwt + "\n");
  };
  write_token(kAudience);
  auto source = Source(MakeStsTokenSource(std::move(*http::CurlHttpClient::Create({})), endpoint_,
                                          kAudience, dir_.Join("token"), core::SystemClock::Get()));
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  auto v = source->FetchVersion("lumenfall", "1");
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->material.reveal() == kKey1);

  // A projected token for another audience is refused by STS (invalid_grant).
  write_token("https://kubernetes.default.svc");
  auto refused = Source(MakeStsTokenSource(std::move(*http::CurlHttpClient::Create({})), endpoint_,
                                           kAudience, dir_.Join("token"), core::SystemClock::Get()))
                     ->ListVersions("lumenfall");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("invalid_grant")));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  EXPECT_THAT(refused.status().ToString(), Not(HasSubstr("eyJ")));
}

TEST_F(GcpSourceTest, ThrottlingBacksOffAndRetries) {
  Seed({Version(kKey1, "ENABLED", 1)});
  auto source = MetadataSource();
  Control("POST", "/__fixture/throttle", R"({"count":2})");
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  // Full jitter (0.5 here) over 200ms, then 400ms.
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200)));
  EXPECT_THAT(stats_.throttled, ElementsAre("prod", "prod"));

  sleeper_.slept.clear();
  Control("POST", "/__fixture/throttle", R"({"count":10})");
  auto throttled = source->ListVersions("lumenfall");
  EXPECT_THAT(throttled, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("RESOURCE_EXHAUSTED")));
  EXPECT_EQ(core::ReasonOf(throttled.status()), "throttled");
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200),
                                          absl::Milliseconds(400)));  // 4 attempts
}

TEST_F(GcpSourceTest, AnOutageIsUnavailable) {
  Seed({Version(kKey1, "ENABLED", 1)});
  auto source = MetadataSource();
  Control("POST", "/__fixture/outage", R"({"on":true})");
  auto out = source->ListVersions("lumenfall");
  EXPECT_THAT(out, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(core::ReasonOf(out.status()), "unavailable");
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200),
                                          absl::Milliseconds(400)));
  Control("POST", "/__fixture/outage", R"({"on":false})");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());
}

TEST_F(GcpSourceTest, FactoryValidatesItsBlockAndBuildsFromConfig) {
  auto factory = MakeGcpSourceFactory();
  EXPECT_EQ(factory->type(), "gcp");
  v1::SourceConfig config;
  config.set_name("prod");
  auto fields = [&] {
    std::vector<std::string> out;
    for (const core::FieldError& e : factory->Validate(config)) out.push_back(e.field);
    return out;
  };
  config.mutable_gcp();
  EXPECT_THAT(fields(), ElementsAre("project", "auth"));
  config.mutable_gcp()->set_project("Bad_Project");
  config.mutable_gcp()->set_endpoint("secretmanager.example");
  config.mutable_gcp()->set_max_attempts(11);
  auto* wif = config.mutable_gcp()->mutable_auth()->mutable_workload_identity_federation();
  wif->set_audience("projects/1/pools/x");
  wif->set_sts_endpoint("sts.example");
  EXPECT_THAT(fields(),
              ElementsAre("project", "endpoint", "auth.workload_identity_federation.audience",
                          "auth.workload_identity_federation.token_file",
                          "auth.workload_identity_federation.sts_endpoint", "max_attempts"));
  wif->set_audience(kAudience);
  wif->set_token_file("/var/run/secrets/tokens/gcp");
  wif->clear_sts_endpoint();
  config.mutable_gcp()->set_project(kProjectNumber);
  config.mutable_gcp()->set_endpoint(endpoint_);
  config.mutable_gcp()->set_max_attempts(3);
  EXPECT_THAT(fields(), ElementsAre());

  // Metadata server auth, its host from GCE_METADATA_HOST.
  config.mutable_gcp()->set_project(kProject);
  config.mutable_gcp()->set_name_prefix("credbroker-");
  config.mutable_gcp()->mutable_auth()->mutable_metadata_server();
  EXPECT_THAT(fields(), ElementsAre());
  secrets::SourceContext context;
  context.clock = core::SystemClock::Get();
  context.sleeper = &sleeper_;
  context.stats = &stats_;
  context.env = [this](absl::string_view name) -> std::optional<std::string> {
    if (name == "GCE_METADATA_HOST") return host_;
    return std::nullopt;
  };
  Seed({Version(kKey1, "ENABLED", 1)});
  auto made = factory->Create(config, context);
  ASSERT_THAT(made, IsOk());
  EXPECT_EQ((*made)->type(), "gcp");
  ASSERT_THAT((*made)->ListVersions("lumenfall"), IsOk());
  EXPECT_THAT(stats_.refreshes, ElementsAre("prod:ok"));
}

}  // namespace
}  // namespace credbroker::backends::gcp
