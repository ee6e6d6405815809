// The revision a replica's watch has delivered to one store, and a wait for it: a synchronous
// writer returns only once its write is in this replica's caches (as with SQLite, whose watchers
// run on the committing thread).
#pragma once

#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace credbroker::state::etcd {

class Delivered {
 public:
  explicit Delivered(int64_t revision) : revision_(revision) {}
  void Advance(int64_t revision) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (revision > revision_) revision_ = revision;
  }
  // Whether `revision` was delivered within `timeout`. A false answer is no error: the write
  // committed, and the cache catches up when the watch does.
  bool WaitFor(int64_t revision, absl::Duration timeout) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, revision]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return revision_ >= revision; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }

 private:
  absl::Mutex mu_;
  int64_t revision_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::state::etcd
