// InMemoryLeaseStore keeps leases in process memory only: the reference implementation of
// LeaseStore for tests and benchmarks (nothing survives a restart).
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/state/change_log.h"
#include "credbroker/state/lease_store.h"

namespace credbroker::state {

class InMemoryLeaseStore final : public LeaseStore {
 public:
  InMemoryLeaseStore() : log_(0) {}

  absl::StatusOr<int64_t> Create(const LeaseRecord& lease) override;
  absl::StatusOr<int64_t> Update(const LeaseRecord& lease, int64_t expected_revision) override;
  absl::StatusOr<LeaseRecord> Delete(const LeaseDelete& request) override;
  absl::StatusOr<std::vector<LeaseRecord>> DeleteAll(
      const std::vector<LeaseDelete>& requests) override;
  absl::StatusOr<std::vector<LeaseRecord>> DeleteExpired(absl::Time now) override;
  absl::StatusOr<VersionedLease> Get(const std::string& id) override;
  absl::StatusOr<LeaseListing> List() override;
  absl::StatusOr<std::unique_ptr<LeaseWatch>> Watch(int64_t after_revision,
                                                    LeaseWatchFn fn) override;

 private:
  // Deletes the lease at `it`, recording the change.
  LeaseRecord Erase(absl::flat_hash_map<std::string, VersionedLease>::iterator it,
                    std::vector<LeaseChange>& changes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ChangeLog log_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, VersionedLease> leases_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace credbroker::state
