// The aws source against the Secrets Manager stand-in (tests/fixtures/aws_fixture.py), which
// checks every request's SigV4 signature with botocore and answers as Secrets Manager does.
#include "credbroker/backends/aws/aws_source.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/testing/broker_process.h"
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
using ::credbroker::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRegion[] = "eu-west-1";
constexpr char kKeyId[] = "AKIAFIXTUREBROKER001";
constexpr char kSecret[] = "broker-secret-access-key-0123456789";
const std::string kKey1 = "lmnfl_awsone.0123456789abcdef";
const std::string kKey2 = "lmnfl_awstwo.fedcba9876543210";
// Version ids are ClientRequestTokens: 32 to 64 characters.
constexpr char kV1[] = "11111111-1111-4111-8111-111111111111";
constexpr char kV2[] = "22222222-2222-4222-8222-222222222222";
constexpr char kV3[] = "33333333-3333-4333-8333-333333333333";

class RecordingSleeper final : public http::Sleeper {
 public:
  void Sleep(absl::Duration d) override { slept.push_back(d); }
  std::vector<absl::Duration> slept;
};

// Fixed keys, or a sequence of them: the second Fetch after an Invalidate gets the next one.
class ListedCredentials final : public http::TokenSource<AwsCredentials> {
 public:
  explicit ListedCredentials(std::vector<std::pair<std::string, std::string>> keys, int* fetches)
      : keys_(std::move(keys)), fetches_(fetches) {}
  absl::StatusOr<std::shared_ptr<const AwsCredentials>> Fetch() override {
    const auto& [id, secret] = keys_[std::min<size_t>(next_++, keys_.size() - 1)];
    ++*fetches_;
    auto c = std::make_shared<AwsCredentials>();
    c->access_key_id = id;
    c->secret_access_key = core::SecretBytes(secret);
    return std::shared_ptr<const AwsCredentials>(std::move(c));
  }

 private:
  std::vector<std::pair<std::string, std::string>> keys_;
  size_t next_ = 0;
  int* fetches_;
};

class AwsSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto proc = ChildProcess::Start({"/usr/bin/python3", CB_AWS_FIXTURE, "--port-file",
                                     dir_.Join("aws.port"), "--region", kRegion},
                                    dir_.Join("aws.port"), dir_.Join("aws.log"));
    ASSERT_THAT(proc.status(), IsOk());
    fixture_.emplace(std::move(*proc));
    endpoint_ = absl::StrCat("http://127.0.0.1:", fixture_->port());
    control_ = std::move(*http::CurlHttpClient::Create(http::TlsOptions{}));
    AllowBroker(kKeyId, kSecret, R"(["secretsmanager:*"])");
  }

  std::string Control(const std::string& method, const std::string& path,
                      const std::string& body = "") {
    http::HttpRequest req;
    req.method = method;
    req.url = endpoint_ + path;
    req.body = body;
    auto r = control_->Send(req);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->body : "";
  }

  void AllowBroker(const std::string& id, const std::string& secret, const std::string& actions) {
    std::string allow;
    google::protobuf::ListValue list;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(actions, &list).ok());
    for (const auto& a : list.values()) {
      absl::StrAppend(&allow, allow.empty() ? "" : ",", R"({"action":")", a.string_value(),
                      R"(","secret":"credbroker/*"})");
    }
    Control(
        "POST", "/__fixture/credentials",
        absl::StrCat(R"({"access_key_id":")", id, R"(","secret_access_key":")", secret,
                     R"(","arn":"arn:aws:iam::123456789012:user/broker","allow":[)", allow, "]}"));
  }

  void Seed(const std::string& versions_json) {
    Control("POST", "/__fixture/secret",
            absl::StrCat(R"({"name":"credbroker/lumenfall","versions":)", versions_json, "}"));
  }

  // The staging labels of one version, from the fixture's state ("AWSCURRENT+AWSPENDING").
  std::string StagesOf(const std::string& version) {
    google::protobuf::Struct state;
    EXPECT_TRUE(
        google::protobuf::util::JsonStringToMessage(Control("GET", "/__fixture/state"), &state)
            .ok());
    const auto& secrets = state.fields().at("secrets").struct_value().fields();
    auto secret = secrets.find("credbroker/lumenfall");
    if (secret == secrets.end()) return "no secret";
    auto v = secret->second.struct_value().fields().find(version);
    if (v == secret->second.struct_value().fields().end()) return "no version";
    std::string labels;
    for (const auto& l : v->second.list_value().values()) {
      absl::StrAppend(&labels, labels.empty() ? "" : "+", l.string_value());
    }
    return labels;
  }

  std::unique_ptr<AwsSecretSource> Source(
      std::vector<std::pair<std::string, std::string>> keys = {{kKeyId, kSecret}},
      std::string field = "") {
    v1::AwsSourceConfig config;
    config.set_region(kRegion);
    config.set_endpoint(endpoint_);
    config.set_name_prefix("credbroker/");
    config.set_field(std::move(field));
    AwsSourceDeps deps;
    deps.transport = std::move(*http::CurlHttpClient::Create(http::TlsOptions{}));
    deps.credentials = std::make_unique<http::CachingTokenSource<AwsCredentials>>(
        std::make_unique<ListedCredentials>(std::move(keys), &fetches_), &clock_);
    deps.clock = &clock_;
    deps.sleeper = &sleeper_;
    deps.jitter = [] { return 0.5; };
    auto source = AwsSecretSource::Create("prod", config, std::move(deps));
    EXPECT_THAT(source, IsOk());
    return std::move(*source);
  }

  testing::TempDir dir_;
  std::optional<ChildProcess> fixture_;
  std::string endpoint_;
  std::unique_ptr<http::HttpClient> control_;
  // Signatures carry the time: the fixture refuses more than 15 minutes of skew.
  core::FakeClock clock_{absl::Now()};
  RecordingSleeper sleeper_;
  int fetches_ = 0;
};

