#include "credbroker/state/sqlite/lease_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "credbroker/core/lease_id_map.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/lease_errors.h"
#include "lease_journal.h"
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

// A journaled write the table does not have yet. Its lease is the one in the change published to
// the watchers: one copy of a written lease serves them, the reads' overlay and the apply.
struct Pending {
  JournalRecord::Op op = JournalRecord::Op::kPut;
  int64_t seq = 0;
  int64_t revision = 0;
  std::shared_ptr<const LeaseRecord> lease;  // kDelete: the lease as it was
};

// The newest write of a lease some of whose journal records are not in the table yet: reads
// answer from it, the table being behind.
struct Unapplied {
  std::shared_ptr<const LeaseRecord> lease;  // null: deleted
  int64_t revision = 0;
  int records = 0;  // its records not yet applied
};

// A fully applied journal is emptied once it has grown past this (emptying it after every apply
// would cost a file-size change per batch).
constexpr uint64_t kJournalResetBytes = 1 << 20;
// The applier lets writes gather for up to kApplyDelay, or until kApplyBatch are waiting: nobody
// waits for an apply (writes are answered from the journal), and each transaction costs a commit.
// A writer waiting for an fsync (synchronous=FULL) is served at once.
constexpr absl::Duration kApplyDelay = absl::Milliseconds(10);
constexpr size_t kApplyBatch = 4096;
// After a failed apply (a storage error), the next try waits this long.
constexpr absl::Duration kApplyRetry = absl::Seconds(1);

// One apply: the records it took from the queue, and (synchronous=FULL) the writers waiting for
// the fsync that made them durable.
struct ApplyRun {
  std::vector<Pending> records;
  int64_t top_seq = 0;  // the highest row number among them
  std::vector<std::function<void(absl::Status)>> waiters;
  absl::Status synced;
};

}  // namespace

struct SqliteLeaseStore::Impl {
  Impl(Database* database, std::unique_ptr<LeaseJournal> j)
      : db(database), full(database->synchronous_full()), journal(std::move(j)) {}
  ~Impl() {
    for (sqlite3_stmt* s : {put, remove, read, save_revision}) sqlite3_finalize(s);
  }

  Database* const db;
  const bool full;  // synchronous=FULL: a write is answered once the journal is fsynced
  const std::unique_ptr<LeaseJournal> journal;
  std::optional<ChangeLog> log;  // set at Open

  // Lock order: the database's connection lock (Database::Read, a batch) before mu.
  absl::Mutex mu;
  // Every lease, the journaled writes included: conditional writes are checked here.
  core::LeaseIdMap<Row> rows ABSL_GUARDED_BY(mu);
  core::LeaseIdMap<Unapplied> unapplied ABSL_GUARDED_BY(mu);
  // Journaled, waiting for the applier.
  std::vector<Pending> to_apply ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::atomic<uint64_t> applies{0};
  std::vector<std::function<void(absl::Status)>> awaiting_sync ABSL_GUARDED_BY(mu);
  // Set when an fsync of the journal failed: what reached the disk is unknown, so no write is
  // accepted until the broker restarts and reads the journal back.
  absl::Status broken ABSL_GUARDED_BY(mu);
  int64_t revision ABSL_GUARDED_BY(mu) = 0;
  int64_t next_seq ABSL_GUARDED_BY(mu) = 1;
  std::string frames ABSL_GUARDED_BY(mu);  // reused encoding buffer

  // Used under the connection lock only.
  // Above every row number the table has ever held: a row at or above it was never written there.
  int64_t table_seq_ceiling = 1;
  sqlite3_stmt* put = nullptr;
  sqlite3_stmt* remove = nullptr;
  sqlite3_stmt* read = nullptr;
  sqlite3_stmt* save_revision = nullptr;

  // --- Writes: journaled on the caller's thread -------------------------------------------------

