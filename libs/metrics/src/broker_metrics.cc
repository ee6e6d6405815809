#include "credbroker/metrics/broker_metrics.h"

#include <map>

#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace credbroker::metrics {
namespace {

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  // 50µs .. ~3.3s, doubling: resolves both the in-memory hot path and slow backends.
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 50e-6; v < 4.0; v *= 2) b.push_back(v);
  return b;
}

}  // namespace

namespace {
std::atomic<uint64_t> next_cache_id{1};
}  // namespace

template <typename T>
ChildCache<T>::ChildCache(prometheus::Family<T>& family, std::vector<std::string> label_names,
                          ChildLookup lookup)
    : family_(family),
      label_names_(std::move(label_names)),
      lookup_(lookup),
      id_(next_cache_id.fetch_add(1)) {}

template <typename T>
void ChildCache<T>::AppendKey(std::string& out, std::initializer_list<absl::string_view> values) {
  for (absl::string_view v : values) {
    out.append(v.data(), v.size());
    out.push_back('\x1f');
  }
}

template <typename T>
typename ChildCache<T>::Local& ChildCache<T>::ThisThread() {
  // One map per thread and child type, keyed by cache id (never reused, so entries of destroyed
  // caches are never looked at again).
  thread_local absl::flat_hash_map<uint64_t, Local> locals;
  Local& local = locals[id_];
  // A removal since this thread's last lookup: its cached pointers may be stale.
  const uint64_t epoch = epoch_.load(std::memory_order_acquire);
  if (local.epoch != epoch) {
    local.children.clear();
    local.epoch = epoch;
  }
  return local;
}

template <typename T>
template <typename... Args>
T& ChildCache<T>::GetLocked(const std::string& key, std::initializer_list<absl::string_view> values,
                            Args&&... args) {
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = children_.find(key);
    if (it != children_.end()) return *it->second.second;
  }
  absl::MutexLock lock(&mu_);
  auto it = children_.find(key);
  if (it != children_.end()) return *it->second.second;
  std::map<std::string, std::string> labels;
  std::vector<std::string> owned;
  size_t i = 0;
  for (absl::string_view v : values) {
    if (i < label_names_.size()) labels.emplace(label_names_[i], std::string(v));
    owned.emplace_back(v);
    ++i;
  }
  T* child = &family_.Add(labels, std::forward<Args>(args)...);
  // Family::Add hands back a removed child that is not deleted yet: it is live again.
  std::erase_if(removed_, [child](const auto& r) { return r.second == child; });
  children_.emplace(key, std::make_pair(std::move(owned), child));
  return *child;
}

template <typename T>
template <typename... Args>
T& ChildCache<T>::Get(std::initializer_list<absl::string_view> values, Args&&... args) {
  thread_local std::string key;
  key.clear();
  AppendKey(key, values);
  if (lookup_ == ChildLookup::kLocked) return GetLocked(key, values, std::forward<Args>(args)...);
  Local& local = ThisThread();
  if (auto it = local.children.find(key); it != local.children.end()) return *it->second;
  T& child = GetLocked(key, values, std::forward<Args>(args)...);
  local.children.emplace(key, &child);
  return child;
}

template <typename T>
T* ChildCache<T>::Find(std::initializer_list<absl::string_view> values) {
  thread_local std::string key;
  key.clear();
  AppendKey(key, values);
  if (lookup_ == ChildLookup::kPerThread) {
    Local& local = ThisThread();
    if (auto it = local.children.find(key); it != local.children.end()) return it->second;
  }
  absl::ReaderMutexLock lock(&mu_);
  auto it = children_.find(key);
  return it == children_.end() ? nullptr : it->second.second;
}

template <typename T>
void ChildCache<T>::RemoveWhere(absl::string_view first, absl::string_view second) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  bool removed = false;
  for (auto it = children_.begin(); it != children_.end();) {
    const std::vector<std::string>& labels = it->second.first;
    if (labels.size() >= 2 && labels[0] == first && labels[1] == second) {
      if (lookup_ == ChildLookup::kLocked) {
        family_.Remove(it->second.second);
      } else {
        removed_.emplace_back(now, it->second.second);
      }
      children_.erase(it++);
      removed = true;
    } else {
      ++it;
    }
  }
  // Every thread drops its cached pointers before its next lookup.
  if (removed) epoch_.fetch_add(1, std::memory_order_release);
}

