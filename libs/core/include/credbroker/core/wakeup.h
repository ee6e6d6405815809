// Wakeup is how anything wakes one background loop early: Notify() from any thread; the loop
// waits until notified, a deadline or Stop(). A notification that arrives while the loop is busy
// is kept for its next wait, so none is lost.
// Thread-safety: safe for concurrent use.
#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace credbroker::core {

class Wakeup {
 public:
  void Notify() {
    absl::MutexLock lock(&mu_);
    notified_ = true;
  }
  void Stop() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }
  // Waits until notified, stopped or `deadline` (real time). True when notified (the
  // notification is consumed) or stopped; check stopped() after.
  bool WaitUntil(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(this, &Wakeup::Ready), deadline);
    const bool woken = notified_ || stopped_;
    notified_ = false;
    return woken;
  }
  bool stopped() const {
    absl::MutexLock lock(&mu_);
    return stopped_;
  }

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return notified_ || stopped_; }

  mutable absl::Mutex mu_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace credbroker::core