std::string Seeded(const std::string& id, const std::string& value, const std::string& stages,
                   int created) {
  return absl::StrCat(R"({"id":")", id, R"(","string":")", value, R"(","stages":)", stages,
                      R"(,"created":)", 1'700'000'000 + created, "}");
}

TEST_F(AwsSourceTest, ListsVersionsWithTheirStagesOldestFirstAndFetchesThem) {
  Seed(absl::StrCat("[", Seeded(kV2, kKey2, R"(["AWSCURRENT"])", 2), ",",
                    Seeded(kV1, kKey1, R"(["AWSPREVIOUS"])", 1), ",",
                    Seeded(kV3, "lmnfl_old.aaaaaaaaaaaaaaaa", "[]", 0), "]"));
  auto source = Source();
  auto versions = source->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  ASSERT_EQ(versions->size(), 3u);
  EXPECT_EQ((*versions)[0].version_id, kV3);
  EXPECT_EQ((*versions)[0].stage, secrets::BackendStage::kDeprecated);
  EXPECT_EQ((*versions)[1].version_id, kV1);
  EXPECT_EQ((*versions)[1].stage, secrets::BackendStage::kPrevious);
  EXPECT_THAT((*versions)[1].labels, ElementsAre("AWSPREVIOUS"));
  EXPECT_EQ((*versions)[2].version_id, kV2);
  EXPECT_EQ((*versions)[2].stage, secrets::BackendStage::kCurrent);
  EXPECT_EQ((*versions)[2].etag, kV2);
  EXPECT_EQ((*versions)[2].created_at, absl::FromUnixSeconds(1'700'000'002));

  auto v = source->FetchVersion("lumenfall", kV2);
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->material.reveal() == kKey2);
  EXPECT_EQ(v->info.stage, secrets::BackendStage::kCurrent);
  EXPECT_THAT(source->FetchVersion("lumenfall", "44444444-4444-4444-8444-444444444444"),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(source->ListVersions("unknown"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AwsSourceTest, AJsonSecretStringIsReadByField) {
  Seed(absl::StrCat(
      "[",
      Seeded(kV1, R"({\"api_key\":\")" + kKey1 + R"(\",\"note\":\"x\"})", R"(["AWSCURRENT"])", 1),
      ",", Seeded(kV2, "not json", R"(["AWSPENDING"])", 2), "]"));
  auto source = Source({{kKeyId, kSecret}}, "api_key");
  auto v = source->FetchVersion("lumenfall", kV1);
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->material.reveal() == kKey1);
  auto bad = source->FetchVersion("lumenfall", kV2);
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("api_key")));
  EXPECT_THAT(bad.status().ToString(), Not(HasSubstr("not json")));
}

TEST_F(AwsSourceTest, AMintedKeyIsWrittenPendingAndPromotionMovesAwsCurrent) {
  Seed(absl::StrCat("[", Seeded(kV1, kKey1, R"(["AWSCURRENT"])", 1), "]"));
  auto source = Source();
  auto written = source->WriteVersion("lumenfall", core::SecretBytes(kKey2));
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->stage, secrets::BackendStage::kPending);
  EXPECT_EQ(written->version_id.size(), 36u);
  auto v = source->FetchVersion("lumenfall", written->version_id);
  ASSERT_THAT(v, IsOk());
  EXPECT_TRUE(v->material.reveal() == kKey2);

  ASSERT_THAT(source->PromoteVersion("lumenfall", written->version_id), IsOk());
  auto versions = source->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_THAT((*versions)[0].labels, ElementsAre("AWSPREVIOUS"));
  EXPECT_THAT((*versions)[1].labels, ElementsAre("AWSCURRENT"));  // AWSPENDING taken off
  // Promoting what is already current changes nothing.
  ASSERT_THAT(source->PromoteVersion("lumenfall", written->version_id), IsOk());
  EXPECT_EQ(StagesOf(kV1), "AWSPREVIOUS");
  EXPECT_EQ(StagesOf(written->version_id), "AWSCURRENT");
}

TEST_F(AwsSourceTest, AReadOnlyRoleCannotPromoteAndSaysSo) {
  Seed(absl::StrCat("[", Seeded(kV1, kKey1, R"(["AWSCURRENT"])", 1), ",",
                    Seeded(kV2, kKey2, R"(["AWSPENDING"])", 2), "]"));
  AllowBroker("AKIAFIXTUREREADONLY1", "reader-secret-0123456789",
              R"(["secretsmanager:GetSecretValue","secretsmanager:ListSecretVersionIds",)"
              R"("secretsmanager:DescribeSecret"])");
  auto source = Source({{"AKIAFIXTUREREADONLY1", "reader-secret-0123456789"}});
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  absl::Status s = source->PromoteVersion("lumenfall", kV2);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("AccessDenied")));
  EXPECT_EQ(core::ReasonOf(s), "permission_denied");
  EXPECT_THAT(source->WriteVersion("lumenfall", core::SecretBytes(kKey2)),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST_F(AwsSourceTest, ThrottlingBacksOffAndRetries) {
  Seed(absl::StrCat("[", Seeded(kV1, kKey1, R"(["AWSCURRENT"])", 1), "]"));
  auto source = Source();
  Control("POST", "/__fixture/throttle", R"({"count":2})");
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  // Full jitter (0.5 here) over 200ms, then 400ms.
  EXPECT_THAT(sleeper_.slept, ElementsAre(absl::Milliseconds(100), absl::Milliseconds(200)));

  sleeper_.slept.clear();
  Control("POST", "/__fixture/throttle", R"({"count":10})");
  auto throttled = source->ListVersions("lumenfall");
  EXPECT_THAT(throttled, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("Throttling")));
  EXPECT_EQ(core::ReasonOf(throttled.status()), "throttled");
  EXPECT_EQ(sleeper_.slept.size(), 3u);  // 4 attempts
}

