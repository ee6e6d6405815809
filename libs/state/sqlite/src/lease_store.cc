#include "credbroker/state/sqlite/lease_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/lease_id_map.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/lease_errors.h"
#include "revision_counter.h"
#include "statement.h"

namespace credbroker::state::sqlite {
namespace {

// Leases live in a rowid table with no index: the store keeps the id → row map itself (this
// process owns the file), so a new lease is appended at the table's end and a renew or a release
// finds its row by rowid. Neither touches a page picked by a random lease id, and a batch of
// short-lived leases dirties a few pages at the table's end instead of one per lease in an id
// index and another in an expiry index (the layout before, kept readable by Open).
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS lease_rows (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  caller TEXT NOT NULL,
  provider TEXT NOT NULL,
  key_version TEXT NOT NULL,
  key_fingerprint TEXT NOT NULL,
  purpose TEXT NOT NULL,
  issued_at_us INTEGER NOT NULL,
  expires_at_us INTEGER NOT NULL,
  renew_count INTEGER NOT NULL,
  revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
)sql";

constexpr char kColumns[] =
    "id, caller, provider, key_version, key_fingerprint, purpose, issued_at_us, expires_at_us, "
    "renew_count, revision";

// The earlier layout (a table keyed by lease id, with an expiry index): its rows move into
// lease_rows once, when a file written by an earlier version is opened.
constexpr char kMigrateKeyedTable[] = R"sql(
BEGIN;
INSERT INTO lease_rows (id, caller, provider, key_version, key_fingerprint, purpose,
    issued_at_us, expires_at_us, renew_count, revision)
  SELECT id, caller, provider, key_version, key_fingerprint, purpose, issued_at_us,
    expires_at_us, renew_count, revision FROM leases;
DROP TABLE leases;
COMMIT;
)sql";

void BindText(sqlite3_stmt* s, int col, const std::string& v) {
  sqlite3_bind_text(s, col, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}

// Binds columns 1..9 (everything but the revision).
void BindLease(sqlite3_stmt* s, const LeaseRecord& l) {
  BindText(s, 1, l.id);
  BindText(s, 2, l.caller);
  BindText(s, 3, l.provider);
  BindText(s, 4, l.key_version);
  BindText(s, 5, l.key_fingerprint);
  BindText(s, 6, l.purpose);
  sqlite3_bind_int64(s, 7, absl::ToUnixMicros(l.issued_at));
  sqlite3_bind_int64(s, 8, absl::ToUnixMicros(l.expires_at));
  sqlite3_bind_int64(s, 9, l.renew_count);
}

// Reads a row selected with kColumns.
VersionedLease ReadLease(sqlite3_stmt* s) {
  auto text = [s](int col) {
    const unsigned char* t = sqlite3_column_text(s, col);
    return t ? std::string(reinterpret_cast<const char*>(t),
                           static_cast<size_t>(sqlite3_column_bytes(s, col)))
             : std::string();
  };
  VersionedLease v;
  v.lease.id = text(0);
  v.lease.caller = text(1);
  v.lease.provider = text(2);
  v.lease.key_version = text(3);
  v.lease.key_fingerprint = text(4);
  v.lease.purpose = text(5);
  v.lease.issued_at = absl::FromUnixMicros(sqlite3_column_int64(s, 6));
  v.lease.expires_at = absl::FromUnixMicros(sqlite3_column_int64(s, 7));
  v.lease.renew_count = sqlite3_column_int64(s, 8);
  v.revision = sqlite3_column_int64(s, 9);
  return v;
}

// A prepared statement, reset and unbound when the scope ends.
class Use {
 public:
  explicit Use(sqlite3_stmt* s) : s_(s) {}
  ~Use() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* const s_;
};

// Where a lease's row is and what a conditional write or the sweep must know without reading it.
struct Row {
  int64_t seq = 0;
  int64_t revision = 0;
  int64_t expires_at_us = 0;
};

}  // namespace

struct SqliteLeaseStore::Impl {
  explicit Impl(Database* database) : db(database) {}
  ~Impl() {
    for (sqlite3_stmt* s : {insert, update, remove, read}) sqlite3_finalize(s);
  }

