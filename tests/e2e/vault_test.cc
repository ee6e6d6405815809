// End to end: The Vault source end to end, against the Vault stand-in.
#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

// The Vault policy the README asks for, in Vault's JSON syntax.
constexpr char kPolicy[] = R"({"path": {
  "secret/data/credbroker/*": {"capabilities": ["create", "read", "update"]},
  "secret/metadata/credbroker/*": {"capabilities": ["read", "list"]}}})";

class VaultEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    WriteFile(dir_.Join("jwt"), "projected-sa-token-e2e\n");
    WriteFile(dir_.Join("policy.json"), kPolicy);
    auto vault = testing::ChildProcess::Start(
        {"/usr/bin/python3", CB_VAULT_FIXTURE, "--port-file", dir_.Join("vault.port"), "--k8s-role",
         "credbroker", "--k8s-jwt-file", dir_.Join("jwt"), "--policy",
         "credbroker=" + dir_.Join("policy.json"), "--k8s-policies", "credbroker"},
        dir_.Join("vault.port"), dir_.Join("vault.log"));
    ASSERT_THAT(vault.status(), testing::IsOk());
    vault_.emplace(std::move(*vault));
    vault_address_ = absl::StrCat("http://127.0.0.1:", vault_->port());
    Seed(kLmnV1);
    WriteFile(dir_.Join("broker.yaml"), absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: vault
    vault:
      address: )",
                                                     vault_address_, R"(
      path_prefix: credbroker
      auth:
        kubernetes:
          role: credbroker
          jwt_file: jwt
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
)"));
  }

  void Post(const std::string& path, const std::string& body) {
    auto r = RunCommand({"/usr/bin/curl", "-sf", "-X", "POST", "-d", body, vault_address_ + path});
    ASSERT_EQ(r.exit_code, 0) << path << ": " << r.output;
  }
  void Seed(const std::string& key) {
    Post("/__fixture/put", absl::StrCat(R"({"mount":"secret","path":"credbroker/lumenfall",)",
                                        R"("data":{"api_key":")", key, R"("}})"));
  }

  std::optional<testing::ChildProcess> vault_;
  std::string vault_address_;
};

TEST_F(VaultEndToEndTest, ServesVaultKeysRotatesAndFailsClosedAfterMaxStaleness) {
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok()) << broker_->Logs();
  EXPECT_EQ(lease.key_version(), "1");
  EXPECT_EQ(core::Fingerprint(lease.api_key()), core::Fingerprint(kLmnV1));

  // `vault kv put` of a new version: picked up by the next refresh.
  Seed(kLmnV2);
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    return Acquire("lumenfall", &l).ok() && l.key_version() == "2";
  }));

  // Vault sealed: cached keys keep serving, loudly, until max_staleness; then UNAVAILABLE.
  Post("/__fixture/seal", "{}");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(),
                             R"(credbroker_backend_errors_total{backend="vault",reason="sealed"})");
  }));
  v1::Lease during;
  EXPECT_TRUE(Acquire("lumenfall", &during).ok()) << "within max_staleness";
  grpc::Status stale;
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    stale = Acquire("lumenfall", &l);
    return stale.error_code() == grpc::StatusCode::UNAVAILABLE;
  }));
  EXPECT_EQ(Reason(stale), "BACKEND_STALE");
  // Why is for the operators (logs, metrics, admins' answers), not for the caller.
  EXPECT_THAT(stale.error_message(), Not(HasSubstr("sealed")));
  EXPECT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_provider_servable{provider="lumenfall"} 0)");
  }));

  // Unsealed: recovers without a restart.
  Post("/__fixture/unseal", "{}");
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    return Acquire("lumenfall", &l).ok();
  }));
  EXPECT_THAT(broker_->Logs(), Not(HasSubstr(kLmnV2)));
  EXPECT_THAT(broker_->Logs(), Not(HasSubstr("projected-sa-token-e2e")));
}

// An operator takes the broker's Vault policy away: Vault answers 403, counted as
// permission_denied; the cached key keeps serving until max_staleness, then lease calls fail
// closed; with the policy back the broker recovers without a restart.
TEST_F(VaultEndToEndTest, PermissionDeniedByVaultServesCachedKeysThenFailsClosed) {
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok()) << broker_->Logs();
  Post("/__fixture/policy", R"({"name":"credbroker","delete":true})");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(),
        R"(credbroker_backend_errors_total{backend="vault",reason="permission_denied"})");
  })) << Metrics();
  grpc::Status stale;
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    stale = Acquire("lumenfall", &l);
    return stale.error_code() == grpc::StatusCode::UNAVAILABLE;
  }));
  EXPECT_EQ(Reason(stale), "BACKEND_STALE");
  Post("/__fixture/policy", absl::StrCat(R"({"name":"credbroker","policy":)", kPolicy, "}"));
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    return Acquire("lumenfall", &l).ok();
  })) << broker_->Logs();
}

}  // namespace
}  // namespace credbroker::e2e
