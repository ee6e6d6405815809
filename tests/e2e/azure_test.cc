// End to end: the azure source, with the real broker, against the Key Vault / IMDS stand-in
// (tests/fixtures/azure_fixture.py): a token from the managed identity endpoint, the newest
// enabled version served (a disabled one never), a lease capped at its version's exp, a new
// version followed, and an outage served from cache up to max_staleness, then recovery.
#include "credbroker/core/log.h"
#include "e2e_fixture.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::e2e {
namespace {

constexpr char kTenant[] = "72f988bf-0000-4000-8000-00000000f1c5";

class AzureEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    auto azure = testing::ChildProcess::Start({"/usr/bin/python3", CB_AZURE_FIXTURE, "--port-file",
                                               dir_.Join("azure.port"), "--tenant", kTenant},
                                              dir_.Join("azure.port"), dir_.Join("azure.log"));
    ASSERT_THAT(azure.status(), testing::IsOk());
    azure_.emplace(std::move(*azure));
    azure_address_ = absl::StrCat("http://127.0.0.1:", azure_->port());
    // The broker's managed identity may read the vault's secrets (and nothing more).
    Post("/__fixture/managed-identity", R"({"principal":"credbroker-mi"})");
    Post(
        "/__fixture/identity",
        R"({"principal":"credbroker-mi","roles":[{"role":"Key Vault Secrets User","secret":"*"}]})");
    WriteFile(dir_.Join("broker.yaml"), absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: azure
    azure:
      vault_url: )",
                                                     azure_address_, R"(
      name_prefix: credbroker-
      max_attempts: 2
      auth:
        managed_identity:
          endpoint: )",
                                                     azure_address_,
                                                     R"(/metadata/identity/oauth2/token
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
    auto r = RunCommand({"/usr/bin/curl", "-sf", "-X", "POST", "-d", body, azure_address_ + path});
    ASSERT_EQ(r.exit_code, 0) << path << ": " << r.output;
  }

  struct Version {
    std::string value;
    bool enabled = true;
    int64_t exp = 0;  // 0: none
  };
  // Replaces the secret's versions (oldest first); answers their new ids.
  std::vector<std::string> Versions(const std::vector<Version>& versions) {
    std::string list;
    int created = 0;
    for (const Version& v : versions) {
      absl::StrAppend(&list, list.empty() ? "" : ",", R"({"value":)", core::JsonQuote(v.value),
                      R"(,"enabled":)", v.enabled ? "true" : "false", R"(,"created":)",
                      1'700'000'000 + ++created);
      if (v.exp != 0) absl::StrAppend(&list, R"(,"exp":)", v.exp);
      list += "}";
    }
    auto r = RunCommand({"/usr/bin/curl", "-sf", "-X", "POST", "-d",
                         absl::StrCat(R"({"name":"credbroker-lumenfall","versions":[)", list, "]}"),
                         azure_address_ + "/__fixture/secret"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    google::protobuf::Struct answer;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.output, &answer).ok()) << r.output;
    std::vector<std::string> ids;
    if (auto it = answer.fields().find("versions"); it != answer.fields().end()) {
      for (const auto& id : it->second.list_value().values()) ids.push_back(id.string_value());
    }
    EXPECT_EQ(ids.size(), versions.size());
    return ids;
  }

  std::string CurrentVersion() {
    v1::Lease l;
    return Acquire("lumenfall", &l).ok() ? l.key_version() : "";
  }

  std::optional<testing::ChildProcess> azure_;
  std::string azure_address_;
};

TEST_F(AzureEndToEndTest, ServesTheNewestEnabledVersionCapsLeasesAtExpAndFailsClosedAfterAnOutage) {
  // The newest version is disabled: the one before it serves.
  std::vector<std::string> ids = Versions({{kLmnV1}, {kLmnV2, /*enabled=*/false}});
  ASSERT_EQ(ids.size(), 2u);
  ASSERT_NO_FATAL_FAILURE(StartBroker());
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok()) << broker_->Logs();
  EXPECT_EQ(lease.key_version(), ids[0]);
  EXPECT_EQ(core::Fingerprint(lease.api_key()), core::Fingerprint(kLmnV1));

  // A newer version that expires in a few seconds: served, and no lease outlives its exp.
  const int64_t exp = absl::ToUnixSeconds(absl::Now()) + 8;
  ids = Versions({{kLmnV1}, {kLmnV2, false}, {kLmnV1 + "x", true, exp}});
  ASSERT_EQ(ids.size(), 3u);
  ASSERT_TRUE(Eventually([&] { return CurrentVersion() == ids[2]; })) << broker_->Logs();
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), ids[2]);
  ASSERT_TRUE(lease.has_key_retires_at());
  EXPECT_EQ(lease.key_retires_at().seconds(), exp);
  EXPECT_LE(lease.expires_at().seconds(), exp);

  // A new version (as `az keyvault secret set` makes one): followed.
  ids = Versions({{kLmnV1}, {kLmnV2, false}, {kLmnV1 + "y"}});
  ASSERT_EQ(ids.size(), 3u);
  ASSERT_TRUE(Eventually([&] { return CurrentVersion() == ids[2]; })) << broker_->Logs();

  // Key Vault unreachable: cached keys serve until max_staleness, then UNAVAILABLE.
  Post("/__fixture/outage", R"({"on":true})");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(), R"(credbroker_backend_errors_total{backend="azure",reason="unavailable"})");
  })) << Metrics();
  grpc::Status stale;
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    stale = Acquire("lumenfall", &l);
    return stale.error_code() == grpc::StatusCode::UNAVAILABLE;
  }));
  EXPECT_EQ(Reason(stale), "BACKEND_STALE");
  Post("/__fixture/outage", R"({"on":false})");
  ASSERT_TRUE(Eventually([&] { return CurrentVersion() == ids[2]; })) << broker_->Logs();

  const std::string logs = broker_->Logs();
  EXPECT_THAT(logs, Not(HasSubstr(kLmnV2)));
  EXPECT_THAT(logs, Not(HasSubstr("Bearer ")));
}

}  // namespace
}  // namespace credbroker::e2e