  // Appends `records` (consecutive revisions after `revision`) to the journal with one write and
  // makes them the store's state: the watchers, the index, the reads' overlay, the next apply.
  // Takes the records' leases (moved into the published changes).
  absl::Status JournalLocked(absl::Span<JournalRecord> records) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (records.empty()) return absl::OkStatus();
    CB_RETURN_IF_ERROR(broken);
    frames.clear();
    for (const JournalRecord& r : records) LeaseJournal::Encode(r, &frames);
    CB_RETURN_IF_ERROR(journal->Append(frames));
    std::vector<LeaseChange> changes;
    changes.reserve(records.size());
    for (JournalRecord& r : records) {
      changes.push_back(LeaseChange{
          r.op == JournalRecord::Op::kPut ? LeaseChange::Type::kPut : LeaseChange::Type::kDelete,
          r.revision, std::move(r.lease)});
    }
    const std::shared_ptr<const std::vector<LeaseChange>> published =
        log->Publish(std::move(changes));
    for (size_t i = 0; i < records.size(); ++i) {
      const JournalRecord& r = records[i];
      // Shares the published batch (the aliasing constructor): no copy of the lease.
      std::shared_ptr<const LeaseRecord> lease(published, &(*published)[i].lease);
      const bool is_put = r.op == JournalRecord::Op::kPut;
      if (is_put) {
        rows.Put(lease->id, Row{r.seq, r.revision, absl::ToUnixMicros(lease->expires_at)});
        next_seq = std::max(next_seq, r.seq + 1);
      } else {
        rows.Erase(lease->id);
      }
      Unapplied& u = unapplied.FindOrAdd(lease->id);
      u.lease = is_put ? lease : nullptr;
      u.revision = r.revision;
      ++u.records;
      revision = r.revision;
      to_apply.push_back(Pending{r.op, r.seq, r.revision, std::move(lease)});
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> CreateLocked(const LeaseRecord& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (rows.Contains(lease.id)) return LeaseExists();
    JournalRecord r{JournalRecord::Op::kPut, next_seq, revision + 1, lease};
    CB_RETURN_IF_ERROR(JournalLocked(absl::MakeSpan(&r, 1)));
    return revision;
  }

  absl::StatusOr<int64_t> UpdateLocked(const LeaseRecord& lease, int64_t expected_revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const Row* row = rows.Find(lease.id);
    if (row == nullptr) return LeaseMissing();
    if (row->revision != expected_revision) return LeaseChanged(expected_revision, row->revision);
    JournalRecord r{JournalRecord::Op::kPut, row->seq, revision + 1, lease};
    CB_RETURN_IF_ERROR(JournalLocked(absl::MakeSpan(&r, 1)));
    return revision;
  }

  // Whether deleting `r` needs the lease read from the table (the answer carries it).
  bool NeedsReadLocked(const LeaseDelete& r) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (r.expected_revision != 0 && r.as_seen.has_value()) return false;
    if (!rows.Contains(r.id)) return false;
    return !unapplied.Contains(r.id);
  }

  // The delete record of `r` at revision `rev`. `h`: the connection, when its lock is held (only
  // then can the lease be read from the table).
  absl::StatusOr<JournalRecord> PlanDeleteLocked(sqlite3* h, const LeaseDelete& r, int64_t rev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const Row* row = rows.Find(r.id);
    if (row == nullptr) return LeaseMissing();
    if (r.expected_revision != 0 && row->revision != r.expected_revision) {
      return LeaseChanged(r.expected_revision, row->revision);
    }
    JournalRecord out{JournalRecord::Op::kDelete, row->seq, rev, {}};
    if (r.expected_revision != 0 && r.as_seen.has_value()) {
      out.lease = *r.as_seen;  // a revision names one write
    } else if (const Unapplied* u = unapplied.Find(r.id); u != nullptr && u->lease != nullptr) {
      out.lease = *u->lease;
    } else if (h == nullptr) {
      return absl::InternalError("state store: a delete needs the lease read first");
    } else {
      CB_ASSIGN_OR_RETURN(VersionedLease v, ReadRow(h, row->seq));
      out.lease = std::move(v.lease);
    }
    return out;
  }

