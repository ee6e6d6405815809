// ChangeLog is the watch half of a lease store implementation: it remembers the most recent
// committed batches and delivers every batch, in revision order, to each watcher. A new watcher
// first gets the remembered changes after its start revision, then live batches, with nothing in
// between lost or repeated.
// Thread-safety: safe for concurrent use. Publish must be called in revision order (the store
// serializes its commits).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/state/lease_store.h"

namespace credbroker::state {

class ChangeLog {
 public:
  // `compacted_through`: the newest revision whose changes are not remembered (the store's
  // revision when it was opened). Keeps at least the last `remember` changes.
  explicit ChangeLog(int64_t compacted_through, size_t remember = 4096);
  ChangeLog(const ChangeLog&) = delete;
  ChangeLog& operator=(const ChangeLog&) = delete;
  ~ChangeLog();

  // Remembers a committed batch (ascending revisions, above every earlier batch) and delivers it
  // to the watchers on this thread.
  void Publish(std::vector<LeaseChange> batch) ABSL_LOCKS_EXCLUDED(mu_);

  // OUT_OF_RANGE when changes after `after_revision` are no longer remembered. The ChangeLog must
  // outlive the returned watch.
  absl::StatusOr<std::unique_ptr<LeaseWatch>> Watch(int64_t after_revision, LeaseWatchFn fn)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Handle;
  void Unwatch(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

  const size_t remember_;
  absl::Mutex mu_;
  int64_t compacted_through_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<const std::vector<LeaseChange>>> history_ ABSL_GUARDED_BY(mu_);
  size_t remembered_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, LeaseWatchFn> watchers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace credbroker::state
