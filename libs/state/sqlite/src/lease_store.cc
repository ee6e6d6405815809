#include "credbroker/state/sqlite/lease_store.h"

#include <sqlite3.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/lease_errors.h"
#include "revision_counter.h"

namespace credbroker::state::sqlite {
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
  renew_count INTEGER NOT NULL,
  revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leases_expires ON leases(expires_at_us);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
)sql";

constexpr char kColumns[] =
    "id, caller, provider, key_version, key_fingerprint, purpose, issued_at_us, expires_at_us, "
    "renew_count, revision";

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

}  // namespace

struct SqliteLeaseStore::Impl {
  explicit Impl(Database* database) : db(database) {}
  ~Impl() {
    for (sqlite3_stmt* s :
         {insert, update, remove, remove_at, remove_expired, get, list, revision_of}) {
      sqlite3_finalize(s);
    }
  }

  Database* const db;
  // Everything below is used only under the database's connection lock (inside Write/Read).
  // Revisions, published in commit order to the watchers (revision_counter.h).
  // Set at Open, once the stored revision is read.
  std::optional<RevisionCounter<LeaseChange>> counter;
  sqlite3_stmt* insert = nullptr;
  sqlite3_stmt* update = nullptr;
  sqlite3_stmt* remove = nullptr;
  sqlite3_stmt* remove_at = nullptr;
  sqlite3_stmt* remove_expired = nullptr;
  sqlite3_stmt* get = nullptr;
  sqlite3_stmt* list = nullptr;
  sqlite3_stmt* revision_of = nullptr;

  absl::Status DoCreate(Database::Txn& txn, const LeaseRecord& lease, int64_t* rev) {
    Use s(insert);
    BindLease(s.get(), lease);
    sqlite3_bind_int64(s.get(), 10, counter->Peek());
    const int rc = sqlite3_step(s.get());
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return LeaseExists();
    if (rc != SQLITE_DONE) return db->Error(txn.db(), "insert lease");
    *rev = counter->Next(txn);
    counter->Add(LeaseChange{LeaseChange::Type::kPut, *rev, lease});
    return absl::OkStatus();
  }

  absl::Status DoUpdate(Database::Txn& txn, const LeaseRecord& lease, int64_t expected_revision,
                        int64_t* rev) {
    {
      Use s(update);
      BindLease(s.get(), lease);
      sqlite3_bind_int64(s.get(), 10, counter->Peek());
      sqlite3_bind_int64(s.get(), 11, expected_revision);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(txn.db(), "update lease");
    }
    if (sqlite3_changes(txn.db()) == 0) return Missed(txn.db(), lease.id, expected_revision);
    *rev = counter->Next(txn);
    counter->Add(LeaseChange{LeaseChange::Type::kPut, *rev, lease});
    return absl::OkStatus();
  }

  // NOT_FOUND or ABORTED for a lease whose conditional write matched no row.
  absl::Status Missed(sqlite3* h, const std::string& id, int64_t expected) const {
    Use s(revision_of);
    BindText(s.get(), 1, id);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) return LeaseMissing();
    if (rc != SQLITE_ROW) return db->Error(h, "read lease revision");
    return LeaseChanged(expected, sqlite3_column_int64(s.get(), 0));
  }

  // Deletes one lease (any revision when expected is 0) and records the change. With the lease
  // as the caller saw it at the expected revision, one conditional delete; otherwise a read, then
  // a plain delete (inside the batch's exclusive transaction nothing can change in between):
  // SQLite runs DELETE ... RETURNING through a temporary table, several times the cost.
  absl::StatusOr<LeaseRecord> DeleteOne(Database::Txn& txn, const LeaseDelete& r) {
    sqlite3* h = txn.db();
    if (r.expected_revision != 0 && r.as_seen.has_value()) {
      // The caller knows the row at that revision: one conditional delete, no read.
      {
        Use s(remove_at);
        BindText(s.get(), 1, r.id);
        sqlite3_bind_int64(s.get(), 2, r.expected_revision);
        if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(h, "delete lease");
      }
      if (sqlite3_changes(h) == 0) return Missed(h, r.id, r.expected_revision);
      counter->Add(LeaseChange{LeaseChange::Type::kDelete, counter->Next(txn), *r.as_seen});
      return *r.as_seen;
    }
    VersionedLease gone;
    {
      Use s(get);
      BindText(s.get(), 1, r.id);
      const int rc = sqlite3_step(s.get());
      if (rc == SQLITE_DONE) return LeaseMissing();
      if (rc != SQLITE_ROW) return db->Error(h, "read lease");
      gone = ReadLease(s.get());
    }
    if (r.expected_revision != 0 && gone.revision != r.expected_revision) {
      return LeaseChanged(r.expected_revision, gone.revision);
    }
    {
      Use s(remove);
      BindText(s.get(), 1, r.id);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(h, "delete lease");
    }
    counter->Add(LeaseChange{LeaseChange::Type::kDelete, counter->Next(txn), gone.lease});
    return std::move(gone.lease);
  }
};