  Database* const db;
  // Everything below is used only under the database's connection lock (inside Write/Read).
  // Revisions, published in commit order to the watchers (revision_counter.h).
  // Set at Open, once the stored revision is read.
  std::optional<RevisionCounter<LeaseChange>> counter;
  // Every lease in lease_rows, by id. Changed with each write of a batch (a later write of the
  // same batch sees it) and put back from `undo` if the batch rolls back.
  core::LeaseIdMap<Row> rows;
  // What each write of the running batch replaced in `rows` (nullopt: the id was absent).
  std::vector<std::pair<std::string, std::optional<Row>>> undo;
  bool in_batch = false;
  sqlite3_stmt* insert = nullptr;
  sqlite3_stmt* update = nullptr;
  sqlite3_stmt* remove = nullptr;
  sqlite3_stmt* read = nullptr;

  // Records what `rows[id]` was before this batch's write, once per batch registering the hooks
  // that forget it (commit) or restore it (rollback).
  void Remember(Database::Txn& txn, const std::string& id, std::optional<Row> before) {
    if (!in_batch) {
      in_batch = true;
      txn.AfterCommit(this, [this] {
        in_batch = false;
        undo.clear();
      });
      txn.AfterRollback(this, [this] {
        in_batch = false;
        for (; !undo.empty(); undo.pop_back()) {  // newest first
          const auto& [id, before] = undo.back();
          if (before.has_value()) {
            rows.Put(id, *before);
          } else {
            rows.Erase(id);
          }
        }
      });
    }
    undo.emplace_back(id, before);
  }

  absl::Status DoCreate(Database::Txn& txn, const LeaseRecord& lease, int64_t* rev) {
    if (rows.Contains(lease.id)) return LeaseExists();
    const int64_t revision = counter->Peek();
    {
      Use s(insert);
      BindLease(s.get(), lease);
      sqlite3_bind_int64(s.get(), 10, revision);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(txn.db(), "insert lease");
    }
    Remember(txn, lease.id, std::nullopt);
    rows.Put(lease.id, Row{sqlite3_last_insert_rowid(txn.db()), revision,
                           absl::ToUnixMicros(lease.expires_at)});
    *rev = counter->Next(txn);
    counter->Add(LeaseChange{LeaseChange::Type::kPut, *rev, lease});
    return absl::OkStatus();
  }

  absl::Status DoUpdate(Database::Txn& txn, const LeaseRecord& lease, int64_t expected_revision,
                        int64_t* rev) {
    Row* found = rows.Find(lease.id);
    if (found == nullptr) return LeaseMissing();
    Row& row = *found;
    if (row.revision != expected_revision) return LeaseChanged(expected_revision, row.revision);
    const int64_t revision = counter->Peek();
    {
      Use s(update);
      BindLease(s.get(), lease);
      sqlite3_bind_int64(s.get(), 10, revision);
      sqlite3_bind_int64(s.get(), 11, row.seq);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(txn.db(), "update lease");
    }
    Remember(txn, lease.id, row);
    row.revision = revision;
    row.expires_at_us = absl::ToUnixMicros(lease.expires_at);
    *rev = counter->Next(txn);
    counter->Add(LeaseChange{LeaseChange::Type::kPut, *rev, lease});
    return absl::OkStatus();
  }

  absl::StatusOr<VersionedLease> ReadRow(sqlite3* h, int64_t seq) const {
    Use s(read);
    sqlite3_bind_int64(s.get(), 1, seq);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return ReadLease(s.get());
    if (rc == SQLITE_DONE) {
      return absl::DataLossError(absl::StrCat("state store: lease row ", seq, " is missing"));
    }
    return db->Error(h, "read lease");
  }

