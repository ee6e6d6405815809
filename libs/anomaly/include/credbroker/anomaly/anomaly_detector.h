// AnomalyDetector learns, per caller × provider, how many leases a caller takes (acquires and
// renewals) and what share of its provider calls fail authentication, and flags departures:
//   rate_spike       a bucket's lease count far above the caller's baseline;
//   failure_spike    a bucket's auth-failure ratio far above the baseline;
//   new_caller       a caller using a provider for the first time after the learning period;
//   retired_key_use  a caller still using a key version after it left service (retired,
//                    quarantined) — a copy kept outside the lease protocol.
// Baselines are exponentially weighted means and variances over fixed buckets, so memory is a
// few doubles per caller × provider and an anomaly is judged in standard deviations (the score).
// Each anomaly is counted (credbroker_anomalies_total), logged, handed to the sink (audit log and
// WatchKeys) and, when configured for its kind, suspends the caller on that provider for a while.
//
// Recording (RecordLease, RecordAuthFailure) and Suspended are on the request path: they touch
// only atomics of an entry found through a per-thread cache, never a shared lock, except the
// first time a thread sees a caller × provider. Tick closes buckets on a background thread.
// Callers are metric label values (bounded by the policy), not raw identities.
// Thread-safety: all methods are safe for concurrent use.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/anomaly/anomaly_stats.h"
#include "credbroker/core/clock.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::anomaly {

enum class AnomalyKind { kRateSpike, kFailureSpike, kNewCaller, kRetiredKeyUse };
// "rate_spike", "failure_spike", "new_caller", "retired_key_use".
absl::string_view AnomalyKindName(AnomalyKind kind);

enum class AnomalyAction {
  kLog,      // logged and audited; counted with action="log" (no alert)
  kAlert,    // also counted with action="alert", which the shipped alert rules page on
  kSuspend,  // also suspends the caller's leases on the provider for suspend_for
};
absl::string_view AnomalyActionName(AnomalyAction action);
// "log", "alert" or "suspend"; false for anything else.
bool ParseAnomalyAction(absl::string_view name, AnomalyAction* out);

struct AnomalyOptions {
  // Length of a counting bucket; baselines move once per bucket.
  absl::Duration bucket = absl::Minutes(1);
  // Horizon of the baselines: the EWMA weight is bucket / baseline_window.
  absl::Duration baseline_window = absl::Hours(1);
  // Score (standard deviations above the baseline) that makes a spike.
  double threshold = 4.0;
  // Buckets a caller × provider must have been seen for before spikes are judged.
  int warmup_buckets = 30;
  // A rate spike needs at least this many leases in the bucket; a failure spike this many
  // failures (tiny numbers are noise, whatever their score).
  int min_leases = 20;
  int min_failures = 5;
  // Callers first seen within this time of the start are the baseline, not "new".
  absl::Duration learning_period = absl::Hours(1);
  absl::Duration suspend_for = absl::Minutes(15);
  AnomalyAction rate_spike = AnomalyAction::kAlert;
  AnomalyAction failure_spike = AnomalyAction::kAlert;
  AnomalyAction new_caller = AnomalyAction::kAlert;
  AnomalyAction retired_key_use = AnomalyAction::kAlert;

  // From the validated `anomaly_detection:` block (the config loader fills in the defaults and
  // refuses unknown actions).
  static AnomalyOptions FromConfig(const v1::AnomalyConfig& config);
  // The (kind, action) names of every kind, e.g. ("rate_spike", "alert"): the anomaly counters
  // a provider starts with at 0.
  std::vector<std::pair<std::string, std::string>> KindActions() const;
};

// What the detector has learned about one caller × provider, to survive restarts.
struct AnomalyBaseline {
  std::string caller;
  std::string provider;
  double rate_mean = 0;
  double rate_var = 0;
  double fail_mean = 0;
  double fail_var = 0;
  int buckets = 0;
  // A suspension outlives a restart.
  absl::Time suspended_until = absl::InfinitePast();
};

struct Anomaly {
  AnomalyKind kind;
  AnomalyAction action;
  std::string caller;
  std::string provider;
  std::string key_version;  // retired_key_use only
  double score = 0;         // standard deviations; 0 for new_caller / retired_key_use
  std::string detail;       // for logs: counts and baselines, never key material
  absl::Time at;
  absl::Time suspended_until = absl::InfinitePast();
};

