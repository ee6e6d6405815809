#include "credbroker/config/config.h"

#include <cstdlib>

#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::config {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;
using ::credbroker::testing::WriteFile;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kMinimal[] = R"(sources:
  - name: local
    file:
      root: keys
providers:
  - name: lumenfall
identity:
  static_tokens:
    - service: app
      token: app-token-0123456789
)";

absl::Status ParseAndValidate(const std::string& yaml) {
  auto parsed = ParseYaml(yaml, "test.yaml");
  if (!parsed.ok()) return parsed.status();
  return Validate(*parsed, "test.yaml");
}

TEST(ConfigTest, MinimalConfigIsValidAndGetsDefaults) {
  auto parsed = ParseYaml(kMinimal, "test.yaml");
  ASSERT_THAT(parsed, IsOk());
  ASSERT_THAT(Validate(*parsed, "test.yaml"), IsOk());
  v1::BrokerConfig c = parsed->config;
  ApplyDefaults(c, "/etc/credbroker");
  EXPECT_EQ(c.server().listen(), "127.0.0.1:7443");
  EXPECT_EQ(c.server().metrics_listen(), "127.0.0.1:9464");
  EXPECT_EQ(c.server().data_dir(), "/etc/credbroker/credbroker-data");
  EXPECT_EQ(c.sources(0).file().root(), "/etc/credbroker/keys");
  EXPECT_EQ(c.state().sqlite().path(), "/etc/credbroker/credbroker-data/state.db");
  EXPECT_EQ(c.state().sqlite().synchronous(), "normal");
  EXPECT_EQ(c.leases().default_ttl().seconds(), 15 * 60);
  EXPECT_EQ(c.leases().max_ttl().seconds(), 3600);
  EXPECT_EQ(c.sources(0).max_staleness().seconds(), 24 * 3600);
}

// Unsigned fields (watch stream limits, key hints) were once refused as "not supported".
TEST(ConfigTest, UnsignedFieldsParse) {
  auto parsed = ParseYaml(
      std::string(kMinimal) + "server: {max_watch_streams: 50, max_watch_streams_per_caller: 5}\n",
      "test.yaml");
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(parsed->config.server().max_watch_streams(), 50u);
  EXPECT_EQ(parsed->config.server().max_watch_streams_per_caller(), 5u);
  auto hint = ParseYaml(R"(providers:
  - name: lumenfall
    key_hint: {prefix: 6, suffix: 4}
)",
                        "test.yaml");
  ASSERT_THAT(hint, IsOk());
  EXPECT_EQ(hint->config.providers(0).key_hint().prefix(), 6u);
  EXPECT_EQ(hint->config.providers(0).key_hint().suffix(), 4u);
  EXPECT_THAT(ParseYaml("server: {max_watch_streams: -1}\n", "test.yaml").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("server.max_watch_streams"),
                             HasSubstr("expected a non-negative integer"))));
}

// The kubelet's gRPC probes speak plaintext only; the health listener is checked like the others.
TEST(ConfigTest, HealthListenerMustBeHostPortAndNotTheMainListener) {
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) + "server: {health_listen: \"7444\"}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("server.health_listen"), HasSubstr("expected HOST:PORT"))));
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) +
                               "server: {listen: 127.0.0.1:7443, health_listen: 127.0.0.1:7443}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("server.health_listen"), HasSubstr("must differ"))));
  // Health answers carry no secrets: a non-loopback health listener needs no TLS.
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) +
                               "server: {listen: 127.0.0.1:0, health_listen: 0.0.0.0:7444}\n"),
              IsOk());
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) +
                               "server: {listen: 127.0.0.1:0, health_listen: 127.0.0.1:0}\n"),
              IsOk());
}

TEST(ConfigTest, AuditQueueIsBounded) {
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) +
                               "audit: {path: audit.log, max_queued_lines: 20000000}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("audit.max_queued_lines"), HasSubstr("at most 10000000"))));
  EXPECT_THAT(
      ParseAndValidate(std::string(kMinimal) +
                       "audit: {path: audit.log, max_queued_lines: 1000, fail_closed: true}\n"),
      IsOk());
}

