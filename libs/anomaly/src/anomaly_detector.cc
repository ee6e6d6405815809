#include "credbroker/anomaly/anomaly_detector.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"

namespace credbroker::anomaly {
namespace {

std::atomic<uint64_t> next_detector_id{1};

// Per-thread: detector id → (caller \x1f provider → series). Entries are never erased by the
// detector, so the pointers stay valid for its life; ids are never reused.
template <typename S>
absl::flat_hash_map<std::string, S*>& LocalCache(uint64_t id) {
  thread_local absl::flat_hash_map<uint64_t, absl::flat_hash_map<std::string, S*>> caches;
  return caches[id];
}

// "caller\x1fprovider" in a per-thread buffer (no allocation once warm); valid until the next
// call on this thread.
const std::string& SeriesKey(absl::string_view caller, absl::string_view provider) {
  thread_local std::string key;
  key.assign(caller.data(), caller.size());
  key.push_back('\x1f');
  key.append(provider.data(), provider.size());
  return key;
}

absl::Time FromMicrosOrPast(int64_t us) {
  return us == std::numeric_limits<int64_t>::min() ? absl::InfinitePast()
                                                   : absl::FromUnixMicros(us);
}

// Exponentially weighted mean and variance (West's incremental form).
void Fold(double x, double alpha, double* mean, double* var) {
  const double diff = x - *mean;
  const double incr = alpha * diff;
  *mean += incr;
  *var = (1 - alpha) * (*var + diff * incr);
}

}  // namespace

absl::string_view AnomalyKindName(AnomalyKind kind) {
  switch (kind) {
    case AnomalyKind::kRateSpike:
      return "rate_spike";
    case AnomalyKind::kFailureSpike:
      return "failure_spike";
    case AnomalyKind::kNewCaller:
      return "new_caller";
    case AnomalyKind::kRetiredKeyUse:
      return "retired_key_use";
  }
  return "unknown";
}

absl::string_view AnomalyActionName(AnomalyAction action) {
  switch (action) {
    case AnomalyAction::kLog:
      return "log";
    case AnomalyAction::kAlert:
      return "alert";
    case AnomalyAction::kSuspend:
      return "suspend";
  }
  return "log";
}

bool ParseAnomalyAction(absl::string_view name, AnomalyAction* out) {
  for (AnomalyAction a : {AnomalyAction::kLog, AnomalyAction::kAlert, AnomalyAction::kSuspend}) {
    if (AnomalyActionName(a) == name) {
      *out = a;
      return true;
    }
  }
  return false;
}

struct AnomalyDetector::Series {
  Series(std::string c, std::string l, std::string p)
      : caller(std::move(c)), label(std::move(l)), provider(std::move(p)) {}
  const std::string caller;  // the identity
  const std::string label;   // its metric label
  const std::string provider;
  // The open bucket, written on the request path.
  std::atomic<int64_t> leases{0};
  std::atomic<int64_t> failures{0};
  std::atomic<int64_t> suspended_until_us{std::numeric_limits<int64_t>::min()};
  // Baselines, touched by Tick only (under mu_).
  double rate_mean = 0;
  double rate_var = 0;
  double fail_mean = 0;
  double fail_var = 0;
  int buckets = 0;
};

std::vector<std::pair<std::string, std::string>> AnomalyOptions::KindActions() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [kind, action] : {std::pair{AnomalyKind::kRateSpike, rate_spike},
                                     std::pair{AnomalyKind::kFailureSpike, failure_spike},
                                     std::pair{AnomalyKind::kNewCaller, new_caller},
                                     std::pair{AnomalyKind::kRetiredKeyUse, retired_key_use}}) {
    out.emplace_back(AnomalyKindName(kind), AnomalyActionName(action));
  }
  return out;
}

AnomalyOptions AnomalyOptions::FromConfig(const v1::AnomalyConfig& config) {
  AnomalyOptions o;
  o.bucket = core::FromProtoDuration(config.bucket());
  o.baseline_window = core::FromProtoDuration(config.baseline_window());
  o.threshold = config.threshold();
  o.warmup_buckets = config.warmup_buckets();
  o.min_leases = config.min_leases();
  o.min_failures = config.min_failures();
  o.learning_period = core::FromProtoDuration(config.learning_period());
  o.suspend_for = core::FromProtoDuration(config.suspend_for());
  // An action the loader would have refused keeps its default.
  ParseAnomalyAction(config.rate_spike_action(), &o.rate_spike);
  ParseAnomalyAction(config.failure_spike_action(), &o.failure_spike);
  ParseAnomalyAction(config.new_caller_action(), &o.new_caller);
  ParseAnomalyAction(config.retired_key_use_action(), &o.retired_key_use);
  return o;
}

