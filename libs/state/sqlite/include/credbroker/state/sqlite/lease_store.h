// SqliteLeaseStore: the LeaseStore of a single broker, in its SQLite state file. Writes go
// through the Database's group commit; a write returns once it is durable (synchronous=NORMAL:
// across a process crash; FULL: across power loss). The store revision is persisted with every
// batch, so revisions keep growing across restarts. Watches are served from memory: the changes
// committed by this process (every writer is this process).
//
// The table has no index: the store keeps, per lease, its row number, revision and expiry in
// memory (loaded at Open), so creates append at the table's end, conditional writes are checked
// without a read, and the expiry sweep scans memory. A file written with the earlier layout (the
// table keyed by lease id) is converted once at Open.
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "credbroker/state/change_log.h"
#include "credbroker/state/lease_store.h"
#include "credbroker/state/sqlite/database.h"

namespace credbroker::state::sqlite {

class SqliteLeaseStore final : public LeaseStore {
 public:
  // The schema every database holding leases needs (Open applies it).
  static const char* Schema();
  // `db` must outlive the store and have been opened with Schema().
  static absl::StatusOr<std::unique_ptr<SqliteLeaseStore>> Open(Database* db);
  ~SqliteLeaseStore() override;

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

 private:
  struct Impl;
  explicit SqliteLeaseStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace credbroker::state::sqlite
