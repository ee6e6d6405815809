#include "credbroker/leases/lease_store.h"

namespace credbroker::leases {

absl::Status InMemoryLeaseStore::Put(const LeaseRecord& lease) {
  absl::MutexLock lock(&mu_);
  leases_[lease.id] = lease;
  return absl::OkStatus();
}

absl::Status InMemoryLeaseStore::Delete(const std::string& id) {
  absl::MutexLock lock(&mu_);
  leases_.erase(id);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> InMemoryLeaseStore::DeleteExpired(absl::Time now) {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.Expired(now)) {
      leases_.erase(it++);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

absl::StatusOr<std::vector<LeaseRecord>> InMemoryLeaseStore::LoadUnexpired(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<LeaseRecord> out;
  for (const auto& [id, lease] : leases_) {
    if (!lease.Expired(now)) out.push_back(lease);
  }
  return out;
}

}  // namespace credbroker::leases
