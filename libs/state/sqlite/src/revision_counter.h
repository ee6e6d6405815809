// The revision counter and watch of one store kept in the state file (leases, key-version states,
// shared facts): the next revision is taken inside a batch's transaction, and the batch's changes
// are published to the watchers once it committed; a rolled-back batch gives its revisions back.
// Several writes of one batch get consecutive revisions.
//
// store_meta under `meta_key` holds a ceiling, not always the newest revision: a batch that takes
// a revision above the ceiling raises it to that revision plus `reserve` before it commits. With
// no reserve every batch saves its newest revision; with one (the lease store, written on every
// request) only one batch in `reserve` writes a store_meta page: one WAL frame fewer for every
// other commit. A store opened again starts from the ceiling, above every revision it gave out:
// revisions keep growing across restarts, with a gap there (watchers start from a listing after a
// restart anyway).
// Used only inside Database writes (the connection lock serializes it).
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
  // `revision`: the newest revision stored, or the saved ceiling if higher (read at open).
  RevisionCounter(Database* db, std::string meta_key, int64_t revision, int64_t reserve = 0)
      : db_(db),
        meta_key_(std::move(meta_key)),
        reserve_(reserve),
        revision_(revision),
        ceiling_(revision),
        log_(revision) {}

  ~RevisionCounter() { sqlite3_finalize(save_); }
  RevisionCounter(const RevisionCounter&) = delete;
  RevisionCounter& operator=(const RevisionCounter&) = delete;

  // The revision for the next change of this batch.
  int64_t Next(Database::Txn& txn) {
    if (!in_batch_) {
      in_batch_ = true;
      batch_start_ = revision_;
      ceiling_at_start_ = ceiling_;
      txn.BeforeCommit(this, [this](sqlite3* h) -> absl::Status {
        if (revision_ <= ceiling_) return absl::OkStatus();
        ceiling_ = revision_ + reserve_;
        // Prepared once: this runs for every batch on the lease path.
        if (save_ == nullptr &&
            sqlite3_prepare_v2(h, "INSERT OR REPLACE INTO store_meta VALUES (?, ?)", -1, &save_,
                               nullptr) != SQLITE_OK) {
          return db_->Error(h, "save " + meta_key_);
        }
        sqlite3_bind_text(save_, 1, meta_key_.data(), static_cast<int>(meta_key_.size()),
                          SQLITE_STATIC);
        sqlite3_bind_int64(save_, 2, ceiling_);
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
        ceiling_ = ceiling_at_start_;
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
  const int64_t reserve_;
  int64_t revision_;
  int64_t ceiling_;  // what store_meta holds (once the running batch committed)
  int64_t batch_start_ = 0;
  int64_t ceiling_at_start_ = 0;
  bool in_batch_ = false;
  std::vector<Change> pending_;
  sqlite3_stmt* save_ = nullptr;
  ChangeLogOf<Change> log_;
};

}  // namespace credbroker::state::sqlite
