#include "credbroker/state/sqlite/database.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/sqlite/open.h"

namespace credbroker::state::sqlite {
namespace {

// Results of a single write that leave the rest of the batch alone.
bool IsWriteResult(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

template <typename Fn>
void AddOnce(std::vector<std::pair<const void*, Fn>>& hooks, const void* tag, Fn fn) {
  for (const auto& [t, f] : hooks) {
    if (t == tag) return;
  }
  hooks.emplace_back(tag, std::move(fn));
}

}  // namespace

void Database::Txn::BeforeCommit(const void* tag, std::function<absl::Status(sqlite3*)> fn) {
  AddOnce(before_, tag, std::move(fn));
}
void Database::Txn::AfterCommit(const void* tag, std::function<void()> fn) {
  AddOnce(after_commit_, tag, std::move(fn));
}
void Database::Txn::AfterRollback(const void* tag, std::function<void()> fn) {
  AddOnce(after_rollback_, tag, std::move(fn));
}

Database::Database(sqlite3* db, DatabaseOptions options, std::string what)
    : path_(std::move(options.path)),
      what_(std::move(what)),
      synchronous_full_(options.synchronous_full),
      max_batch_(std::max<size_t>(1, options.max_batch)),
      db_(db),
      committer_([this] { Run(); }) {}

Database::~Database() {
  {
    absl::MutexLock lock(&queue_mu_);
    stop_ = true;
  }
  committer_.join();  // commits what is still queued first
  for (sqlite3_stmt* s : {begin_, commit_, rollback_}) sqlite3_finalize(s);
  sqlite3_close(db_);
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const DatabaseOptions& options,
                                                         const char* schema,
                                                         absl::string_view what) {
  CB_ASSIGN_OR_RETURN(sqlite3 * db,
                      OpenDatabase(options.path, schema, options.synchronous_full, what));
  return std::unique_ptr<Database>(new Database(db, options, std::string(what)));
}

absl::Status Database::Error(sqlite3* db, absl::string_view what) const {
  const int code = sqlite3_errcode(db) & 0xff;
  std::string msg = absl::StrCat(what_, ": ", what, ": ", sqlite3_errmsg(db));
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return absl::DataLossError(msg);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_FULL || code == SQLITE_IOERR ||
      code == SQLITE_CANTOPEN || code == SQLITE_READONLY) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

namespace {
// The database whose committer runs on this thread (a done callback that writes runs its write
// inline instead of waiting for itself).
thread_local const Database* committer_of = nullptr;
}  // namespace

absl::Status Database::Write(WriteFn fn) {
  if (committer_of == this) {
    std::vector<Op> one(1);
    one[0].fn = [fn](Txn& txn) { return fn(txn); };
    Commit(one);
    return one[0].status;
  }
  absl::Notification committed;
  absl::Status result;
  WriteAsync([fn](Txn& txn) { return fn(txn); },
             [&](absl::Status s) {
               result = std::move(s);
               committed.Notify();
             });
  committed.WaitForNotification();
  return result;
}

void Database::WriteAsync(AsyncWriteFn fn, DoneFn done) {
  absl::MutexLock lock(&queue_mu_);
  queue_.push_back(Op{std::move(fn), std::move(done), absl::OkStatus()});
}

void Database::Run() {
  committer_of = this;
  std::vector<Op> batch;
  while (true) {
    {
      absl::MutexLock lock(&queue_mu_);
      queue_mu_.Await(absl::Condition(
          +[](Database* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->queue_mu_) {
            return d->stop_ || !d->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping, and everything queued is committed
      if (queue_.size() <= max_batch_) {
        batch.swap(queue_);
      } else {
        const auto end = queue_.begin() + static_cast<std::ptrdiff_t>(max_batch_);
        batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
        queue_.erase(queue_.begin(), end);
      }
    }
    Commit(batch);
    batches_.fetch_add(1, std::memory_order_relaxed);
    writes_.fetch_add(batch.size(), std::memory_order_relaxed);
    for (Op& op : batch) op.done(std::move(op.status));
    batch.clear();  // outside the queue's lock: the ops' closures free what they hold
  }
}

int Database::Step(sqlite3_stmt*& stmt, const char* sql) {
  // Prepared on first use and kept: a batch costs no SQL parsing for its transaction.
  if (stmt == nullptr && sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return SQLITE_ERROR;
  }
  const int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  return rc;
}

void Database::Commit(std::vector<Op>& batch) {
  absl::MutexLock lock(&db_mu_);
  Txn txn(db_);
  absl::Status failure;
  if (Step(begin_, "BEGIN") != SQLITE_DONE) failure = Error(db_, "begin");
  for (size_t i = 0; failure.ok() && i < batch.size(); ++i) {
    absl::Status s = batch[i].fn(txn);
    if (IsWriteResult(s)) {
      batch[i].status = std::move(s);
    } else {
      failure = std::move(s);
    }
  }
  for (auto& [tag, hook] : txn.before_) {
    if (!failure.ok()) break;
    failure = hook(db_);
  }
  if (failure.ok() && Step(commit_, "COMMIT") != SQLITE_DONE) failure = Error(db_, "commit");
  if (failure.ok()) {
    for (auto& [tag, hook] : txn.after_commit_) hook();
    return;
  }
  if (!sqlite3_get_autocommit(db_)) Step(rollback_, "ROLLBACK");
  for (auto& [tag, hook] : txn.after_rollback_) hook();
  for (Op& o : batch) o.status = failure;
}

absl::Status Database::Read(ReadFn fn) {
  absl::MutexLock lock(&db_mu_);
  return fn(db_);
}

uint64_t Database::batches() const { return batches_.load(std::memory_order_relaxed); }

size_t Database::queued() const {
  absl::MutexLock lock(&queue_mu_);
  return queue_.size();
}

uint64_t Database::writes() const { return writes_.load(std::memory_order_relaxed); }

}  // namespace credbroker::state::sqlite