  absl::StatusOr<LeaseRecord> DeleteLocked(sqlite3* h, const LeaseDelete& r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    CB_ASSIGN_OR_RETURN(JournalRecord record, PlanDeleteLocked(h, r, revision + 1));
    LeaseRecord gone = record.lease;
    CB_RETURN_IF_ERROR(JournalLocked(absl::MakeSpan(&record, 1)));
    return gone;
  }

  // Deletes now; with `defer`, an asynchronous delete whose answer DeferLocked may take (then
  // returns with *deferred set).
  absl::StatusOr<LeaseRecord> DeleteNow(const LeaseDelete& r,
                                        LeaseStore::Done<LeaseRecord>* defer = nullptr,
                                        bool* deferred = nullptr) ABSL_LOCKS_EXCLUDED(mu) {
    absl::StatusOr<LeaseRecord> out;
    bool read_first = false;
    {
      absl::MutexLock lock(&mu);
      read_first = NeedsReadLocked(r);
      if (!read_first) {
        out = DeleteLocked(nullptr, r);
        if (defer != nullptr) *deferred = DeferLocked(out, *defer);
      }
    }
    if (!read_first) return out;
    CB_RETURN_IF_ERROR(db->Read([&](sqlite3* h) {
      absl::MutexLock lock(&mu);
      out = DeleteLocked(h, r);
      if (defer != nullptr) *deferred = DeferLocked(out, *defer);
      return absl::OkStatus();
    }));
    return out;
  }

  // synchronous=FULL: what is journaled survives a power loss once this returns OK. A failed
  // fsync leaves the store refusing writes (see `broken`).
  absl::Status SyncNow() ABSL_LOCKS_EXCLUDED(mu) {
    if (!full) return absl::OkStatus();
    absl::MutexLock lock(&mu);  // not while the committer rewrites the journal
    absl::Status s = journal->Sync();
    if (!s.ok()) MarkBrokenLocked(s);
    return s;
  }

