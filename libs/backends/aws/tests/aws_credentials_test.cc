// AWS credential providers against tests/fixtures/aws_fixture.py, a stand-in for STS
// AssumeRoleWithWebIdentity, the EKS Pod Identity agent and Secrets Manager that follows AWS's
// documented behaviour (the credentials it issues are checked by signing a GetSecretValue).
#include "credbroker/backends/aws/aws_credentials.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/backends/aws/sigv4.h"
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

namespace credbroker::backends::aws {
namespace {

using ::credbroker::testing::ChildProcess;
using ::credbroker::testing::IsOk;
using ::credbroker::testing::JwtKey;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;
using ::credbroker::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kIssuer[] = "https://oidc.eks.us-east-1.amazonaws.com/id/CREDBROKERTEST";
constexpr char kRoleArn[] = "arn:aws:iam::123456789012:role/credbroker";
constexpr char kSecretName[] = "credbroker/app";
constexpr char kSecretValue[] = "the-secret-value";

class RecordingStats final : public secrets::SourceStats {
 public:
  void TokenRefresh(absl::string_view source, absl::string_view result) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(absl::StrCat("refresh ", source, " ", result));
  }
  void Throttled(absl::string_view source) override {
    absl::MutexLock lock(&mu_);
    events_.push_back(absl::StrCat("throttled ", source));
  }
  std::vector<std::string> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

using Env = std::map<std::string, std::string>;

class AwsCredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto proc = ChildProcess::Start(
        {"/usr/bin/python3", CB_AWS_FIXTURE, "--port-file", dir_.Join("aws.port")},
        dir_.Join("aws.port"), dir_.Join("aws.log"));
    ASSERT_THAT(proc.status(), IsOk());
    fixture_.emplace(std::move(*proc));
    address_ = absl::StrCat("http://127.0.0.1:", fixture_->port());
    auto client = http::CurlHttpClient::Create(http::TlsOptions{});
    ASSERT_THAT(client, IsOk());
    http_ = std::shared_ptr<http::HttpClient>(*std::move(client));
    key_ = JwtKey::NewRsa("test-key");
    const std::string pem = key_->PublicKeyPem();
    ASSERT_FALSE(pem.empty());
    Control("/__fixture/oidc-provider",
            absl::StrCat(R"({"issuer":)", core::JsonQuote(kIssuer), R"(,"public_key_pem":)",
                         core::JsonQuote(pem), "}"));
    Control("/__fixture/secret",
            absl::StrCat(R"({"name":)", core::JsonQuote(kSecretName),
                         R"(,"versions":[{"id":"v1","string":)", core::JsonQuote(kSecretValue),
                         R"(,"stages":["AWSCURRENT"]}]})"));
  }

  void Control(const std::string& path, const std::string& body) {
    http::HttpRequest req;
    req.method = "POST";
    req.url = address_ + path;
    req.body = body;
    auto r = http_->Send(req);
    ASSERT_THAT(r, IsOk());
    ASSERT_EQ(r->status, 200) << path << ": " << r->body;
  }

  // Registers the role the tokens below may assume; `issue_seconds` shortens what it is issued.
  void AddRole(int issue_seconds = 0) {
    Control("/__fixture/role",
            absl::StrCat(
                R"({"arn":)", core::JsonQuote(kRoleArn),
                R"(,"subject":"system:serviceaccount:credbroker:broker","issuer":)",
                core::JsonQuote(kIssuer),
                R"(,"allow":[{"action":"secretsmanager:GetSecretValue","secret":"*"}])",
                issue_seconds > 0 ? absl::StrCat(R"(,"issue_seconds":)", issue_seconds) : "", "}"));
  }

  // A projected service-account token for credbroker/broker, valid from now (real time: the
  // fixture judges exp by its own clock) for `lifetime`.
  std::string Token(absl::string_view audience = "sts.amazonaws.com",
                    absl::Duration lifetime = absl::Hours(1)) {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    const int64_t exp = now + absl::ToInt64Seconds(lifetime);
    const int64_t nbf = std::min(now, exp) - 60;
    return key_->Sign(R"({"alg":"RS256","kid":"test-key","typ":"JWT"})",
                      testing::K8sClaims(kIssuer, audience, "credbroker", "broker", exp, nbf));
  }

