// Handler work alone (no gRPC): Acquire+Release and Renew through leasing::LeaseBroker with the
// in-memory and the SQLite lease store, and the cost of the metric and anomaly recording one
// request does. Report ratios from one run (see shared/BENCHMARKS.md), e.g. SQLite/in-memory for
// the same operation, per-thread/locked metric lookups.
#include <benchmark/benchmark.h>
#if CB_HAVE_TCMALLOC
#include <gperftools/malloc_extension.h>
#endif

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "credbroker/anomaly/anomaly_detector.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/log.h"
#include "credbroker/leasing/lease_broker.h"
#include "credbroker/leasing/lease_counts.h"
#include "credbroker/leasing/lease_table.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/state/in_memory_lease_store.h"
#include "credbroker/state/sqlite/state.h"
#include "credbroker/testing/fake_secret_source.h"
#include "credbroker/testing/temp_dir.h"

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
    state::LeaseStore* store = &memory;
    if (sqlite) {
      v1::SqliteStoreConfig config;
      config.set_path(dir.Join("state.db"));
      sqlite_state = std::move(*state::sqlite::SqliteState::Open(config));
      store = &sqlite_state->leases();
    }
    table = *leasing::LeaseTable::Create(
        store, core::SystemClock::Get(),
        {[this](const leasing::LeaseRecord& l, int delta) { counts.Apply(l, delta); }});
    broker = std::make_unique<leasing::LeaseBroker>(ring.get(), table.get(), &counts, metrics.get(),
                                                    core::SystemClock::Get(), leasing::TtlPolicy{});
  }
  testing::TempDir dir;
  providers::ProviderCatalog catalog;
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<metrics::BrokerMetrics> metrics;
  testing::FakeSecretSource source;
  std::unique_ptr<rotation::KeyRing> ring;
  state::InMemoryLeaseStore memory;
  std::unique_ptr<state::sqlite::SqliteState> sqlite_state;
  leasing::LeaseCounts counts;
  std::unique_ptr<leasing::LeaseTable> table;
  std::unique_ptr<leasing::LeaseBroker> broker;
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

// What the gRPC server does: many lease writes in flight at once, none blocking a thread. Each
// iteration starts 64 acquires through the asynchronous API, waits for them, then releases the 64
// leases the same way; items are Acquire+Release pairs. The SQLite store group-commits what is in
// flight together; the ratio SQLite/in-memory is the store's cost under load.
void AcquireReleasePipelined(benchmark::State& state, bool sqlite) {
  Rig rig(sqlite);
  constexpr int kInFlight = 64;
  for (auto _ : state) {
    std::vector<std::string> ids(kInFlight);
    for (bool release : {false, true}) {
      absl::Mutex mu;
      int pending = kInFlight;
      int failed = 0;
      auto finished = [&](bool ok) {
        absl::MutexLock lock(&mu);
        --pending;
        if (!ok) ++failed;
      };
      for (int i = 0; i < kInFlight; ++i) {
        if (release) {
          rig.broker->ReleaseAsync(rig.caller, ids[i],
                                   [&](const absl::Status& s) { finished(s.ok()); });
        } else {
          rig.broker->AcquireAsync(rig.caller, "lumenfall", absl::ZeroDuration(), "",
                                   [&, i](absl::StatusOr<leasing::LeaseGrant> g) {
                                     if (g.ok()) ids[i] = g->lease.id;
                                     finished(g.ok());
                                   });
        }
      }
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          // absl::Condition wants the same (non-const) pointer type for the function and the arg.
          +[](int* n) { return *n == 0; },  // NOLINT(readability-non-const-parameter)
          &pending));
      if (failed > 0) state.SkipWithError("a lease call failed");
    }
  }
  state.SetItemsProcessed(state.iterations() * kInFlight);
}
void BM_AcquireReleasePipelined_InMemory(benchmark::State& s) { AcquireReleasePipelined(s, false); }
void BM_AcquireReleasePipelined_Sqlite(benchmark::State& s) { AcquireReleasePipelined(s, true); }
BENCHMARK(BM_AcquireReleasePipelined_InMemory)->UseRealTime();
BENCHMARK(BM_AcquireReleasePipelined_Sqlite)->UseRealTime();