  void MarkBrokenLocked(const absl::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!broken.ok()) return;
    broken = absl::UnavailableError(absl::StrCat(
        "state store: lease writes are refused until the broker restarts (", s.message(), ")"));
    core::LogError("state store: fsync of the lease journal failed; lease writes are refused",
                   {{"error", s.ToString()}});
  }

  // synchronous=FULL: a successful asynchronous write is answered once the next fsync of the
  // journal is done; takes `done` and returns true. Called with mu held, right after the write:
  // the fsync the waiter gets runs after its record was appended. Otherwise returns false, and
  // the caller answers at once (outside mu: the writer's callback may write again).
  template <typename T>
  bool DeferLocked(absl::StatusOr<T>& result, LeaseStore::Done<T>& done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!full || !result.ok()) return false;
    awaiting_sync.push_back(
        [done = std::move(done), result = std::move(result)](absl::Status synced) mutable {
          if (synced.ok()) {
            done(std::move(result));
          } else {
            done(std::move(synced));
          }
        });
    return true;
  }

  // --- The apply: journaled writes into the table, in batches, on the committer ---------------

  // The applier thread: hands the journaled writes to the database's committer in batches until
  // the store closes (applying what is left first).
  void ApplyLoop() ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    while (true) {
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return !to_apply.empty() || !awaiting_sync.empty();
      };
      mu.Await(absl::Condition(
          +[](Impl* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu) {
            return m->stopping || !m->to_apply.empty() || !m->awaiting_sync.empty();
          },
          this));
      if (!has_work()) return;  // stopping, and everything is applied
      mu.AwaitWithTimeout(absl::Condition(
                              +[](Impl* m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(m->mu) {
                                return m->stopping || m->to_apply.size() >= kApplyBatch ||
                                       !m->awaiting_sync.empty();
                              },
                              this),
                          kApplyDelay);
      mu.Unlock();
      const absl::Status applied = ApplyNow();
      mu.Lock();
      if (!applied.ok() && !stopping) {
        mu.AwaitWithTimeout(absl::Condition(&stopping), kApplyRetry);
      }
      if (!applied.ok() && stopping) return;  // the journal keeps them for the next start
    }
  }

  // One apply of everything journaled so far, through the committer; returns once it is done.
  absl::Status ApplyNow() ABSL_LOCKS_EXCLUDED(mu) {
    ApplyRun run;
    absl::Status s = db->Write([&](Database::Txn& txn) { return Apply(txn, run); });
    Applied(run, s);
    return s;
  }

  absl::Status Apply(Database::Txn& txn, ApplyRun& run) ABSL_LOCKS_EXCLUDED(mu) {
    {
      absl::MutexLock lock(&mu);
      // At most kApplyBatch: a sweep journals 100k deletes at once, and one transaction of them
      // would hold the connection (reads, the sweep's next chunk) for as long.
      if (to_apply.size() <= kApplyBatch) {
        run.records.swap(to_apply);
      } else {
        const auto end = to_apply.begin() + static_cast<std::ptrdiff_t>(kApplyBatch);
        run.records.assign(std::make_move_iterator(to_apply.begin()), std::make_move_iterator(end));
        to_apply.erase(to_apply.begin(), end);
      }
      run.waiters.swap(awaiting_sync);
    }
    if (full && !run.waiters.empty()) {
      // One fsync for every writer waiting (group commit): their records are in the file.
      run.synced = journal->Sync();
      if (!run.synced.ok()) {
        absl::MutexLock lock(&mu);
        MarkBrokenLocked(run.synced);
      }
    }
    if (run.records.empty()) return absl::OkStatus();
    txn.AfterCommit(&run, [this, &run] {
      applies.fetch_add(1, std::memory_order_relaxed);
      table_seq_ceiling = std::max(table_seq_ceiling, run.top_seq + 1);
      Forget(run.records);
    });
    txn.AfterRollback(&run, [this, &run] { Requeue(run.records); });
    // Only each row's last write of the batch goes to the table (the journal, replayed whole after
    // a crash, holds the others), and a row created and deleted within the batch not at all: under
    // acquire/release or renew load most writes of a batch are such.
    absl::flat_hash_map<int64_t, size_t> last;
    last.reserve(run.records.size());
    for (size_t i = 0; i < run.records.size(); ++i) {
      last[run.records[i].seq] = i;
      run.top_seq = std::max(run.top_seq, run.records[i].seq);
    }
    for (size_t i = 0; i < run.records.size(); ++i) {
      const Pending& r = run.records[i];
      if (last[r.seq] != i) continue;
      if (r.op == JournalRecord::Op::kDelete && r.seq >= table_seq_ceiling) continue;
      CB_RETURN_IF_ERROR(WriteRow(txn.db(), r.op, r.seq, r.revision, *r.lease));
    }
    return SaveRevision(txn.db(), run.records.back().revision);
  }

  static void Applied(ApplyRun& run, const absl::Status& s) {
    if (!s.ok()) {
      core::LogError(
          "state store: the lease table is behind its journal (the writes are kept in the "
          "journal, and applied at the next try or the next start)",
          {{"error", s.ToString()}});
    }
    for (auto& waiter : run.waiters) waiter(run.synced);
    run.waiters.clear();
  }

  void Forget(const std::vector<Pending>& records) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    for (const Pending& r : records) {
      Unapplied* u = unapplied.Find(r.lease->id);
      if (u != nullptr && --u->records == 0) unapplied.Erase(r.lease->id);
    }
    if (journal->size() < kJournalResetBytes) return;
    // Emptied, or under steady load (never all applied at one moment) rewritten with what is not
    // applied yet.
    absl::Status s;
    if (to_apply.empty()) {
      s = journal->Reset();
    } else {
      frames.clear();
      for (const Pending& r : to_apply) {
        LeaseJournal::Encode(r.op, r.seq, r.revision, *r.lease, &frames);
      }
      s = journal->Rewrite(frames, full);
    }
    if (!s.ok()) {
      core::LogWarning("state store: cannot shorten the lease journal", {{"error", s.ToString()}});
    }
  }

  void Requeue(std::vector<Pending>& records) ABSL_LOCKS_EXCLUDED(mu) {
    absl::MutexLock lock(&mu);
    // In front of what was journaled since: the table gets them in revision order.
    to_apply.insert(to_apply.begin(), std::make_move_iterator(records.begin()),
                    std::make_move_iterator(records.end()));
    records.clear();
  }

  // --- SQL ---------------------------------------------------------------------------------------

  // Writes one journal record into the table; running a record twice leaves what running it
  // once did (the journal is replayed whole after a crash, whatever part was applied).
  absl::Status WriteRow(sqlite3* h, JournalRecord::Op op, int64_t seq, int64_t rev,
                        const LeaseRecord& lease) const {
    if (op == JournalRecord::Op::kDelete) {
      Use s(remove);
      sqlite3_bind_int64(s.get(), 1, seq);
      if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(h, "delete lease");
      return absl::OkStatus();
    }
    Use s(put);
    BindLease(s.get(), lease);
    sqlite3_bind_int64(s.get(), 10, rev);
    sqlite3_bind_int64(s.get(), 11, seq);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(h, "write lease");
    return absl::OkStatus();
  }

  absl::Status SaveRevision(sqlite3* h, int64_t rev) const {
    Use s(save_revision);
    sqlite3_bind_int64(s.get(), 1, rev);
    if (sqlite3_step(s.get()) != SQLITE_DONE) return db->Error(h, "save lease revision");
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

  // At Open: the records a crash left in the journal, into the table in one transaction.
  absl::Status Replay(sqlite3* h, const std::vector<JournalRecord>& records) const {
    if (records.empty()) return absl::OkStatus();
    if (sqlite3_exec(h, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return db->Error(h, "replay the lease journal");
    }
    absl::Status s;
    int64_t newest = 0;
    for (const JournalRecord& r : records) {
      s = WriteRow(h, r.op, r.seq, r.revision, r.lease);
      if (!s.ok()) break;
      newest = std::max(newest, r.revision);
    }
    if (s.ok()) s = SaveRevision(h, newest);
    if (s.ok() && sqlite3_exec(h, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      s = db->Error(h, "replay the lease journal");
    }
    if (!s.ok() && !sqlite3_get_autocommit(h))
      sqlite3_exec(h, "ROLLBACK", nullptr, nullptr, nullptr);
    return s;
  }
};

const char* SqliteLeaseStore::Schema() { return kSchema; }

SqliteLeaseStore::SqliteLeaseStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), applier_([m = impl_.get()] { m->ApplyLoop(); }) {}

SqliteLeaseStore::~SqliteLeaseStore() {
  // The applier applies what is journaled before it stops (on failure the journal keeps it for
  // the next start).
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
  }
  applier_.join();
}