  // Deletes one lease (any revision when expected is 0) and records the change. The deleted
  // lease is the caller's copy when it has the one at the expected revision (a revision names
  // one write), otherwise read from its row first.
  absl::StatusOr<LeaseRecord> DeleteOne(Database::Txn& txn, const LeaseDelete& r) {
    const Row* found = rows.Find(r.id);
    if (found == nullptr) return LeaseMissing();
    const Row row = *found;
    if (r.expected_revision != 0 && row.revision != r.expected_revision) {
      return LeaseChanged(r.expected_revision, row.revision);
    }
    LeaseRecord gone;
    if (r.expected_revision != 0 && r.as_seen.has_value()) {
      gone = *r.as_seen;
    } else {
      CB_ASSIGN_OR_RETURN(VersionedLease read, ReadRow(txn.db(), row.seq));
      gone = std::move(read.lease);
    }
    CB_RETURN_IF_ERROR(RemoveRow(txn, r.id, row));
    counter->Add(LeaseChange{LeaseChange::Type::kDelete, counter->Next(txn), gone});
    return gone;
  }

  // Deletes the row of lease `id`, whose index entry is `row`.
  absl::Status RemoveRow(Database::Txn& txn, const std::string& id, const Row& row) {
    {
      Use s(remove);
      sqlite3_bind_int64(s.get(), 1, row.seq);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(txn.db(), "delete lease");
    }
    Remember(txn, id, row);
    rows.Erase(id);
    return absl::OkStatus();
  }
};

const char* SqliteLeaseStore::Schema() { return kSchema; }

SqliteLeaseStore::SqliteLeaseStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteLeaseStore::~SqliteLeaseStore() = default;

absl::StatusOr<std::unique_ptr<SqliteLeaseStore>> SqliteLeaseStore::Open(Database* db) {
  auto impl = std::make_unique<Impl>(db);
  Impl* p = impl.get();
  CB_RETURN_IF_ERROR(db->Read([p](sqlite3* h) -> absl::Status {
    bool earlier_layout = false;
    {
      Statement old(h, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='leases'");
      if (!old.ok()) return p->db->Error(h, "look for leases in the earlier layout");
      earlier_layout = sqlite3_step(old.get()) == SQLITE_ROW;
    }  // finalized: DROP TABLE refuses while a statement reads the schema
    {
      if (earlier_layout) {
        char* err = nullptr;
        if (sqlite3_exec(h, kMigrateKeyedTable, nullptr, nullptr, &err) != SQLITE_OK) {
          absl::Status s = absl::FailedPreconditionError(
              absl::StrCat("state store: cannot move leases to the new layout: ", err ? err : ""));
          sqlite3_free(err);
          if (!sqlite3_get_autocommit(h)) sqlite3_exec(h, "ROLLBACK", nullptr, nullptr, nullptr);
          return s;
        }
      }
    }
    const std::pair<std::string, sqlite3_stmt**> statements[] = {
        {"INSERT INTO lease_rows (id, caller, provider, key_version, key_fingerprint, purpose, "
         "issued_at_us, expires_at_us, renew_count, revision) VALUES (?,?,?,?,?,?,?,?,?,?)",
         &p->insert},
        {"UPDATE lease_rows SET caller=?2, provider=?3, key_version=?4, key_fingerprint=?5, "
         "purpose=?6, issued_at_us=?7, expires_at_us=?8, renew_count=?9, revision=?10 "
         "WHERE seq=?11",
         &p->update},
        {"DELETE FROM lease_rows WHERE seq=?", &p->remove},
        {absl::StrCat("SELECT ", kColumns, " FROM lease_rows WHERE seq=?"), &p->read},
    };
    for (const auto& [sql, stmt] : statements) {
      if (sqlite3_prepare_v2(h, sql.c_str(), -1, stmt, nullptr) != SQLITE_OK) {
        return p->db->Error(h, "prepare");
      }
    }
    int64_t newest = 0;
    {
      Statement all(h, "SELECT id, seq, revision, expires_at_us FROM lease_rows");
      if (!all.ok()) return p->db->Error(h, "load leases");
      int rc;
      while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
        const Row row{sqlite3_column_int64(all.get(), 1), sqlite3_column_int64(all.get(), 2),
                      sqlite3_column_int64(all.get(), 3)};
        newest = std::max(newest, row.revision);
        // Only this store writes the table, and it never writes an id twice.
        if (!p->rows.Put(all.Text(0), row)) {
          return absl::DataLossError(
              absl::StrCat("state store: two rows for one lease (row ", row.seq, ")"));
        }
      }
      if (rc != SQLITE_DONE) return p->db->Error(h, "load leases");
    }
    Statement saved(h, "SELECT value FROM store_meta WHERE key='lease_revision'");
    if (!saved.ok()) return p->db->Error(h, "read lease revision");
    const int rc = sqlite3_step(saved.get());
    if (rc == SQLITE_ROW) {
      newest = std::max<int64_t>(newest, sqlite3_column_int64(saved.get(), 0));
    } else if (rc != SQLITE_DONE) {
      return p->db->Error(h, "read lease revision");
    }
    // Every lease write takes a revision: reserve them in blocks (revision_counter.h).
    p->counter.emplace(p->db, "lease_revision", newest, /*reserve=*/1024);
    return absl::OkStatus();
  }));
  // Changes committed before this process started are not remembered: watchers start from List.
  return std::unique_ptr<SqliteLeaseStore>(new SqliteLeaseStore(std::move(impl)));
}

absl::StatusOr<int64_t> SqliteLeaseStore::Create(const LeaseRecord& lease) {
  int64_t rev = 0;
  CB_RETURN_IF_ERROR(
      impl_->db->Write([&](Database::Txn& txn) { return impl_->DoCreate(txn, lease, &rev); }));
  return rev;
}

void SqliteLeaseStore::CreateAsync(const LeaseRecord& lease, Done<int64_t> done) {
  auto rev = std::make_shared<int64_t>(0);
  Impl* m = impl_.get();
  m->db->WriteAsync(
      [m, lease, rev](Database::Txn& txn) { return m->DoCreate(txn, lease, rev.get()); },
      [rev, done = std::move(done)](absl::Status s) {
        if (s.ok()) {
          done(*rev);
        } else {
          done(std::move(s));
        }
      });
}

absl::StatusOr<int64_t> SqliteLeaseStore::Update(const LeaseRecord& lease,
                                                 int64_t expected_revision) {
  int64_t rev = 0;
  CB_RETURN_IF_ERROR(impl_->db->Write(
      [&](Database::Txn& txn) { return impl_->DoUpdate(txn, lease, expected_revision, &rev); }));
  return rev;
}

void SqliteLeaseStore::UpdateAsync(const LeaseRecord& lease, int64_t expected_revision,
                                   Done<int64_t> done) {
  auto rev = std::make_shared<int64_t>(0);
  Impl* m = impl_.get();
  m->db->WriteAsync(
      [m, lease, expected_revision, rev](Database::Txn& txn) {
        return m->DoUpdate(txn, lease, expected_revision, rev.get());
      },
      [rev, done = std::move(done)](absl::Status s) {
        if (s.ok()) {
          done(*rev);
        } else {
          done(std::move(s));
        }
      });
}

absl::StatusOr<LeaseRecord> SqliteLeaseStore::Delete(const LeaseDelete& request) {
  absl::StatusOr<LeaseRecord> out;
  CB_RETURN_IF_ERROR(impl_->db->Write([&](Database::Txn& txn) {
    out = impl_->DeleteOne(txn, request);
    return out.status();
  }));
  return out;
}

void SqliteLeaseStore::DeleteAsync(LeaseDelete request, Done<LeaseRecord> done) {
  auto out = std::make_shared<absl::StatusOr<LeaseRecord>>();
  Impl* m = impl_.get();
  m->db->WriteAsync(
      [m, request = std::move(request), out](Database::Txn& txn) {
        *out = m->DeleteOne(txn, request);
        return out->status();
      },
      [out, done = std::move(done)](absl::Status s) {
        if (s.ok()) {
          done(std::move(*out));
        } else {
          done(std::move(s));
        }
      });
}

absl::StatusOr<std::vector<LeaseRecord>> SqliteLeaseStore::DeleteAll(
    const std::vector<LeaseDelete>& requests) {
  Impl& m = *impl_;
  std::vector<LeaseRecord> out;
  CB_RETURN_IF_ERROR(m.db->Write([&](Database::Txn& txn) -> absl::Status {
    out.clear();
    for (const LeaseDelete& r : requests) {
      absl::StatusOr<LeaseRecord> gone = m.DeleteOne(txn, r);
      if (gone.ok()) {
        out.push_back(*std::move(gone));
      } else if (!absl::IsNotFound(gone.status()) && !absl::IsAborted(gone.status())) {
        return gone.status();
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

// In chunks, each its own write: a sweep of 100k expired leases in one transaction held the
// committer (and every lease write queued behind it) for about a second (bench/RESULTS.md);
// chunks of kSweepChunk let other writes through between them.
absl::StatusOr<std::vector<LeaseRecord>> SqliteLeaseStore::DeleteExpired(absl::Time now) {
  constexpr size_t kSweepChunk = 1024;
  Impl& m = *impl_;
  const int64_t now_us = absl::ToUnixMicros(now);
  std::vector<std::string> expired;
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3*) -> absl::Status {
    m.rows.ForEach([&](const std::string& id, const Row& row) {
      if (row.expires_at_us <= now_us) expired.push_back(id);
    });
    return absl::OkStatus();
  }));
  std::vector<LeaseRecord> out;
  for (size_t begin = 0; begin < expired.size(); begin += kSweepChunk) {
    const size_t end = std::min(expired.size(), begin + kSweepChunk);
    std::vector<LeaseRecord> chunk;
    absl::Status written = m.db->Write([&](Database::Txn& txn) -> absl::Status {
      chunk.clear();
      for (size_t i = begin; i < end; ++i) {
        // Renewed or released since it was listed: not this sweep's.
        const Row* found = m.rows.Find(expired[i]);
        if (found == nullptr || found->expires_at_us > now_us) continue;
        const Row row = *found;
        CB_ASSIGN_OR_RETURN(VersionedLease gone, m.ReadRow(txn.db(), row.seq));
        CB_RETURN_IF_ERROR(m.RemoveRow(txn, expired[i], row));
        m.counter->Add(LeaseChange{LeaseChange::Type::kDelete, m.counter->Next(txn), gone.lease});
        chunk.push_back(std::move(gone.lease));
      }
      return absl::OkStatus();
    });
    // What earlier chunks deleted is gone (and was published): report it; the next sweep meets
    // the error again if it lasts.
    if (!written.ok()) {
      if (out.empty()) return written;
      break;
    }
    for (LeaseRecord& l : chunk) out.push_back(std::move(l));
  }
  return out;
}

absl::StatusOr<VersionedLease> SqliteLeaseStore::Get(const std::string& id) {
  Impl& m = *impl_;
  absl::StatusOr<VersionedLease> out;
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3* h) -> absl::Status {
    const Row* row = m.rows.Find(id);
    if (row == nullptr) {
      out = LeaseMissing();
      return absl::OkStatus();
    }
    out = m.ReadRow(h, row->seq);
    return out.status();
  }));
  return out;
}

absl::StatusOr<LeaseListing> SqliteLeaseStore::List() {
  Impl& m = *impl_;
  LeaseListing out;
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3* h) -> absl::Status {
    Statement s(h, absl::StrCat("SELECT ", kColumns, " FROM lease_rows").c_str());
    if (!s.ok()) return m.db->Error(h, "list leases");
    out.leases.reserve(m.rows.size());
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.leases.push_back(ReadLease(s.get()));
    if (rc != SQLITE_DONE) return m.db->Error(h, "list leases");
    out.revision = m.counter->revision();
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::unique_ptr<LeaseWatch>> SqliteLeaseStore::Watch(int64_t after_revision,
                                                                    LeaseWatchFn fn) {
  Impl& m = *impl_;
  absl::StatusOr<std::unique_ptr<LeaseWatch>> out;
  // Under the connection lock, so no batch is published between the replay and the registration.
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3*) -> absl::Status {
    out = m.counter->log().Watch(after_revision, std::move(fn));
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace credbroker::state::sqlite
