#include "credbroker/state/sqlite/key_state_store.h"

#include "absl/strings/str_cat.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/key_ring.h"
#include "revision_counter.h"
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
  -- The key-state store revision of the write that stored the row.
  revision INTEGER NOT NULL DEFAULT 1,
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

absl::StatusOr<std::unique_ptr<SqliteKeyStateStore>> SqliteKeyStateStore::Open(
    Database* db, const Leadership* leadership) {
  int64_t revision = 0;
  CB_RETURN_IF_ERROR(db->Read([&](sqlite3* h) -> absl::Status {
    // A file written before records had revisions: add the column (existing rows get 1).
    bool has_revision = false;
    {
      Statement s(h, "SELECT 1 FROM pragma_table_info('key_versions') WHERE name = 'revision'");
      if (!s.ok()) return db->Error(h, "inspect key_versions");
      has_revision = sqlite3_step(s.get()) == SQLITE_ROW;
    }
    if (!has_revision &&
        sqlite3_exec(h, "ALTER TABLE key_versions ADD COLUMN revision INTEGER NOT NULL DEFAULT 1",
                     nullptr, nullptr, nullptr) != SQLITE_OK) {
      return db->Error(h, "add key_versions.revision");
    }
    Statement s(h,
                "SELECT max(coalesce((SELECT value FROM store_meta WHERE "
                "key='key_state_revision'), 0), coalesce((SELECT max(revision) FROM "
                "key_versions), 0))");
    if (!s.ok() || sqlite3_step(s.get()) != SQLITE_ROW) {
      return db->Error(h, "read the key state revision");
    }
    revision = sqlite3_column_int64(s.get(), 0);
    return absl::OkStatus();
  }));
  return std::unique_ptr<SqliteKeyStateStore>(new SqliteKeyStateStore(db, leadership, revision));
}

SqliteKeyStateStore::SqliteKeyStateStore(Database* db, const Leadership* leadership,
                                         int64_t revision)
    : db_(db),
      leadership_(leadership),
      counter_(std::make_unique<RevisionCounter<PersistedKeyVersion>>(db, "key_state_revision",
                                                                      revision)) {}

SqliteKeyStateStore::~SqliteKeyStateStore() = default;

absl::StatusOr<rotation::KeyStateListing> SqliteKeyStateStore::List() {
  rotation::KeyStateListing out;
  CB_RETURN_IF_ERROR(db_->Read([&](sqlite3* h) -> absl::Status {
    Statement s(h,
                "SELECT provider, version, fingerprint, state, created_at_us, retires_at_us, "
                "revision FROM key_versions");
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
      r.revision = sqlite3_column_int64(s.get(), 6);
      out.records.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return db_->Error(h, "read key versions");
    out.revision = counter_->revision();  // between batches: nothing half applied
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int64_t> SqliteKeyStateStore::Write(
    const std::vector<rotation::KeyStateWrite>& writes) {
  const int64_t epoch = leadership_->Epoch();
  int64_t revision = 0;
  CB_RETURN_IF_ERROR(db_->Write([&](Database::Txn& txn) -> absl::Status {
    CB_RETURN_IF_ERROR(Fence(txn, epoch));
    sqlite3* h = txn.db();
    for (const rotation::KeyStateWrite& w : writes) {
      if (w.expected_revision == rotation::KeyStateWrite::kAnyRevision) continue;
      Statement s(h,
                  "SELECT revision FROM key_versions WHERE provider = ? AND version = ? AND "
                  "fingerprint = ?");
      if (!s.ok()) return db_->Error(h, "read key version revision");
      s.Bind(1, w.record.provider);
      s.Bind(2, w.record.version_id);
      s.Bind(3, w.record.fingerprint);
      const int rc = sqlite3_step(s.get());
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_->Error(h, "read key version revision");
      const int64_t actual = rc == SQLITE_ROW ? sqlite3_column_int64(s.get(), 0) : 0;
      if (actual != w.expected_revision) {
        return rotation::KeyStateChanged(w.record.Id(), w.expected_revision, actual);
      }
    }
    revision = counter_->Next(txn);
    for (const rotation::KeyStateWrite& w : writes) {
      const PersistedKeyVersion& r = w.record;
      Statement s(h, "INSERT OR REPLACE INTO key_versions VALUES (?,?,?,?,?,?,?)");
      if (!s.ok()) return db_->Error(h, "save key version");
      s.Bind(1, r.provider);
      s.Bind(2, r.version_id);
      s.Bind(3, r.fingerprint);
      s.Bind(4, rotation::KeyStateName(r.state));
      sqlite3_bind_int64(s.get(), 5, absl::ToUnixMicros(r.created_at));
      if (r.retires_at == absl::InfiniteFuture()) {
        sqlite3_bind_null(s.get(), 6);
      } else {
        sqlite3_bind_int64(s.get(), 6, absl::ToUnixMicros(r.retires_at));
      }
      sqlite3_bind_int64(s.get(), 7, revision);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return db_->Error(h, "save key version");
      PersistedKeyVersion stored = r;
      stored.revision = revision;
      counter_->Add(std::move(stored));
    }
    return absl::OkStatus();
  }));
  return revision;
}

absl::StatusOr<std::unique_ptr<state::Watch>> SqliteKeyStateStore::Watch(
    int64_t after_revision, rotation::KeyStateWatchFn fn) {
  absl::StatusOr<std::unique_ptr<state::Watch>> out;
  // Under the connection lock, so no write is published between the replay and the registration.
  CB_RETURN_IF_ERROR(db_->Read([&](sqlite3*) -> absl::Status {
    out = counter_->log().Watch(after_revision, std::move(fn));
    return absl::OkStatus();
  }));
  return out;
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