AnomalyDetector::AnomalyDetector(AnomalyOptions options, const core::Clock* clock,
                                 AnomalyStats* stats, std::function<void(const Anomaly&)> sink,
                                 std::function<std::string(absl::string_view)> label_of)
    : options_(options),
      clock_(clock),
      stats_(stats),
      sink_(std::move(sink)),
      label_of_(label_of ? std::move(label_of)
                         : [](absl::string_view caller) { return std::string(caller); }),
      id_(next_detector_id.fetch_add(1)) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock->Now();
  bucket_end_ = now + options_.bucket;
  learning_until_ = now + options_.learning_period;
  if (stats_) stats_->LearningUntil(learning_until_);
}

AnomalyDetector::~AnomalyDetector() = default;

AnomalyAction AnomalyDetector::ActionFor(AnomalyKind kind) const {
  switch (kind) {
    case AnomalyKind::kRateSpike:
      return options_.rate_spike;
    case AnomalyKind::kFailureSpike:
      return options_.failure_spike;
    case AnomalyKind::kNewCaller:
      return options_.new_caller;
    case AnomalyKind::kRetiredKeyUse:
      return options_.retired_key_use;
  }
  return AnomalyAction::kAlert;
}

void AnomalyDetector::Known(absl::string_view caller, absl::string_view provider) {
  absl::MutexLock lock(&mu_);
  auto& slot = series_[absl::StrCat(caller, "\x1f", provider)];
  if (!slot) {
    slot = std::make_unique<Series>(std::string(caller), label_of_(caller), std::string(provider));
  }
}

void AnomalyDetector::Restore(const std::vector<AnomalyBaseline>& baselines,
                              absl::Time learning_until) {
  absl::MutexLock lock(&mu_);
  learning_until_ = learning_until;
  bool shared = false;
  for (const AnomalyBaseline& b : baselines) {
    if (b.caller == kSharedBaselineCaller) {
      // An earlier version's series for every identity without a label of its own: it says
      // nothing about any one of them.
      shared = true;
      continue;
    }
    auto& slot = series_[absl::StrCat(b.caller, "\x1f", b.provider)];
    if (!slot) slot = std::make_unique<Series>(b.caller, label_of_(b.caller), b.provider);
    slot->rate_mean = b.rate_mean;
    slot->rate_var = b.rate_var;
    slot->fail_mean = b.fail_mean;
    slot->fail_var = b.fail_var;
    slot->buckets = b.buckets;
    if (b.suspended_until != absl::InfinitePast()) {
      slot->suspended_until_us.store(absl::ToUnixMicros(b.suspended_until),
                                     std::memory_order_relaxed);
    }
  }
  if (shared) {
    // Those identities were never learned one by one: learn them now rather than call each of
    // them new. Once: the shared series is not kept, so the next save drops it.
    learning_until_ = std::max(learning_until_, clock_->Now() + options_.learning_period);
    core::LogWarning(
        "anomaly baselines of an earlier version shared by unlabelled callers: learning them one "
        "by one until the learning period ends",
        {{"learning_until", absl::FormatTime(learning_until_)}});
  }
  if (stats_) stats_->LearningUntil(learning_until_);
}

std::vector<AnomalyBaseline> AnomalyDetector::Baselines() {
  absl::MutexLock lock(&mu_);
  std::vector<AnomalyBaseline> out;
  out.reserve(series_.size());
  for (const auto& entry : series_) {
    const Series& s = *entry.second;
    out.push_back({s.caller, s.provider, s.rate_mean, s.rate_var, s.fail_mean, s.fail_var,
                   s.buckets,
                   FromMicrosOrPast(s.suspended_until_us.load(std::memory_order_relaxed))});
  }
  return out;
}

absl::Time AnomalyDetector::learning_until() {
  absl::MutexLock lock(&mu_);
  return learning_until_;
}