  // How many requests of `kind` the fixture saw (AssumeRoleWithWebIdentity, PodIdentity).
  int Requests(const std::string& kind) {
    http::HttpRequest req;
    req.url = address_ + "/__fixture/state";
    auto r = http_->Send(req);
    if (!r.ok() || r->status != 200) return -1;
    google::protobuf::Struct state;
    if (!google::protobuf::util::JsonStringToMessage(r->body, &state).ok()) return -1;
    const auto& requests = state.fields().at("requests").struct_value().fields();
    auto it = requests.find(kind);
    return it == requests.end() ? 0 : static_cast<int>(it->second.number_value());
  }

  secrets::SourceContext Context(Env env) {
    env_ = std::move(env);
    secrets::SourceContext ctx;
    ctx.clock = &clock_;
    ctx.stats = &stats_;
    ctx.env = [this](absl::string_view name) -> std::optional<std::string> {
      auto it = env_.find(std::string(name));
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
    ctx.http_client =
        [](const http::TlsOptions&) -> absl::StatusOr<std::unique_ptr<http::HttpClient>> {
      return absl::InternalError("the test hands its transport in the options");
    };
    return ctx;
  }

  AwsCredentialOptions Options() {
    AwsCredentialOptions o;
    o.source_name = "aws-test";
    o.region = "us-east-1";
    o.sts_endpoint = address_;
    o.http_client = http_;
    return o;
  }

  std::unique_ptr<http::CachingTokenSource<AwsCredentials>> Source(Env env) {
    auto source = AwsCredentialsFromEnvironment(Context(std::move(env)), Options());
    EXPECT_THAT(source, IsOk());
    return source.ok() ? *std::move(source) : nullptr;
  }

  Env WebIdentityEnv() {
    return {{"AWS_ROLE_ARN", kRoleArn},
            {"AWS_WEB_IDENTITY_TOKEN_FILE", dir_.Join("web-identity-token")},
            {"HOSTNAME", "credbroker-7d9f8-x2x4q"}};
  }

  Env PodIdentityEnv() {
    return {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", address_ + "/v1/credentials"},
            {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", dir_.Join("pod-identity-token")}};
  }

  // GetSecretValue signed with `creds`, as the aws backend sends it: the HTTP status and body.
  std::pair<int, std::string> GetSecret(const AwsCredentials& creds) {
    http::HttpRequest req;
    req.method = "POST";
    req.url = address_ + "/";
    req.headers = {{"Content-Type", "application/x-amz-json-1.1"},
                   {"X-Amz-Target", "secretsmanager.GetSecretValue"}};
    req.body = absl::StrCat(R"({"SecretId":)", core::JsonQuote(kSecretName), "}");
    // The fixture checks x-amz-date against its own (real) clock.
    absl::Status signed_ok =
        SignRequest(req, creds, SigningScope{"us-east-1", "secretsmanager"}, absl::Now());
    if (!signed_ok.ok()) return {-1, signed_ok.ToString()};
    auto r = http_->Send(req);
    if (!r.ok()) return {-1, r.status().ToString()};
    return {r->status, r->body};
  }

  TempDir dir_;
  std::optional<ChildProcess> fixture_;
  std::string address_;
  std::shared_ptr<http::HttpClient> http_;
  std::unique_ptr<JwtKey> key_;
  core::FakeClock clock_{absl::Now()};
  RecordingStats stats_;
  Env env_;
};

TEST_F(AwsCredentialsTest, StaticKeysFromTheEnvironmentComeFirst) {
  Control(
      "/__fixture/credentials",
      R"({"access_key_id":"AKIAENVIRONMENTKEY01","secret_access_key":"env-secret-key-0123456789",
              "allow":[{"action":"secretsmanager:GetSecretValue","secret":"*"}]})");
  Env env = WebIdentityEnv();  // configured too, but static keys win (SDK order)
  env["AWS_ACCESS_KEY_ID"] = "AKIAENVIRONMENTKEY01";
  env["AWS_SECRET_ACCESS_KEY"] = "env-secret-key-0123456789";
  auto source = Source(env);
  ASSERT_NE(source, nullptr);
  auto creds = source->Fetch();
  ASSERT_THAT(creds, IsOk());
  EXPECT_EQ((*creds)->access_key_id, "AKIAENVIRONMENTKEY01");
  EXPECT_EQ((*creds)->secret_access_key.reveal(), "env-secret-key-0123456789");
  EXPECT_EQ((*creds)->session_token, "");
  EXPECT_EQ((*creds)->expires_at, absl::InfiniteFuture());
  EXPECT_EQ(GetSecret(**creds).first, 200);
  EXPECT_EQ(Requests("AssumeRoleWithWebIdentity"), 0);

  env["AWS_SESSION_TOKEN"] = "session-token-from-env";
  auto with_token = Source(env);
  ASSERT_NE(with_token, nullptr);
  auto temp = with_token->Fetch();
  ASSERT_THAT(temp, IsOk());
  EXPECT_EQ((*temp)->session_token, "session-token-from-env");
}

TEST_F(AwsCredentialsTest, HalfConfiguredStaticKeysAreRefused) {
  auto s = AwsCredentialsFromEnvironment(Context({{"AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY01"}}),
                                         Options());
  EXPECT_THAT(s,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("AWS_SECRET_ACCESS_KEY")));
}

TEST_F(AwsCredentialsTest, WebIdentityCredentialsWorkWithSecretsManager) {
  AddRole();
  const std::string token = Token();
  WriteFile(dir_.Join("web-identity-token"), token);
  auto source = Source(WebIdentityEnv());
  ASSERT_NE(source, nullptr);
  auto creds = source->Fetch();
  ASSERT_THAT(creds, IsOk());
  EXPECT_TRUE(absl::StartsWith((*creds)->access_key_id, "ASIA")) << (*creds)->access_key_id;
  EXPECT_FALSE((*creds)->secret_access_key.empty());
  EXPECT_FALSE((*creds)->session_token.empty());
  EXPECT_GT((*creds)->expires_at, absl::Now() + absl::Minutes(55));
  EXPECT_LE((*creds)->expires_at, absl::Now() + absl::Hours(1));
  auto [status, body] = GetSecret(**creds);
  EXPECT_EQ(status, 200) << body;
  EXPECT_THAT(body, HasSubstr(kSecretValue));
  // Cached: a second call does not go to STS.
  auto again = source->Fetch();
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->get(), creds->get());
  EXPECT_EQ(Requests("AssumeRoleWithWebIdentity"), 1);
  EXPECT_THAT(stats_.events(), ElementsAre("refresh aws-test ok"));
}