TEST_F(AwsSourceTest, AnOutageIsUnavailable) {
  Seed(absl::StrCat("[", Seeded(kV1, kKey1, R"(["AWSCURRENT"])", 1), "]"));
  auto source = Source();
  Control("POST", "/__fixture/outage", R"({"on":true})");
  EXPECT_THAT(source->ListVersions("lumenfall"), StatusIs(absl::StatusCode::kUnavailable));
  Control("POST", "/__fixture/outage", R"({"on":false})");
  EXPECT_THAT(source->ListVersions("lumenfall"), IsOk());
}

TEST_F(AwsSourceTest, RefusedCredentialsAreFetchedAnewOnceThenTheErrorStands) {
  Seed(absl::StrCat("[", Seeded(kV1, kKey1, R"(["AWSCURRENT"])", 1), "]"));
  // The first keys are unknown to AWS (rotated away); the next ones work.
  auto source = Source({{"AKIAFIXTUREUNKNOWN01", "nobody-knows-this-key-0123"}, {kKeyId, kSecret}});
  ASSERT_THAT(source->ListVersions("lumenfall"), IsOk());
  EXPECT_EQ(fetches_, 2);

  // Keys that stay wrong: one retry, then PERMISSION_DENIED (auth_failed), no secret in it.
  fetches_ = 0;
  auto wrong = Source({{kKeyId, "wrong-secret-access-key-000"}});
  auto refused = wrong->ListVersions("lumenfall");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied,
                                HasSubstr("InvalidSignatureException")));
  EXPECT_EQ(core::ReasonOf(refused.status()), "auth_failed");
  EXPECT_THAT(refused.status().ToString(), Not(HasSubstr("wrong-secret")));
  EXPECT_EQ(fetches_, 2);
}

TEST_F(AwsSourceTest, FactoryValidatesItsBlockAndNeedsARegion) {
  auto factory = MakeAwsSourceFactory();
  EXPECT_EQ(factory->type(), "aws");
  v1::SourceConfig config;
  config.set_name("prod");
  config.mutable_aws()->set_region("EU West");
  config.mutable_aws()->set_endpoint("secretsmanager.example");
  config.mutable_aws()->set_max_attempts(11);
  std::vector<std::string> fields;
  for (const core::FieldError& e : factory->Validate(config)) fields.push_back(e.field);
  EXPECT_THAT(fields, ElementsAre("region", "endpoint", "max_attempts"));

  config.mutable_aws()->Clear();
  secrets::SourceContext context;
  core::FakeClock clock;
  context.clock = &clock;
  context.env = [](absl::string_view name) -> std::optional<std::string> {
    if (name == "AWS_ACCESS_KEY_ID") return std::string(kKeyId);
    if (name == "AWS_SECRET_ACCESS_KEY") return std::string(kSecret);
    return std::nullopt;
  };
  EXPECT_THAT(factory->Create(config, context),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AWS_REGION")));
  auto with_env_region = context;
  with_env_region.env = [](absl::string_view name) -> std::optional<std::string> {
    if (name == "AWS_REGION") return std::string(kRegion);
    if (name == "AWS_ACCESS_KEY_ID") return std::string(kKeyId);
    if (name == "AWS_SECRET_ACCESS_KEY") return std::string(kSecret);
    return std::nullopt;
  };
  auto made = factory->Create(config, with_env_region);
  ASSERT_THAT(made, IsOk());
  EXPECT_EQ((*made)->type(), "aws");
}

}  // namespace
}  // namespace credbroker::backends::aws
