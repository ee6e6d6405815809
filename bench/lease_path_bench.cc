// Handler work alone (no gRPC): Acquire+Release and Renew through LeaseBroker with the in-memory
// and the SQLite lease store, and the cost of recording one metric. Report ratios from one run
// (see shared/BENCHMARKS.md), e.g. SQLite/in-memory for the same operation.
#include <benchmark/benchmark.h>

#include "credbroker/core/log.h"
#include "credbroker/leases/lease_store.h"
#include "credbroker/testing/fake_secret_source.h"
#include "credbroker/testing/temp_dir.h"
#include "lease_broker.h"

namespace credbroker::broker {
namespace {

struct Rig {
  explicit Rig(bool sqlite) {
    core::SetLogLevel(core::LogLevel::kError);
    v1::BrokerConfig config;
    config.add_sources()->set_name("fake");
    config.add_providers()->set_name("lumenfall");
    catalog = *providers::ProviderCatalog::FromConfig(config);
    registry = std::make_shared<prometheus::Registry>();
    metrics = std::make_unique<metrics::BrokerMetrics>(registry);
    ring = std::make_unique<rotation::KeyRing>(&catalog, core::SystemClock::Get(), metrics.get());
    source.Put("lumenfall", "v1", "lmnfl_bench.0123456789abcdef");
    (void)ring->RefreshProvider("lumenfall", source);
    if (sqlite) {
      store = std::move(*leases::SqliteLeaseStore::Open(dir.Join("leases.db")));
    } else {
      store = std::make_unique<leases::InMemoryLeaseStore>();
    }
    table = std::make_unique<leases::LeaseTable>(store.get(), core::SystemClock::Get());
    broker = std::make_unique<LeaseBroker>(ring.get(), table.get(), metrics.get(),
                                           core::SystemClock::Get(), TtlPolicy{});
  }
  testing::TempDir dir;
  providers::ProviderCatalog catalog;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<metrics::BrokerMetrics> metrics;
  testing::FakeSecretSource source;
  std::unique_ptr<rotation::KeyRing> ring;
  std::unique_ptr<leases::LeaseStore> store;
  std::unique_ptr<leases::LeaseTable> table;
  std::unique_ptr<LeaseBroker> broker;
  identity::Identity caller{"bench", false};
};

void AcquireRelease(benchmark::State& state, bool sqlite) {
  Rig rig(sqlite);
  for (auto _ : state) {
    auto g = rig.broker->Acquire(rig.caller, "lumenfall", absl::ZeroDuration(), "");
    if (!g.ok()) state.SkipWithError("acquire failed");
    benchmark::DoNotOptimize(rig.broker->Release(rig.caller, g->lease.id));
  }
}
void BM_AcquireRelease_InMemory(benchmark::State& s) { AcquireRelease(s, false); }
void BM_AcquireRelease_Sqlite(benchmark::State& s) { AcquireRelease(s, true); }
BENCHMARK(BM_AcquireRelease_InMemory);
BENCHMARK(BM_AcquireRelease_Sqlite);

void Renew(benchmark::State& state, bool sqlite) {
  Rig rig(sqlite);
  auto g = rig.broker->Acquire(rig.caller, "lumenfall", absl::ZeroDuration(), "");
  for (auto _ : state) {
    benchmark::DoNotOptimize(rig.broker->Renew(rig.caller, g->lease.id, absl::ZeroDuration()));
  }
}
void BM_Renew_InMemory(benchmark::State& s) { Renew(s, false); }
void BM_Renew_Sqlite(benchmark::State& s) { Renew(s, true); }
BENCHMARK(BM_Renew_InMemory);
BENCHMARK(BM_Renew_Sqlite);

void BM_MetricRecord_InMemory(benchmark::State& state) {
  auto registry = std::make_shared<prometheus::Registry>();
  metrics::BrokerMetrics m(registry);
  for (auto _ : state) m.LeaseIssued("lumenfall", "bench");
}
BENCHMARK(BM_MetricRecord_InMemory)->Threads(1)->Threads(2);

}  // namespace
}  // namespace credbroker::broker

BENCHMARK_MAIN();