// Leases carry keys: plaintext gRPC is for this machine only, unless the operator says a mesh
// encrypts the traffic.
TEST(ConfigTest, PlaintextOnANonLoopbackAddressNeedsTlsOrAnExplicitOptIn) {
  for (const char* listen : {"0.0.0.0:7443", "[::]:7443", "10.1.2.3:7443", "broker.svc:7443"}) {
    EXPECT_THAT(ParseAndValidate(std::string(kMinimal) + "server: {listen: \"" + listen + "\"}\n"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("server.listen"), HasSubstr("not a loopback address"),
                               HasSubstr("insecure_plaintext"))))
        << listen;
  }
  for (const char* listen : {"127.0.0.1:0", "127.8.0.1:7443", "localhost:7443", "[::1]:7443"}) {
    EXPECT_THAT(ParseAndValidate(std::string(kMinimal) + "server: {listen: \"" + listen + "\"}\n"),
                IsOk())
        << listen;
  }
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) +
                               "server: {listen: \"0.0.0.0:7443\", insecure_plaintext: true}\n"),
              IsOk());
}

TEST(ConfigTest, DurationsAcceptDays) {
  std::string yaml = R"(sources: [{name: local, file: {root: keys}}]
providers:
  - name: lumenfall
    rotation_period: 60d
    overlap: 3d12h
)";
  auto parsed = ParseYaml(yaml, "t.yaml");
  ASSERT_THAT(parsed, IsOk());
  EXPECT_THAT(Validate(*parsed, "t.yaml"), IsOk());
  EXPECT_EQ(parsed->config.providers(0).rotation_period().seconds(), 60 * 86400);
  EXPECT_EQ(parsed->config.providers(0).overlap().seconds(), 84 * 3600);
}

TEST(ConfigTest, UnknownFieldNamesPathAndLine) {
  auto parsed = ParseYaml(R"(sources:
  - name: local
    file:
      root: keys
      rooot: typo
)",
                          "broker.yaml");
  EXPECT_THAT(parsed, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("broker.yaml:5"), HasSubstr("sources[0].file.rooot"),
                                     HasSubstr("unknown field"), HasSubstr("known: root"))));
}

TEST(ConfigTest, WrongTypesAreReported) {
  EXPECT_THAT(ParseYaml("providers: lumenfall\n", "t.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t.yaml:1"), HasSubstr("providers: expected a list"))));
  EXPECT_THAT(ParseYaml("providers:\n  - name: x\n    single_key: maybe\n", "t.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t.yaml:3"), HasSubstr("providers[0].single_key"),
                             HasSubstr("true or false"))));
  EXPECT_THAT(ParseYaml("leases:\n  default_ttl: soon\n", "t.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t.yaml:2"), HasSubstr("leases.default_ttl"))));
}

TEST(ConfigTest, ReportsEveryProblemNotOnlyTheFirst) {
  auto parsed =
      ParseYaml("server:\n  listen: nowhere\n  bogus: 1\nleases:\n  max_ttl: x\n", "t.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()),
              AllOf(HasSubstr("server.bogus"), HasSubstr("leases.max_ttl")));
}

TEST(ConfigTest, MalformedYamlGivesLine) {
  EXPECT_THAT(ParseYaml("sources:\n  - name: [unclosed\n", "t.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t.yaml:"), HasSubstr("not valid YAML"))));
  EXPECT_THAT(ParseYaml("", "t.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST(ConfigTest, SourceNeedsABackend) {
  auto parsed = ParseYaml("sources:\n  - name: a\n", "t.yaml");
  ASSERT_THAT(parsed, IsOk());
  EXPECT_THAT(Validate(*parsed, "t.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t.yaml:2"), HasSubstr("sources[0]"),
                             HasSubstr("one backend must be set"))));
}