// The same load as a steady stream, as the server sees it: 64 lease calls always in flight, each
// completion starting the next call of its slot (acquire, then release, then a new acquire), so
// the callers and the committer work at the same time. An iteration is 1,024 Acquire+Release
// pairs; items are pairs.
void AcquireReleaseStream(benchmark::State& state, bool sqlite) {
  Rig rig(sqlite);
  constexpr int kInFlight = 64;
  constexpr int kPairs = 1024;
  struct Completed {
    std::string acquired_id;  // empty after a release
    bool ok = false;
  };
  absl::Mutex mu;
  std::vector<Completed> completed;
  auto push = [&](Completed c) {
    absl::MutexLock lock(&mu);
    completed.push_back(std::move(c));
  };
  auto acquire = [&] {
    rig.broker->AcquireAsync(rig.caller, "lumenfall", absl::ZeroDuration(), "",
                             [&](absl::StatusOr<leasing::LeaseGrant> g) {
                               push(g.ok() ? Completed{g->lease.id, true} : Completed{});
                             });
  };
  std::vector<Completed> batch;
  for (auto _ : state) {
    int started = 0;
    int finished = 0;
    for (; started < kInFlight; ++started) acquire();
    while (finished < kPairs) {
      // Poll rather than sleep: like the server's RPC threads, which keep receiving while
      // earlier requests commit, the caller must not add a thread wake-up per completion.
      while (true) {
        {
          absl::MutexLock lock(&mu);
          if (!completed.empty()) {
            batch.swap(completed);
            break;
          }
        }
        std::this_thread::yield();
      }
      for (Completed& c : batch) {
        if (!c.ok) {
          state.SkipWithError("a lease call failed");
          return;
        }
        if (!c.acquired_id.empty()) {
          rig.broker->ReleaseAsync(rig.caller, c.acquired_id, [&](const absl::Status& s) {
            push(Completed{"", s.ok()});
          });
          continue;
        }
        ++finished;
        if (started < kPairs) {
          ++started;
          acquire();
        }
      }
      batch.clear();
    }
  }
  state.SetItemsProcessed(state.iterations() * kPairs);
  if (rig.sqlite_state != nullptr) {
    for (const auto& [name, value] : rig.sqlite_state->Summary()) {
      double v = 0;
      if (absl::SimpleAtod(value, &v)) state.counters[name] = v;
    }
    if (state.counters["commits"] > 0) {
      state.counters["writes_per_commit"] = state.counters["writes"] / state.counters["commits"];
    }
  }
}
void BM_AcquireReleaseStream_InMemory(benchmark::State& s) { AcquireReleaseStream(s, false); }
void BM_AcquireReleaseStream_Sqlite(benchmark::State& s) { AcquireReleaseStream(s, true); }
BENCHMARK(BM_AcquireReleaseStream_InMemory)->UseRealTime();
BENCHMARK(BM_AcquireReleaseStream_Sqlite)->UseRealTime();

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