template <typename T>
void ChildCache<T>::Purge(absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  std::erase_if(removed_, [&](const std::pair<absl::Time, T*>& r) {
    if (now - r.first < grace) return false;
    family_.Remove(r.second);
    return true;
  });
}

BrokerMetrics::BrokerMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      leases_issued_(prometheus::BuildCounter()
                         .Name("credbroker_leases_issued_total")
                         .Help("Leases issued, by provider and caller.")
                         .Register(*registry_)),
      leases_renewed_(prometheus::BuildCounter()
                          .Name("credbroker_leases_renewed_total")
                          .Help("Lease renewals, by provider and caller.")
                          .Register(*registry_)),
      leases_released_(prometheus::BuildCounter()
                           .Name("credbroker_leases_released_total")
                           .Help("Leases released by their holder, by provider and caller.")
                           .Register(*registry_)),
      leases_expired_(prometheus::BuildCounter()
                          .Name("credbroker_leases_expired_total")
                          .Help("Leases that reached their expiry and were swept.")
                          .Register(*registry_)),
      leases_revoked_(prometheus::BuildCounter()
                          .Name("credbroker_leases_revoked_total")
                          .Help("Leases revoked by an administrator.")
                          .Register(*registry_)),
      active_leases_(prometheus::BuildGauge()
                         .Name("credbroker_active_leases")
                         .Help("Unexpired leases, by provider and key version.")
                         .Register(*registry_)),
      auth_failures_(prometheus::BuildCounter()
                         .Name("credbroker_auth_failure_reports_total")
                         .Help("Provider auth failures reported by callers, by provider, key "
                               "version, caller, HTTP status and what the provider's answer "
                               "means (classification).")
                         .Register(*registry_)),
      lease_denied_(prometheus::BuildCounter()
                        .Name("credbroker_lease_requests_denied_total")
                        .Help("Lease requests refused, by method and reason.")
                        .Register(*registry_)),
      caller_auth_failures_(prometheus::BuildCounter()
                                .Name("credbroker_caller_auth_failures_total")
                                .Help("Requests whose caller could not be authenticated.")
                                .Register(*registry_)),
      policy_denials_(prometheus::BuildCounter()
                          .Name("credbroker_policy_denials_total")
                          .Help("Lease requests refused by policy, by caller, provider and reason.")
                          .Register(*registry_)),
      rate_limit_hits_(prometheus::BuildCounter()
                           .Name("credbroker_rate_limit_hits_total")
                           .Help("Lease requests refused by a rate limit, by caller and provider.")
                           .Register(*registry_)),
      backend_errors_(prometheus::BuildCounter()
                          .Name("credbroker_backend_errors_total")
                          .Help("Failed secret-source operations, by backend and reason.")
                          .Register(*registry_)),
      backend_last_success_(prometheus::BuildGauge()
                                .Name("credbroker_backend_last_success_timestamp_seconds")
                                .Help("Unix time of the last successful refresh from a backend.")
                                .Register(*registry_)),
      key_rejected_(prometheus::BuildCounter()
                        .Name("credbroker_key_versions_rejected_total")
                        .Help("Key versions from a backend that failed validation and are not "
                              "served, by provider and reason.")
                        .Register(*registry_)),
      key_state_(prometheus::BuildGauge()
                     .Name("credbroker_key_version_info")
                     .Help("1 for each live key version with its state.")
                     .Register(*registry_)),
      provider_servable_(prometheus::BuildGauge()
                             .Name("credbroker_provider_servable")
                             .Help("1 when the provider has a key that new leases can get.")
                             .Register(*registry_)),
      key_age_(prometheus::BuildGauge()
                   .Name("credbroker_key_age_seconds")
                   .Help("Age of each live key version (since the broker first saw it).")
                   .Register(*registry_)),
      rotation_due_(prometheus::BuildGauge()
                        .Name("credbroker_key_rotation_due_seconds")
                        .Help("Seconds until the CURRENT key is due for rotation; negative when "
                              "overdue.")
                        .Register(*registry_)),
      rpc_latency_(prometheus::BuildHistogram()
                       .Name("credbroker_grpc_request_duration_seconds")
                       .Help("gRPC request handling time, by method and status code.")
                       .Register(*registry_)),
      transitions_(prometheus::BuildCounter()
                       .Name("credbroker_key_transitions_total")
                       .Help("Key versions entering a state, by provider and state.")
                       .Register(*registry_)),
      probes_(prometheus::BuildCounter()
                  .Name("credbroker_probes_total")
                  .Help("Provider probes sent, by purpose (promotion, revocation_check, "
                        "calibration) and result (accepted, rejected, error).")
                  .Register(*registry_)),
      probe_failing_(prometheus::BuildGauge()
                         .Name("credbroker_probe_failing")
                         .Help("1 while the provider's newest PENDING key version failed its "
                               "probe (the old key stays CURRENT).")
                         .Register(*registry_)),
      backend_promote_failing_(
          prometheus::BuildGauge()
              .Name("credbroker_backend_promote_failing")
              .Help("1 while the broker could not move the backend's current marker (AWS "
                    "AWSCURRENT) to the version it is promoting: the promotion waits and is "
                    "retried, the old key stays CURRENT.")
              .Register(*registry_)),
      backend_token_refreshes_(
          prometheus::BuildCounter()
              .Name("credbroker_backend_token_refreshes_total")
              .Help("Credentials for a backend obtained or refreshed (STS, metadata server, "
                    "workload identity), by backend and result (ok, error).")
              .Register(*registry_)),
      backend_throttled_(prometheus::BuildCounter()
                             .Name("credbroker_backend_throttled_total")
                             .Help("Backend answers asking the broker to slow down "
                                   "(ThrottlingException, HTTP 429), by backend.")
                             .Register(*registry_)),
      keys_to_delete_(prometheus::BuildGauge()
                          .Name("credbroker_provider_keys_to_delete")
                          .Help("Keys the broker minted that left service at a provider without a "
                                "key-deletion API (firemoon): delete them in the provider's "
                                "dashboard, see credctl keys to-delete.")
                          .Register(*registry_)),
      probe_calibrated_(prometheus::BuildGauge()
                            .Name("credbroker_probe_calibrated")
                            .Help("1 when the provider's probe was seen to reject an invalid "
                                  "key; 0 when its answers cannot be trusted (yet).")
                            .Register(*registry_)),
      quarantines_(prometheus::BuildCounter()
                       .Name("credbroker_key_quarantines_total")
                       .Help("Key versions quarantined, by reason (operator, "
                             "revoked_at_provider).")
                       .Register(*registry_)),
      mint_failures_(prometheus::BuildCounter()
                         .Name("credbroker_key_mint_failures_total")
                         .Help("Failed minted-rotation steps, by operation (create, store, "
                               "revoke).")
                         .Register(*registry_)),
      revocation_suspected_(prometheus::BuildCounter()
                                .Name("credbroker_revocation_suspected_total")
                                .Help("Bursts of 401 reports from several callers on one key "
                                      "version that started a revocation check.")
                                .Register(*registry_)),
      anomalies_(prometheus::BuildCounter()
                     .Name("credbroker_anomalies_total")
                     .Help("Usage anomalies detected, by provider, kind (rate_spike, "
                           "failure_spike, new_caller, retired_key_use) and configured action "
                           "(log, alert, suspend).")
                     .Register(*registry_)),
      anomaly_score_(prometheus::BuildGauge()
                         .Name("credbroker_anomaly_score")
                         .Help("Largest deviation from the caller's baseline in the last "
                               "window, in standard deviations.")
                         .Register(*registry_)),
      suspended_callers_(prometheus::BuildGauge()
                             .Name("credbroker_suspended_callers")
                             .Help("Callers whose leases on the provider are suspended by the "
                                   "anomaly detector.")
                             .Register(*registry_)),
      learning_until_(&prometheus::BuildGauge()
                           .Name("credbroker_anomaly_learning_until_timestamp_seconds")
                           .Help("End of the anomaly detector's learning period (Unix time): "
                                 "before it no caller counts as new.")
                           .Register(*registry_)
                           .Add({})),
      audit_lost_(&prometheus::BuildCounter()
                       .Name("credbroker_audit_lines_lost_total")
                       .Help("Audit lines dropped because the queue was full, or not written "
                             "when the log closed while failing (not in the audit log).")
                       .Register(*registry_)
                       .Add({})),
      audit_folded_(&prometheus::BuildCounter()
                         .Name("credbroker_audit_lines_folded_total")
                         .Help("Failed authentications from one peer not audited one by one.")
                         .Register(*registry_)
                         .Add({})),
      audit_write_failures_(&prometheus::BuildCounter()
                                 .Name("credbroker_audit_write_failures_total")
                                 .Help("Audit log writes the file system refused (each attempt; "
                                       "the lines stay queued and are tried again).")
                                 .Register(*registry_)
                                 .Add({})) {}

