#include "credbroker/leasing/lease_counts.h"

namespace credbroker::leasing {

void LeaseCounts::Add(absl::flat_hash_map<CallerProvider, int64_t>& m, const CallerProvider& k,
                      int64_t delta) {
  auto it = m.try_emplace(k, 0).first;
  it->second += delta;
  if (it->second <= 0) m.erase(it);
}

void LeaseCounts::Apply(const state::LeaseRecord& lease, int delta) {
  absl::MutexLock lock(&mu_);
  // A lease this process reserved a slot for is already in by_caller_.
  const bool was_reserved = delta > 0 && reserved_.erase(lease.id) > 0;
  if (!was_reserved) Add(by_caller_, {lease.caller, lease.provider}, delta);
  auto it = by_version_.try_emplace({lease.provider, lease.key_version}, 0).first;
  it->second += delta;
  if (it->second <= 0) by_version_.erase(it);
}

bool LeaseCounts::Reserve(const std::string& lease_id, const std::string& caller,
                          const std::string& provider, int32_t limit) {
  CallerProvider key{caller, provider};
  absl::MutexLock lock(&mu_);
  auto it = by_caller_.find(key);
  if (limit > 0 && it != by_caller_.end() && it->second >= limit) return false;
  Add(by_caller_, key, 1);
  reserved_.emplace(lease_id, std::move(key));
  return true;
}

void LeaseCounts::Cancel(const std::string& lease_id) {
  absl::MutexLock lock(&mu_);
  auto it = reserved_.find(lease_id);
  if (it == reserved_.end()) return;
  Add(by_caller_, it->second, -1);
  reserved_.erase(it);
}

int64_t LeaseCounts::ByCaller(absl::string_view caller, absl::string_view provider) const {
  absl::MutexLock lock(&mu_);
  auto it = by_caller_.find(CallerProvider{std::string(caller), std::string(provider)});
  return it == by_caller_.end() ? 0 : it->second;
}

int64_t LeaseCounts::ByVersion(absl::string_view provider, absl::string_view version) const {
  absl::MutexLock lock(&mu_);
  auto it = by_version_.find(ProviderVersion{std::string(provider), std::string(version)});
  return it == by_version_.end() ? 0 : it->second;
}

}  // namespace credbroker::leasing
