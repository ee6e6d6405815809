#include "credbroker/identity/authenticator_factory.h"

#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::identity {
namespace {

using ::credbroker::testing::IsOk;
using ::testing::HasSubstr;

TEST(AuthenticatorFromConfigTest, StaticTokensAndMtlsIdentitiesAreChained) {
  v1::IdentityConfig config;
  v1::StaticTokenConfig* t = config.add_static_tokens();
  t->set_service("billing/api");
  t->set_token("billing-token-0123456789");
  config.mutable_mtls()->set_trust_domain("cluster.local");
  core::FakeClock clock;
  auto auth = AuthenticatorFromConfig(config, &clock);
  ASSERT_THAT(auth, IsOk());
  RequestCredentials bearer;
  bearer.authorization = "Bearer billing-token-0123456789";
  auto who = (*auth)->Authenticate(bearer);
  ASSERT_THAT(who, IsOk());
  EXPECT_EQ(who->name, "billing/api");
  RequestCredentials cert;
  cert.peer_spiffe_ids = {"spiffe://cluster.local/ns/search/sa/api"};
  who = (*auth)->Authenticate(cert);
  ASSERT_THAT(who, IsOk());
  EXPECT_EQ(who->name, "search/api");
  RequestCredentials wrong;
  wrong.authorization = "Bearer not-a-known-token-000000";
  EXPECT_EQ((*auth)->Authenticate(wrong).status().code(), absl::StatusCode::kUnauthenticated);
}

// A JWKS that cannot be read fails the start, naming the config block.
TEST(AuthenticatorFromConfigTest, AnUnreadableJwksFileNamesTheBlock) {
  testing::TempDir dir;
  v1::IdentityConfig config;
  v1::KubernetesJwtConfig* k = config.mutable_kubernetes();
  k->set_issuer("https://kubernetes.default.svc");
  k->set_audience("credbroker");
  k->set_jwks_file(dir.Join("missing-jwks.json"));
  core::FakeClock clock;
  auto auth = AuthenticatorFromConfig(config, &clock);
  EXPECT_FALSE(auth.ok());
  EXPECT_THAT(auth.status().message(), HasSubstr("identity.kubernetes"));
  EXPECT_THAT(auth.status().message(), HasSubstr("missing-jwks.json"));
}

}  // namespace
}  // namespace credbroker::identity