absl::Status SqliteLeaseStore::ApplyJournal() { return impl_->ApplyNow(); }

uint64_t SqliteLeaseStore::applies() const {
  return impl_->applies.load(std::memory_order_relaxed);
}

absl::StatusOr<std::unique_ptr<SqliteLeaseStore>> SqliteLeaseStore::Open(Database* db) {
  CB_ASSIGN_OR_RETURN(std::unique_ptr<LeaseJournal> journal,
                      LeaseJournal::Open(db->path() + "-leases.journal"));
  uint64_t torn_bytes = 0;
  CB_ASSIGN_OR_RETURN(std::vector<JournalRecord> replay, journal->ReadAll(&torn_bytes));
  auto impl = std::make_unique<Impl>(db, std::move(journal));
  Impl* p = impl.get();
  int64_t newest = 0;
  int64_t last_seq = 0;
  CB_RETURN_IF_ERROR(db->Read([&](sqlite3* h) -> absl::Status {
    bool earlier_layout = false;
    {
      Statement old(h, "SELECT 1 FROM sqlite_master WHERE type='table' AND name='leases'");
      if (!old.ok()) return p->db->Error(h, "look for leases in the earlier layout");
      earlier_layout = sqlite3_step(old.get()) == SQLITE_ROW;
    }  // finalized: DROP TABLE refuses while a statement reads the schema
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
    const std::pair<std::string, sqlite3_stmt**> statements[] = {
        {"INSERT INTO lease_rows (id, caller, provider, key_version, key_fingerprint, purpose, "
         "issued_at_us, expires_at_us, renew_count, revision, seq) VALUES "
         "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11) ON CONFLICT(seq) DO UPDATE SET id=?1, caller=?2, "
         "provider=?3, key_version=?4, key_fingerprint=?5, purpose=?6, issued_at_us=?7, "
         "expires_at_us=?8, renew_count=?9, revision=?10",
         &p->put},
        {"DELETE FROM lease_rows WHERE seq=?", &p->remove},
        {absl::StrCat("SELECT ", kColumns, " FROM lease_rows WHERE seq=?"), &p->read},
        {"INSERT OR REPLACE INTO store_meta VALUES ('lease_revision', ?)", &p->save_revision},
    };
    for (const auto& [sql, stmt] : statements) {
      if (sqlite3_prepare_v2(h, sql.c_str(), -1, stmt, nullptr) != SQLITE_OK) {
        return p->db->Error(h, "prepare");
      }
    }
    CB_RETURN_IF_ERROR(p->Replay(h, replay));
    absl::MutexLock lock(&p->mu);
    {
      Statement all(h, "SELECT id, seq, revision, expires_at_us FROM lease_rows");
      if (!all.ok()) return p->db->Error(h, "load leases");
      int rc;
      while ((rc = sqlite3_step(all.get())) == SQLITE_ROW) {
        const Row row{sqlite3_column_int64(all.get(), 1), sqlite3_column_int64(all.get(), 2),
                      sqlite3_column_int64(all.get(), 3)};
        newest = std::max(newest, row.revision);
        last_seq = std::max(last_seq, row.seq);
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
    p->revision = newest;
    p->next_seq = last_seq + 1;
    p->table_seq_ceiling = last_seq + 1;
    return absl::OkStatus();
  }));
  // Everything the journal held is in the table now (committed above).
  if (!replay.empty() || torn_bytes > 0) {
    core::LogInfo(
        "state store: lease writes of the previous run applied from the journal",
        {{"writes", absl::StrCat(replay.size())}, {"torn_bytes", absl::StrCat(torn_bytes)}});
  }
  if (p->journal->size() > 0) CB_RETURN_IF_ERROR(p->journal->Reset());
  p->log.emplace(newest);
  // Changes committed before this process started are not remembered: watchers start from List.
  return std::unique_ptr<SqliteLeaseStore>(new SqliteLeaseStore(std::move(impl)));
}

absl::StatusOr<int64_t> SqliteLeaseStore::Create(const LeaseRecord& lease) {
  absl::StatusOr<int64_t> rev;
  {
    absl::MutexLock lock(&impl_->mu);
    rev = impl_->CreateLocked(lease);
  }
  if (rev.ok()) CB_RETURN_IF_ERROR(impl_->SyncNow());
  return rev;
}

void SqliteLeaseStore::CreateAsync(const LeaseRecord& lease, Done<int64_t> done) {
  absl::StatusOr<int64_t> rev;
  {
    absl::MutexLock lock(&impl_->mu);
    rev = impl_->CreateLocked(lease);
    if (impl_->DeferLocked(rev, done)) return;
  }
  done(std::move(rev));
}

absl::StatusOr<int64_t> SqliteLeaseStore::Update(const LeaseRecord& lease,
                                                 int64_t expected_revision) {
  absl::StatusOr<int64_t> rev;
  {
    absl::MutexLock lock(&impl_->mu);
    rev = impl_->UpdateLocked(lease, expected_revision);
  }
  if (rev.ok()) CB_RETURN_IF_ERROR(impl_->SyncNow());
  return rev;
}

void SqliteLeaseStore::UpdateAsync(const LeaseRecord& lease, int64_t expected_revision,
                                   Done<int64_t> done) {
  absl::StatusOr<int64_t> rev;
  {
    absl::MutexLock lock(&impl_->mu);
    rev = impl_->UpdateLocked(lease, expected_revision);
    if (impl_->DeferLocked(rev, done)) return;
  }
  done(std::move(rev));
}

absl::StatusOr<LeaseRecord> SqliteLeaseStore::Delete(const LeaseDelete& request) {
  absl::StatusOr<LeaseRecord> gone = impl_->DeleteNow(request);
  if (gone.ok()) CB_RETURN_IF_ERROR(impl_->SyncNow());
  return gone;
}

void SqliteLeaseStore::DeleteAsync(LeaseDelete request, Done<LeaseRecord> done) {
  bool deferred = false;
  absl::StatusOr<LeaseRecord> gone = impl_->DeleteNow(request, &done, &deferred);
  if (!deferred) done(std::move(gone));
}

absl::StatusOr<std::vector<LeaseRecord>> SqliteLeaseStore::DeleteAll(
    const std::vector<LeaseDelete>& requests) {
  Impl& m = *impl_;
  std::vector<LeaseRecord> out;
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3* h) -> absl::Status {
    absl::MutexLock lock(&m.mu);
    std::vector<JournalRecord> records;
    absl::flat_hash_set<std::string> planned;
    for (const LeaseDelete& r : requests) {
      if (!planned.insert(r.id).second) continue;  // deleted by an earlier request of this call
      absl::StatusOr<JournalRecord> rec =
          m.PlanDeleteLocked(h, r, m.revision + 1 + static_cast<int64_t>(records.size()));
      if (rec.ok()) {
        records.push_back(*std::move(rec));
      } else if (!absl::IsNotFound(rec.status()) && !absl::IsAborted(rec.status())) {
        return rec.status();
      }
    }
    for (const JournalRecord& r : records) out.push_back(r.lease);
    return m.JournalLocked(absl::MakeSpan(records));
  }));
  CB_RETURN_IF_ERROR(m.SyncNow());
  return out;
}