void BrokerMetrics::AuditLinesLost(uint64_t lines) {
  audit_lost_->Increment(static_cast<double>(lines));
}
void BrokerMetrics::AuditLinesFolded(uint64_t lines) {
  audit_folded_->Increment(static_cast<double>(lines));
}
void BrokerMetrics::AuditWriteFailed() { audit_write_failures_->Increment(); }

void BrokerMetrics::LeaseIssued(absl::string_view provider, absl::string_view caller) {
  issued_.Get({provider, caller}).Increment();
}
void BrokerMetrics::LeaseRenewed(absl::string_view provider, absl::string_view caller) {
  renewed_.Get({provider, caller}).Increment();
}
void BrokerMetrics::LeaseReleased(absl::string_view provider, absl::string_view caller) {
  released_.Get({provider, caller}).Increment();
}
void BrokerMetrics::LeaseExpired(absl::string_view provider, absl::string_view caller) {
  expired_.Get({provider, caller}).Increment();
}
void BrokerMetrics::LeaseRevoked(absl::string_view provider, absl::string_view caller) {
  revoked_.Get({provider, caller}).Increment();
}
void BrokerMetrics::ActiveLeasesAdd(absl::string_view provider, absl::string_view key_version,
                                    double delta) {
  if (delta < 0) {
    // A lease that outlived its key version's series (the version retired): nothing to count.
    if (prometheus::Gauge* g = active_.Find({provider, key_version})) g->Increment(delta);
    return;
  }
  active_.Get({provider, key_version}).Increment(delta);
}
void BrokerMetrics::AuthFailureReported(absl::string_view provider, absl::string_view key_version,
                                        absl::string_view caller, int http_status,
                                        absl::string_view classification) {
  auth_fail_.Get({provider, key_version, caller, HttpStatusLabel(http_status), classification})
      .Increment();
}
void BrokerMetrics::LeaseRequestDenied(absl::string_view method, absl::string_view reason) {
  denied_.Get({method, reason}).Increment();
}
void BrokerMetrics::CallerAuthFailure(absl::string_view reason) {
  caller_auth_.Get({reason}).Increment();
}
void BrokerMetrics::PolicyDenied(absl::string_view caller, absl::string_view provider,
                                 absl::string_view reason) {
  policy_denied_.Get({caller, provider, reason}).Increment();
}
void BrokerMetrics::RateLimitHit(absl::string_view caller, absl::string_view provider) {
  rate_limited_.Get({caller, provider}).Increment();
}
void BrokerMetrics::BackendFetchError(absl::string_view backend, absl::string_view reason) {
  backend_err_.Get({backend, reason}).Increment();
}
void BrokerMetrics::BackendSuccess(absl::string_view backend, absl::Time at) {
  backend_ok_.Get({backend}).Set(absl::ToDoubleSeconds(at - absl::UnixEpoch()));
}
void BrokerMetrics::KeyVersionRejected(absl::string_view provider, absl::string_view reason) {
  rejected_.Get({provider, reason}).Increment();
}
void BrokerMetrics::KeyVersionState(absl::string_view provider, absl::string_view key_version,
                                    absl::string_view state) {
  // One series per version: drop the old state's series first.
  key_state_children_.RemoveWhere(provider, key_version);
  key_state_children_.Get({provider, key_version, state}).Set(1);
}
void BrokerMetrics::ProviderServable(absl::string_view provider, bool servable) {
  servable_.Get({provider}).Set(servable ? 1 : 0);
}
void BrokerMetrics::KeyAge(absl::string_view provider, absl::string_view key_version,
                           absl::Duration age) {
  key_age_children_.Get({provider, key_version}).Set(absl::ToDoubleSeconds(age));
}
void BrokerMetrics::RotationDueIn(absl::string_view provider, absl::Duration until_due) {
  due_.Get({provider}).Set(absl::ToDoubleSeconds(until_due));
}
void BrokerMetrics::RemoveKeyVersion(absl::string_view provider, absl::string_view key_version) {
  key_state_children_.RemoveWhere(provider, key_version);
  key_age_children_.RemoveWhere(provider, key_version);
  active_.RemoveWhere(provider, key_version);
  auth_fail_.RemoveWhere(provider, key_version);
}
void BrokerMetrics::PurgeRemoved(absl::Duration grace) {
  active_.Purge(grace);
  auth_fail_.Purge(grace);
}
void BrokerMetrics::RpcCompleted(absl::string_view method, absl::string_view code,
                                 absl::Duration latency) {
  static const prometheus::Histogram::BucketBoundaries* const kBuckets =
      new prometheus::Histogram::BucketBoundaries(LatencyBuckets());
  rpc_.Get({method, code}, *kBuckets).Observe(absl::ToDoubleSeconds(latency));
}

