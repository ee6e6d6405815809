// End to end: the aws source, with the real broker, against the Secrets Manager and STS
// stand-in (tests/fixtures/aws_fixture.py): credentials from IRSA (a projected token exchanged at
// STS), staging labels followed, the broker's promotion moving AWSCURRENT, a malformed version
// rejected while the previous one serves, and an outage served from cache up to max_staleness.
#include <cstdlib>

#include "credbroker/core/log.h"
#include "credbroker/testing/jwt_signer.h"
#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

constexpr char kIssuer[] = "https://oidc.eks.eu-west-1.amazonaws.com/id/E2E";
constexpr char kRoleArn[] = "arn:aws:iam::123456789012:role/credbroker";
// Version ids are ClientRequestTokens (32 to 64 characters).
constexpr char kV1[] = "11111111-1111-4111-8111-111111111111";
constexpr char kV2[] = "22222222-2222-4222-8222-222222222222";
constexpr char kV3[] = "33333333-3333-4333-8333-333333333333";
constexpr char kV4[] = "44444444-4444-4444-8444-444444444444";
constexpr char kV5[] = "55555555-5555-4555-8555-555555555555";

class AwsEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    auto aws = testing::ChildProcess::Start({"/usr/bin/python3", CB_AWS_FIXTURE, "--port-file",
                                             dir_.Join("aws.port"), "--region", "eu-west-1"},
                                            dir_.Join("aws.port"), dir_.Join("aws.log"));
    ASSERT_THAT(aws.status(), testing::IsOk());
    aws_.emplace(std::move(*aws));
    aws_address_ = absl::StrCat("http://127.0.0.1:", aws_->port());

    // IRSA, as EKS's webhook sets it up: a role trusting the cluster's OIDC issuer for the
    // broker's service account, and the projected token in a file.
    key_ = testing::JwtKey::NewRsa("e2e-key");
    Post("/__fixture/oidc-provider",
         absl::StrCat(R"({"issuer":)", core::JsonQuote(kIssuer), R"(,"public_key_pem":)",
                      core::JsonQuote(key_->PublicKeyPem()), "}"));
    // What the README asks for in minted mode... here staged with AWSPENDING versions.
    Post("/__fixture/role",
         absl::StrCat(
             R"({"arn":)", core::JsonQuote(kRoleArn),
             R"(,"subject":"system:serviceaccount:credbroker:credbroker","issuer":)",
             core::JsonQuote(kIssuer), R"(,"allow":[)",
             R"({"action":"secretsmanager:ListSecretVersionIds","secret":"credbroker/*"},)",
             R"({"action":"secretsmanager:GetSecretValue","secret":"credbroker/*"},)",
             R"({"action":"secretsmanager:DescribeSecret","secret":"credbroker/*"},)",
             R"({"action":"secretsmanager:UpdateSecretVersionStage","secret":"credbroker/*"}]})"));
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    WriteFile(dir_.Join("sa-token"),
              key_->Sign(R"({"alg":"RS256","kid":"e2e-key","typ":"JWT"})",
                         testing::K8sClaims(kIssuer, "sts.amazonaws.com", "credbroker",
                                            "credbroker", now + 3600, now - 60)));
    // The broker inherits this process's environment (one test per process).
    setenv("AWS_ROLE_ARN", kRoleArn, 1);   // NOLINT(concurrency-mt-unsafe): before any thread
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE",  // NOLINT(concurrency-mt-unsafe)
           dir_.Join("sa-token").c_str(), 1);
    setenv("AWS_REGION", "eu-west-1", 1);  // NOLINT(concurrency-mt-unsafe)

    Versions({{kV1, kLmnV1, "AWSCURRENT"}});
    WriteFile(dir_.Join("broker.yaml"), absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: aws
    aws:
      endpoint: )",
                                                     aws_address_, R"(
      sts_endpoint: )",
                                                     aws_address_, R"(
      name_prefix: credbroker/
      max_attempts: 2
    refresh_interval: 200ms
    max_staleness: 2s
providers:
  - name: lumenfall
    probe: {disabled: true}
policy:
  rules: [{identities: [e2e-app], providers: ["*"]}]
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: e2e-admin
      token_file: admin.token
      admin: true
)"));
  }

  void Post(const std::string& path, const std::string& body) {
    auto r = RunCommand({"/usr/bin/curl", "-sf", "-X", "POST", "-d", body, aws_address_ + path});
    ASSERT_EQ(r.exit_code, 0) << path << ": " << r.output;
  }

  struct Version {
    std::string id;
    std::string value;
    std::string stage;  // "" for none
  };
  // Replaces the secret's versions (oldest first).
  void Versions(const std::vector<Version>& versions) {
    std::string list;
    int created = 0;
    for (const Version& v : versions) {
      absl::StrAppend(&list, list.empty() ? "" : ",", R"({"id":")", v.id, R"(","string":)",
                      core::JsonQuote(v.value), R"(,"stages":)",
                      v.stage.empty() ? "[]" : absl::StrCat(R"([")", v.stage, R"("])"),
                      R"(,"created":)", 1'700'000'000 + ++created, "}");
    }
    Post("/__fixture/secret",
         absl::StrCat(R"({"name":"credbroker/lumenfall","versions":[)", list, "]}"));
  }

  std::string FixtureState() {
    auto r = RunCommand({"/usr/bin/curl", "-sf", aws_address_ + "/__fixture/state"});
    return r.output;
  }

  std::string CurrentVersion() {
    v1::Lease l;
    return Acquire("lumenfall", &l).ok() ? l.key_version() : "";
  }

  std::optional<testing::ChildProcess> aws_;
  std::string aws_address_;
  std::unique_ptr<testing::JwtKey> key_;
};

TEST_F(AwsEndToEndTest, FollowsStagingLabelsPromotesWithTheMarkerAndFailsClosedAfterAnOutage) {
  ASSERT_NO_FATAL_FAILURE(StartBroker());
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok()) << broker_->Logs();
  EXPECT_EQ(lease.key_version(), kV1);
  EXPECT_EQ(core::Fingerprint(lease.api_key()), core::Fingerprint(kLmnV1));
  EXPECT_THAT(FixtureState(), HasSubstr(R"("AssumeRoleWithWebIdentity": 1)"));

  // An AWSPENDING version is held: the broker keeps serving AWSCURRENT.
  Versions({{kV1, kLmnV1, "AWSCURRENT"}, {kV2, kLmnV2, "AWSPENDING"}});
  v1::ListKeyVersionsRequest list_req;
  list_req.set_provider("lumenfall");
  ASSERT_TRUE(Eventually([&] {
    v1::ListKeyVersionsResponse resp;
    if (!admin_->ListKeyVersions(Ctx(kAdminToken).get(), list_req, &resp).ok()) return false;
    for (const auto& v : resp.versions()) {
      if (v.key_version() == kV2) return v.state() == v1::KEY_STATE_PENDING;
    }
    return false;
  }));
  EXPECT_EQ(CurrentVersion(), kV1);

  // credctl rotate promotes it, and AWSCURRENT moves with it (AWSPREVIOUS to the old one).
  auto rotate = RunCommand(
      {credctl_, "--addr", broker_->grpc_address(), "--token", kAdminToken, "rotate", "lumenfall"});
  ASSERT_EQ(rotate.exit_code, 0) << rotate.output << broker_->Logs();
  EXPECT_EQ(CurrentVersion(), kV2);
  const std::string state = FixtureState();
  EXPECT_THAT(state, HasSubstr(absl::StrCat(R"(")", kV2, R"(": ["AWSCURRENT"])")));
  EXPECT_THAT(state, HasSubstr(absl::StrCat(R"(")", kV1, R"(": ["AWSPREVIOUS"])")));

  // An operator's put-secret-value (default label AWSCURRENT) with a malformed key: rejected,
  // counted, and the previous version keeps serving. The same for an oversized one.
  Versions({{kV1, kLmnV1, ""},
            {kV2, kLmnV2, "AWSPREVIOUS"},
            {kV3, "not a lumenfall key", "AWSCURRENT"}});
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(),
                             R"(credbroker_key_versions_rejected_total{provider="lumenfall")");
  })) << Metrics();
  EXPECT_EQ(CurrentVersion(), kV2);
  // An oversized one (Secrets Manager's 64 KiB maximum): rejected as too long, v2 still serves.
  Versions({{kV1, kLmnV1, ""},
            {kV2, kLmnV2, "AWSPREVIOUS"},
            {kV3, "not a lumenfall key", ""},
            {kV5, std::string(65536, 'k'), "AWSCURRENT"}});
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(),
        R"(credbroker_key_versions_rejected_total{provider="lumenfall",reason="too_long"} 1)");
  })) << Metrics();
  EXPECT_EQ(CurrentVersion(), kV2);
  // A good one: followed (this provider has no probe).
  Versions({{kV1, kLmnV1, ""},
            {kV2, kLmnV2, ""},
            {kV3, "not a lumenfall key", "AWSPREVIOUS"},
            {kV4, kLmnV1 + "x", "AWSCURRENT"}});
  ASSERT_TRUE(Eventually([&] { return CurrentVersion() == kV4; })) << broker_->Logs();

  // Secrets Manager unreachable: cached keys serve until max_staleness, then UNAVAILABLE.
  Post("/__fixture/outage", R"({"on":true})");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(), R"(credbroker_backend_errors_total{backend="aws",reason="unavailable"})");
  }));
  grpc::Status stale;
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    stale = Acquire("lumenfall", &l);
    return stale.error_code() == grpc::StatusCode::UNAVAILABLE;
  }));
  EXPECT_EQ(Reason(stale), "BACKEND_STALE");
  Post("/__fixture/outage", R"({"on":false})");
  ASSERT_TRUE(Eventually([&] { return CurrentVersion() == kV4; })) << broker_->Logs();

  const std::string logs = broker_->Logs();
  EXPECT_THAT(logs, Not(HasSubstr(kLmnV2)));
  EXPECT_THAT(logs, Not(HasSubstr("not a lumenfall key")));
}

}  // namespace
}  // namespace credbroker::e2e
