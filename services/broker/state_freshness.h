// StateFreshness is the StateStats a state store reports to: it forwards every figure to the
// metrics and follows whether the store's watch is connected. While the watch is down (etcd
// unreachable), this replica may miss decisions and leases written by the others; it keeps
// serving what it knows, says so loudly once (a warning line), and tells its subscribers, so that
// listings carry `stale_since` and WatchKeys streams get STATE_STALE (see RingFreshnessLink).
// When the watch is back: an info line and STATE_FRESH. The SQLite store's watch never drops.
// Thread-safety: safe for concurrent use; the store calls it from its own threads. Subscribers
// run under its lock (so Unsubscribe waits for a running one) and must not call back into it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/state/state_stats.h"

namespace credbroker::broker {

class StateFreshness final : public state::StateStats {
 public:
  // `stale`, and since when (when it became stale, or when it became fresh again).
  using Listener = std::function<void(bool stale, absl::Time at)>;

  // `inner` and `clock` must outlive this object.
  StateFreshness(state::StateStats* inner, const core::Clock* clock)
      : inner_(inner), clock_(clock) {}

  void Call(Op op, bool ok, absl::Duration latency) override { inner_->Call(op, ok, latency); }
  void Leader(bool leading) override { inner_->Leader(leading); }
  void WatchDelay(absl::Duration delay) override { inner_->WatchDelay(delay); }
  void WatchConnected(bool connected) override ABSL_LOCKS_EXCLUDED(mu_);

  // InfiniteFuture while the watch is connected (or never dropped).
  absl::Time StaleSince() const ABSL_LOCKS_EXCLUDED(mu_);

  // `listener` hears every change from now on; the id is for Unsubscribe.
  uint64_t Subscribe(Listener listener) ABSL_LOCKS_EXCLUDED(mu_);
  void Unsubscribe(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  state::StateStats* const inner_;
  const core::Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::Time stale_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::map<uint64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// For its lifetime, tells `ring` (KeyRing::SetStateStale) whenever `freshness` changes, starting
// with the current state. Declare it after the ring, so that it ends first.
class RingFreshnessLink {
 public:
  RingFreshnessLink(StateFreshness* freshness, rotation::KeyRing* ring);
  ~RingFreshnessLink();
  RingFreshnessLink(const RingFreshnessLink&) = delete;
  RingFreshnessLink& operator=(const RingFreshnessLink&) = delete;

 private:
  StateFreshness* const freshness_;
  uint64_t id_ = 0;
};

}  // namespace credbroker::broker
