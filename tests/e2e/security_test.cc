// End to end: Caller identity end to end: mTLS, JWTs, policy, audit, certificate reloads.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

void MakeCa(const std::string& dir, const std::string& name) {
  auto r = RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                       "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/" + name + ".key",
                       "-out", dir + "/" + name + ".crt", "-subj", "/CN=" + name, "-days", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

void MakeLeaf(const std::string& dir, const std::string& name, const std::string& ca,
              const std::string& san, const std::string& usage) {
  WriteFile(dir + "/" + name + ".ext", absl::StrCat("basicConstraints=CA:FALSE\nsubjectAltName=",
                                                    san, "\nextendedKeyUsage=", usage, "\n"));
  auto csr = RunCommand({"/usr/bin/openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/" + name + ".key",
                         "-out", dir + "/" + name + ".csr", "-subj", "/CN=" + name});
  ASSERT_EQ(csr.exit_code, 0) << csr.output;
  auto sign = RunCommand({"/usr/bin/openssl", "x509", "-req", "-in", dir + "/" + name + ".csr",
                          "-CA", dir + "/" + ca + ".crt", "-CAkey", dir + "/" + ca + ".key",
                          "-CAcreateserial", "-out", dir + "/" + name + ".crt", "-days", "2",
                          "-extfile", dir + "/" + name + ".ext"});
  ASSERT_EQ(sign.exit_code, 0) << sign.output;
}

// TLS, client certificates, Kubernetes JWTs, policy and the audit log, through the real binary.
class SecurityEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    const std::string d = dir_.path();
    MakeCa(d, "ca");
    MakeCa(d, "ca2");
    MakeCa(d, "rogue-ca");
    MakeLeaf(d, "server", "ca", "DNS:localhost,IP:127.0.0.1", "serverAuth");
    MakeLeaf(d, "server2", "ca2", "DNS:localhost,IP:127.0.0.1", "serverAuth");
    MakeLeaf(d, "billing", "ca", "URI:spiffe://cluster.local/ns/billing/sa/api", "clientAuth");
    MakeLeaf(d, "foreign", "ca", "URI:spiffe://evil.example/ns/billing/sa/api", "clientAuth");
    MakeLeaf(d, "rogue", "rogue-ca", "URI:spiffe://cluster.local/ns/billing/sa/api", "clientAuth");
    // Two URI SANs and a DNS SAN: gRPC reports no SPIFFE ID for it.
    MakeLeaf(d, "two-uris", "ca",
             "URI:spiffe://evil.example/ns/x/sa/y,URI:spiffe://cluster.local/ns/billing/sa/api,"
             "DNS:billing.internal.example",
             "clientAuth");
    std::filesystem::copy_file(dir_.Join("server.crt"), dir_.Join("tls.crt"));
    std::filesystem::copy_file(dir_.Join("server.key"), dir_.Join("tls.key"));
    jwt_key_ = testing::JwtKey::NewRsa("k8s-1");
    WriteFile(dir_.Join("jwks.json"), testing::Jwks({jwt_key_.get()}));
    WriteFile(dir_.Join("broker.yaml"), R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
  tls:
    cert_file: tls.crt
    key_file: tls.key
    client_ca_file: ca.crt
    reload_interval: 1s
sources:
  - name: local
    file: {root: keys}
providers:
  # Fake keys: no provider to probe (ProbeEndToEndTest covers probes).
  - name: lumenfall
    probe: {disabled: true}
  - name: fluximage
    probe: {disabled: true}
identity:
  mtls: {trust_domain: cluster.local}
  kubernetes:
    issuer: https://kubernetes.default.svc.cluster.local
    audience: credbroker
    jwks_file: jwks.json
policy:
  rules:
    - identities: ["billing/*"]
      providers: [lumenfall]
    - identities: [search/indexer]
      providers: ["*"]
      max_active_leases: 1
  admins: ["ops/*"]
audit:
  path: audit.log
)");
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& ca, const std::string& client) {
    grpc::SslCredentialsOptions opts;
    opts.pem_root_certs = testing::ReadFile(dir_.Join(ca + ".crt"));
    if (!client.empty()) {
      opts.pem_private_key = testing::ReadFile(dir_.Join(client + ".key"));
      opts.pem_cert_chain = testing::ReadFile(dir_.Join(client + ".crt"));
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel(broker_->grpc_address(), grpc::SslCredentials(opts), args);
  }

  static grpc::Status AcquireOn(const std::shared_ptr<grpc::Channel>& ch,
                                const std::string& provider, const std::string& bearer = "",
                                v1::Lease* out = nullptr) {
    auto stub = v1::LeaseService::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
    v1::AcquireLeaseRequest req;
    req.set_provider(provider);
    v1::Lease lease;
    grpc::Status s = stub->AcquireLease(&ctx, req, &lease);
    if (out) *out = lease;
    return s;
  }

  std::string Jwt(const std::string& ns, const std::string& sa, int64_t exp_in) {
    int64_t now = absl::ToUnixSeconds(absl::Now());
    return jwt_key_->Sign(R"({"alg":"RS256","kid":"k8s-1"})",
                          testing::K8sClaims("https://kubernetes.default.svc.cluster.local",
                                             "credbroker", ns, sa, now + exp_in, now - 5));
  }

  std::unique_ptr<testing::JwtKey> jwt_key_;
};

