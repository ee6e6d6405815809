#include "credbroker/state/sqlite/state.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "statement.h"

namespace credbroker::state::sqlite {

Stores::Fields SqliteState::Describe() const {
  return {{"store", "sqlite"}, {"path", db_->path()}};
}

Stores::Fields SqliteState::Summary() const {
  return {{"writes", absl::StrCat(db_->writes())}, {"commits", absl::StrCat(db_->batches())}};
}

namespace {

// A file of an earlier version and how its rows move into the state file (`legacy` is the
// attached file). Imported only while the state file's `empty_when` query counts nothing.
struct LegacyFile {
  const char* name;
  const char* empty_when;
  const char* copy;
};

constexpr LegacyFile kLegacyFiles[] = {
    {"leases.db", "SELECT (SELECT count(*) FROM lease_rows) + (SELECT count(*) FROM store_meta)",
     // Every imported lease gets revision 1; the next write is revision 2.
     "INSERT INTO main.lease_rows (id, caller, provider, key_version, key_fingerprint, purpose, "
     "issued_at_us, expires_at_us, renew_count, revision) SELECT id, caller, provider, "
     "key_version, key_fingerprint, purpose, issued_at_us, expires_at_us, renew_count, 1 FROM "
     "legacy.leases;"
     "INSERT OR REPLACE INTO main.store_meta VALUES ('lease_revision', 1);"},
    {"keys.db", "SELECT (SELECT count(*) FROM key_versions) + (SELECT count(*) FROM minted_keys)",
     // Every imported record gets revision 1 (the column's default).
     "INSERT OR IGNORE INTO main.key_versions (provider, version, fingerprint, state, "
     "created_at_us, retires_at_us) SELECT provider, version, fingerprint, state, created_at_us, "
     "retires_at_us FROM legacy.key_versions;"
     "INSERT OR IGNORE INTO main.minted_keys SELECT * FROM legacy.minted_keys;"},
    {"anomaly.db",
     "SELECT (SELECT count(*) FROM anomaly_baselines) + (SELECT count(*) FROM anomaly_meta)",
     "INSERT OR IGNORE INTO main.anomaly_baselines SELECT * FROM legacy.baselines;"
     "INSERT OR IGNORE INTO main.anomaly_meta SELECT * FROM legacy.meta;"},
};

// Copies an earlier version's file into a state file that has none of its rows yet. Returns
// whether anything was imported.
absl::StatusOr<bool> Import(Database& db, const LegacyFile& file, const std::string& path) {
  bool imported = false;
  CB_RETURN_IF_ERROR(db.Read([&](sqlite3* h) -> absl::Status {
    {
      Statement count(h, file.empty_when);
      if (!count.ok() || sqlite3_step(count.get()) != SQLITE_ROW) {
        return db.Error(h, absl::StrCat("check before importing ", path));
      }
      if (sqlite3_column_int64(count.get(), 0) != 0) return absl::OkStatus();
    }
    {
      // Finalized before DETACH, which refuses while a statement on the file is open.
      Statement attach(h, "ATTACH ? AS legacy");
      if (!attach.ok()) return db.Error(h, "attach " + path);
      attach.Bind(1, path);
      if (sqlite3_step(attach.get()) != SQLITE_DONE) return db.Error(h, "attach " + path);
    }
    const std::string copy = absl::StrCat("BEGIN;", file.copy, "COMMIT;");
    absl::Status result;
    char* err = nullptr;
    if (sqlite3_exec(h, copy.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      result = absl::FailedPreconditionError(
          absl::StrCat("state store: cannot import ", path, ": ", err ? err : ""));
      sqlite3_free(err);
      if (!sqlite3_get_autocommit(h)) sqlite3_exec(h, "ROLLBACK", nullptr, nullptr, nullptr);
    } else {
      imported = true;
    }
    if (sqlite3_exec(h, "DETACH legacy", nullptr, nullptr, nullptr) != SQLITE_OK && result.ok()) {
      result = db.Error(h, "detach " + path);
    }
    return result;
  }));
  return imported;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteState>> SqliteState::Open(const v1::SqliteStoreConfig& config,
                                                               absl::Duration report_retention) {
  DatabaseOptions options;
  options.path = config.path();
  options.synchronous_full = config.synchronous() == "full";
  const std::string schema =
      absl::StrCat(SqliteLeaseStore::Schema(), SqliteKeyStateStore::Schema(),
                   SqliteAnomalyBaselineStore::Schema(), SqliteSharedFacts::Schema());
  CB_ASSIGN_OR_RETURN(std::unique_ptr<Database> db,
                      Database::Open(options, schema.c_str(), "state store"));
  const std::filesystem::path folder = std::filesystem::path(config.path()).parent_path();
  for (const LegacyFile& file : kLegacyFiles) {
    const std::string legacy = (folder / file.name).string();
    std::error_code ec;
    if (!std::filesystem::exists(legacy, ec)) continue;
    CB_ASSIGN_OR_RETURN(bool imported, Import(*db, file, legacy));
    std::filesystem::rename(legacy, legacy + ".imported", ec);
    for (const char* suffix : {"-wal", "-shm"}) std::filesystem::remove(legacy + suffix, ec);
    core::LogInfo(imported ? "state imported from an earlier version's file"
                           : "earlier version's file set aside (the state file has its data)",
                  {{"from", legacy}, {"renamed_to", legacy + ".imported"}});
  }
  // A new term: whatever an earlier process (or a second opener that got the file meanwhile)
  // decided under an older epoch can no longer be overwritten by it.
  int64_t epoch = 0;
  CB_RETURN_IF_ERROR(db->Write([&](Database::Txn& txn) -> absl::Status {
    if (sqlite3_exec(txn.db(),
                     "INSERT INTO store_meta VALUES ('leader_epoch', 1) ON CONFLICT(key) DO "
                     "UPDATE SET value = value + 1",
                     nullptr, nullptr, nullptr) != SQLITE_OK) {
      return db->Error(txn.db(), "raise the leader epoch");
    }
    Statement s(txn.db(), "SELECT value FROM store_meta WHERE key = 'leader_epoch'");
    if (!s.ok() || sqlite3_step(s.get()) != SQLITE_ROW) {
      return db->Error(txn.db(), "read the leader epoch");
    }
    epoch = sqlite3_column_int64(s.get(), 0);
    return absl::OkStatus();
  }));
  CB_ASSIGN_OR_RETURN(std::unique_ptr<SqliteLeaseStore> leases, SqliteLeaseStore::Open(db.get()));
  std::unique_ptr<SqliteState> state(new SqliteState(std::move(db), std::move(leases), epoch));
  CB_ASSIGN_OR_RETURN(state->key_states_,
                      SqliteKeyStateStore::Open(state->db_.get(), &state->leadership_));
  CB_ASSIGN_OR_RETURN(state->facts_, SqliteSharedFacts::Open(state->db_.get(), report_retention));
  return state;
}

}  // namespace credbroker::state::sqlite