AnomalyDetector::Series& AnomalyDetector::Find(absl::string_view caller,
                                               absl::string_view provider) {
  const std::string& key = SeriesKey(caller, provider);
  auto& local = LocalCache<Series>(id_);
  if (auto it = local.find(key); it != local.end()) return *it->second;
  Series* series = nullptr;
  bool created = false;
  absl::Time learning_until;
  {
    absl::MutexLock lock(&mu_);
    auto& slot = series_[key];
    if (!slot) {
      slot =
          std::make_unique<Series>(std::string(caller), label_of_(caller), std::string(provider));
      created = true;
    }
    series = slot.get();
    learning_until = learning_until_;
  }
  local.emplace(key, series);
  const absl::Time now = clock_->Now();
  if (created && now >= learning_until) {
    Anomaly a;
    a.kind = AnomalyKind::kNewCaller;
    a.caller = std::string(caller);
    a.provider = std::string(provider);
    a.detail = "first use of this provider by this caller since the broker started learning";
    a.at = now;
    Report(std::move(a));
  }
  return *series;
}

void AnomalyDetector::RecordLease(absl::string_view caller, absl::string_view provider) {
  Find(caller, provider).leases.fetch_add(1, std::memory_order_relaxed);
}

void AnomalyDetector::RecordAuthFailure(absl::string_view caller, absl::string_view provider,
                                        int http_status) {
  if (http_status != 401 && http_status != 403) return;
  Find(caller, provider).failures.fetch_add(1, std::memory_order_relaxed);
}

void AnomalyDetector::RecordRetiredKeyUse(absl::string_view caller, absl::string_view provider,
                                          absl::string_view key_version, absl::string_view detail) {
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    absl::Time& last =
        retired_reported_[absl::StrCat(caller, "\x1f", provider, "\x1f", key_version)];
    if (now - last < options_.bucket) return;
    last = now;
    // Bounded: forget entries older than a bucket once the map grows.
    if (retired_reported_.size() > 4096) {
      absl::erase_if(retired_reported_,
                     [&](const auto& e) { return now - e.second >= options_.bucket; });
    }
  }
  Find(caller, provider);  // a suspension needs the series
  Anomaly a;
  a.kind = AnomalyKind::kRetiredKeyUse;
  a.caller = std::string(caller);
  a.provider = std::string(provider);
  a.key_version = std::string(key_version);
  a.detail = std::string(detail);
  a.at = now;
  Report(std::move(a));
}

absl::Time AnomalyDetector::Admit(absl::string_view caller, absl::string_view provider) {
  return FromMicrosOrPast(
      Find(caller, provider).suspended_until_us.load(std::memory_order_relaxed));
}

absl::Time AnomalyDetector::SuspendedUntil(absl::string_view caller, absl::string_view provider) {
  Series* s = Lookup(caller, provider);
  return s == nullptr ? absl::InfinitePast()
                      : FromMicrosOrPast(s->suspended_until_us.load(std::memory_order_relaxed));
}

AnomalyDetector::Series* AnomalyDetector::Lookup(absl::string_view caller,
                                                 absl::string_view provider) {
  const std::string& key = SeriesKey(caller, provider);
  auto& local = LocalCache<Series>(id_);
  if (auto it = local.find(key); it != local.end()) return it->second;
  absl::MutexLock lock(&mu_);
  auto it = series_.find(key);
  if (it == series_.end()) return nullptr;
  local.emplace(key, it->second.get());
  return it->second.get();
}

void AnomalyDetector::ApplySuspension(absl::string_view caller, absl::string_view provider,
                                      absl::Time until) {
  Series* s = Lookup(caller, provider);
  if (s == nullptr) {
    absl::MutexLock lock(&mu_);
    auto& slot = series_[SeriesKey(caller, provider)];
    if (!slot)
      slot =
          std::make_unique<Series>(std::string(caller), label_of_(caller), std::string(provider));
    s = slot.get();
  }
  const int64_t until_us = absl::ToUnixMicros(until);
  int64_t seen = s->suspended_until_us.load(std::memory_order_relaxed);
  while (seen < until_us &&
         !s->suspended_until_us.compare_exchange_weak(seen, until_us, std::memory_order_relaxed)) {
  }
}

