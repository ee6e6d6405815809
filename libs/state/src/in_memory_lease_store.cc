#include "credbroker/state/in_memory_lease_store.h"

#include <utility>

#include "credbroker/state/lease_errors.h"

namespace credbroker::state {

absl::StatusOr<int64_t> InMemoryLeaseStore::Create(const LeaseRecord& lease) {
  absl::MutexLock lock(&mu_);
  if (leases_.contains(lease.id)) return LeaseExists();
  const int64_t rev = ++revision_;
  leases_.emplace(lease.id, VersionedLease{lease, rev});
  log_.Publish({LeaseChange{LeaseChange::Type::kPut, rev, lease}});
  return rev;
}

absl::StatusOr<int64_t> InMemoryLeaseStore::Update(const LeaseRecord& lease,
                                                   int64_t expected_revision) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(lease.id);
  if (it == leases_.end()) return LeaseMissing();
  if (it->second.revision != expected_revision) {
    return LeaseChanged(expected_revision, it->second.revision);
  }
  const int64_t rev = ++revision_;
  it->second = VersionedLease{lease, rev};
  log_.Publish({LeaseChange{LeaseChange::Type::kPut, rev, lease}});
  return rev;
}

LeaseRecord InMemoryLeaseStore::Erase(absl::flat_hash_map<std::string, VersionedLease>::iterator it,
                                      std::vector<LeaseChange>& changes) {
  LeaseRecord gone = std::move(it->second.lease);
  leases_.erase(it);
  changes.push_back(LeaseChange{LeaseChange::Type::kDelete, ++revision_, gone});
  return gone;
}

absl::StatusOr<LeaseRecord> InMemoryLeaseStore::Delete(const LeaseDelete& request) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(request.id);
  if (it == leases_.end()) return LeaseMissing();
  if (request.expected_revision != 0 && it->second.revision != request.expected_revision) {
    return LeaseChanged(request.expected_revision, it->second.revision);
  }
  std::vector<LeaseChange> changes;
  LeaseRecord gone = Erase(it, changes);
  log_.Publish(std::move(changes));
  return gone;
}

absl::StatusOr<std::vector<LeaseRecord>> InMemoryLeaseStore::DeleteAll(
    const std::vector<LeaseDelete>& requests) {
  absl::MutexLock lock(&mu_);
  std::vector<LeaseRecord> out;
  std::vector<LeaseChange> changes;
  for (const LeaseDelete& r : requests) {
    auto it = leases_.find(r.id);
    if (it == leases_.end()) continue;
    if (r.expected_revision != 0 && it->second.revision != r.expected_revision) continue;
    out.push_back(Erase(it, changes));
  }
  log_.Publish(std::move(changes));
  return out;
}

absl::StatusOr<std::vector<LeaseRecord>> InMemoryLeaseStore::DeleteExpired(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<LeaseRecord> out;
  std::vector<LeaseChange> changes;
  for (auto it = leases_.begin(); it != leases_.end();) {
    auto next = std::next(it);
    if (it->second.lease.Expired(now)) out.push_back(Erase(it, changes));
    it = next;
  }
  log_.Publish(std::move(changes));
  return out;
}

absl::StatusOr<VersionedLease> InMemoryLeaseStore::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return LeaseMissing();
  return it->second;
}

absl::StatusOr<LeaseListing> InMemoryLeaseStore::List() {
  absl::MutexLock lock(&mu_);
  LeaseListing out;
  out.revision = revision_;
  out.leases.reserve(leases_.size());
  for (const auto& [id, v] : leases_) out.leases.push_back(v);
  return out;
}

absl::StatusOr<std::unique_ptr<LeaseWatch>> InMemoryLeaseStore::Watch(int64_t after_revision,
                                                                      LeaseWatchFn fn) {
  // Under the store's lock, so no commit falls between the replay and the registration.
  absl::MutexLock lock(&mu_);
  return log_.Watch(after_revision, std::move(fn));
}

}  // namespace credbroker::state