TEST(ConfigTest, StateBlockIsCheckedAndTheOldLeaseStoreKeySaysWhatReplacedIt) {
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) + "state: {sqlite: {synchronous: fast}}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml:11"), HasSubstr("state.sqlite.synchronous"),
                             HasSubstr("\"normal\" or \"full\""))));
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) + "lease_store: {sqlite: {path: l.db}}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("lease_store"), HasSubstr("replaced by state.sqlite"))));
  auto parsed = ParseYaml(
      std::string(kMinimal) + "state: {sqlite: {path: s/x.db, synchronous: full}}\n", "test.yaml");
  ASSERT_THAT(parsed, IsOk());
  ASSERT_THAT(Validate(*parsed, "test.yaml"), IsOk());
  v1::BrokerConfig c = parsed->config;
  ApplyDefaults(c, "/etc/credbroker");
  EXPECT_EQ(c.state().sqlite().path(), "/etc/credbroker/s/x.db");
  EXPECT_EQ(c.state().sqlite().synchronous(), "full");

  // The in-memory store stays what was asked for (no SQLite block is added to it).
  auto memory = ParseYaml(std::string(kMinimal) + "state: {memory: {}}\n", "test.yaml");
  ASSERT_THAT(memory, IsOk());
  ASSERT_THAT(Validate(*memory, "test.yaml"), IsOk());
  v1::BrokerConfig m = memory->config;
  ApplyDefaults(m, "/etc/credbroker");
  EXPECT_TRUE(m.state().has_memory());
  EXPECT_FALSE(m.state().has_sqlite());
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) + "state: {memory: {path: x}}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("path")));
}

TEST(ConfigTest, RotationPeriodMustBe30To90Days) {
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: lumenfall
    rotation_period: 10d
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml:4"), HasSubstr("providers[0].rotation_period"),
                             HasSubstr("between 30d and 90d, got 10d"))));
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: lumenfall
    rotation_period: 120d
)"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got 120d")));
}

TEST(ConfigTest, OverlapMustBeShorterThanPeriod) {
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: lumenfall
    rotation_period: 30d
    overlap: 30d
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml:5"), HasSubstr("providers[0].overlap"))));
}

TEST(ConfigTest, ProbeMintRotationAndAnomalySettingsAreValidated) {
  absl::Status s = ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: acme
    base_url: https://acme.example
    key_format: 'acme_[a-z]+'
    probe: {method: GET, expected_status: 999}
    mint:
      create: {method: POST}
      revoke: {path: "/keys/{key_id}"}
      key_pointer: key
      admin_key_file: /nonexistent/admin
rotation:
  check_interval: 1ms
  revocation_detection: {min_callers: -1}
anomaly_detection:
  rate_spike_action: block
  bucket: 10ms
)");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr("providers[0].probe.path"),
                                HasSubstr("providers[0].probe.expected_status"),
                                HasSubstr("providers[0].mint.create.path"),
                                HasSubstr("providers[0].mint.key_pointer"),
                                HasSubstr("providers[0].mint.key_id_pointer"),
                                HasSubstr("providers[0].mint.admin_key_file"),
                                HasSubstr("rotation.check_interval"),
                                HasSubstr("rotation.revocation_detection.min_callers"),
                                HasSubstr("anomaly_detection.rate_spike_action"),
                                HasSubstr("anomaly_detection.bucket"))));
  // A disabled probe needs no path.
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: lumenfall
    probe: {disabled: true}
)"),
              IsOk());
}

TEST(ConfigTest, RotationAndAnomalyDefaults) {
  auto parsed = ParseYaml(kMinimal, "test.yaml");
  ASSERT_THAT(parsed, IsOk());
  v1::BrokerConfig c = parsed->config;
  ApplyDefaults(c, "/etc/credbroker");
  EXPECT_EQ(c.rotation().check_interval().seconds(), 30);
  EXPECT_EQ(c.rotation().probe_retry_interval().seconds(), 300);
  EXPECT_EQ(c.rotation().revocation_detection().min_callers(), 3);
  EXPECT_EQ(c.anomaly_detection().threshold(), 4);
  EXPECT_EQ(c.anomaly_detection().new_caller_action(), "alert");
  EXPECT_EQ(c.anomaly_detection().bucket().seconds(), 60);
}

