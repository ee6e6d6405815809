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
#include "statement.h"

namespace credbroker::state::sqlite {

template <typename Change>
class RevisionCounter {
 public:
  // `revision`: the newest revision stored (read at open).
  RevisionCounter(Database* db, std::string meta_key, int64_t revision)
      : db_(db), meta_key_(std::move(meta_key)), revision_(revision), log_(revision) {}

  // The revision for the next change of this batch.
  int64_t Next(Database::Txn& txn) {
    if (pending_.empty() && !in_batch_) {
      in_batch_ = true;
      batch_start_ = revision_;
      txn.BeforeCommit(this, [this](sqlite3* h) -> absl::Status {
        Statement s(h, "INSERT OR REPLACE INTO store_meta VALUES (?, ?)");
        if (!s.ok()) return db_->Error(h, "save " + meta_key_);
        s.Bind(1, meta_key_);
        sqlite3_bind_int64(s.get(), 2, revision_);
        if (sqlite3_step(s.get()) != SQLITE_DONE) return db_->Error(h, "save " + meta_key_);
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
  // A change of this batch, published when it commits.
  void Add(Change c) { pending_.push_back(std::move(c)); }
  // The newest committed revision (read between batches, under the connection lock).
  int64_t revision() const { return revision_; }
  ChangeLogOf<Change>& log() { return log_; }

 private:
  Database* const db_;
  const std::string meta_key_;
  int64_t revision_;
  int64_t batch_start_ = 0;
  bool in_batch_ = false;
  std::vector<Change> pending_;
  ChangeLogOf<Change> log_;
};

}  // namespace credbroker::state::sqlite
