// The revision counter and watch of one store kept in the state file (key-version states, shared
// facts): the next revision is taken inside a batch's transaction, saved in store_meta under
// `meta_key` before the batch commits, and the batch's changes are published to the watchers once
// it committed; a rolled-back batch gives its revisions back. Several writes of one batch get
// consecutive revisions. Used only inside Database writes (the connection lock serializes it).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "credbroker/state/change_log.h"
#include "credbroker/state/sqlite/database.h"

namespace credbroker::state::sqlite {

template <typename Change>
class RevisionCounter {
 public:
  // `revision`: the newest revision stored (read at open).
  RevisionCounter(Database* db, std::string meta_key, int64_t revision)
      : db_(db), meta_key_(std::move(meta_key)), revision_(revision), log_(revision) {}

  ~RevisionCounter() { sqlite3_finalize(save_); }
  RevisionCounter(const RevisionCounter&) = delete;
  RevisionCounter& operator=(const RevisionCounter&) = delete;

  // The revision for the next change of this batch.
  int64_t Next(Database::Txn& txn) {
    if (!in_batch_) {
      in_batch_ = true;
      batch_start_ = revision_;
      txn.BeforeCommit(this, [this](sqlite3* h) -> absl::Status {
        // Prepared once: this runs for every batch on the lease path.
        if (save_ == nullptr &&
            sqlite3_prepare_v2(h, "INSERT OR REPLACE INTO store_meta VALUES (?, ?)", -1, &save_,
                               nullptr) != SQLITE_OK) {
          return db_->Error(h, "save " + meta_key_);
        }
        sqlite3_bind_text(save_, 1, meta_key_.data(), static_cast<int>(meta_key_.size()),
                          SQLITE_STATIC);
        sqlite3_bind_int64(save_, 2, revision_);
        const int rc = sqlite3_step(save_);
        sqlite3_reset(save_);
        if (rc != SQLITE_DONE) return db_->Error(h, "save " + meta_key_);
        return absl::OkStatus();
      });
      txn.AfterCommit(this, [this] {
        in_batch_ = false;
        log_.Publish(std::exchange(pending_, {}));
      });
      txn.AfterRollback(this, [this] {
        in_batch_ = false;
        revision_ = batch_start_;
        pending_.clear();
      });
    }
    return ++revision_;
  }
  // The revision the next change of this batch will get (a row written before Next).
  int64_t Peek() const { return revision_ + 1; }
  // A change of this batch, published when it commits.
  void Add(Change c) { pending_.push_back(std::move(c)); }
  // The newest revision taken; between batches (under the connection lock) the newest committed.
  int64_t revision() const { return revision_; }
  ChangeLogOf<Change>& log() { return log_; }

 private:
  Database* const db_;
  const std::string meta_key_;
  int64_t revision_;
  int64_t batch_start_ = 0;
  bool in_batch_ = false;
  std::vector<Change> pending_;
  sqlite3_stmt* save_ = nullptr;
  ChangeLogOf<Change> log_;
};

}  // namespace credbroker::state::sqlite