TEST(ConfigTest, CrossReferencesAreChecked) {
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: lumenfall
    source: vault
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("providers[0].source"), HasSubstr("no source named"))));
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: lumenfall
  - name: lumenfall
)"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicate provider")));
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: acme
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("providers[0].base_url"), HasSubstr("not built in"))));
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: acme
    base_url: https://acme.test
    key_format: "([a-z]"
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml:5"), HasSubstr("providers[0].key_format"))));
  EXPECT_THAT(ParseAndValidate("providers: [{name: lumenfall}]\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sources: at least one")));
}

TEST(ConfigTest, KeyLinesScopesAndScopedRulesAreChecked) {
  constexpr char kLines[] = R"(sources: [{name: local, file: {root: k}}]
providers:
  - name: example-ai
    scopes: [read]
  - name: example-ai-admin
    api: example-ai
    scopes: [admin, read, write]
identity:
  static_tokens: [{service: app, token: app-token-0123456789}]
policy:
  rules:
    - identities: [app]
      providers: [example-ai]
      scopes: [read]
)";
  EXPECT_THAT(ParseAndValidate(kLines), IsOk());
  std::string bad_rule = kLines;
  bad_rule.replace(bad_rule.rfind("[read]"), 6, "[READ]");
  EXPECT_THAT(ParseAndValidate(bad_rule),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("policy.rules[0].scopes[0]"), HasSubstr("READ"))));
  std::string undocumented = kLines;
  undocumented.replace(undocumented.find("[admin, read, write]"), 20, "[admin, root]");
  EXPECT_THAT(ParseAndValidate(undocumented),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("providers[1].scopes"),
                             HasSubstr("\"root\" is not a permission example-ai documents"))));
  std::string bad_api = kLines;
  bad_api.replace(bad_api.find("api: example-ai"), 15, "api: Example_AI");
  EXPECT_THAT(ParseAndValidate(bad_api),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("providers[1].api")));
}

TEST(ConfigTest, TtlOrderingIsChecked) {
  EXPECT_THAT(
      ParseAndValidate(std::string(kMinimal) + "leases:\n  default_ttl: 2h\n  max_ttl: 1h\n"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("leases.default_ttl"), HasSubstr("between"))));
}

TEST(ConfigTest, StaticTokensNeedExactlyOneSourceAndReadableFiles) {
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers: [{name: lumenfall}]
identity:
  static_tokens:
    - service: a
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("identity.static_tokens[0]"), HasSubstr("exactly one"))));
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers: [{name: lumenfall}]
identity:
  static_tokens:
    - service: a
      token_file: /nonexistent/token
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("static_tokens[0].token_file"), HasSubstr("cannot read"))));
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers: [{name: lumenfall}]
identity:
  static_tokens:
    - service: a
      token: short
)"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 16")));
}

TEST(ConfigTest, OneBackendPerSource) {
  EXPECT_THAT(ParseYaml(R"(sources:
  - name: both
    file: {root: k}
    vault: {address: "https://v"}
)",
                        "t.yaml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("t.yaml:4"), HasSubstr("only one of the backend options"))));
}

TEST(ConfigTest, VaultDefaultsAndPaths) {
  auto parsed = ParseYaml(R"(sources:
  - name: vault
    vault:
      address: https://vault.example:8200
      ca_file: ca.pem
      auth:
        kubernetes: {role: credbroker}
providers: [{name: lumenfall}]
)",
                          "t.yaml");
  ASSERT_THAT(parsed, IsOk());
  ASSERT_THAT(Validate(*parsed, "t.yaml"), IsOk());
  v1::BrokerConfig c = parsed->config;
  ApplyDefaults(c, "/etc/cb");
  const v1::VaultSourceConfig& v = c.sources(0).vault();
  EXPECT_EQ(v.mount(), "secret");
  EXPECT_EQ(v.field(), "api_key");
  EXPECT_EQ(v.max_attempts(), 4);
  EXPECT_EQ(v.ca_file(), "/etc/cb/ca.pem");
  EXPECT_EQ(v.auth().kubernetes().jwt_file(),
            "/var/run/secrets/kubernetes.io/serviceaccount/token");
  EXPECT_EQ(v.auth().kubernetes().mount(), "kubernetes");
}