TEST_F(AwsCredentialsTest, WebIdentityTokenFileIsReadForEveryExchange) {
  AddRole();
  // The kubelet has not rotated the token yet: it expired a minute ago.
  const std::string expired = Token("sts.amazonaws.com", -absl::Minutes(1));
  WriteFile(dir_.Join("web-identity-token"), expired);
  auto source = Source(WebIdentityEnv());
  ASSERT_NE(source, nullptr);
  auto refused = source->Fetch();
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("ExpiredTokenException"), Not(HasSubstr(expired)))));
  EXPECT_EQ(core::ReasonOf(refused.status()), "token_expired");
  // Rotated: the next call reads the new token.
  WriteFile(dir_.Join("web-identity-token"), Token());
  auto creds = source->Fetch();
  ASSERT_THAT(creds, IsOk());
  EXPECT_EQ(GetSecret(**creds).first, 200);
  // Rotated to one STS refuses, and the backend refused the cached credentials: the new file
  // content is what is sent.
  WriteFile(dir_.Join("web-identity-token"), Token("another-audience"));
  source->Invalidate(creds->get());
  EXPECT_THAT(source->Fetch(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("Incorrect token audience")));
  EXPECT_EQ(Requests("AssumeRoleWithWebIdentity"), 3);
  EXPECT_THAT(stats_.events(), ElementsAre("refresh aws-test error", "refresh aws-test ok",
                                           "refresh aws-test error"));
}

TEST_F(AwsCredentialsTest, WebIdentityCredentialsAreRefreshedBeforeTheyExpire) {
  AddRole(/*issue_seconds=*/600);  // refresh when half (about 300 s) is left
  WriteFile(dir_.Join("web-identity-token"), Token());
  auto source = Source(WebIdentityEnv());
  ASSERT_NE(source, nullptr);
  auto first = source->Fetch();
  ASSERT_THAT(first, IsOk());
  clock_.Advance(absl::Seconds(200));
  auto cached = source->Fetch();
  ASSERT_THAT(cached, IsOk());
  EXPECT_EQ(cached->get(), first->get());
  EXPECT_EQ(Requests("AssumeRoleWithWebIdentity"), 1);
  clock_.Advance(absl::Seconds(200));
  auto refreshed = source->Fetch();
  ASSERT_THAT(refreshed, IsOk());
  EXPECT_NE((*refreshed)->access_key_id, (*first)->access_key_id);
  EXPECT_EQ(Requests("AssumeRoleWithWebIdentity"), 2);
  EXPECT_EQ(GetSecret(**refreshed).first, 200);
}

