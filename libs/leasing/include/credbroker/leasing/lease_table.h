// LeaseTable is this process's view of the leases: a cache of the LeaseStore (the truth), fed by
// the store's watch, so a lease written by any replica is seen here, and the write methods that
// change leases in the store with compare-and-swap. A write returns after the store committed
// it; the cache then already holds the change when the store delivers its watch synchronously
// (SQLite, in-memory), and a lease not yet in the cache is read through from the store.
// Sharded by lease id so concurrent requests rarely share a lock; each lease held compactly
// (compact_lease.h: a fixed-size record, its strings interned).
//
// Errors: NOT_FOUND with reason LEASE_NOT_FOUND (unknown id, or a lease held by another caller —
// the two are indistinguishable on purpose) or LEASE_EXPIRED; store errors pass through
// (UNAVAILABLE, INTERNAL) and change nothing; ABORTED when a lease kept changing under a renew or
// release (retried first).
// Thread-safety: all methods are safe for concurrent use.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/core/clock.h"
#include "credbroker/leasing/compact_lease.h"
#include "credbroker/state/lease_store.h"

namespace credbroker::leasing {

using state::LeaseRecord;

class LeaseTable {
 public:
  // Sees every lease entering (+1) or leaving (-1) the table, the initial load included. Runs on
  // the thread that applied the change; must not block or call back into the table.
  using Listener = std::function<void(const LeaseRecord& lease, int delta)>;

  // Loads the store's leases and follows its watch from there on. `store` must outlive the table.
  static absl::StatusOr<std::unique_ptr<LeaseTable>> Create(state::LeaseStore* store,
                                                            const core::Clock* clock,
                                                            std::vector<Listener> listeners = {});
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;
  ~LeaseTable();

  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;
  using NextExpiry = std::function<absl::StatusOr<absl::Time>(const LeaseRecord&)>;

  // Writes a new lease. ALREADY_EXISTS on an id collision.
  absl::Status Insert(const LeaseRecord& lease);

  // The lease `id` if it exists, is unexpired and belongs to `caller`.
  absl::StatusOr<LeaseRecord> Get(const std::string& id, const std::string& caller) const;

  // Renews the caller's unexpired lease. `next_expiry` sees the current record and returns the
  // new expiry (or an error, which is returned unchanged). It may run again when the lease
  // changed concurrently.
  absl::StatusOr<LeaseRecord> Renew(
      const std::string& id, const std::string& caller,
      absl::FunctionRef<absl::StatusOr<absl::Time>(const LeaseRecord&)> next_expiry);

  // Removes the caller's lease (expired or not, so a late release is not an error).
  absl::StatusOr<LeaseRecord> Release(const std::string& id, const std::string& caller);

  // Insert, Renew and Release for callers that must not block a thread on the store's commit:
  // `done` gets the outcome, possibly on the store's committer thread; it must not block. Never
  // call the blocking forms from a `done` callback.
  void InsertAsync(const LeaseRecord& lease, std::function<void(absl::Status)> done);
  void RenewAsync(const std::string& id, const std::string& caller, NextExpiry next_expiry,
                  Done<LeaseRecord> done);
  void ReleaseAsync(const std::string& id, const std::string& caller, Done<LeaseRecord> done);

  // Removes every lease matching `pred`, regardless of owner (administrative revocation), in one
  // store write.
  absl::StatusOr<std::vector<LeaseRecord>> RevokeIf(
      const std::function<bool(const LeaseRecord&)>& pred);

  // Removes expired leases from the store; returns them. A store error is returned as is.
  absl::StatusOr<std::vector<LeaseRecord>> SweepExpired();

  std::vector<LeaseRecord> List(const std::function<bool(const LeaseRecord&)>& pred) const;
  size_t size() const;
  // Distinct (caller, provider, version, fingerprint, purpose) combinations held.
  size_t classes() const { return classes_.size(); }

 private:
  static constexpr size_t kShards = 16;
  static constexpr int kCasAttempts = 4;
  struct Shard {
    mutable absl::Mutex mu;
    core::LeaseIdMap<CompactLease> leases ABSL_GUARDED_BY(mu);
  };
  LeaseTable(state::LeaseStore* store, const core::Clock* clock, std::vector<Listener> listeners);
  Shard& ShardFor(const std::string& id) const;
  // Puts `lease` at `revision` into the cache; true when it was not there.
  bool Put(const LeaseRecord& lease, int64_t revision);
  // Calls `fn` with every cached lease, expanded.
  void ForEach(const std::function<void(const state::VersionedLease&)>& fn) const;
  // Applies committed changes in revision order (the watch callback).
  void Apply(const std::vector<state::LeaseChange>& changes);
  void Tell(const LeaseRecord& lease, int delta) const;
  void RenewAttempt(const std::string& id, const std::string& caller, NextExpiry next_expiry,
                    Done<LeaseRecord> done, int attempt);
  void ReleaseAttempt(const std::string& id, const std::string& caller, Done<LeaseRecord> done,
                      int attempt);
  // The caller's lease with its revision, from the cache or read through from the store.
  absl::StatusOr<state::VersionedLease> Find(const std::string& id,
                                             const std::string& caller) const;

  state::LeaseStore* const store_;
  const core::Clock* const clock_;
  const std::vector<Listener> listeners_;
  LeaseClasses classes_;
  mutable std::array<Shard, kShards> shards_;
  std::unique_ptr<state::LeaseWatch> watch_;
};

}  // namespace credbroker::leasing