// The caller of baselines saved by versions that kept one series per metric label: "unknown"
// stood for every identity the policy does not name (identity::Policy::MetricLabel).
inline constexpr char kSharedBaselineCaller[] = "unknown";

class AnomalyDetector {
 public:
  // `sink` gets every anomaly after it was counted and logged (audit log, WatchKeys); it runs on
  // the thread that found the anomaly and must not block. Callers are identities: each has its
  // own baseline, suspension and new-caller verdict. `label_of` maps an identity to its bounded
  // metric label (default: the identity itself); identities sharing a label share nothing else.
  AnomalyDetector(AnomalyOptions options, const core::Clock* clock, AnomalyStats* stats,
                  std::function<void(const Anomaly&)> sink,
                  std::function<std::string(absl::string_view)> label_of = nullptr);
  ~AnomalyDetector();
  AnomalyDetector(const AnomalyDetector&) = delete;
  AnomalyDetector& operator=(const AnomalyDetector&) = delete;

  // A caller × provider pair that existed before this process started (restored leases): part
  // of the baseline, never "new".
  void Known(absl::string_view caller, absl::string_view provider);

  // Baselines saved by an earlier run (call before serving): their pairs are not new and their
  // spikes are judged without a fresh warm-up. `learning_until` is when the first run's learning
  // period ended, so a restart does not open a new window in which new callers go unnoticed.
  void Restore(const std::vector<AnomalyBaseline>& baselines, absl::Time learning_until);
  // A copy of every baseline, for saving.
  std::vector<AnomalyBaseline> Baselines();
  absl::Time learning_until();

  // A lease acquired or renewed.
  void RecordLease(absl::string_view caller, absl::string_view provider);
  // A reported provider auth failure (401 and 403 count; 429 is a rate limit, not a failure).
  void RecordAuthFailure(absl::string_view caller, absl::string_view provider, int http_status);
  // The caller used `key_version` after it left service. At most one anomaly per caller,
  // provider and version per bucket.
  void RecordRetiredKeyUse(absl::string_view caller, absl::string_view provider,
                           absl::string_view key_version, absl::string_view detail);

  // A caller asks for a lease: a caller × provider seen for the first time after the learning
  // period is reported as new_caller here, before it gets a key (so a "suspend" action refuses
  // even its first lease). Returns until when the caller is suspended (InfinitePast: not).
  absl::Time Admit(absl::string_view caller, absl::string_view provider);
  // Until when the caller is suspended on the provider, without recording anything; safe to call
  // under other locks (it never reports, so the sink never runs).
  absl::Time SuspendedUntil(absl::string_view caller, absl::string_view provider);

  // A suspension decided elsewhere (another replica, an earlier run) from the shared facts: the
  // caller is refused on the provider until `until` (a shorter one never cuts a longer short).
  // Reports nothing.
  void ApplySuspension(absl::string_view caller, absl::string_view provider, absl::Time until);

  // Closes every bucket that ended by now: scores it against the baseline, reports spikes, then
  // folds it into the baseline. Call at least once per bucket. True when a bucket was closed.
  bool Tick();

  const AnomalyOptions& options() const { return options_; }

 private:
  struct Series;
  Series& Find(absl::string_view caller, absl::string_view provider);
  // The series if it exists (never creates, never reports).
  Series* Lookup(absl::string_view caller, absl::string_view provider);
  void Report(Anomaly a);
  AnomalyAction ActionFor(AnomalyKind kind) const;

  const AnomalyOptions options_;
  const core::Clock* const clock_;
  AnomalyStats* const stats_;  // may be null
  const std::function<void(const Anomaly&)> sink_;
  const std::function<std::string(absl::string_view)> label_of_;
  const uint64_t id_;  // process-unique, keys the per-thread caches

  absl::Mutex mu_;
  // Never erased (bounded by authenticated identities × providers), so cached pointers stay valid.
  absl::flat_hash_map<std::string, std::unique_ptr<Series>> series_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> retired_reported_ ABSL_GUARDED_BY(mu_);
  absl::Time bucket_end_ ABSL_GUARDED_BY(mu_);
  absl::Time learning_until_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::anomaly
