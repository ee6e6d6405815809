#include "credbroker/state/sqlite/state.h"

#include "credbroker/core/status_macros.h"

namespace credbroker::state::sqlite {

absl::StatusOr<std::unique_ptr<SqliteState>> SqliteState::Open(
    const v1::SqliteStoreConfig& config) {
  DatabaseOptions options;
  options.path = config.path();
  options.synchronous_full = config.synchronous() == "full";
  CB_ASSIGN_OR_RETURN(std::unique_ptr<Database> db,
                      Database::Open(options, SqliteLeaseStore::Schema(), "state store"));
  CB_ASSIGN_OR_RETURN(std::unique_ptr<SqliteLeaseStore> leases, SqliteLeaseStore::Open(db.get()));
  return std::unique_ptr<SqliteState>(new SqliteState(std::move(db), std::move(leases)));
}

}  // namespace credbroker::state::sqlite
