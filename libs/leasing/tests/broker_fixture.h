// Shared wiring for service tests: a KeyRing over a FakeSecretSource, an in-memory lease store,
// a fake clock and the real LeaseBroker.
#pragma once

#include <memory>
#include <string>

#include "credbroker/core/clock.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/leasing/lease_broker.h"
#include "credbroker/leasing/lease_counts.h"
#include "credbroker/leasing/lease_table.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/state/in_memory_lease_store.h"
#include "credbroker/testing/fake_secret_source.h"
#include "prometheus/text_serializer.h"

namespace credbroker::leasing {

inline const std::string kLmnV1 = "lmnfl_one.aaaaaaaaaaaaaaaa";
inline const std::string kLmnV2 = "lmnfl_two.bbbbbbbbbbbbbbbb";

class BrokerFixture {
 public:
  BrokerFixture() {
    v1::BrokerConfig config;
    config.add_sources()->set_name("fake");
    config.add_providers()->set_name("lumenfall");
    config.add_providers()->set_name("fluximage");
    catalog = *providers::ProviderCatalog::FromConfig(config);
    registry = std::make_shared<prometheus::Registry>();
    metrics = std::make_unique<metrics::BrokerMetrics>(registry);
    ring = std::make_unique<rotation::KeyRing>(
        &catalog, &clock, metrics.get(),
        absl::flat_hash_map<std::string, absl::Duration>{{"lumenfall", absl::Hours(1)},
                                                         {"fluximage", absl::Hours(1)}});
    table =
        *LeaseTable::Create(&store, &clock,
                            {[this](const LeaseRecord& l, int delta) { counts.Apply(l, delta); },
                             [this](const LeaseRecord& l, int delta) {
                               metrics->ActiveLeasesAdd(l.provider, l.key_version, delta);
                             }});
    broker = std::make_unique<LeaseBroker>(ring.get(), table.get(), &counts, metrics.get(), &clock,
                                           TtlPolicy{});
    source.Put("lumenfall", "v1", kLmnV1);
    (void)ring->RefreshProvider("lumenfall", source);
  }

  std::string Scrape() { return prometheus::TextSerializer().Serialize(registry->Collect()); }

  core::FakeClock clock;
  providers::ProviderCatalog catalog;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<metrics::BrokerMetrics> metrics;
  testing::FakeSecretSource source;
  std::unique_ptr<rotation::KeyRing> ring;
  state::InMemoryLeaseStore store;
  LeaseCounts counts;
  std::unique_ptr<LeaseTable> table;
  std::unique_ptr<LeaseBroker> broker;
  identity::Identity app{"billing", false};
  identity::Identity other{"search", false};
  identity::Identity& other_identity = other;
};

}  // namespace credbroker::leasing
