// LeaseTable is the in-memory index of live leases, written through to a LeaseStore before any
// change is acknowledged. Sharded by lease id so concurrent requests rarely share a lock.
//
// Errors: NOT_FOUND with reason LEASE_NOT_FOUND (unknown id, or a lease held by another caller —
// the two are indistinguishable on purpose) or LEASE_EXPIRED; store errors pass through
// (UNAVAILABLE, INTERNAL) and leave the table unchanged.
// Thread-safety: all methods are safe for concurrent use.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/core/clock.h"
#include "credbroker/leases/lease.h"
#include "credbroker/leases/lease_store.h"

namespace credbroker::leases {

class LeaseTable {
 public:
  LeaseTable(LeaseStore* store, const core::Clock* clock) : store_(store), clock_(clock) {}

  // Loads the unexpired leases from the store (on start). Returns them for metric bookkeeping.
  absl::StatusOr<std::vector<LeaseRecord>> LoadFromStore();

  absl::Status Insert(const LeaseRecord& lease);

  // The lease `id` if it exists, is unexpired and belongs to `caller`.
  absl::StatusOr<LeaseRecord> Get(const std::string& id, const std::string& caller) const;

  // Renews the caller's unexpired lease. `next_expiry` sees the current record and returns the
  // new expiry (or an error, which is returned unchanged).
  absl::StatusOr<LeaseRecord> Renew(
      const std::string& id, const std::string& caller,
      absl::FunctionRef<absl::StatusOr<absl::Time>(const LeaseRecord&)> next_expiry);

  // Removes the caller's lease (expired or not, so a late release is not an error).
  absl::StatusOr<LeaseRecord> Release(const std::string& id, const std::string& caller);

  // Removes every lease matching `pred`, regardless of owner (administrative revocation).
  absl::StatusOr<std::vector<LeaseRecord>> RevokeIf(
      const std::function<bool(const LeaseRecord&)>& pred);

  // Removes expired leases from memory and store; returns them.
  std::vector<LeaseRecord> SweepExpired();

  std::vector<LeaseRecord> List(const std::function<bool(const LeaseRecord&)>& pred) const;
  size_t size() const;

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, LeaseRecord> leases ABSL_GUARDED_BY(mu);
  };
  Shard& ShardFor(const std::string& id) const;

  LeaseStore* const store_;
  const core::Clock* const clock_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace credbroker::leases
