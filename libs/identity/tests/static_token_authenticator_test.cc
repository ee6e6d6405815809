#include <cstdlib>

#include "credbroker/core/status_macros.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::identity {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

RequestCredentials Creds(absl::string_view authorization) {
  RequestCredentials c;
  c.authorization = authorization;
  return c;
}

v1::IdentityConfig Config() {
  v1::IdentityConfig c;
  auto* app = c.add_static_tokens();
  app->set_service("billing");
  app->set_token("billing-token-0123456789");
  auto* admin = c.add_static_tokens();
  admin->set_service("ops");
  admin->set_token("ops-token-0123456789abc");
  admin->set_admin(true);
  return c;
}

std::string ReasonFor(const Authenticator& a, absl::string_view header) {
  return core::ReasonOf(a.Authenticate(Creds(header)).status());
}

TEST(StaticTokenAuthenticatorTest, MapsTokensToServices) {
  auto auth = StaticTokenAuthenticator::Create(Config());
  ASSERT_THAT(auth, IsOk());
  auto billing = (*auth)->Authenticate(Creds("Bearer billing-token-0123456789"));
  ASSERT_THAT(billing, IsOk());
  EXPECT_EQ(billing->name, "billing");
  EXPECT_FALSE(billing->admin);
  auto ops =
      (*auth)->Authenticate(Creds("bearer ops-token-0123456789abc"));  // scheme is case-insensitive
  ASSERT_THAT(ops, IsOk());
  EXPECT_TRUE(ops->admin);
}

TEST(StaticTokenAuthenticatorTest, RejectsMissingMalformedAndWrongTokens) {
  auto auth = StaticTokenAuthenticator::Create(Config());
  ASSERT_THAT(auth, IsOk());
  EXPECT_THAT((*auth)->Authenticate(Creds("")), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(ReasonFor(**auth, ""), "MISSING_CREDENTIALS");
  EXPECT_EQ(ReasonFor(**auth, "Basic YWxhZGRpbjpvcGVu"), "MALFORMED_CREDENTIALS");
  EXPECT_EQ(ReasonFor(**auth, "Bearer "), "MALFORMED_CREDENTIALS");
  EXPECT_EQ(ReasonFor(**auth, "billing-token-0123456789"), "MALFORMED_CREDENTIALS");
  EXPECT_EQ(ReasonFor(**auth, "Bearer billing-token-012345678"), "INVALID_CREDENTIALS");
  auto wrong = (*auth)->Authenticate(Creds("Bearer guessed-token-value"));
  EXPECT_THAT(wrong,
              StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr("guessed-token-value"))));
}

TEST(StaticTokenAuthenticatorTest, ReadsTokenFileAndEnv) {
  testing::TempDir dir;
  testing::WriteFile(dir.Join("tok"), "file-token-0123456789\n");
  ::setenv("CB_TEST_TOKEN", "env-token-0123456789", 1);
  v1::IdentityConfig c;
  auto* f = c.add_static_tokens();
  f->set_service("from-file");
  f->set_token_file(dir.Join("tok"));
  auto* e = c.add_static_tokens();
  e->set_service("from-env");
  e->set_token_env("CB_TEST_TOKEN");
  auto auth = StaticTokenAuthenticator::Create(c);
  ASSERT_THAT(auth, IsOk());
  EXPECT_EQ((*auth)->Authenticate(Creds("Bearer file-token-0123456789"))->name, "from-file");
  EXPECT_EQ((*auth)->Authenticate(Creds("Bearer env-token-0123456789"))->name, "from-env");
  ::unsetenv("CB_TEST_TOKEN");
}

TEST(StaticTokenAuthenticatorTest, DuplicateOrUnreadableTokensAreConfigErrors) {
  v1::IdentityConfig dup = Config();
  dup.mutable_static_tokens(1)->set_token("billing-token-0123456789");
  EXPECT_THAT(StaticTokenAuthenticator::Create(dup),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("static_tokens[1]"), HasSubstr("twice"),
                             Not(HasSubstr("billing-token")))));
  v1::IdentityConfig missing;
  auto* t = missing.add_static_tokens();
  t->set_service("x");
  t->set_token_file("/nonexistent/token");
  EXPECT_THAT(StaticTokenAuthenticator::Create(missing),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cannot read")));
}

}  // namespace
}  // namespace credbroker::identity
