// WatchKeys streams: each open stream is a reactor fed by a KeyRing subscription. On subscribe it
// sends the current state (SNAPSHOT events, then SYNCED), then every change; a watcher that falls
// too far behind is ended with RESOURCE_EXHAUSTED (WATCHER_TOO_SLOW) instead of growing a queue
// without bound. The registry lets shutdown end every stream at once (UNAVAILABLE,
// SHUTTING_DOWN) instead of waiting out the grace period.
// Thread-safety: safe for concurrent use.
#pragma once

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/v1/lease.grpc.pb.h"

namespace credbroker::broker {

class WatchReactor;

class WatchRegistry {
 public:
  void Add(WatchReactor* r) {
    absl::MutexLock lock(&mu_);
    reactors_.insert(r);
  }
  // Called from OnDone before the reactor deletes itself: waits for a running CloseAll.
  void Remove(WatchReactor* r) {
    absl::MutexLock lock(&mu_);
    reactors_.erase(r);
  }
  void CloseAll();

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<WatchReactor*> reactors_ ABSL_GUARDED_BY(mu_);
};

// A new stream of `ring`'s events for `providers` (all when empty), registered in `registry`.
grpc::ServerWriteReactor<v1::KeyEvent>* StartWatch(rotation::KeyRing* ring, WatchRegistry* registry,
                                                   absl::flat_hash_set<std::string> providers);
// A stream that ends at once with `status`.
grpc::ServerWriteReactor<v1::KeyEvent>* FailedWatch(const grpc::Status& status);

}  // namespace credbroker::broker