// In chunks, each journaled with one write, and paced: a chunk's rows are read without the store's
// mutex (lease writes go on meanwhile), and after each chunk the sweep pauses as long as the chunk
// took, so writers waiting for the mutex get it. (Unpaced, the sweep of 100k expired leases took
// the mutex back chunk after chunk and held lease writes off for up to ~0.9 s; bench/RESULTS.md.)
absl::StatusOr<std::vector<LeaseRecord>> SqliteLeaseStore::DeleteExpired(absl::Time now) {
  constexpr size_t kSweepChunk = 512;
  Impl& m = *impl_;
  const int64_t now_us = absl::ToUnixMicros(now);
  std::vector<std::string> expired;
  {
    absl::MutexLock lock(&m.mu);
    m.rows.ForEach([&](const std::string& id, const Row& row) {
      if (row.expires_at_us <= now_us) expired.push_back(id);
    });
  }
  struct Candidate {
    const std::string* id;
    int64_t seq;
    int64_t revision;
    std::optional<LeaseRecord> lease;
  };
  std::vector<LeaseRecord> out;
  for (size_t begin = 0; begin < expired.size(); begin += kSweepChunk) {
    const absl::Time started = absl::Now();
    const size_t end = std::min(expired.size(), begin + kSweepChunk);
    absl::Status written = m.db->Read([&](sqlite3* h) -> absl::Status {
      std::vector<Candidate> candidates;
      {
        absl::MutexLock lock(&m.mu);
        for (size_t i = begin; i < end; ++i) {
          // Renewed or released since it was listed: not this sweep's.
          const Row* row = m.rows.Find(expired[i]);
          if (row == nullptr || row->expires_at_us > now_us) continue;
          Candidate c{&expired[i], row->seq, row->revision, std::nullopt};
          if (const Unapplied* u = m.unapplied.Find(expired[i]); u != nullptr && u->lease) {
            c.lease = *u->lease;
          }
          candidates.push_back(std::move(c));
        }
      }
      // No apply runs under the connection lock: a lease with no unapplied write is in the table
      // as it was when listed above (a write since then changed its revision: skipped below).
      for (Candidate& c : candidates) {
        if (c.lease.has_value()) continue;
        CB_ASSIGN_OR_RETURN(VersionedLease v, m.ReadRow(h, c.seq));
        c.lease = std::move(v.lease);
      }
      absl::MutexLock lock(&m.mu);
      std::vector<JournalRecord> records;
      records.reserve(candidates.size());
      for (Candidate& c : candidates) {
        absl::StatusOr<JournalRecord> rec =
            m.PlanDeleteLocked(nullptr, LeaseDelete{*c.id, c.revision, std::move(c.lease)},
                               m.revision + 1 + static_cast<int64_t>(records.size()));
        if (rec.ok()) records.push_back(*std::move(rec));  // else changed since: not expired now
      }
      std::vector<LeaseRecord> chunk;
      chunk.reserve(records.size());
      for (const JournalRecord& r : records) chunk.push_back(r.lease);
      CB_RETURN_IF_ERROR(m.JournalLocked(absl::MakeSpan(records)));
      for (LeaseRecord& l : chunk) out.push_back(std::move(l));
      return absl::OkStatus();
    });
    // What earlier chunks deleted is gone (and was published): report it; the next sweep meets
    // the error again if it lasts.
    if (!written.ok()) {
      if (out.empty()) return written;
      break;
    }
    if (end < expired.size()) absl::SleepFor(absl::Now() - started);
  }
  if (!out.empty()) CB_RETURN_IF_ERROR(m.SyncNow());
  return out;
}