void BrokerMetrics::InitProvider(
    absl::string_view provider, bool minted,
    const std::vector<std::pair<std::string, std::string>>& anomaly_kind_actions) {
  for (absl::string_view reason : {"operator", "revoked_at_provider"}) {
    quarantines_children_.Get({provider, reason});
  }
  revocation_children_.Get({provider});
  for (absl::string_view reason : {"format", "whitespace", "empty", "too_long"}) {
    rejected_.Get({provider, reason});
  }
  if (minted) {
    for (absl::string_view op : {"create", "store", "revoke"}) {
      mint_failures_children_.Get({provider, op});
    }
  }
  for (const auto& [kind, action] : anomaly_kind_actions) {
    anomalies_children_.Get({provider, kind, action});
  }
}

void BrokerMetrics::KeyTransition(absl::string_view provider, absl::string_view state) {
  transitions_children_.Get({provider, state}).Increment();
}
void BrokerMetrics::ProbeResult(absl::string_view provider, absl::string_view purpose,
                                absl::string_view result) {
  probes_children_.Get({provider, purpose, result}).Increment();
}
void BrokerMetrics::BackendPromoteFailing(absl::string_view provider, bool failing) {
  backend_promote_failing_children_.Get({provider}).Set(failing ? 1 : 0);
}

