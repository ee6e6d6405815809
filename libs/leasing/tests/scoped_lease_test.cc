// Key scopes as lease scope: a provider API with several key lines (read, admin, webhook keys),
// chosen by the scope a caller asks for and limited by its policy.
#include <memory>
#include <string>

#include "credbroker/core/status_macros.h"
#include "credbroker/identity/policy.h"
#include "credbroker/leasing/lease_broker.h"
#include "credbroker/leasing/lease_counts.h"
#include "credbroker/leasing/lease_table.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/state/in_memory_lease_store.h"
#include "credbroker/testing/fake_secret_source.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::leasing {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::BrokerConfig Config() {
  v1::BrokerConfig config;
  config.add_sources()->set_name("fake");
  // The line named like the api has no scopes configured: its versions' metadata names them.
  config.add_providers()->set_name("example-ai");
  v1::ProviderConfig* admin = config.add_providers();
  admin->set_name("example-ai-admin");
  admin->set_api("example-ai");
  for (const char* s : {"admin", "read", "write"}) admin->add_scopes(s);
  v1::ProviderConfig* hooks = config.add_providers();
  hooks->set_name("example-ai-hooks");
  hooks->set_api("example-ai");
  hooks->add_scopes("webhook");
  config.add_providers()->set_name("lumenfall");

  v1::PolicyRule* app = config.mutable_policy()->add_rules();
  app->add_identities("billing/*");
  app->add_providers("example-ai");
  app->add_providers("lumenfall");
  v1::PolicyRule* reader = config.mutable_policy()->add_rules();
  reader->add_identities("search/*");
  reader->add_providers("example-ai");
  reader->add_scopes("read");
  v1::PolicyRule* hooks_only = config.mutable_policy()->add_rules();
  hooks_only->add_identities("notify/*");
  hooks_only->add_providers("example-ai-hooks");
  return config;
}

class ScopedLeaseTest : public ::testing::Test {
 protected:
  ScopedLeaseTest()
      : config_(Config()),
        catalog_(*providers::ProviderCatalog::FromConfig(config_)),
        registry_(std::make_shared<prometheus::Registry>()),
        metrics_(registry_),
        ring_(&catalog_, &clock_, &metrics_),
        table_(*LeaseTable::Create(&store_, &clock_, {[this](const LeaseRecord& l, int delta) {
          counts_.Apply(l, delta);
        }})),
        policy_(config_.policy(), &clock_),
        broker_(&ring_, table_.get(), &counts_, &metrics_, &clock_, TtlPolicy{}, &policy_) {
    source_.Put("example-ai", "v1", "exai-read-key-000001");
    source_.SetScopes("example-ai", "v1", {"read"});
    source_.Put("example-ai-admin", "v1", "exai-admin-key-00001");
    source_.Put("example-ai-hooks", "v1", "exai-hooks-key-00001");
    source_.Put("lumenfall", "v1", "lmnfl_one.aaaaaaaaaaaaaaaa");
    for (const char* p : {"example-ai", "example-ai-admin", "example-ai-hooks", "lumenfall"}) {
      EXPECT_THAT(ring_.RefreshProvider(p, source_), IsOk());
    }
  }

  absl::StatusOr<LeaseGrant> Acquire(const std::string& who, const std::string& provider,
                                     const std::string& scope) {
    return broker_.Acquire(identity::Identity{who, false}, provider, absl::ZeroDuration(), "",
                           scope);
  }

  core::FakeClock clock_;
  v1::BrokerConfig config_;
  providers::ProviderCatalog catalog_;
  std::shared_ptr<prometheus::Registry> registry_;
  metrics::BrokerMetrics metrics_;
  testing::FakeSecretSource source_;
  rotation::KeyRing ring_;
  state::InMemoryLeaseStore store_;
  LeaseCounts counts_;
  std::unique_ptr<LeaseTable> table_;
  identity::Policy policy_;
  LeaseBroker broker_;
};

TEST_F(ScopedLeaseTest, AReadRequestGetsTheReadKeyNeverTheAdminKey) {
  auto read = Acquire("billing/api", "example-ai", "read");
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->lease.provider, "example-ai");
  EXPECT_TRUE(read->key->material->reveal() == "exai-read-key-000001");
  EXPECT_THAT(rotation::ScopesOf(*read->key, *read->spec), ElementsAre("read"));
  // Without a scope: the least-privileged line too.
  auto any = Acquire("billing/api", "example-ai", "");
  ASSERT_THAT(any, IsOk());
  EXPECT_EQ(any->lease.provider, "example-ai");
  // Only the admin line carries admin; only the hooks line webhook.
  auto admin = Acquire("billing/api", "example-ai", "admin");
  ASSERT_THAT(admin, IsOk());
  EXPECT_EQ(admin->lease.provider, "example-ai-admin");
  EXPECT_THAT(rotation::ScopesOf(*admin->key, *admin->spec), ElementsAre("admin", "read", "write"));
  auto hooks = Acquire("billing/api", "example-ai", "webhook");
  ASSERT_THAT(hooks, IsOk());
  EXPECT_EQ(hooks->lease.provider, "example-ai-hooks");
  // The lease renews on its line.
  auto renewed = broker_.Renew(identity::Identity{"billing/api", false}, admin->lease.id,
                               absl::ZeroDuration());
  ASSERT_THAT(renewed, IsOk());
  EXPECT_EQ(renewed->lease.provider, "example-ai-admin");
}

