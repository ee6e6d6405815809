#include "credbroker/state/sqlite/state.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::state::sqlite {
namespace {

// Copies the leases of an earlier version's leases.db into a state file that has none yet.
absl::StatusOr<int64_t> ImportLegacyLeases(Database& db, const std::string& legacy) {
  int64_t imported = 0;
  CB_RETURN_IF_ERROR(db.Read([&](sqlite3* h) -> absl::Status {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(h,
                           "SELECT (SELECT count(*) FROM leases) + (SELECT count(*) FROM "
                           "store_meta)",
                           -1, &s, nullptr) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
      sqlite3_finalize(s);
      return db.Error(h, "check for earlier leases");
    }
    const bool fresh = sqlite3_column_int64(s, 0) == 0;
    sqlite3_finalize(s);
    if (!fresh) return absl::OkStatus();
    s = nullptr;
    if (sqlite3_prepare_v2(h, "ATTACH ? AS legacy", -1, &s, nullptr) != SQLITE_OK) {
      return db.Error(h, "attach " + legacy);
    }
    sqlite3_bind_text(s, 1, legacy.c_str(), -1, SQLITE_TRANSIENT);
    const int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) return db.Error(h, "attach " + legacy);
    // Every imported lease gets revision 1; the next write is revision 2.
    const char* copy =
        "BEGIN;"
        "INSERT OR IGNORE INTO main.leases SELECT id, caller, provider, key_version, "
        "key_fingerprint, purpose, issued_at_us, expires_at_us, renew_count, 1 "
        "FROM legacy.leases;"
        "INSERT OR REPLACE INTO main.store_meta VALUES ('lease_revision', 1);"
        "COMMIT;";
    absl::Status result;
    char* err = nullptr;
    if (sqlite3_exec(h, copy, nullptr, nullptr, &err) != SQLITE_OK) {
      result = absl::FailedPreconditionError(
          absl::StrCat("state store: cannot import the leases of ", legacy, ": ", err ? err : ""));
      sqlite3_free(err);
      if (!sqlite3_get_autocommit(h)) sqlite3_exec(h, "ROLLBACK", nullptr, nullptr, nullptr);
    } else {
      sqlite3_stmt* n = nullptr;
      sqlite3_prepare_v2(h, "SELECT count(*) FROM main.leases", -1, &n, nullptr);
      if (sqlite3_step(n) == SQLITE_ROW) imported = sqlite3_column_int64(n, 0);
      sqlite3_finalize(n);
    }
    sqlite3_exec(h, "DETACH legacy", nullptr, nullptr, nullptr);
    return result;
  }));
  return imported;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteState>> SqliteState::Open(
    const v1::SqliteStoreConfig& config) {
  DatabaseOptions options;
  options.path = config.path();
  options.synchronous_full = config.synchronous() == "full";
  CB_ASSIGN_OR_RETURN(std::unique_ptr<Database> db,
                      Database::Open(options, SqliteLeaseStore::Schema(), "state store"));
  const std::filesystem::path legacy =
      std::filesystem::path(config.path()).parent_path() / "leases.db";
  std::error_code ec;
  if (std::filesystem::exists(legacy, ec)) {
    CB_ASSIGN_OR_RETURN(int64_t imported, ImportLegacyLeases(*db, legacy.string()));
    std::filesystem::rename(legacy, legacy.string() + ".imported", ec);
    for (const char* suffix : {"-wal", "-shm"}) {
      std::filesystem::remove(legacy.string() + suffix, ec);
    }
    core::LogInfo("leases imported from an earlier version's file",
                  {{"from", legacy.string()},
                   {"leases", absl::StrCat(imported)},
                   {"renamed_to", legacy.string() + ".imported"}});
  }
  CB_ASSIGN_OR_RETURN(std::unique_ptr<SqliteLeaseStore> leases, SqliteLeaseStore::Open(db.get()));
  return std::unique_ptr<SqliteState>(new SqliteState(std::move(db), std::move(leases)));
}

}  // namespace credbroker::state::sqlite