void BrokerMetrics::TokenRefresh(absl::string_view source, absl::string_view result) {
  token_refresh_children_.Get({source, result}).Increment();
}

void BrokerMetrics::Throttled(absl::string_view source) {
  throttled_children_.Get({source}).Increment();
}

void BrokerMetrics::ProbeFailing(absl::string_view provider, bool failing) {
  probe_failing_children_.Get({provider}).Set(failing ? 1 : 0);
}
void BrokerMetrics::KeysToDelete(absl::string_view provider, int64_t count) {
  keys_to_delete_children_.Get({provider}).Set(static_cast<double>(count));
}
void BrokerMetrics::ProbeCalibrated(absl::string_view provider, bool calibrated) {
  probe_calibrated_children_.Get({provider}).Set(calibrated ? 1 : 0);
}
void BrokerMetrics::KeyQuarantined(absl::string_view provider, absl::string_view reason) {
  quarantines_children_.Get({provider, reason}).Increment();
}
void BrokerMetrics::MintFailure(absl::string_view provider, absl::string_view operation) {
  mint_failures_children_.Get({provider, operation}).Increment();
}
void BrokerMetrics::RevocationSuspected(absl::string_view provider) {
  revocation_children_.Get({provider}).Increment();
}
void BrokerMetrics::Anomaly(absl::string_view provider, absl::string_view kind,
                            absl::string_view action) {
  anomalies_children_.Get({provider, kind, action}).Increment();
}
void BrokerMetrics::AnomalyScore(absl::string_view caller, absl::string_view provider,
                                 double score) {
  anomaly_score_children_.Get({caller, provider}).Set(score);
}
void BrokerMetrics::SuspendedCallers(absl::string_view provider, double count) {
  suspended_children_.Get({provider}).Set(count);
}
void BrokerMetrics::LearningUntil(absl::Time until) {
  learning_until_->Set(absl::ToDoubleSeconds(until - absl::UnixEpoch()));
}

absl::string_view HttpStatusLabel(int http_status) {
  switch (http_status) {
    case 401:
      return "401";
    case 403:
      return "403";
    case 429:
      return "429";
    default:
      return "other";
  }
}

// For users outside this file (benchmarks): the child types and lookups used here.
template class ChildCache<prometheus::Counter>;
template class ChildCache<prometheus::Gauge>;
template class ChildCache<prometheus::Histogram>;
template prometheus::Counter& ChildCache<prometheus::Counter>::Get<>(
    std::initializer_list<absl::string_view>);
template prometheus::Gauge& ChildCache<prometheus::Gauge>::Get<>(
    std::initializer_list<absl::string_view>);
template prometheus::Histogram&
ChildCache<prometheus::Histogram>::Get<const prometheus::Histogram::BucketBoundaries&>(
    std::initializer_list<absl::string_view>, const prometheus::Histogram::BucketBoundaries&);

}  // namespace credbroker::metrics
