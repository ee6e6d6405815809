#include "credbroker/state/sqlite/key_state_store.h"

#include "absl/strings/str_cat.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/key_ring.h"
#include "statement.h"

namespace credbroker::state::sqlite {
namespace {

using rotation::KeyState;
using rotation::PersistedKeyVersion;

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

bool StateFromName(absl::string_view name, KeyState* out) {
  for (KeyState s : {KeyState::kPending, KeyState::kCurrent, KeyState::kPrevious,
                     KeyState::kRetired, KeyState::kQuarantined, KeyState::kRevoked}) {
    if (rotation::KeyStateName(s) == name) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace

const char* SqliteKeyStateStore::Schema() { return kSchema; }

absl::Status SqliteKeyStateStore::Fence(Database::Txn& txn, int64_t epoch) const {
  if (epoch <= 0) {
    return core::WithReason(
        absl::FailedPreconditionError(
            "not the leader: key-version decisions are written by the leading replica only"),
        "NOT_LEADER");
  }
  int64_t newest = 0;
  {
    Statement s(txn.db(), "SELECT value FROM store_meta WHERE key = 'leader_epoch'");
    if (!s.ok()) return db_->Error(txn.db(), "read the leader epoch");
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      newest = sqlite3_column_int64(s.get(), 0);
    } else if (rc != SQLITE_DONE) {
      return db_->Error(txn.db(), "read the leader epoch");
    }
  }
  if (epoch < newest) {
    return core::WithReason(absl::FailedPreconditionError(absl::StrCat(
                                "fenced: leader epoch ", epoch, " is older than epoch ", newest,
                                ", which has written since; this replica no longer leads")),
                            "FENCED");
  }
  if (epoch > newest) {
    Statement s(txn.db(), "INSERT OR REPLACE INTO store_meta VALUES ('leader_epoch', ?)");
    if (!s.ok()) return db_->Error(txn.db(), "save the leader epoch");
    sqlite3_bind_int64(s.get(), 1, epoch);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db_->Error(txn.db(), "save the leader epoch");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PersistedKeyVersion>> SqliteKeyStateStore::LoadAll() {
  std::vector<PersistedKeyVersion> out;
  CB_RETURN_IF_ERROR(db_->Read([&](sqlite3* h) -> absl::Status {
    Statement s(h,
                "SELECT provider, version, fingerprint, state, created_at_us, retires_at_us "
                "FROM key_versions");
    if (!s.ok()) return db_->Error(h, "read key versions");
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      PersistedKeyVersion r;
      r.provider = s.Text(0);
      r.version_id = s.Text(1);
      r.fingerprint = s.Text(2);
      if (!StateFromName(s.Text(3), &r.state)) continue;  // a state this build does not know
      r.created_at = absl::FromUnixMicros(sqlite3_column_int64(s.get(), 4));
      r.retires_at = sqlite3_column_type(s.get(), 5) == SQLITE_NULL
                         ? absl::InfiniteFuture()
                         : absl::FromUnixMicros(sqlite3_column_int64(s.get(), 5));
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return db_->Error(h, "read key versions");
    return absl::OkStatus();
  }));
  return out;
}

absl::Status SqliteKeyStateStore::Save(const PersistedKeyVersion& r) {
  const std::string state(rotation::KeyStateName(r.state));
  const int64_t epoch = leadership_->Epoch();
  return db_->Write([&](Database::Txn& txn) -> absl::Status {
    CB_RETURN_IF_ERROR(Fence(txn, epoch));
    Statement s(txn.db(), "INSERT OR REPLACE INTO key_versions VALUES (?,?,?,?,?,?)");
    if (!s.ok()) return db_->Error(txn.db(), "save key version");
    s.Bind(1, r.provider);
    s.Bind(2, r.version_id);
    s.Bind(3, r.fingerprint);
    s.Bind(4, state);
    sqlite3_bind_int64(s.get(), 5, absl::ToUnixMicros(r.created_at));
    if (r.retires_at == absl::InfiniteFuture()) {
      sqlite3_bind_null(s.get(), 6);
    } else {
      sqlite3_bind_int64(s.get(), 6, absl::ToUnixMicros(r.retires_at));
    }
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db_->Error(txn.db(), "save key version");
    return absl::OkStatus();
  });
}

absl::Status SqliteKeyStateStore::SaveMintedKeyId(const std::string& provider,
                                                  const std::string& fingerprint,
                                                  const std::string& key_id) {
  const int64_t epoch = leadership_->Epoch();
  return db_->Write([&](Database::Txn& txn) -> absl::Status {
    CB_RETURN_IF_ERROR(Fence(txn, epoch));
    Statement s(txn.db(), "INSERT OR REPLACE INTO minted_keys VALUES (?,?,?)");
    if (!s.ok()) return db_->Error(txn.db(), "save minted key id");
    s.Bind(1, provider);
    s.Bind(2, fingerprint);
    s.Bind(3, key_id);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db_->Error(txn.db(), "save minted key id");
    return absl::OkStatus();
  });
}

absl::StatusOr<std::string> SqliteKeyStateStore::MintedKeyId(const std::string& provider,
                                                             const std::string& fingerprint) {
  absl::StatusOr<std::string> out;
  CB_RETURN_IF_ERROR(db_->Read([&](sqlite3* h) -> absl::Status {
    Statement s(h, "SELECT key_id FROM minted_keys WHERE provider = ? AND fingerprint = ?");
    if (!s.ok()) return db_->Error(h, "read minted key id");
    s.Bind(1, provider);
    s.Bind(2, fingerprint);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      out = s.Text(0);
    } else if (rc == SQLITE_DONE) {
      out = absl::NotFoundError("key was not minted by the broker");
    } else {
      return db_->Error(h, "read minted key id");
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace credbroker::state::sqlite
