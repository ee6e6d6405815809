// BrokerMetrics is credbroker's metric set (all names prefixed `credbroker_`), recorded by every
// layer and served on /metrics by prometheus-cpp.
//
// Label values are bounded: callers are configured identities, providers are configured
// providers, key versions exist only while live (RemoveKeyVersion drops their series), HTTP
// statuses are collapsed to the reported set. Never pass key material or lease ids as labels.
//
// Label children are resolved once and cached per thread, so recording on the hot path is a
// thread-local hash lookup plus an atomic add: no shared lock, no allocation, never a
// Family::Add (bench/lease_path_bench measures it).
// Thread-safety: all methods are safe for concurrent use.
#pragma once

#include <atomic>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/anomaly/anomaly_stats.h"
#include "credbroker/identity/audit_log.h"
#include "credbroker/leasing/lease_stats.h"
#include "credbroker/rotation/rotation_stats.h"
#include "credbroker/rpc/rpc_stats.h"
#include "credbroker/secrets/secret_source.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace credbroker::metrics {

// How a ChildCache finds children on the hot path.
enum class ChildLookup {
  // Per-thread caches of resolved children, invalidated by an epoch when a child is removed: no
  // shared lock and no allocation once a thread has seen the label values. Removed children
  // disappear from lookups at once and from scrapes at the next Purge after a grace period, so
  // a thread that resolved one a moment before never touches freed memory.
  kPerThread,
  // A reader-locked shared map; removal is immediate. For families changed off the hot path
  // whose series must vanish from the very next scrape (one state series per key version).
  kLocked,
};

// Family children by label values, created on first use.
template <typename T>
class ChildCache {
 public:
  ChildCache(prometheus::Family<T>& family, std::vector<std::string> label_names,
             ChildLookup lookup = ChildLookup::kPerThread);

  template <typename... Args>
  T& Get(std::initializer_list<absl::string_view> values, Args&&... args);
  // The child if it exists (no series is created).
  T* Find(std::initializer_list<absl::string_view> values);
  // Removes the children whose first two labels are (`first`, `second`).
  void RemoveWhere(absl::string_view first, absl::string_view second);
  // Deletes children removed at least `grace` ago (kPerThread only).
  void Purge(absl::Duration grace);

 private:
  struct Local {
    uint64_t epoch = 0;
    absl::flat_hash_map<std::string, T*> children;
  };
  static void AppendKey(std::string& out, std::initializer_list<absl::string_view> values);
  // This thread's cache, emptied first if a child was removed since its last use.
  Local& ThisThread();
  template <typename... Args>
  T& GetLocked(const std::string& key, std::initializer_list<absl::string_view> values,
               Args&&... args);

  prometheus::Family<T>& family_;
  const std::vector<std::string> label_names_;
  const ChildLookup lookup_;
  const uint64_t id_;  // process-unique: keys the per-thread caches
  std::atomic<uint64_t> epoch_{1};
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::pair<std::vector<std::string>, T*>> children_
      ABSL_GUARDED_BY(mu_);
  // Removed but not yet deleted (kPerThread), with the time of removal.
  std::vector<std::pair<absl::Time, T*>> removed_ ABSL_GUARDED_BY(mu_);
};