int CountOf(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(SecurityEndToEndTest, ClientCertificatesJwtsPolicyAndAudit) {
  StartBroker();
  // A SPIFFE client certificate is the identity billing/api.
  auto billing = Channel("ca", "billing");
  v1::Lease lease;
  grpc::Status s = AcquireOn(billing, "lumenfall", "", &lease);
  ASSERT_TRUE(s.ok()) << s.error_message() << broker_->Logs();
  grpc::Status no_rule = AcquireOn(billing, "fluximage");
  EXPECT_EQ(no_rule.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(no_rule), "NO_RULE");

  // A Kubernetes service-account JWT over TLS (no client certificate).
  auto plain_tls = Channel("ca", "");
  std::string indexer = Jwt("search", "indexer", 600);
  ASSERT_TRUE(AcquireOn(plain_tls, "fluximage", indexer).ok());
  grpc::Status too_many = AcquireOn(plain_tls, "fluximage", indexer);
  EXPECT_EQ(too_many.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Reason(too_many), "TOO_MANY_LEASES");
  grpc::Status expired = AcquireOn(plain_tls, "fluximage", Jwt("search", "indexer", -600));
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Reason(expired), "TOKEN_EXPIRED");
  grpc::Status stranger = AcquireOn(plain_tls, "lumenfall", Jwt("random", "sa", 600));
  EXPECT_EQ(stranger.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Certificates from the wrong trust domain or an untrusted CA, and plaintext, get nowhere.
  grpc::Status foreign = AcquireOn(Channel("ca", "foreign"), "lumenfall");
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Reason(foreign), "UNTRUSTED_DOMAIN");
  EXPECT_EQ(AcquireOn(Channel("ca", "rogue"), "lumenfall").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      AcquireOn(grpc::CreateChannel(broker_->grpc_address(), grpc::InsecureChannelCredentials()),
                "lumenfall")
          .error_code(),
      grpc::StatusCode::UNAVAILABLE);

  std::string m = Metrics();
  EXPECT_THAT(m, HasSubstr(R"(credbroker_caller_auth_failures_total{reason="expired"} 1)"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(credbroker_policy_denials_total{caller="billing/api",provider="fluximage",reason="NO_RULE"} 1)"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(credbroker_policy_denials_total{caller="unknown",provider="lumenfall",reason="NO_RULE"} 1)"));
  EXPECT_THAT(
      m,
      HasSubstr(R"(credbroker_leases_issued_total{caller="billing/api",provider="lumenfall"} 1)"));

  // The audit writer is asynchronous: wait until every expected line is in.
  const std::vector<std::string> expected = {
      absl::StrCat(
          R"("action":"AcquireLease","caller":"billing/api","provider":"lumenfall","key_version":"v1","key_fingerprint":")",
          core::Fingerprint(kLmnV1), R"(","lease_id":")", lease.lease_id(),
          R"(","decision":"allow"})"),
      R"("caller":"billing/api","provider":"fluximage","decision":"deny","reason":"NO_RULE")",
      R"("decision":"deny","reason":"TOKEN_EXPIRED")",
      R"("caller":"search/indexer","provider":"fluximage","decision":"deny","reason":"TOO_MANY_LEASES")",
  };
  std::string audit;
  EXPECT_TRUE(Eventually([&] {
    audit = testing::ReadFile(dir_.Join("audit.log"));
    return std::all_of(expected.begin(), expected.end(),
                       [&](const std::string& e) { return absl::StrContains(audit, e); });
  }));
  for (const std::string& e : expected) EXPECT_THAT(audit, HasSubstr(e));
  EXPECT_THAT(audit, Not(HasSubstr(kLmnV1)));
  EXPECT_THAT(audit, Not(HasSubstr(kFlxV1)));
  EXPECT_THAT(audit + broker_->Logs(), Not(HasSubstr(indexer.substr(0, 40))));
}