// What one AcquireLease + ReleaseLease records: issued and released counters, the active-lease
// gauge up and down, two latency histogram observations. Run on 1 and 2 threads: the per-thread
// child caches take no shared lock, so two threads should cost about what one does.
void BM_MetricRecord_PerRequest(benchmark::State& state) {
  static auto* registry =
      new std::shared_ptr<prometheus::Registry>(std::make_shared<prometheus::Registry>());
  static auto* m = new metrics::BrokerMetrics(*registry);
  for (auto _ : state) {
    m->LeaseIssued("lumenfall", "billing/api");
    m->ActiveLeasesAdd("lumenfall", "v1", 1);
    m->RpcCompleted("AcquireLease", "OK", absl::Microseconds(80));
    m->LeaseReleased("lumenfall", "billing/api");
    m->ActiveLeasesAdd("lumenfall", "v1", -1);
    m->RpcCompleted("ReleaseLease", "OK", absl::Microseconds(60));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MetricRecord_PerRequest)->Threads(1)->Threads(2)->UseRealTime();

// The same six updates through the reader-locked lookup the per-thread caches replaced (the
// kLocked mode, still used for series that must vanish from the very next scrape): the
// baseline of the ratio.
void BM_MetricRecord_PerRequestLocked(benchmark::State& state) {
  static auto* registry =
      new std::shared_ptr<prometheus::Registry>(std::make_shared<prometheus::Registry>());
  static auto& issued = prometheus::BuildCounter().Name("bench_issued_total").Register(**registry);
  static auto& active = prometheus::BuildGauge().Name("bench_active").Register(**registry);
  static auto& latency = prometheus::BuildHistogram().Name("bench_latency").Register(**registry);
  static auto* issued_cache = new metrics::ChildCache<prometheus::Counter>(
      issued, {"provider", "caller"}, metrics::ChildLookup::kLocked);
  static auto* active_cache = new metrics::ChildCache<prometheus::Gauge>(
      active, {"provider", "key_version"}, metrics::ChildLookup::kLocked);
  static auto* latency_cache = new metrics::ChildCache<prometheus::Histogram>(
      latency, {"method", "code"}, metrics::ChildLookup::kLocked);
  static const prometheus::Histogram::BucketBoundaries buckets = {1e-4, 1e-3, 1e-2};
  for (auto _ : state) {
    issued_cache->Get({"lumenfall", "billing/api"}).Increment();
    active_cache->Get({"lumenfall", "v1"}).Increment();
    latency_cache->Get({"AcquireLease", "OK"}, buckets).Observe(80e-6);
    issued_cache->Get({"lumenfall", "billing/api"}).Increment();
    active_cache->Get({"lumenfall", "v1"}).Decrement();
    latency_cache->Get({"ReleaseLease", "OK"}, buckets).Observe(60e-6);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MetricRecord_PerRequestLocked)->Threads(1)->Threads(2)->UseRealTime();

// The anomaly detector's per-lease recording (a per-thread lookup and a relaxed atomic add).
void BM_AnomalyRecordLease(benchmark::State& state) {
  static auto* clock = new core::FakeClock();
  static auto* detector =
      new anomaly::AnomalyDetector(anomaly::AnomalyOptions{}, clock, nullptr, nullptr);
  for (auto _ : state) detector->RecordLease("billing/api", "lumenfall");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AnomalyRecordLease)->Threads(1)->Threads(2)->UseRealTime();

#if CB_HAVE_TCMALLOC
// Bytes the allocator has handed out and not had back (tcmalloc's own count: freed memory it
// keeps, and pages it has not returned to the kernel, are not in it).
size_t AllocatedBytes() {
  size_t bytes = 0;
  MallocExtension::instance()->GetNumericProperty("generic.current_allocated_bytes", &bytes);
  return bytes;
}

// The fixed memory cost of an active lease in the broker's lease cache (the table every replica
// keeps, with the per-caller and per-version counts it feeds), at state.range(0) leases from one
// caller × provider × key version: the allocator's live bytes after the cache loaded them from
// the store, less before, per lease. The store's own copy is not counted (SQLite keeps leases on
// disk; the in-memory store here only feeds the cache). RSS-based figures (grpc_load
// --scale-leases) also count what the allocator keeps for reuse.
void BM_LeaseCacheBytesPerLease(benchmark::State& state) {
  const int64_t n = state.range(0);
  state::InMemoryLeaseStore store;
  const absl::Time now = absl::Now();
  for (int64_t i = 0; i < n; ++i) {
    state::LeaseRecord l;
    l.id = core::NewLeaseId();
    l.caller = "billing/api";
    l.provider = "lumenfall";
    l.key_version = "v1";
    l.key_fingerprint = "0123456789ab";
    l.issued_at = now;
    l.expires_at = now + absl::Hours(1);
    if (!store.Create(l).ok()) state.SkipWithError("create failed");
  }
  for (auto _ : state) {
    const size_t before = AllocatedBytes();
    leasing::LeaseCounts counts;
    auto table = leasing::LeaseTable::Create(
        &store, core::SystemClock::Get(),
        {[&counts](const leasing::LeaseRecord& l, int delta) { counts.Apply(l, delta); }});
    if (!table.ok() || (*table)->size() != static_cast<size_t>(n)) {
      state.SkipWithError("the cache did not load every lease");
    }
    const size_t after = AllocatedBytes();
    state.counters["bytes_per_lease"] =
        static_cast<double>(after - before) / static_cast<double>(n);
  }
}
BENCHMARK(BM_LeaseCacheBytesPerLease)
    ->Arg(1000)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
#endif

}  // namespace
}  // namespace credbroker::broker

// As the broker's main does: without Debian's Abseil lock-cycle detector (a graph lookup per lock).
int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