const char* SqliteLeaseStore::Schema() { return kSchema; }

SqliteLeaseStore::SqliteLeaseStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteLeaseStore::~SqliteLeaseStore() = default;

absl::StatusOr<std::unique_ptr<SqliteLeaseStore>> SqliteLeaseStore::Open(Database* db) {
  auto impl = std::make_unique<Impl>(db);
  Impl* p = impl.get();
  CB_RETURN_IF_ERROR(db->Read([p](sqlite3* h) -> absl::Status {
    const std::string returning = absl::StrCat(" RETURNING ", kColumns);
    const std::pair<std::string, sqlite3_stmt**> statements[] = {
        {"INSERT INTO leases VALUES (?,?,?,?,?,?,?,?,?,?)", &p->insert},
        {"UPDATE leases SET caller=?2, provider=?3, key_version=?4, key_fingerprint=?5, "
         "purpose=?6, issued_at_us=?7, expires_at_us=?8, renew_count=?9, revision=?10 "
         "WHERE id=?1 AND revision=?11",
         &p->update},
        {"DELETE FROM leases WHERE id=?", &p->remove},
        {"DELETE FROM leases WHERE id=? AND revision=?", &p->remove_at},
        {"DELETE FROM leases WHERE expires_at_us <= ?" + returning, &p->remove_expired},
        {absl::StrCat("SELECT ", kColumns, " FROM leases WHERE id=?"), &p->get},
        {absl::StrCat("SELECT ", kColumns, " FROM leases"), &p->list},
        {"SELECT revision FROM leases WHERE id=?", &p->revision_of},
    };
    for (const auto& [sql, stmt] : statements) {
      if (sqlite3_prepare_v2(h, sql.c_str(), -1, stmt, nullptr) != SQLITE_OK) {
        return p->db->Error(h, "prepare");
      }
    }
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(h,
                           "SELECT max(coalesce((SELECT value FROM store_meta WHERE "
                           "key='lease_revision'), 0), coalesce((SELECT max(revision) FROM "
                           "leases), 0))",
                           -1, &s, nullptr) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
      sqlite3_finalize(s);
      return p->db->Error(h, "read lease revision");
    }
    p->counter.emplace(p->db, "lease_revision", sqlite3_column_int64(s, 0));
    sqlite3_finalize(s);
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

absl::StatusOr<std::vector<LeaseRecord>> SqliteLeaseStore::DeleteExpired(absl::Time now) {
  Impl& m = *impl_;
  std::vector<LeaseRecord> out;
  CB_RETURN_IF_ERROR(m.db->Write([&](Database::Txn& txn) -> absl::Status {
    out.clear();
    Use s(m.remove_expired);
    sqlite3_bind_int64(s.get(), 1, absl::ToUnixMicros(now));
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back(ReadLease(s.get()).lease);
    if (rc != SQLITE_DONE) return m.db->Error(txn.db(), "delete expired leases");
    for (const LeaseRecord& l : out) {
      m.counter->Add(LeaseChange{LeaseChange::Type::kDelete, m.counter->Next(txn), l});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<VersionedLease> SqliteLeaseStore::Get(const std::string& id) {
  Impl& m = *impl_;
  absl::StatusOr<VersionedLease> out;
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3* h) -> absl::Status {
    Use s(m.get);
    BindText(s.get(), 1, id);
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      out = ReadLease(s.get());
    } else if (rc == SQLITE_DONE) {
      out = LeaseMissing();
    } else {
      return m.db->Error(h, "read lease");
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<LeaseListing> SqliteLeaseStore::List() {
  Impl& m = *impl_;
  LeaseListing out;
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3* h) -> absl::Status {
    Use s(m.list);
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