TEST_F(AwsCredentialsTest, StsRefusalIsPermissionDeniedWithoutTheToken) {
  AddRole();
  const std::string token = Token("some-other-client");
  WriteFile(dir_.Join("web-identity-token"), token);
  auto source = Source(WebIdentityEnv());
  ASSERT_NE(source, nullptr);
  auto refused = source->Fetch();
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied,
                                AllOf(HasSubstr("InvalidIdentityToken"), HasSubstr(kRoleArn),
                                      Not(HasSubstr(token)), Not(HasSubstr(token.substr(0, 20))))));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  // A role whose trust policy names another subject: AccessDenied.
  Control("/__fixture/role",
          absl::StrCat(R"({"arn":)", core::JsonQuote(kRoleArn),
                       R"(,"subject":"system:serviceaccount:other:sa","issuer":)",
                       core::JsonQuote(kIssuer), "}"));
  WriteFile(dir_.Join("web-identity-token"), Token());
  EXPECT_THAT(source->Fetch(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("AccessDenied")));
}

TEST_F(AwsCredentialsTest, WebIdentityNeedsItsRoleAndAReadableTokenFile) {
  EXPECT_THAT(
      AwsCredentialsFromEnvironment(
          Context({{"AWS_WEB_IDENTITY_TOKEN_FILE", dir_.Join("web-identity-token")}}), Options()),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("AWS_ROLE_ARN")));
  auto source = Source(WebIdentityEnv());  // the file does not exist
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(source->Fetch(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("AWS_WEB_IDENTITY_TOKEN_FILE")));
  EXPECT_EQ(Requests("AssumeRoleWithWebIdentity"), 0);
  Env bad_name = WebIdentityEnv();
  bad_name["AWS_ROLE_SESSION_NAME"] = "has spaces";
  EXPECT_THAT(AwsCredentialsFromEnvironment(Context(bad_name), Options()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AWS_ROLE_SESSION_NAME")));
}

TEST_F(AwsCredentialsTest, UnreachableStsIsUnavailable) {
  WriteFile(dir_.Join("web-identity-token"), Token());
  auto port = testing::FreeLoopbackPort();
  ASSERT_THAT(port, IsOk());
  AwsCredentialOptions options = Options();
  options.sts_endpoint = absl::StrCat("http://127.0.0.1:", *port, "/");
  auto source = AwsCredentialsFromEnvironment(Context(WebIdentityEnv()), options);
  ASSERT_THAT(source, IsOk());
  auto refused = (*source)->Fetch();
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnavailable, HasSubstr(kRoleArn)));
  EXPECT_EQ(core::ReasonOf(refused.status()), "unavailable");
  EXPECT_THAT(stats_.events(), ElementsAre("refresh aws-test error"));
}

TEST_F(AwsCredentialsTest, PodIdentityCredentialsWorkAndAreInvalidatedWhenRefused) {
  AddRole();
  const std::string token = Token("pods.eks.amazonaws.com");
  Control("/__fixture/pod-identity",
          absl::StrCat(R"({"token":)", core::JsonQuote(token), R"(,"role_arn":)",
                       core::JsonQuote(kRoleArn), "}"));
  WriteFile(dir_.Join("pod-identity-token"), token);
  auto source = Source(PodIdentityEnv());
  ASSERT_NE(source, nullptr);
  auto creds = source->Fetch();
  ASSERT_THAT(creds, IsOk());
  EXPECT_TRUE(absl::StartsWith((*creds)->access_key_id, "ASIA"));
  EXPECT_GT((*creds)->expires_at, absl::Now() + absl::Minutes(55));
  EXPECT_EQ(GetSecret(**creds).first, 200);
  // Secrets Manager refuses them (expired early): the owner invalidates, the next fetch is new.
  Control("/__fixture/expire",
          absl::StrCat(R"({"access_key_id":)", core::JsonQuote((*creds)->access_key_id), "}"));
  auto [status, body] = GetSecret(**creds);
  EXPECT_EQ(status, 400);
  EXPECT_THAT(body, HasSubstr("ExpiredTokenException"));
  source->Invalidate(creds->get());
  auto fresh = source->Fetch();
  ASSERT_THAT(fresh, IsOk());
  EXPECT_NE((*fresh)->access_key_id, (*creds)->access_key_id);
  EXPECT_EQ(GetSecret(**fresh).first, 200);
  EXPECT_EQ(Requests("PodIdentity"), 2);
  EXPECT_EQ(Requests("AssumeRoleWithWebIdentity"), 0);
}

