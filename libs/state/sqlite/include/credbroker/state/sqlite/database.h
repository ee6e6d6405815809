// Database is one SQLite state file owned by this process (exclusive locking, WAL) with group
// commit: writes are queued and a committer thread commits everything queued (up to `max_batch`)
// in one transaction, so a burst of N lease writes costs one commit instead of N. A write is
// acknowledged (its `done` runs, or Write returns) only after the transaction holding it
// committed, or failed, in which case nothing of the batch was written.
//
// Batches form by themselves: while one commit runs, the writes arriving meanwhile queue for the
// next, so a lone write never waits for company and under load a batch grows to what arrived
// during one commit. Callers never block a thread on a commit with WriteAsync (the gRPC handlers
// use it); Write is the blocking form.
//
// (Tried and measured, 2026-12-03: committing on the thread of a WriteAsync that finds nobody
// committing, leader/follower style. It halved the context switches per request but cut batches
// from ~24 writes to ~3, and the gRPC-level throughput did not move (bench/RESULTS.md); with
// synchronous=FULL every commit is an fsync, so the larger batches of one committer win. The
// lease store, written on every request, answers from its own journal instead and applies it to
// its table through WriteAsync: see lease_store.h.)
//
// A write function returns OK, or a result of its own that left nothing written (NOT_FOUND,
// ALREADY_EXISTS, ABORTED, INVALID_ARGUMENT, FAILED_PRECONDITION): only that write fails. Any
// other code (UNAVAILABLE, DATA_LOSS, INTERNAL, ...) is a storage failure: the whole batch is
// rolled back and every writer in it gets that error.
//
// `done` callbacks run on the committer thread, after the batch's AfterCommit hooks; they must not
// block for long. A Write (blocking) from a `done` callback runs at once in a transaction of its
// own.
// Thread-safety: safe for concurrent use.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace credbroker::state::sqlite {

struct DatabaseOptions {
  std::string path;
  // synchronous=FULL (fsync per commit: survives power loss) instead of NORMAL (survives a
  // process crash; WAL fsyncs at checkpoints).
  bool synchronous_full = false;
  // Most writes committed in one transaction.
  size_t max_batch = 256;
};

class Database {
 public:
  // The transaction a write function runs in.
  class Txn {
   public:
    sqlite3* db() const { return db_; }
    // Hooks run once per batch whatever the number of writes that registered them with the same
    // `tag`: before COMMIT (a failure rolls the batch back), after COMMIT, or after a rollback.
    void BeforeCommit(const void* tag, std::function<absl::Status(sqlite3*)> fn);
    void AfterCommit(const void* tag, std::function<void()> fn);
    void AfterRollback(const void* tag, std::function<void()> fn);

   private:
    friend class Database;
    explicit Txn(sqlite3* db) : db_(db) {}
    sqlite3* const db_;
    std::vector<std::pair<const void*, std::function<absl::Status(sqlite3*)>>> before_;
    std::vector<std::pair<const void*, std::function<void()>>> after_commit_;
    std::vector<std::pair<const void*, std::function<void()>>> after_rollback_;
  };
  using WriteFn = absl::FunctionRef<absl::Status(Txn&)>;
  using AsyncWriteFn = std::function<absl::Status(Txn&)>;
  using DoneFn = std::function<void(absl::Status)>;
  using ReadFn = absl::FunctionRef<absl::Status(sqlite3*)>;

  // Opens the file (see OpenDatabase) and applies `schema`. `what` names the store in errors.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const DatabaseOptions& options,
                                                        const char* schema, absl::string_view what);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs `fn` inside a batched transaction and returns once that transaction committed.
  absl::Status Write(WriteFn fn) ABSL_LOCKS_EXCLUDED(queue_mu_, db_mu_);
  // Queues `fn` for the next batch; `done` gets the outcome once the batch committed (or failed).
  void WriteAsync(AsyncWriteFn fn, DoneFn done) ABSL_LOCKS_EXCLUDED(queue_mu_);
  // Runs `fn` on the connection, between batches (reads; no transaction is open).
  absl::Status Read(ReadFn fn) ABSL_LOCKS_EXCLUDED(db_mu_);

  // An error for the failed SQLite call `what`: UNAVAILABLE for busy/full/I/O, DATA_LOSS for a
  // corrupt file, INTERNAL otherwise. The connection lock must be held (inside Write/Read).
  absl::Status Error(sqlite3* db, absl::string_view what) const;

  const std::string& path() const { return path_; }
  bool synchronous_full() const { return synchronous_full_; }
  // Committed transactions and the writes they held (batching is visible as writes > batches).
  uint64_t batches() const;
  uint64_t writes() const;
  // Writes waiting for a commit (tests use it to build a batch).
  size_t queued() const ABSL_LOCKS_EXCLUDED(queue_mu_);

 private:
  struct Op {
    AsyncWriteFn fn;
    DoneFn done;
    absl::Status status;
  };
  Database(sqlite3* db, DatabaseOptions options, std::string what);
  // Runs one batch in one transaction and sets every op's status.
  void Commit(std::vector<Op>& batch) ABSL_LOCKS_EXCLUDED(db_mu_);
  // Runs one of the transaction statements (BEGIN, COMMIT, ROLLBACK); returns SQLite's code.
  int Step(sqlite3_stmt*& stmt, const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  void Run() ABSL_LOCKS_EXCLUDED(queue_mu_);

  const std::string path_;
  const std::string what_;
  const bool synchronous_full_;
  const size_t max_batch_;

  mutable absl::Mutex queue_mu_;
  absl::CondVar queue_cv_;
  // A vector, swapped whole with the committer's batch: neither side allocates once both have
  // grown to the usual batch size.
  std::vector<Op> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stop_ ABSL_GUARDED_BY(queue_mu_) = false;
  std::atomic<uint64_t> batches_{0};  // committed (or rolled back) batches
  std::atomic<uint64_t> writes_{0};

  absl::Mutex db_mu_ ABSL_ACQUIRED_AFTER(queue_mu_);
  sqlite3* const db_;
  sqlite3_stmt* begin_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  sqlite3_stmt* commit_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  sqlite3_stmt* rollback_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  std::thread committer_;
};

}  // namespace credbroker::state::sqlite
