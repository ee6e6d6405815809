#include "credbroker/identity/policy.h"

#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::identity {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;

v1::PolicyConfig Config() {
  v1::PolicyConfig c;
  auto* billing = c.add_rules();
  billing->add_identities("billing/*");
  billing->add_providers("lumenfall");
  billing->add_providers("fluximage");
  core::ToProtoDuration(absl::Minutes(30), billing->mutable_max_ttl());
  billing->set_max_active_leases(5);
  billing->mutable_rate_limit()->set_per_second(2);
  billing->mutable_rate_limit()->set_burst(3);
  auto* search = c.add_rules();
  search->add_identities("search/indexer");
  search->add_identities("dev-laptop");
  search->add_providers("*");
  c.add_admins("ops/*");
  return c;
}

TEST(IdentityMatchesTest, ExactNamespaceWildcardAndStar) {
  EXPECT_TRUE(IdentityMatches("billing/api", "billing/api"));
  EXPECT_FALSE(IdentityMatches("billing/api", "billing/api2"));
  EXPECT_TRUE(IdentityMatches("billing/*", "billing/worker"));
  EXPECT_FALSE(IdentityMatches("billing/*", "billingx/worker"));
  EXPECT_FALSE(IdentityMatches("billing/*", "billing/"));
  EXPECT_TRUE(IdentityMatches("*", "anyone"));
}

struct Case {
  std::string who;
  std::string provider;
  absl::StatusCode code;
};

TEST(PolicyTest, Matrix) {
  core::FakeClock clock;
  Policy policy(Config(), &clock);
  const std::vector<Case> cases = {
      {"billing/api", "lumenfall", absl::StatusCode::kOk},
      {"billing/worker", "fluximage", absl::StatusCode::kOk},
      {"billing/api", "magichour", absl::StatusCode::kPermissionDenied},
      {"search/indexer", "magichour", absl::StatusCode::kOk},
      {"search/other", "lumenfall", absl::StatusCode::kPermissionDenied},
      {"dev-laptop", "firemoon", absl::StatusCode::kOk},
      {"ops/admin", "lumenfall",
       absl::StatusCode::kPermissionDenied},  // admin is not a lease grant
      {"stranger/x", "lumenfall", absl::StatusCode::kPermissionDenied},
  };
  for (const Case& c : cases) {
    auto grant = policy.AuthorizeRenew(Identity{c.who, false}, c.provider);
    EXPECT_EQ(grant.status().code(), c.code) << c.who << " -> " << c.provider;
    if (c.code == absl::StatusCode::kPermissionDenied) {
      EXPECT_EQ(core::ReasonOf(grant.status()), "NO_RULE");
    }
  }
  auto grant = policy.AuthorizeAcquire(Identity{"billing/api", false}, "lumenfall");
  ASSERT_THAT(grant, IsOk());
  EXPECT_EQ(grant->max_ttl, absl::Minutes(30));
  EXPECT_EQ(grant->max_active_leases, 5);
}