TEST_F(AwsCredentialsTest, PodIdentityTokenFromTheVariable) {
  AddRole();
  const std::string token = Token("pods.eks.amazonaws.com");
  Control("/__fixture/pod-identity",
          absl::StrCat(R"({"token":)", core::JsonQuote(token), R"(,"role_arn":)",
                       core::JsonQuote(kRoleArn), "}"));
  auto source = Source({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", address_ + "/v1/credentials"},
                        {"AWS_CONTAINER_AUTHORIZATION_TOKEN", token}});
  ASSERT_NE(source, nullptr);
  auto creds = source->Fetch();
  ASSERT_THAT(creds, IsOk());
  EXPECT_EQ(GetSecret(**creds).first, 200);
}

TEST_F(AwsCredentialsTest, PodIdentityUnknownTokenIsPermissionDenied) {
  AddRole();
  const std::string token = Token("pods.eks.amazonaws.com");  // never registered
  WriteFile(dir_.Join("pod-identity-token"), token);
  auto source = Source(PodIdentityEnv());
  ASSERT_NE(source, nullptr);
  auto refused = source->Fetch();
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied,
                                AllOf(HasSubstr("InvalidTokenException"), Not(HasSubstr(token)))));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  EXPECT_EQ(Requests("PodIdentity"), 1);
}

TEST_F(AwsCredentialsTest, PodIdentityTokenWithALineBreakIsNotSent) {
  WriteFile(dir_.Join("pod-identity-token"), Token("pods.eks.amazonaws.com") + "\n");
  auto source = Source(PodIdentityEnv());
  ASSERT_NE(source, nullptr);
  EXPECT_THAT(source->Fetch(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CR or LF")));
  EXPECT_EQ(Requests("PodIdentity"), 0);
  EXPECT_THAT(AwsCredentialsFromEnvironment(
                  Context({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", address_ + "/v1/credentials"},
                           {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "abc\r\nX-Injected: 1"}}),
                  Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("CR or LF")));
}

TEST_F(AwsCredentialsTest, PlainHttpContainerUrlOnlyToTheAgentAddresses) {
  for (const char* url :
       {"http://169.254.169.254/latest/meta-data/iam/security-credentials/r",
        "http://10.0.0.5/v1/credentials", "http://127.0.0.1.nip.io/v1/credentials",
        "http://user@127.0.0.1/v1/credentials", "http://[fd00:ec2::24]/", "ftp://127.0.0.1/",
        "http:///v1/credentials"}) {
    EXPECT_THAT(AwsCredentialsFromEnvironment(Context({{"AWS_CONTAINER_CREDENTIALS_FULL_URI", url},
                                                       {"AWS_CONTAINER_AUTHORIZATION_TOKEN", "t"}}),
                                              Options()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("AWS_CONTAINER_CREDENTIALS_FULL_URI")))
        << url;
  }
  for (const char* url :
       {"http://169.254.170.23/v1/credentials", "http://[fd00:ec2::23]/v1/credentials",
        "http://[fd00:ec2:0::23]:80/v1/credentials", "http://169.254.170.2/creds",
        "http://localhost:8080/v1/credentials", "http://127.0.0.2:1/", "http://[::1]:9/",
        "https://credentials.example.com/v1/credentials"}) {
    EXPECT_THAT(CheckContainerCredentialsUrl(url), IsOk()) << url;
  }
}

TEST_F(AwsCredentialsTest, NothingConfiguredNamesTheVariables) {
  EXPECT_THAT(
      AwsCredentialsFromEnvironment(Context({{"AWS_REGION", "us-east-1"}}), Options()),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("AWS_ACCESS_KEY_ID"), HasSubstr("AWS_WEB_IDENTITY_TOKEN_FILE"),
                     HasSubstr("AWS_ROLE_ARN"), HasSubstr("AWS_CONTAINER_CREDENTIALS_FULL_URI"))));
}