// One Prometheus implementation of every component's stats interface: each component sees only
// its own (leasing::LeaseStats, rotation::RotationStats, anomaly::AnomalyStats, rpc::RpcStats,
// secrets::SourceStats).
class BrokerMetrics final : public anomaly::AnomalyStats,
                            public identity::AuditStats,
                            public leasing::LeaseStats,
                            public rotation::RotationStats,
                            public rpc::RpcStats,
                            public secrets::SourceStats {
 public:
  explicit BrokerMetrics(std::shared_ptr<prometheus::Registry> registry);
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  // Creates the provider's event counters at 0 (quarantines, suspected revocations, rejected
  // versions, mint failures when `minted`, and an anomaly counter per (kind, action)), so that
  // rate() and increase() see the first event instead of a series appearing at 1.
  void InitProvider(absl::string_view provider, bool minted,
                    const std::vector<std::pair<std::string, std::string>>& anomaly_kind_actions);
  // Deletes series that RemoveKeyVersion dropped at least `grace` ago: hot-path series leave the
  // scrape only then, so a thread that resolved one a moment before never touches freed memory.
  void PurgeRemoved(absl::Duration grace);

  // leasing::LeaseStats
  void LeaseIssued(absl::string_view provider, absl::string_view caller) override;
  void LeaseRenewed(absl::string_view provider, absl::string_view caller) override;
  void LeaseReleased(absl::string_view provider, absl::string_view caller) override;
  void LeaseExpired(absl::string_view provider, absl::string_view caller) override;
  void LeaseRevoked(absl::string_view provider, absl::string_view caller) override;
  void ActiveLeasesAdd(absl::string_view provider, absl::string_view key_version,
                       double delta) override;
  void AuthFailureReported(absl::string_view provider, absl::string_view key_version,
                           absl::string_view caller, int http_status,
                           absl::string_view classification) override;
  void LeaseRequestDenied(absl::string_view method, absl::string_view reason) override;
  void PolicyDenied(absl::string_view caller, absl::string_view provider,
                    absl::string_view reason) override;
  void RateLimitHit(absl::string_view caller, absl::string_view provider) override;

  // rotation::RotationStats
  void BackendFetchError(absl::string_view backend, absl::string_view reason) override;
  void BackendSuccess(absl::string_view backend, absl::Time at) override;
  void KeyVersionRejected(absl::string_view provider, absl::string_view reason) override;
  void KeyVersionState(absl::string_view provider, absl::string_view key_version,
                       absl::string_view state) override;
  void ProviderServable(absl::string_view provider, bool servable) override;
  void KeyAge(absl::string_view provider, absl::string_view key_version,
              absl::Duration age) override;
  void RotationDueIn(absl::string_view provider, absl::Duration until_due) override;
  void RemoveKeyVersion(absl::string_view provider, absl::string_view key_version) override;
  void PurgeRemoved() override { PurgeRemoved(absl::Seconds(1)); }
  void KeyTransition(absl::string_view provider, absl::string_view state) override;
  void ProbeResult(absl::string_view provider, absl::string_view purpose,
                   absl::string_view result) override;
  void ProbeFailing(absl::string_view provider, bool failing) override;
  void BackendPromoteFailing(absl::string_view provider, bool failing) override;
  void ProbeCalibrated(absl::string_view provider, bool calibrated) override;
  void KeyQuarantined(absl::string_view provider, absl::string_view reason) override;
  void MintFailure(absl::string_view provider, absl::string_view operation) override;
  void RevocationSuspected(absl::string_view provider) override;
  void KeysToDelete(absl::string_view provider, int64_t count) override;

  // identity::AuditStats
  void AuditLinesLost(uint64_t lines) override;
  void AuditLinesFolded(uint64_t lines) override;
  void AuditWriteFailed() override;

  // rpc::RpcStats
  void RpcCompleted(absl::string_view method, absl::string_view code,
                    absl::Duration latency) override;
  void CallerAuthFailure(absl::string_view reason) override;

  // anomaly::AnomalyStats
  void Anomaly(absl::string_view provider, absl::string_view kind,
               absl::string_view action) override;
  void AnomalyScore(absl::string_view caller, absl::string_view provider, double score) override;
  void SuspendedCallers(absl::string_view provider, double count) override;
  void LearningUntil(absl::Time until) override;

  // secrets::SourceStats
  void TokenRefresh(absl::string_view source, absl::string_view result) override;
  void Throttled(absl::string_view source) override;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& leases_issued_;
  prometheus::Family<prometheus::Counter>& leases_renewed_;
  prometheus::Family<prometheus::Counter>& leases_released_;
  prometheus::Family<prometheus::Counter>& leases_expired_;
  prometheus::Family<prometheus::Counter>& leases_revoked_;
  prometheus::Family<prometheus::Gauge>& active_leases_;
  prometheus::Family<prometheus::Counter>& auth_failures_;
  prometheus::Family<prometheus::Counter>& lease_denied_;
  prometheus::Family<prometheus::Counter>& caller_auth_failures_;
  prometheus::Family<prometheus::Counter>& policy_denials_;
  prometheus::Family<prometheus::Counter>& rate_limit_hits_;
  prometheus::Family<prometheus::Counter>& backend_errors_;
  prometheus::Family<prometheus::Gauge>& backend_last_success_;
  prometheus::Family<prometheus::Counter>& key_rejected_;
  prometheus::Family<prometheus::Gauge>& key_state_;
  prometheus::Family<prometheus::Gauge>& provider_servable_;
  prometheus::Family<prometheus::Gauge>& key_age_;
  prometheus::Family<prometheus::Gauge>& rotation_due_;
  prometheus::Family<prometheus::Histogram>& rpc_latency_;
  prometheus::Family<prometheus::Counter>& transitions_;
  prometheus::Family<prometheus::Counter>& probes_;
  prometheus::Family<prometheus::Gauge>& probe_failing_;
  prometheus::Family<prometheus::Gauge>& backend_promote_failing_;
  prometheus::Family<prometheus::Counter>& backend_token_refreshes_;
  prometheus::Family<prometheus::Counter>& backend_throttled_;
  prometheus::Family<prometheus::Gauge>& keys_to_delete_;
  prometheus::Family<prometheus::Gauge>& probe_calibrated_;
  prometheus::Family<prometheus::Counter>& quarantines_;
  prometheus::Family<prometheus::Counter>& mint_failures_;
  prometheus::Family<prometheus::Counter>& revocation_suspected_;
  prometheus::Family<prometheus::Counter>& anomalies_;
  prometheus::Family<prometheus::Gauge>& anomaly_score_;
  prometheus::Family<prometheus::Gauge>& suspended_callers_;
  prometheus::Gauge* const learning_until_;
  prometheus::Counter* const audit_lost_;
  prometheus::Counter* const audit_folded_;
  prometheus::Counter* const audit_write_failures_;

  ChildCache<prometheus::Counter> issued_{leases_issued_, {"provider", "caller"}};
  ChildCache<prometheus::Counter> renewed_{leases_renewed_, {"provider", "caller"}};
  ChildCache<prometheus::Counter> released_{leases_released_, {"provider", "caller"}};
  ChildCache<prometheus::Counter> expired_{leases_expired_, {"provider", "caller"}};
  ChildCache<prometheus::Counter> revoked_{leases_revoked_, {"provider", "caller"}};
  ChildCache<prometheus::Gauge> active_{active_leases_, {"provider", "key_version"}};
  ChildCache<prometheus::Counter> auth_fail_{
      auth_failures_, {"provider", "key_version", "caller", "http_status", "classification"}};
  ChildCache<prometheus::Counter> denied_{lease_denied_, {"method", "reason"}};
  ChildCache<prometheus::Counter> caller_auth_{caller_auth_failures_, {"reason"}};
  ChildCache<prometheus::Counter> policy_denied_{policy_denials_, {"caller", "provider", "reason"}};
  ChildCache<prometheus::Counter> rate_limited_{rate_limit_hits_, {"caller", "provider"}};
  ChildCache<prometheus::Counter> backend_err_{backend_errors_, {"backend", "reason"}};
  ChildCache<prometheus::Gauge> backend_ok_{backend_last_success_, {"backend"}};
  ChildCache<prometheus::Counter> rejected_{key_rejected_, {"provider", "reason"}};
  ChildCache<prometheus::Gauge> key_state_children_{
      key_state_, {"provider", "key_version", "state"}, ChildLookup::kLocked};
  ChildCache<prometheus::Gauge> servable_{provider_servable_, {"provider"}};
  ChildCache<prometheus::Gauge> key_age_children_{
      key_age_, {"provider", "key_version"}, ChildLookup::kLocked};
  ChildCache<prometheus::Gauge> due_{rotation_due_, {"provider"}};
  ChildCache<prometheus::Histogram> rpc_{rpc_latency_, {"method", "code"}};
  ChildCache<prometheus::Counter> transitions_children_{transitions_, {"provider", "state"}};
  ChildCache<prometheus::Counter> probes_children_{probes_, {"provider", "purpose", "result"}};
  ChildCache<prometheus::Gauge> probe_failing_children_{probe_failing_, {"provider"}};
  ChildCache<prometheus::Gauge> backend_promote_failing_children_{backend_promote_failing_,
                                                                  {"provider"}};
  ChildCache<prometheus::Counter> token_refresh_children_{backend_token_refreshes_,
                                                          {"backend", "result"}};
  ChildCache<prometheus::Counter> throttled_children_{backend_throttled_, {"backend"}};
  ChildCache<prometheus::Gauge> keys_to_delete_children_{keys_to_delete_, {"provider"}};
  ChildCache<prometheus::Gauge> probe_calibrated_children_{probe_calibrated_, {"provider"}};
  ChildCache<prometheus::Counter> quarantines_children_{quarantines_, {"provider", "reason"}};
  ChildCache<prometheus::Counter> mint_failures_children_{mint_failures_,
                                                          {"provider", "operation"}};
  ChildCache<prometheus::Counter> revocation_children_{revocation_suspected_, {"provider"}};
  ChildCache<prometheus::Counter> anomalies_children_{anomalies_, {"provider", "kind", "action"}};
  ChildCache<prometheus::Gauge> anomaly_score_children_{anomaly_score_, {"caller", "provider"}};
  ChildCache<prometheus::Gauge> suspended_children_{suspended_callers_, {"provider"}};
};

// The label value for an HTTP status in auth-failure reports: 401, 403, 429 or "other".
absl::string_view HttpStatusLabel(int http_status);

}  // namespace credbroker::metrics
