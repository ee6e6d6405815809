// ChangeLogOf<Change> is the watch half of an in-process store implementation (the in-memory and
// SQLite lease and key-state stores): it remembers the most recent committed batches and delivers
// every batch, in revision order, to each watcher. A new watcher first gets the remembered changes
// after its start revision, then live batches, with nothing in between lost or repeated. `Change`
// has an `int64_t revision` member.
// Thread-safety: safe for concurrent use. Publish must be called in revision order (the store
// serializes its commits).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/state/lease_store.h"
#include "credbroker/state/watch.h"

namespace credbroker::state {

template <typename Change>
class ChangeLogOf {
 public:
  using Fn = std::function<void(const std::vector<Change>&)>;

  // `compacted_through`: the newest revision whose changes are not remembered (the store's
  // revision when it was opened). Keeps at least the last `remember` changes.
  explicit ChangeLogOf(int64_t compacted_through, size_t remember = 4096)
      : remember_(remember), compacted_through_(compacted_through) {}
  ChangeLogOf(const ChangeLogOf&) = delete;
  ChangeLogOf& operator=(const ChangeLogOf&) = delete;
  ~ChangeLogOf() = default;

  // Remembers a committed batch (ascending revisions, above every earlier batch) and delivers it
  // to the watchers on this thread. Returns the batch as remembered (null when empty), which the
  // store may keep sharing (a change's lease, say) rather than copy.
  std::shared_ptr<const std::vector<Change>> Publish(std::vector<Change> batch)
      ABSL_LOCKS_EXCLUDED(mu_) {
    if (batch.empty()) return nullptr;
    auto shared = std::make_shared<const std::vector<Change>>(std::move(batch));
    absl::MutexLock lock(&mu_);
    history_.push_back(shared);
    remembered_ += shared->size();
    while (history_.size() > 1 && remembered_ - history_.front()->size() >= remember_) {
      remembered_ -= history_.front()->size();
      compacted_through_ = history_.front()->back().revision;
      history_.pop_front();
    }
    for (auto& [id, w] : watchers_) {
      // A watcher that started after a revision this batch has not passed yet (the store read
      // ahead of its own delivery, as etcd's listings do) gets only what is newer.
      if (w.after >= shared->back().revision) continue;
      if (w.after >= shared->front().revision) {
        std::vector<Change> tail;
        for (const Change& c : *shared) {
          if (c.revision > w.after) tail.push_back(c);
        }
        w.fn(tail);
        continue;
      }
      w.fn(*shared);
    }
    return shared;
  }

  // After the store lost track of its changes (etcd compacted the revisions its watch needed):
  // forgets every remembered batch (a later Watch from before `revision` is OUT_OF_RANGE) and
  // delivers `changes`, which bring each watcher from whatever it had to the store's contents at
  // `revision` (puts at their own revisions, deletes at `revision`), to every watcher.
  void Resync(const std::vector<Change>& changes, int64_t revision) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    history_.clear();
    remembered_ = 0;
    compacted_through_ = revision;
    if (changes.empty()) return;
    for (auto& [id, w] : watchers_) w.fn(changes);
  }

  // OUT_OF_RANGE when changes after `after_revision` are no longer remembered. The log must
  // outlive the returned watch.
  absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision, Fn fn)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (after_revision < compacted_through_) {
      return absl::OutOfRangeError(absl::StrCat(
          "changes after revision ", after_revision,
          " are compacted (oldest remembered: ", compacted_through_ + 1, "); reload with a list"));
    }
    for (const auto& batch : history_) {
      if (batch->back().revision <= after_revision) continue;
      if (batch->front().revision > after_revision) {
        fn(*batch);
        continue;
      }
      std::vector<Change> tail;
      for (const Change& c : *batch) {
        if (c.revision > after_revision) tail.push_back(c);
      }
      fn(tail);
    }
    const uint64_t id = next_id_++;
    watchers_.emplace(id, Watcher{std::move(fn), after_revision});
    return std::unique_ptr<state::Watch>(new Handle(this, id));
  }

 private:
  class Handle final : public state::Watch {
   public:
    Handle(ChangeLogOf* log, uint64_t id) : log_(log), id_(id) {}
    ~Handle() override { log_->Unwatch(id_); }

   private:
    ChangeLogOf* const log_;
    const uint64_t id_;
  };

  void Unwatch(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    watchers_.erase(id);
  }

  const size_t remember_;
  absl::Mutex mu_;
  int64_t compacted_through_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<const std::vector<Change>>> history_ ABSL_GUARDED_BY(mu_);
  size_t remembered_ ABSL_GUARDED_BY(mu_) = 0;
  struct Watcher {
    Fn fn;
    int64_t after = 0;
  };
  std::map<uint64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// The lease stores' change log.
using ChangeLog = ChangeLogOf<LeaseChange>;

}  // namespace credbroker::state
