// SqliteState: the state stores of a single broker (state.sqlite), in one SQLite file that this
// process owns. Built from the `state.sqlite` configuration block.
// Errors: FAILED_PRECONDITION naming the file when it cannot be opened (also when another
// process holds it).
// Thread-safety: the stores are safe for concurrent use.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "credbroker/state/lease_store.h"
#include "credbroker/state/sqlite/database.h"
#include "credbroker/state/sqlite/lease_store.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::state::sqlite {

class SqliteState {
 public:
  // Opens the state file. A new file next to a `leases.db` of an earlier version (that kept leases
  // in a file of their own) takes its leases over, and the old file is renamed
  // `leases.db.imported`, so an upgrade loses no lease.
  static absl::StatusOr<std::unique_ptr<SqliteState>> Open(const v1::SqliteStoreConfig& config);

  LeaseStore& leases() { return *leases_; }
  Database& database() { return *db_; }

 private:
  SqliteState(std::unique_ptr<Database> db, std::unique_ptr<SqliteLeaseStore> leases)
      : db_(std::move(db)), leases_(std::move(leases)) {}
  std::unique_ptr<Database> db_;
  std::unique_ptr<SqliteLeaseStore> leases_;
};

}  // namespace credbroker::state::sqlite
