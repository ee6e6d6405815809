// EtcdLeaseStore: the LeaseStore shared by every replica, in etcd. A lease is the key
// `<prefix>leases/<id>`, its value a LeaseValue (proto), its revision the key's mod_revision, so
// compare-and-swap is etcd's own compare on mod_revision.
//
// Group commit: concurrent writes are queued and a committer thread sends up to `max_batch` of
// them as one etcd Txn, each write a nested Txn with its own compare (so one write's conflict
// does not fail the others). All writes of a batch share its etcd revision. A writer is answered
// once this replica's watch has delivered the batch (its caches hold the change), or, if the
// watch lags, after the request timeout with the write's outcome.
//
// Expiry: each lease key is bound to an etcd lease that ends a little after the broker lease
// (leases expiring in the same `bucket` share one etcd lease, granted once), so etcd itself
// removes leases nobody swept; renewal re-binds the key to its new expiry's etcd lease. The
// leader's sweep (DeleteExpired) deletes expired leases exactly, from an index of expiries this
// replica keeps from the watch.
//
// Errors: as LeaseStore; UNAVAILABLE with reason STATE_UNAVAILABLE when etcd does not answer
// within the request timeout (the write may or may not have happened).
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/state/etcd/client.h"
#include "credbroker/state/etcd/watcher.h"
#include "credbroker/state/lease_store.h"

namespace credbroker::state::etcd {

struct EtcdLeaseStoreOptions {
  // Writes per Txn (each a nested Txn of at most two operations; etcd's --max-txn-ops, 128 by
  // default, bounds the operations of one level).
  size_t max_batch = 64;
  // Broker leases whose expiries fall into the same bucket share one etcd lease.
  absl::Duration bucket = absl::Seconds(30);
  const core::Clock* clock = core::SystemClock::Get();
};

class EtcdLeaseStore final : public LeaseStore, public PrefixWatcher::Handler {
 public:
  // Reads the leases under `prefix`leases/ at `revision`, registers with `watcher` (not started
  // yet, watching from `revision`) and starts the committer. `client` and `watcher` outlive the
  // store.
  static absl::StatusOr<std::unique_ptr<EtcdLeaseStore>> Open(EtcdClient* client,
                                                              PrefixWatcher* watcher,
                                                              const std::string& prefix,
                                                              int64_t revision,
                                                              const EtcdLeaseStoreOptions& options);
  ~EtcdLeaseStore() override;

  absl::StatusOr<int64_t> Create(const LeaseRecord& lease) override;
  absl::StatusOr<int64_t> Update(const LeaseRecord& lease, int64_t expected_revision) override;
  absl::StatusOr<LeaseRecord> Delete(const LeaseDelete& request) override;
  void CreateAsync(const LeaseRecord& lease, Done<int64_t> done) override;
  void UpdateAsync(const LeaseRecord& lease, int64_t expected_revision,
                   Done<int64_t> done) override;
  void DeleteAsync(LeaseDelete request, Done<LeaseRecord> done) override;
  absl::StatusOr<std::vector<LeaseRecord>> DeleteAll(
      const std::vector<LeaseDelete>& requests) override;
  absl::StatusOr<std::vector<LeaseRecord>> DeleteExpired(absl::Time now) override;
  absl::StatusOr<VersionedLease> Get(const std::string& id) override;
  absl::StatusOr<LeaseListing> List() override;
  absl::StatusOr<std::unique_ptr<LeaseWatch>> Watch(int64_t after_revision,
                                                    LeaseWatchFn fn) override;

  // PrefixWatcher::Handler
  void Apply(const std::vector<const mvccpb::Event*>& events) override;
  absl::Status Reload(int64_t revision) override;

  // Writes sent and the Txns that carried them.
  int64_t writes() const;
  int64_t commits() const;

 private:
  struct Impl;
  explicit EtcdLeaseStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace credbroker::state::etcd
