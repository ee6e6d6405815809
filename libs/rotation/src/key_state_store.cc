#include "credbroker/rotation/key_state_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/state/sqlite/open.h"

namespace credbroker::rotation {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS key_versions (
  provider TEXT NOT NULL,
  version TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at_us INTEGER NOT NULL,
  retires_at_us INTEGER,
  PRIMARY KEY (provider, version, fingerprint)
);
CREATE TABLE IF NOT EXISTS minted_keys (
  provider TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  key_id TEXT NOT NULL,
  PRIMARY KEY (provider, fingerprint)
);
)sql";

std::string Key(const PersistedKeyVersion& r) {
  return absl::StrCat(r.provider, "\x1f", r.version_id, "\x1f", r.fingerprint);
}

bool StateFromName(absl::string_view name, KeyState* out) {
  for (KeyState s : {KeyState::kPending, KeyState::kCurrent, KeyState::kPrevious,
                     KeyState::kRetired, KeyState::kQuarantined, KeyState::kRevoked}) {
    if (KeyStateName(s) == name) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<PersistedKeyVersion>> InMemoryKeyStateStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  std::vector<PersistedKeyVersion> out;
  out.reserve(records_.size());
  for (const auto& [k, r] : records_) out.push_back(r);
  return out;
}

absl::Status InMemoryKeyStateStore::Save(const PersistedKeyVersion& record) {
  absl::MutexLock lock(&mu_);
  records_[Key(record)] = record;
  return absl::OkStatus();
}

absl::Status InMemoryKeyStateStore::SaveMintedKeyId(const std::string& provider,
                                                    const std::string& fingerprint,
                                                    const std::string& key_id) {
  absl::MutexLock lock(&mu_);
  minted_[absl::StrCat(provider, "\x1f", fingerprint)] = key_id;
  return absl::OkStatus();
}

absl::StatusOr<std::string> InMemoryKeyStateStore::MintedKeyId(const std::string& provider,
                                                               const std::string& fingerprint) {
  absl::MutexLock lock(&mu_);
  auto it = minted_.find(absl::StrCat(provider, "\x1f", fingerprint));
  if (it == minted_.end()) return absl::NotFoundError("key was not minted by the broker");
  return it->second;
}

struct SqliteKeyStateStore::Impl {
  absl::Mutex mu;
  sqlite3* db = nullptr;
  sqlite3_stmt* save = nullptr;
  ~Impl() {
    sqlite3_finalize(save);
    if (db) sqlite3_close(db);
  }
};

SqliteKeyStateStore::SqliteKeyStateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteKeyStateStore::~SqliteKeyStateStore() = default;

absl::StatusOr<std::unique_ptr<SqliteKeyStateStore>> SqliteKeyStateStore::Open(
    const std::string& path) {
  auto impl = std::make_unique<Impl>();
  CB_ASSIGN_OR_RETURN(impl->db, state::sqlite::OpenDatabase(
                                    path, kSchema, /*synchronous_full=*/false, "key state store"));
  if (sqlite3_prepare_v2(impl->db, "INSERT OR REPLACE INTO key_versions VALUES (?,?,?,?,?,?)", -1,
                         &impl->save, nullptr) != SQLITE_OK) {
    return absl::FailedPreconditionError(
        absl::StrCat("key state store: cannot open ", path, ": ", sqlite3_errmsg(impl->db)));
  }
  return std::unique_ptr<SqliteKeyStateStore>(new SqliteKeyStateStore(std::move(impl)));
}

absl::StatusOr<std::vector<PersistedKeyVersion>> SqliteKeyStateStore::LoadAll() {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(impl_->db,
                         "SELECT provider, version, fingerprint, state, created_at_us, "
                         "retires_at_us FROM key_versions",
                         -1, &s, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("key state store: ", sqlite3_errmsg(impl_->db)));
  }
  std::vector<PersistedKeyVersion> out;
  auto text = [s](int col) {
    const unsigned char* t = sqlite3_column_text(s, col);
    return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
  };
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    PersistedKeyVersion r;
    r.provider = text(0);
    r.version_id = text(1);
    r.fingerprint = text(2);
    if (!StateFromName(text(3), &r.state)) continue;  // a state this build does not know
    r.created_at = absl::FromUnixMicros(sqlite3_column_int64(s, 4));
    r.retires_at = sqlite3_column_type(s, 5) == SQLITE_NULL
                       ? absl::InfiniteFuture()
                       : absl::FromUnixMicros(sqlite3_column_int64(s, 5));
    out.push_back(std::move(r));
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) {
    return absl::DataLossError(absl::StrCat("key state store: ", sqlite3_errmsg(impl_->db)));
  }
  return out;
}

