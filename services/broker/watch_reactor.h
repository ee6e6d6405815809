// WatchKeys streams: each open stream is a reactor fed by a KeyRing subscription. On subscribe it
// sends the current state (SNAPSHOT events, then SYNCED), then every change of the providers its
// WatchScope names; ANOMALY events about another caller reach admins only. A watcher that falls
// too far behind is ended with RESOURCE_EXHAUSTED (WATCHER_TOO_SLOW) instead of growing a queue
// without bound. The registry bounds the open streams (in all and per caller: RESOURCE_EXHAUSTED,
// TOO_MANY_WATCHERS) and lets shutdown end every stream at once (UNAVAILABLE, SHUTTING_DOWN)
// instead of waiting out the grace period.
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/v1/lease.grpc.pb.h"

namespace credbroker::broker {

class WatchReactor;

struct WatchLimits {
  size_t total = 10000;
  size_t per_caller = 1000;
};

// What one stream may see: decided by the handler from the caller's policy rules.
struct WatchScope {
  std::string caller;
  // Never empty: the providers asked for, or every provider the caller may lease.
  absl::flat_hash_set<std::string> providers;
  // Sees ANOMALY events about every caller (otherwise only those about itself).
  bool admin = false;
};

class WatchRegistry {
 public:
  explicit WatchRegistry(WatchLimits limits) : limits_(limits) {}

  // Counts a new stream of `caller`; RESOURCE_EXHAUSTED (TOO_MANY_WATCHERS) over a limit.
  absl::Status Admit(const std::string& caller);
  // The stream exists: Close reaches it from now on.
  void Add(WatchReactor* r) {
    absl::MutexLock lock(&mu_);
    reactors_.insert(r);
  }
  // Called from OnDone before the reactor deletes itself: waits for a running CloseAll, and
  // gives back what Admit counted.
  void Remove(WatchReactor* r, const std::string& caller);
  void CloseAll();

 private:
  const WatchLimits limits_;
  absl::Mutex mu_;
  absl::flat_hash_set<WatchReactor*> reactors_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, size_t> per_caller_ ABSL_GUARDED_BY(mu_);
  size_t open_ ABSL_GUARDED_BY(mu_) = 0;
};

// A new stream of `ring`'s events within `scope`, registered in `registry` (which admitted it).
grpc::ServerWriteReactor<v1::KeyEvent>* StartWatch(rotation::KeyRing* ring, WatchRegistry* registry,
                                                   WatchScope scope);
// A stream that ends at once with `status`.
grpc::ServerWriteReactor<v1::KeyEvent>* FailedWatch(const grpc::Status& status);

}  // namespace credbroker::broker
