// SqliteLeaseStore: the LeaseStore of a single broker, in its SQLite state file plus a journal
// next to it (`<state file>-leases.journal`, lease_journal.h).
//
// A write is checked against the store's index in memory, appended to the journal with one
// write(2), published to the watchers and answered, all on the writer's thread: with
// synchronous=NORMAL it is then as durable as a SQLite WAL commit (it survives a crash of the
// process, not of the machine). With synchronous=FULL an asynchronous write is answered once an
// fsync of the journal covers it, one fsync for every write waiting (group commit); a blocking
// write fsyncs itself. The database's committer applies the journaled writes to the lease table in
// batches (its own thread gathers them for up to 10 ms), one transaction each, and the journal is
// emptied once the table holds all of it; Open
// applies whatever a crash left there (a torn last record was never answered, and is dropped).
// Why: a gRPC callback RPC answered from another thread than its handler costs as much again as
// the RPC (bench/RESULTS.md, 2026-12-03), and one SQLite commit per request costs more still.
//
// Reads see the journaled writes: Get and List overlay the table with the writes not yet applied.
// The store revision is saved with every apply, so revisions keep growing across restarts.
// Watches are served from memory: the changes written by this process (every writer is this
// process).
//
// The table has no index: the store keeps, per lease, its row number, revision and expiry in
// memory (loaded at Open), so creates append at the table's end, conditional writes are checked
// without a read, and the expiry sweep scans memory. A file written with the earlier layout (the
// table keyed by lease id) is converted once at Open.
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
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

  // Applies every journaled write to the table now (the applier does it within 10 ms anyway);
  // returns once that transaction committed.
  absl::Status ApplyJournal();
  // Transactions that applied journaled writes to the table (each holds many under load).
  uint64_t applies() const;

 private:
  struct Impl;
  explicit SqliteLeaseStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::thread applier_;
};

}  // namespace credbroker::state::sqlite