// The XML extractor and the error mapping, without the fixture.

constexpr char kStsAnswer[] =
    R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/R/s1</Arn><AssumedRoleId>AROAX:s1</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <SessionToken>tok&amp;en&lt;&gt;&quot;&apos;</SessionToken><SecretAccessKey>wJalr/K7MDENG+bPxRfiCY</SecretAccessKey>
      <Expiration>2020-02-25T06:03:31Z</Expiration><AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/x</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>)";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

TEST(StsXmlTest, ExtractsAndUnescapesTheFourElements) {
  auto creds = ParseAssumeRoleWithWebIdentityResponse(kStsAnswer);
  ASSERT_THAT(creds, IsOk());
  EXPECT_EQ(creds->access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(creds->secret_access_key.reveal(), "wJalr/K7MDENG+bPxRfiCY");
  EXPECT_EQ(creds->session_token, "tok&en<>\"'");
  EXPECT_EQ(creds->expires_at, absl::FromUnixSeconds(1582610611));
}

TEST(StsXmlTest, RefusesWhatItDoesNotExpect) {
  const std::string answer = kStsAnswer;
  for (const std::string& bad : {
           Replace(answer, "<AccessKeyId>ASIAEXAMPLE</AccessKeyId>", ""),
           Replace(answer, "<AccessKeyId>ASIAEXAMPLE</AccessKeyId>",
                   "<AccessKeyId>A</AccessKeyId><AccessKeyId>B</AccessKeyId>"),
           Replace(answer, "<AccessKeyId>", R"(<AccessKeyId a="1">)"),
           Replace(answer, "tok&amp;en", "tok&#38;en"),
           Replace(answer, "tok&amp;en", "tok<![CDATA[x]]>en"),
           Replace(answer, "2020-02-25T06:03:31Z", "tomorrow"),
           Replace(answer, "ASIAEXAMPLE", ""),
           Replace(answer, "</Credentials>", ""),
           std::string("<ErrorResponse/>"),
       }) {
    auto r = ParseAssumeRoleWithWebIdentityResponse(bad);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss)) << bad;
    EXPECT_THAT(r.status().message(), Not(HasSubstr("wJalr"))) << bad;
  }
}

std::string StsError(absl::string_view code, absl::string_view message) {
  return absl::StrCat(
      R"(<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>)",
      code, "</Code><Message>", message,
      "</Message></Error><RequestId>r</RequestId></ErrorResponse>");
}

TEST(StsXmlTest, MapsErrorCodes) {
  using absl::StatusCode;
  const std::vector<std::tuple<int, std::string, StatusCode, std::string>> cases = {
      {400, "InvalidIdentityToken", StatusCode::kPermissionDenied, "auth_failed"},
      {403, "AccessDenied", StatusCode::kPermissionDenied, "auth_failed"},
      {403, "IDPRejectedClaim", StatusCode::kPermissionDenied, "auth_failed"},
      {400, "ExpiredTokenException", StatusCode::kPermissionDenied, "token_expired"},
      {400, "IDPCommunicationError", StatusCode::kUnavailable, "unavailable"},
      {400, "Throttling", StatusCode::kUnavailable, "rate_limited"},
      {400, "ValidationError", StatusCode::kInvalidArgument, "bad_request"},
      {503, "SomethingNew", StatusCode::kUnavailable, "unavailable"},
      {500, "", StatusCode::kUnavailable, "unavailable"},
  };
  for (const auto& [http_status, code, want, reason] : cases) {
    const std::string body = code.empty() ? "<html>bad gateway</html>" : StsError(code, "m");
    absl::Status s = StsErrorStatus(http_status, body, "ctx", "");
    EXPECT_EQ(s.code(), want) << code;
    EXPECT_EQ(core::ReasonOf(s), reason) << code;
    EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat("ctx: HTTP ", http_status)));
  }
  const absl::Status echoed = StsErrorStatus(
      400, StsError("InvalidIdentityToken", "bad token eyJhbGciOi.x.y"), "ctx", "eyJhbGciOi.x.y");
  EXPECT_THAT(std::string(echoed.message()),
              AllOf(HasSubstr("<redacted>"), Not(HasSubstr("eyJhbGciOi"))));
}

}  // namespace
}  // namespace credbroker::backends::aws
