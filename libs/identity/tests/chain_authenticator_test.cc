#include "credbroker/core/status_macros.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/identity/jwt_verifier.h"
#include "credbroker/testing/jwt_signer.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::identity {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

TEST(MtlsAuthenticatorTest, SpiffeIdsOfTheTrustDomainBecomeNamespaceSlashSa) {
  MtlsAuthenticator mtls("cluster.local");
  RequestCredentials c;
  c.peer_spiffe_ids = {"spiffe://cluster.local/ns/billing/sa/api"};
  EXPECT_EQ(mtls.Authenticate(c)->name, "billing/api");
  c.peer_spiffe_ids = {"spiffe://cluster.local/workload/x"};
  EXPECT_EQ(mtls.Authenticate(c)->name, "spiffe://cluster.local/workload/x");
  c.peer_spiffe_ids = {"spiffe://evil.example/ns/billing/sa/api"};
  auto foreign = mtls.Authenticate(c);
  EXPECT_THAT(foreign, StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(core::ReasonOf(foreign.status()), "UNTRUSTED_DOMAIN");
  c.peer_spiffe_ids.clear();
  c.peer_dns_names = {"batch.internal.example"};
  EXPECT_EQ(mtls.Authenticate(c)->name, "dns:batch.internal.example");
}

// Several URI SANs (gRPC then reports no SPIFFE ID) or a URI that is not a SPIFFE ID must not
// fall through to the DNS SAN.
TEST(MtlsAuthenticatorTest, UriSansNeverFallBackToTheDnsSan) {
  MtlsAuthenticator mtls("cluster.local");
  RequestCredentials c;
  c.peer_dns_names = {"billing.internal.example"};
  c.peer_uris = {"spiffe://evil.example/ns/billing/sa/api",
                 "spiffe://cluster.local/ns/billing/sa/api"};
  auto two = mtls.Authenticate(c);
  EXPECT_THAT(two, StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(core::ReasonOf(two.status()), "AMBIGUOUS_IDENTITY");
  c.peer_uris = {"https://billing.example/"};
  auto not_spiffe = mtls.Authenticate(c);
  EXPECT_THAT(not_spiffe, StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(core::ReasonOf(not_spiffe.status()), "UNTRUSTED_DOMAIN");
  // One SPIFFE ID, reported both ways by gRPC: fine.
  c.peer_uris = {"spiffe://cluster.local/ns/billing/sa/api"};
  c.peer_spiffe_ids = c.peer_uris;
  EXPECT_EQ(mtls.Authenticate(c)->name, "billing/api");
}

TEST(ChainAuthenticatorTest, RoutesJwtsStaticTokensAndCertificates) {
  v1::IdentityConfig ids;
  auto* t = ids.add_static_tokens();
  t->set_service("dev-laptop");
  t->set_token("dev-laptop-token-0123456789");
  auto key = testing::JwtKey::NewEc("k1");
  core::FakeClock clock(absl::Now());
  std::string jwks = testing::Jwks({key.get()});
  auto verifier = JwtVerifier::Create(
      {"https://issuer", "credbroker"}, [&]() -> absl::StatusOr<std::string> { return jwks; },
      &clock);
  ASSERT_THAT(verifier, IsOk());
  ChainAuthenticator chain(*StaticTokenAuthenticator::Create(ids),
                           std::make_unique<KubernetesJwtAuthenticator>(std::move(*verifier)),
                           std::make_unique<MtlsAuthenticator>("cluster.local"));
  int64_t now = absl::ToUnixSeconds(clock.Now());
  std::string jwt = key->Sign(
      R"({"alg":"ES256","kid":"k1"})",
      testing::K8sClaims("https://issuer", "credbroker", "search", "indexer", now + 600, now));
  std::string bearer = "Bearer " + jwt;
  RequestCredentials c;
  c.authorization = bearer;
  EXPECT_EQ(chain.Authenticate(c)->name, "search/indexer");
  c.authorization = "Bearer dev-laptop-token-0123456789";
  EXPECT_EQ(chain.Authenticate(c)->name, "dev-laptop");
  c.authorization = "";
  c.peer_spiffe_ids = {"spiffe://cluster.local/ns/billing/sa/api"};
  EXPECT_EQ(chain.Authenticate(c)->name, "billing/api");
  c.peer_spiffe_ids.clear();
  auto none = chain.Authenticate(c);
  EXPECT_EQ(core::ReasonOf(none.status()), "MISSING_CREDENTIALS");
}

TEST(AuthFailureLabelTest, BoundedLabels) {
  EXPECT_EQ(AuthFailureLabel("MISSING_CREDENTIALS"), "missing");
  EXPECT_EQ(AuthFailureLabel("BAD_SIGNATURE"), "bad_signature");
  EXPECT_EQ(AuthFailureLabel("TOKEN_EXPIRED"), "expired");
  EXPECT_EQ(AuthFailureLabel("WRONG_AUDIENCE"), "wrong_audience");
  EXPECT_EQ(AuthFailureLabel("UNKNOWN_ISSUER"), "unknown_issuer");
  EXPECT_EQ(AuthFailureLabel("MALFORMED_CREDENTIALS"), "malformed");
  EXPECT_EQ(AuthFailureLabel("anything else"), "other");
}

}  // namespace
}  // namespace credbroker::identity