absl::Status SqliteKeyStateStore::Save(const PersistedKeyVersion& r) {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = impl_->save;
  sqlite3_reset(s);
  std::string state(KeyStateName(r.state));
  sqlite3_bind_text(s, 1, r.provider.data(), static_cast<int>(r.provider.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 2, r.version_id.data(), static_cast<int>(r.version_id.size()),
                    SQLITE_STATIC);
  sqlite3_bind_text(s, 3, r.fingerprint.data(), static_cast<int>(r.fingerprint.size()),
                    SQLITE_STATIC);
  sqlite3_bind_text(s, 4, state.data(), static_cast<int>(state.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, 5, absl::ToUnixMicros(r.created_at));
  if (r.retires_at == absl::InfiniteFuture()) {
    sqlite3_bind_null(s, 6);
  } else {
    sqlite3_bind_int64(s, 6, absl::ToUnixMicros(r.retires_at));
  }
  int rc = sqlite3_step(s);
  sqlite3_clear_bindings(s);
  if (rc != SQLITE_DONE) {
    return absl::UnavailableError(absl::StrCat("key state store: ", sqlite3_errmsg(impl_->db)));
  }
  return absl::OkStatus();
}

absl::Status SqliteKeyStateStore::SaveMintedKeyId(const std::string& provider,
                                                  const std::string& fingerprint,
                                                  const std::string& key_id) {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(impl_->db, "INSERT OR REPLACE INTO minted_keys VALUES (?,?,?)", -1, &s,
                         nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("key state store: ", sqlite3_errmsg(impl_->db)));
  }
  sqlite3_bind_text(s, 1, provider.data(), static_cast<int>(provider.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 2, fingerprint.data(), static_cast<int>(fingerprint.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 3, key_id.data(), static_cast<int>(key_id.size()), SQLITE_STATIC);
  int rc = sqlite3_step(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) {
    return absl::UnavailableError(absl::StrCat("key state store: ", sqlite3_errmsg(impl_->db)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SqliteKeyStateStore::MintedKeyId(const std::string& provider,
                                                             const std::string& fingerprint) {
  absl::MutexLock lock(&impl_->mu);
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(impl_->db,
                         "SELECT key_id FROM minted_keys WHERE provider = ? AND fingerprint = ?",
                         -1, &s, nullptr) != SQLITE_OK) {
    return absl::InternalError(absl::StrCat("key state store: ", sqlite3_errmsg(impl_->db)));
  }
  sqlite3_bind_text(s, 1, provider.data(), static_cast<int>(provider.size()), SQLITE_STATIC);
  sqlite3_bind_text(s, 2, fingerprint.data(), static_cast<int>(fingerprint.size()), SQLITE_STATIC);
  int rc = sqlite3_step(s);
  std::string out;
  if (rc == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(s, 0);
    out = t ? reinterpret_cast<const char*>(t) : "";
  }
  sqlite3_finalize(s);
  if (rc == SQLITE_DONE) return absl::NotFoundError("key was not minted by the broker");
  if (rc != SQLITE_ROW) {
    return absl::UnavailableError(absl::StrCat("key state store: ", sqlite3_errmsg(impl_->db)));
  }
  return out;
}

}  // namespace credbroker::rotation
