// LeaseStore persists leases so they survive a restart. The LeaseTable writes through it before
// it answers a caller; on start it loads the unexpired leases back.
// Errors: UNAVAILABLE (storage temporarily failing), DATA_LOSS (corrupt rows), INTERNAL.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/leases/lease.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::leases {

class LeaseStore {
 public:
  virtual ~LeaseStore() = default;
  // Inserts or replaces the lease with this id.
  virtual absl::Status Put(const LeaseRecord& lease) = 0;
  virtual absl::Status Delete(const std::string& id) = 0;
  // Deletes every lease that expired at or before `now`; returns how many.
  virtual absl::StatusOr<int64_t> DeleteExpired(absl::Time now) = 0;
  // Every lease that has not expired at `now`.
  virtual absl::StatusOr<std::vector<LeaseRecord>> LoadUnexpired(absl::Time now) = 0;
};

// Keeps leases in memory only: for tests and benchmarks (leases do not survive a restart).
class InMemoryLeaseStore final : public LeaseStore {
 public:
  absl::Status Put(const LeaseRecord& lease) override;
  absl::Status Delete(const std::string& id) override;
  absl::StatusOr<int64_t> DeleteExpired(absl::Time now) override;
  absl::StatusOr<std::vector<LeaseRecord>> LoadUnexpired(absl::Time now) override;

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, LeaseRecord> leases_ ABSL_GUARDED_BY(mu_);
};

// SQLite in WAL mode. With synchronous=normal a committed lease survives a process crash
// (kill -9); synchronous=full also survives power loss at the cost of an fsync per write.
class SqliteLeaseStore final : public LeaseStore {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteLeaseStore>> Open(const std::string& path,
                                                                bool synchronous_full = false);
  ~SqliteLeaseStore() override;

  absl::Status Put(const LeaseRecord& lease) override;
  absl::Status Delete(const std::string& id) override;
  absl::StatusOr<int64_t> DeleteExpired(absl::Time now) override;
  absl::StatusOr<std::vector<LeaseRecord>> LoadUnexpired(absl::Time now) override;

 private:
  struct Impl;
  explicit SqliteLeaseStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Builds the store selected in the configuration (sqlite today; etcd later).
absl::StatusOr<std::unique_ptr<LeaseStore>> MakeLeaseStore(const v1::LeaseStoreConfig& config);

}  // namespace credbroker::leases