TEST(PolicyTest, TokenBucketPerIdentityAndProvider) {
  core::FakeClock clock;
  Policy policy(Config(), &clock);
  Identity api{"billing/api", false};
  for (int i = 0; i < 3; ++i) {
    EXPECT_THAT(policy.AuthorizeAcquire(api, "lumenfall"), IsOk()) << "burst " << i;
  }
  auto limited = policy.AuthorizeAcquire(api, "lumenfall");
  EXPECT_THAT(limited, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(core::ReasonOf(limited.status()), "RATE_LIMITED");
  // Other buckets are independent.
  EXPECT_THAT(policy.AuthorizeAcquire(api, "fluximage"), IsOk());
  EXPECT_THAT(policy.AuthorizeAcquire(Identity{"billing/worker", false}, "lumenfall"), IsOk());
  // 2 tokens per second refill.
  clock.Advance(absl::Milliseconds(500));
  EXPECT_THAT(policy.AuthorizeAcquire(api, "lumenfall"), IsOk());
  EXPECT_FALSE(policy.AuthorizeAcquire(api, "lumenfall").ok());
  clock.Advance(absl::Seconds(10));  // refills only up to the burst
  for (int i = 0; i < 3; ++i) EXPECT_THAT(policy.AuthorizeAcquire(api, "lumenfall"), IsOk());
  EXPECT_FALSE(policy.AuthorizeAcquire(api, "lumenfall").ok());
  // Renewals are not rate limited.
  EXPECT_THAT(policy.AuthorizeRenew(api, "lumenfall"), IsOk());
}

TEST(PolicyTest, AdminsAndMetricLabels) {
  core::FakeClock clock;
  Policy policy(Config(), &clock);
  EXPECT_TRUE(policy.IsAdmin(Identity{"ops/oncall", false}));
  EXPECT_TRUE(policy.IsAdmin(Identity{"static-admin", true}));
  EXPECT_FALSE(policy.IsAdmin(Identity{"billing/api", false}));
  EXPECT_EQ(policy.MetricLabel("billing/api"), "billing/api");
  EXPECT_EQ(policy.MetricLabel("ops/oncall"), "ops/oncall");
  EXPECT_EQ(policy.MetricLabel("random/sa-123"), "unknown");
}

TEST(PolicyTest, NoRulesDeniesEveryone) {
  core::FakeClock clock;
  Policy policy(v1::PolicyConfig(), &clock);
  EXPECT_FALSE(policy.configured());
  EXPECT_THAT(policy.AuthorizeAcquire(Identity{"anyone", false}, "lumenfall"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("no policy.rules")));
  EXPECT_THAT(policy.AuthorizeRenew(Identity{"anyone", false}, "lumenfall"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // Nothing names the caller: its label is bounded like any unknown identity's.
  EXPECT_EQ(policy.MetricLabel("anyone"), "unknown");
}

}  // namespace
}  // namespace credbroker::identity

namespace credbroker::identity {
namespace {

TEST(PolicyScopesTest, RuleLimitsTheScopesOfLeasedKeysAndMatchesTheApi) {
  v1::PolicyConfig c;
  auto* readers = c.add_rules();
  readers->add_identities("billing/*");
  readers->add_providers("example-ai");
  readers->add_scopes("write");
  readers->add_scopes("read");
  const Identity billing{"billing/api", false};
  core::FakeClock clock;
  Policy policy(c, &clock);
  const std::vector<std::string> read = {"read"};
  const std::vector<std::string> read_write = {"read", "write"};
  const std::vector<std::string> admin = {"admin", "read"};
  // The rule names the api: it covers every line of it.
  EXPECT_THAT(policy.AuthorizeAcquire(billing, LeaseTarget{"example-ai-ro", "example-ai", read}),
              IsOk());
  EXPECT_THAT(policy.MayHold(billing, {"example-ai", "example-ai", read_write}), IsOk());
  auto wider = policy.MayHold(billing, {"example-ai-admin", "example-ai", admin});
  EXPECT_THAT(wider,
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("carries [admin, read]")));
  EXPECT_EQ(core::ReasonOf(wider), "SCOPE_DENIED");
  // A key of unknown scopes could be anything.
  auto unknown = policy.AuthorizeRenew(billing, LeaseTarget{"example-ai", "example-ai", {}});
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("unknown scopes")));
  EXPECT_EQ(core::ReasonOf(unknown.status()), "SCOPE_DENIED");
  // Another api is not named at all.
  EXPECT_EQ(core::ReasonOf(policy.MayHold(billing, {"lumenfall", "lumenfall", read})), "NO_RULE");
}

TEST(PolicyScopesTest, RuleWithoutScopesAllowsAnyKey) {
  v1::PolicyConfig c = Config();
  core::FakeClock clock;
  Policy policy(c, &clock);
  const std::vector<std::string> admin = {"admin"};
  EXPECT_THAT(
      policy.MayHold(Identity{"search/indexer", false}, {"example-ai", "example-ai", admin}),
      IsOk());
  EXPECT_THAT(policy.MayHold(Identity{"search/indexer", false}, {"example-ai", "example-ai", {}}),
              IsOk());
}

}  // namespace
}  // namespace credbroker::identity
