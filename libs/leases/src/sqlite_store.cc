#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/leases/lease_store.h"
#include "credbroker/sqlite/database.h"

namespace credbroker::leases {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS leases (
  id TEXT PRIMARY KEY,
  caller TEXT NOT NULL,
  provider TEXT NOT NULL,
  key_version TEXT NOT NULL,
  key_fingerprint TEXT NOT NULL,
  purpose TEXT NOT NULL,
  issued_at_us INTEGER NOT NULL,
  expires_at_us INTEGER NOT NULL,
  renew_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_expires ON leases(expires_at_us);
)sql";

int64_t ToUs(absl::Time t) { return absl::ToUnixMicros(t); }

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  int code = sqlite3_errcode(db);
  std::string msg = absl::StrCat("sqlite lease store: ", what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_FULL || code == SQLITE_IOERR) {
    return absl::UnavailableError(msg);
  }
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return absl::DataLossError(msg);
  return absl::InternalError(msg);
}

}  // namespace

struct SqliteLeaseStore::Impl {
  absl::Mutex mu;
  sqlite3* db = nullptr;
  sqlite3_stmt* put = nullptr;
  sqlite3_stmt* del = nullptr;
  sqlite3_stmt* del_expired = nullptr;
  sqlite3_stmt* load = nullptr;

  ~Impl() {
    for (sqlite3_stmt* s : {put, del, del_expired, load}) sqlite3_finalize(s);
    if (db) sqlite3_close(db);
  }
};

SqliteLeaseStore::SqliteLeaseStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteLeaseStore::~SqliteLeaseStore() = default;

absl::StatusOr<std::unique_ptr<SqliteLeaseStore>> SqliteLeaseStore::Open(const std::string& path,
                                                                         bool synchronous_full) {
  auto impl = std::make_unique<Impl>();
  CB_ASSIGN_OR_RETURN(impl->db,
                      sqlite::OpenDatabase(path, kSchema, synchronous_full, "sqlite lease store"));
  auto prepare = [&](const char* sql, sqlite3_stmt** stmt) {
    return sqlite3_prepare_v2(impl->db, sql, -1, stmt, nullptr) == SQLITE_OK;
  };
  if (!prepare("INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?,?,?,?)", &impl->put) ||
      !prepare("DELETE FROM leases WHERE id = ?", &impl->del) ||
      !prepare("DELETE FROM leases WHERE expires_at_us <= ?", &impl->del_expired) ||
      !prepare("SELECT id, caller, provider, key_version, key_fingerprint, purpose, issued_at_us, "
               "expires_at_us, renew_count FROM leases WHERE expires_at_us > ?",
               &impl->load)) {
    return SqlError(impl->db, "prepare");
  }
  return std::unique_ptr<SqliteLeaseStore>(new SqliteLeaseStore(std::move(impl)));
}

absl::Status SqliteLeaseStore::Put(const LeaseRecord& l) {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = impl_->put;
  sqlite3_reset(s);
  sqlite3_bind_text(s, 1, l.id.data(), static_cast<int>(l.id.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 2, l.caller.data(), static_cast<int>(l.caller.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 3, l.provider.data(), static_cast<int>(l.provider.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 4, l.key_version.data(), static_cast<int>(l.key_version.size()),
                    SQLITE_STATIC);
  sqlite3_bind_text(s, 5, l.key_fingerprint.data(), static_cast<int>(l.key_fingerprint.size()),
                    SQLITE_STATIC);
  sqlite3_bind_text(s, 6, l.purpose.data(), static_cast<int>(l.purpose.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, 7, ToUs(l.issued_at));
  sqlite3_bind_int64(s, 8, ToUs(l.expires_at));
  sqlite3_bind_int64(s, 9, l.renew_count);
  int rc = sqlite3_step(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) return SqlError(impl_->db, "write lease");
  return absl::OkStatus();
}

absl::Status SqliteLeaseStore::Delete(const std::string& id) {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = impl_->del;
  sqlite3_reset(s);
  sqlite3_bind_text(s, 1, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
  int rc = sqlite3_step(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) return SqlError(impl_->db, "delete lease");
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteLeaseStore::DeleteExpired(absl::Time now) {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = impl_->del_expired;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, ToUs(now));
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return SqlError(impl_->db, "delete expired leases");
  return static_cast<int64_t>(sqlite3_changes(impl_->db));
}

absl::StatusOr<std::vector<LeaseRecord>> SqliteLeaseStore::LoadUnexpired(absl::Time now) {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = impl_->load;
  sqlite3_reset(s);
  sqlite3_bind_int64(s, 1, ToUs(now));
  std::vector<LeaseRecord> out;
  auto text = [s](int col) {
    const unsigned char* t = sqlite3_column_text(s, col);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  };
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    LeaseRecord l;
    l.id = text(0);
    l.caller = text(1);
    l.provider = text(2);
    l.key_version = text(3);
    l.key_fingerprint = text(4);
    l.purpose = text(5);
    l.issued_at = absl::FromUnixMicros(sqlite3_column_int64(s, 6));
    l.expires_at = absl::FromUnixMicros(sqlite3_column_int64(s, 7));
    l.renew_count = sqlite3_column_int64(s, 8);
    out.push_back(std::move(l));
  }
  if (rc != SQLITE_DONE) return SqlError(impl_->db, "load leases");
  return out;
}

absl::StatusOr<std::unique_ptr<LeaseStore>> MakeLeaseStore(const v1::LeaseStoreConfig& config) {
  if (config.has_sqlite()) {
    auto store =
        SqliteLeaseStore::Open(config.sqlite().path(), config.sqlite().synchronous() == "full");
    if (!store.ok()) return store.status();
    return std::unique_ptr<LeaseStore>(std::move(*store));
  }
  return absl::InvalidArgumentError("lease_store: no store configured");
}

}  // namespace credbroker::leases