void AnomalyDetector::Report(Anomaly a) {
  a.action = ActionFor(a.kind);
  if (a.action == AnomalyAction::kSuspend) {
    a.suspended_until = a.at + options_.suspend_for;
    Series& s = Find(a.caller, a.provider);
    s.suspended_until_us.store(absl::ToUnixMicros(a.suspended_until), std::memory_order_relaxed);
  }
  if (stats_) stats_->Anomaly(a.provider, AnomalyKindName(a.kind), AnomalyActionName(a.action));
  const std::string score = absl::StrFormat("%.1f", a.score);
  const std::string until =
      a.action == AnomalyAction::kSuspend ? absl::FormatTime(a.suspended_until) : std::string();
  core::Log(a.action == AnomalyAction::kLog ? core::LogLevel::kInfo : core::LogLevel::kWarning,
            "usage anomaly",
            {{"kind", AnomalyKindName(a.kind)},
             {"caller", a.caller},
             {"provider", a.provider},
             {"key_version", a.key_version},
             {"action", AnomalyActionName(a.action)},
             {"score", score},
             {"detail", a.detail},
             {"suspended_until", until}});
  if (sink_) sink_(a);
}

bool AnomalyDetector::Tick() {
  std::vector<Anomaly> found;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    if (now < bucket_end_) return false;
    const double alpha =
        std::clamp(absl::FDivDuration(options_.bucket, options_.baseline_window), 0.001, 1.0);
    absl::flat_hash_map<std::string, int> suspended;
    // Several identities may share a label ("unknown"): the gauge shows the highest score.
    absl::flat_hash_map<std::pair<std::string, std::string>, double> scores;
    for (auto& entry : series_) {
      Series* s = entry.second.get();
      const auto x = static_cast<double>(s->leases.exchange(0, std::memory_order_relaxed));
      const auto f = static_cast<double>(s->failures.exchange(0, std::memory_order_relaxed));
      const double ratio = x + f > 0 ? f / (x + f) : 0;
      double z_rate = 0;
      double z_fail = 0;
      if (s->buckets >= options_.warmup_buckets) {
        // Floors keep a perfectly steady baseline from turning one extra lease into a spike.
        const double sd_rate = std::max({std::sqrt(s->rate_var), std::sqrt(s->rate_mean), 1.0});
        const double sd_fail = std::max(std::sqrt(s->fail_var), 0.05);
        z_rate = (x - s->rate_mean) / sd_rate;
        z_fail = x + f > 0 ? (ratio - s->fail_mean) / sd_fail : 0;
        auto spike = [&](AnomalyKind kind, double score, std::string detail) {
          Anomaly a;
          a.kind = kind;
          a.caller = s->caller;
          a.provider = s->provider;
          a.score = score;
          a.detail = std::move(detail);
          a.at = now;
          found.push_back(std::move(a));
        };
        if (x >= options_.min_leases && z_rate >= options_.threshold) {
          spike(AnomalyKind::kRateSpike, z_rate,
                absl::StrFormat("%.0f leases in %s; baseline %.1f ± %.1f", x,
                                absl::FormatDuration(options_.bucket), s->rate_mean, sd_rate));
        }
        if (f >= options_.min_failures && z_fail >= options_.threshold) {
          spike(AnomalyKind::kFailureSpike, z_fail,
                absl::StrFormat("%.0f of %.0f provider calls failed auth (%.0f%%); baseline "
                                "%.0f%% ± %.0f%%",
                                f, x + f, 100 * ratio, 100 * s->fail_mean, 100 * sd_fail));
        }
      }
      double& score = scores[{s->label, s->provider}];
      score = std::max({score, z_rate, z_fail});
      Fold(x, alpha, &s->rate_mean, &s->rate_var);
      if (x + f > 0) Fold(ratio, alpha, &s->fail_mean, &s->fail_var);
      ++s->buckets;
      int& n = suspended[s->provider];
      if (s->suspended_until_us.load(std::memory_order_relaxed) > absl::ToUnixMicros(now)) ++n;
    }
    if (stats_) {
      for (const auto& [key, score] : scores) stats_->AnomalyScore(key.first, key.second, score);
      for (const auto& [provider, n] : suspended) stats_->SuspendedCallers(provider, n);
    }
    // A late tick closes one bucket; the next starts now.
    bucket_end_ = std::max(bucket_end_ + options_.bucket, now);
  }
  for (Anomaly& a : found) Report(std::move(a));
  return true;
}

}  // namespace credbroker::anomaly