TEST_F(SecurityEndToEndTest, ACertificateWithSeveralUriSansIsRefusedNotTakenByItsDnsSan) {
  StartBroker();
  grpc::Status s = AcquireOn(Channel("ca", "two-uris"), "lumenfall");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_EQ(Reason(s), "AMBIGUOUS_IDENTITY");
  EXPECT_THAT(Metrics(),
              HasSubstr(R"(credbroker_caller_auth_failures_total{reason="ambiguous_identity"} 1)"));
}

TEST_F(SecurityEndToEndTest, ServerCertificateIsReloadedWithoutRestart) {
  StartBroker();
  ASSERT_TRUE(AcquireOn(Channel("ca", "billing"), "lumenfall").ok());
  EXPECT_EQ(AcquireOn(Channel("ca2", "billing"), "lumenfall").error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // cert-manager style renewal: new files under the same names.
  WriteFile(dir_.Join("tls.key"), testing::ReadFile(dir_.Join("server2.key")));
  WriteFile(dir_.Join("tls.crt"), testing::ReadFile(dir_.Join("server2.crt")));
  EXPECT_TRUE(Eventually([&] { return AcquireOn(Channel("ca2", "billing"), "lumenfall").ok(); }))
      << broker_->Logs();
}

TEST_F(SecurityEndToEndTest, JwksFromTheApiServerUrlWithItsBearerToken) {
  WriteFile(dir_.Join("sa.token"), "broker-own-sa-token");
  auto jwks = testing::ChildProcess::Start(
      {"/usr/bin/python3", CB_STATIC_HTTP_FIXTURE, "--file", dir_.Join("jwks.json"), "--port-file",
       dir_.Join("jwks.port"), "--token-file", dir_.Join("sa.token")},
      dir_.Join("jwks.port"), dir_.Join("jwks.log"));
  ASSERT_THAT(jwks.status(), testing::IsOk());
  std::string config = testing::ReadFile(dir_.Join("broker.yaml"));
  std::string url = absl::StrCat("http://127.0.0.1:", jwks->port(), "/openid/v1/jwks");
  config.replace(config.find("jwks_file: jwks.json"), 20,
                 absl::StrCat("jwks_url: ", url, "\n    jwks_bearer_token_file: sa.token"));
  WriteFile(dir_.Join("broker.yaml"), config);
  StartBroker();
  auto tls = Channel("ca", "");
  ASSERT_TRUE(AcquireOn(tls, "fluximage", Jwt("search", "indexer", 600)).ok()) << broker_->Logs();
  // The cluster rotates its signing key: a token with the new kid triggers a re-fetch.
  auto next = testing::JwtKey::NewEc("k8s-2");
  WriteFile(dir_.Join("jwks.json"), testing::Jwks({jwt_key_.get(), next.get()}));
  int64_t now = absl::ToUnixSeconds(absl::Now());
  std::string rotated =
      next->Sign(R"({"alg":"ES256","kid":"k8s-2"})",
                 testing::K8sClaims("https://kubernetes.default.svc.cluster.local", "credbroker",
                                    "billing", "api", now + 600, now - 5));
  EXPECT_TRUE(AcquireOn(tls, "lumenfall", rotated).ok());
}

// The kubelet's gRPC probes speak plaintext only: with TLS on the main listener, a second
// listener answers health checks and nothing else. credctl reaches either, and the TLS one only
// with TLS.
TEST_F(SecurityEndToEndTest, PlaintextHealthListenerServesHealthOnly) {
  std::string config = testing::ReadFile(dir_.Join("broker.yaml"));
  const std::string metrics = "  metrics_listen: 127.0.0.1:0\n";
  config.insert(config.find(metrics) + metrics.size(), "  health_listen: 127.0.0.1:0\n");
  WriteFile(dir_.Join("broker.yaml"), config);
  StartBroker();
  ASSERT_NE(broker_->health_port(), 0) << broker_->Logs();
  const std::string health_address = absl::StrCat("127.0.0.1:", broker_->health_port());
  auto plain = grpc::CreateChannel(health_address, grpc::InsecureChannelCredentials());
  for (const char* service : {"", "liveness", "readiness"}) {
    grpc::health::v1::HealthCheckResponse::ServingStatus status;
    grpc::Status s = CheckHealth(plain, service, &status);
    ASSERT_TRUE(s.ok()) << service << ": " << s.error_message();
    EXPECT_EQ(status, grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  // Leases are not served in plaintext there.
  grpc::Status lease = AcquireOn(plain, "lumenfall", Jwt("search", "indexer", 600));
  EXPECT_EQ(lease.error_code(), grpc::StatusCode::UNIMPLEMENTED) << lease.error_message();

  const std::string ca = dir_.Join("ca.crt");
  auto ok = RunCommand({credctl_, "--addr", broker_->grpc_address(), "--tls-ca", ca,
                        "--tls-server-name", "localhost", "health", "readiness"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("SERVING"));
  auto probe = RunCommand({credctl_, "--addr", health_address, "health"});
  EXPECT_EQ(probe.exit_code, 0) << probe.output;
  auto unknown = RunCommand({credctl_, "--addr", health_address, "health", "no.such.Service"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.output, HasSubstr("NOT_FOUND"));
  // Plaintext against the TLS listener fails plainly instead of hanging.
  auto plaintext = RunCommand({credctl_, "--addr", broker_->grpc_address(), "health"});
  EXPECT_EQ(plaintext.exit_code, 1);
  EXPECT_THAT(plaintext.output, HasSubstr("UNAVAILABLE"));
  // A client certificate through credctl is an mTLS identity (billing/api may lease lumenfall).
  auto mtls = RunCommand({credctl_, "--addr", broker_->grpc_address(), "--tls-ca", ca, "--tls-cert",
                          dir_.Join("billing.crt"), "--tls-key", dir_.Join("billing.key"),
                          "--tls-server-name", "localhost", "lease", "acquire", "lumenfall"});
  EXPECT_EQ(mtls.exit_code, 0) << mtls.output;
  EXPECT_THAT(mtls.output, HasSubstr("provider:     lumenfall"));
  auto half = RunCommand({credctl_, "--addr", broker_->grpc_address(), "--tls-ca", ca, "--tls-cert",
                          dir_.Join("billing.crt"), "health"});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_THAT(half.output, HasSubstr("--tls-cert and --tls-key go together"));
  auto no_ca = RunCommand(
      {credctl_, "--addr", broker_->grpc_address(), "--tls-server-name", "localhost", "health"});
  EXPECT_EQ(no_ca.exit_code, 1);
  EXPECT_THAT(no_ca.output, HasSubstr("need --tls-ca"));
}

TEST_F(SecurityEndToEndTest, UnreachableJwksUrlFailsTheStart) {
  std::string config = testing::ReadFile(dir_.Join("broker.yaml"));
  config.replace(config.find("jwks_file: jwks.json"), 20, "jwks_url: http://127.0.0.1:1/jwks");
  WriteFile(dir_.Join("broker.yaml"), config);
  auto r = RunCommand({binary_, "--config", dir_.Join("broker.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("identity.kubernetes: fetching JWKS"));
}

TEST_F(SecurityEndToEndTest, BadTlsFilesFailTheStartNamingTheFile) {
  WriteFile(dir_.Join("tls.crt"), "not a certificate");
  auto r = RunCommand({binary_, "--config", dir_.Join("broker.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output, HasSubstr("tls.crt is not a PEM certificate"));
}

// The broker keeps its files to itself and cannot leave a core dump holding keys.
TEST_F(EndToEndTest, StateFilesArePrivateAndTheProcessLeavesNoCoreDump) {
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());  // the state file and its WAL exist now
  namespace fs = std::filesystem;
  auto mode = [](const std::string& p) { return fs::status(p).permissions() & fs::perms::all; };
  EXPECT_EQ(mode(dir_.Join("data")), fs::perms::owner_all);
  for (const char* f : {"data/state.db", "data/state.db-wal", "data/state.db-leases.journal"}) {
    EXPECT_EQ(mode(dir_.Join(f)), fs::perms::owner_read | fs::perms::owner_write) << f;
  }
  const std::string limits = testing::ReadFile(absl::StrCat("/proc/", broker_->pid(), "/limits"));
  EXPECT_THAT(limits, ::testing::ContainsRegex("Max core file size +0 +0 "));
}

// A request beyond the API's needs is refused by gRPC before any handler runs: a message over
// 64 KiB, or metadata over 16 KiB.
TEST_F(EndToEndTest, AFloodOfBadTokensFromOnePeerIsAuditedOnceAndCounted) {
  WriteFile(dir_.Join("broker.yaml"), std::string(kConfig) + "audit: {path: audit.log}\n");
  StartBroker();
  for (int i = 0; i < 20; ++i) {
    v1::Lease lease;
    EXPECT_EQ(Acquire("lumenfall", &lease, "guess-" + std::to_string(i)).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // Every failure is refused and counted; one audit line stands for the peer's minute.
  std::string m = Metrics();
  EXPECT_THAT(m, HasSubstr(R"(credbroker_caller_auth_failures_total{reason="invalid_token"} 20)"));
  EXPECT_THAT(m, HasSubstr("credbroker_audit_lines_folded_total 19"));
  // A lease afterwards proves the audit lines before it were written.
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  std::string audit;
  ASSERT_TRUE(Eventually([&] {
    audit = testing::ReadFile(dir_.Join("audit.log"));
    return absl::StrContains(audit, lease.lease_id());
  }));
  EXPECT_EQ(CountOf(audit, R"("decision":"deny","reason":"INVALID_CREDENTIALS")"), 1);
  EXPECT_THAT(audit, Not(HasSubstr("guess-")));
}

TEST_F(EndToEndTest, OversizedRequestsAndMetadataAreRefused) {
  StartBroker();
  v1::PingRequest big;
  big.set_payload(std::string(size_t{100} * 1024, 'x'));
  v1::PingResponse pong;
  grpc::Status s = lease_->Ping(Ctx().get(), big, &pong);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  auto ctx = Ctx();
  ctx->AddMetadata("x-padding", std::string(size_t{32} * 1024, 'p'));
  v1::PingRequest small;
  s = lease_->Ping(ctx.get(), small, &pong);
  EXPECT_FALSE(s.ok());
  // Within the limits the same call works (on a connection of its own: the server may close the
  // one that carried the oversized headers).
  grpc::ChannelArguments args;
  args.SetInt("credbroker.test.fresh", 1);
  auto fresh = v1::LeaseService::NewStub(
      grpc::CreateCustomChannel(broker_->grpc_address(), grpc::InsecureChannelCredentials(), args));
  grpc::Status fine = fresh->Ping(Ctx().get(), small, &pong);
  EXPECT_TRUE(fine.ok()) << fine.error_code() << " " << fine.error_message() << " / after "
                         << s.error_code() << " " << s.error_message();
}

// Plaintext gRPC beyond loopback is refused at start (exit 2, the field named), whether the
// address comes from the file or from --listen; nothing is bound.
TEST_F(EndToEndTest, PlaintextListenerBeyondLoopbackIsRefused) {
  auto r = RunCommand({binary_, "--config", dir_.Join("broker.yaml"), "--listen", "0.0.0.0:0"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("server.listen"));
  EXPECT_THAT(r.output, HasSubstr("insecure_plaintext"));
  auto check = RunCommand({binary_, "--check-config", dir_.Join("broker.yaml")});
  EXPECT_EQ(check.exit_code, 0) << check.output;  // the file itself listens on loopback
}

// A fake provider (tests/fixtures/fake_provider.py) answers the probes and runs a key API: the
// broker's probe-before-promotion, revocation detection and minted rotation, end to end.

}  // namespace
}  // namespace credbroker::e2e