TEST(ConfigTest, IdentityPolicyAndTlsAreValidated) {
  EXPECT_THAT(ParseAndValidate(std::string(kMinimal) + R"(server:
  tls:
    cert_file: /nonexistent/tls.crt
    require_client_cert: true
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("server.tls.cert_file: cannot read"),
                             HasSubstr("server.tls.key_file: required"),
                             HasSubstr("server.tls.require_client_cert: needs client_ca_file"))));
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers: [{name: lumenfall}]
identity:
  kubernetes:
    issuer: https://kubernetes.default.svc
  mtls: {}
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("identity.kubernetes.audience: required"),
                             HasSubstr("identity.kubernetes: set exactly one of jwks_file"),
                             HasSubstr("identity.mtls.trust_domain: required"),
                             HasSubstr("identity.mtls: needs server.tls.client_ca_file"),
                             HasSubstr("policy.rules: required with identity.kubernetes or "
                                       "identity.mtls"))));
  EXPECT_THAT(ParseAndValidate(R"(sources: [{name: local, file: {root: k}}]
providers: [{name: lumenfall}]
policy:
  rules:
    - identities: ["billing/*", "bad*pattern"]
      providers: [lumenfall, openai]
      rate_limit: {per_second: 0, burst: 0}
    - identities: []
      providers: []
  admins: ["*", "ops*", "ops/*", "alice"]
)"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("test.yaml:5: policy.rules[0].identities[1]"),
                             HasSubstr("policy.admins[0]: \"*\" would make every caller an admin"),
                             HasSubstr("policy.admins[1]: must be exact or"),
                             Not(HasSubstr("policy.admins[2]")), Not(HasSubstr("policy.admins[3]")),
                             HasSubstr("policy.rules[0].providers[1]: no configured provider"),
                             HasSubstr("policy.rules[0].rate_limit"),
                             HasSubstr("policy.rules[1].identities"),
                             HasSubstr("policy.rules[1].providers"))));
}

TEST(ConfigTest, LoadConfigFileResolvesPathsAgainstTheFileAndAppliesOverrides) {
  TempDir dir;
  WriteFile(dir.Join("conf/broker.yaml"), kMinimal);
  Overrides o;
  o.listen = "127.0.0.1:0";
  auto c = LoadConfigFile(dir.Join("conf/broker.yaml"), o);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->sources(0).file().root(), dir.Join("conf/keys"));
  EXPECT_EQ(c->server().listen(), "127.0.0.1:0");
  EXPECT_EQ(c->server().data_dir(), dir.Join("conf/credbroker-data"));
}

TEST(ConfigTest, MissingFileIsNotFound) {
  EXPECT_THAT(LoadConfigFile("/nonexistent/broker.yaml"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/broker.yaml")));
}

TEST(ConfigTest, ShippedExampleIsValid) {
  auto c = LoadConfigFile(std::string(CB_SOURCE_DIR) + "/examples/local.yaml");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->providers_size(), 5);
  EXPECT_EQ(c->server().listen().rfind("127.0.0.1:", 0), 0u) << "the default binds loopback only";
  EXPECT_EQ(c->server().metrics_listen().rfind("127.0.0.1:", 0), 0u);
}

}  // namespace
}  // namespace credbroker::config