TEST_F(ScopedLeaseTest, WhenTheReadLineLosesItsScopeTheNextLeastPrivilegedLineServes) {
  // The read line's new metadata drops its scopes: unknown scopes rank after every known set.
  source_.SetScopes("example-ai", "v1", {});
  ASSERT_THAT(ring_.RefreshProvider("example-ai", source_), IsOk());
  auto read = Acquire("billing/api", "example-ai", "read");
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->lease.provider, "example-ai-admin");
  // Asked by its own name, a line is the only candidate.
  auto named = Acquire("billing/api", "example-ai-hooks", "");
  ASSERT_THAT(named, IsOk());
  EXPECT_EQ(named->lease.provider, "example-ai-hooks");
  auto wrong = Acquire("billing/api", "example-ai-hooks", "read");
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kNotFound,
                              HasSubstr("no key of example-ai-hooks carries scope \"read\"")));
  EXPECT_EQ(core::ReasonOf(wrong.status()), "UNKNOWN_SCOPE");
}

TEST_F(ScopedLeaseTest, PolicyLimitsTheScopesACallerMayHold) {
  // search/* may hold read keys only.
  auto read = Acquire("search/indexer", "example-ai", "read");
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->lease.provider, "example-ai");
  auto admin = Acquire("search/indexer", "example-ai", "admin");
  EXPECT_THAT(admin, StatusIs(absl::StatusCode::kPermissionDenied,
                              HasSubstr("carries [admin, read, write]")));
  EXPECT_EQ(core::ReasonOf(admin.status()), "SCOPE_DENIED");
  // notify/* may lease the hooks line only, by line or by api.
  auto hooks = Acquire("notify/sender", "example-ai", "");
  ASSERT_THAT(hooks, IsOk());
  EXPECT_EQ(hooks->lease.provider, "example-ai-hooks");
  EXPECT_EQ(core::ReasonOf(Acquire("notify/sender", "example-ai", "read").status()), "NO_RULE");
  // A caller without any rule learns nothing about scopes.
  auto stranger = Acquire("intruder/x", "example-ai", "nonexistent");
  EXPECT_EQ(core::ReasonOf(stranger.status()), "NO_RULE");
  // A scope no line carries.
  auto unknown = Acquire("billing/api", "example-ai", "billing");
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kNotFound,
                                HasSubstr("example-ai-admin [admin, read, write]")));
  EXPECT_EQ(core::ReasonOf(unknown.status()), "UNKNOWN_SCOPE");
  EXPECT_EQ(core::ReasonOf(Acquire("billing/api", "example-ai", "Bad Scope").status()),
            "BAD_SCOPE");
}

TEST_F(ScopedLeaseTest, NarrowedScopesInTheSecretMetadataStopRenewalsTheRuleNoLongerAllows) {
  auto read = Acquire("search/indexer", "example-ai", "read");
  ASSERT_THAT(read, IsOk());
  // The operator re-labels the key as read+write at the provider: search/* may hold read only.
  source_.SetScopes("example-ai", "v1", {"read", "write"});
  ASSERT_THAT(ring_.RefreshProvider("example-ai", source_), IsOk());
  auto renewed = broker_.Renew(identity::Identity{"search/indexer", false}, read->lease.id,
                               absl::ZeroDuration());
  EXPECT_EQ(core::ReasonOf(renewed.status()), "SCOPE_DENIED");
}

TEST_F(ScopedLeaseTest, MetadataNamingAnUndocumentedPermissionRejectsTheVersion) {
  source_.Put("example-ai", "v2", "exai-read-key-000002");
  source_.SetScopes("example-ai", "v2", {"superuser"});
  ASSERT_THAT(ring_.RefreshProvider("example-ai", source_), IsOk());
  const rotation::ProviderKeys* keys = ring_.Snapshot()->Find("example-ai");
  ASSERT_NE(keys, nullptr);
  EXPECT_EQ(keys->Find("v2"), nullptr);
  EXPECT_EQ(keys->current->version_id, "v1");
}

TEST_F(ScopedLeaseTest, ProvidersWithOneLineAreUnchanged) {
  auto l = Acquire("billing/api", "lumenfall", "");
  ASSERT_THAT(l, IsOk());
  EXPECT_EQ(l->lease.provider, "lumenfall");
  EXPECT_EQ(core::ReasonOf(Acquire("billing/api", "lumenfall", "read").status()), "UNKNOWN_SCOPE");
}

}  // namespace
}  // namespace credbroker::leasing