absl::StatusOr<VersionedLease> SqliteLeaseStore::Get(const std::string& id) {
  Impl& m = *impl_;
  absl::StatusOr<VersionedLease> out;
  // Under the connection lock no apply runs: a lease with no unapplied write is in the table as
  // it is now.
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3* h) -> absl::Status {
    int64_t seq = 0;
    {
      absl::MutexLock lock(&m.mu);
      if (const Unapplied* u = m.unapplied.Find(id); u != nullptr) {
        if (u->lease != nullptr) {
          out = VersionedLease{*u->lease, u->revision};
        } else {
          out = LeaseMissing();
        }
        return absl::OkStatus();
      }
      const Row* row = m.rows.Find(id);
      if (row == nullptr) {
        out = LeaseMissing();
        return absl::OkStatus();
      }
      seq = row->seq;
    }
    out = m.ReadRow(h, seq);
    return out.status();
  }));
  return out;
}

absl::StatusOr<LeaseListing> SqliteLeaseStore::List() {
  Impl& m = *impl_;
  LeaseListing out;
  CB_RETURN_IF_ERROR(m.db->Read([&](sqlite3* h) -> absl::Status {
    // The table (no apply runs under the connection lock) overlaid with the unapplied writes as
    // of one moment, whose revision the listing reports.
    core::LeaseIdMap<Unapplied> overlay;
    {
      absl::MutexLock lock(&m.mu);
      overlay = m.unapplied;
      out.revision = m.revision;
      out.leases.reserve(m.rows.size());
    }
    Statement s(h, absl::StrCat("SELECT ", kColumns, " FROM lease_rows").c_str());
    if (!s.ok()) return m.db->Error(h, "list leases");
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
      VersionedLease v = ReadLease(s.get());
      if (!overlay.Contains(v.lease.id)) out.leases.push_back(std::move(v));
    }
    if (rc != SQLITE_DONE) return m.db->Error(h, "list leases");
    overlay.ForEach([&](const std::string& /*id*/, const Unapplied& u) {
      if (u.lease != nullptr) out.leases.push_back(VersionedLease{*u.lease, u.revision});
    });
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::unique_ptr<LeaseWatch>> SqliteLeaseStore::Watch(int64_t after_revision,
                                                                    LeaseWatchFn fn) {
  // Under the store's mutex, so no write is published between the replay and the registration.
  absl::MutexLock lock(&impl_->mu);
  return impl_->log->Watch(after_revision, std::move(fn));
}

}  // namespace credbroker::state::sqlite
