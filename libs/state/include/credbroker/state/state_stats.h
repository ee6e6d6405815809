// StateStats is what a replicated state store reports about itself, for operators: its calls to
// the backing service (etcd) with their latency and outcome, whether this replica leads, whether
// its watch is connected, and how long its own writes take to come back through the watch (the
// delay before this replica's caches, and so the other replicas', see a change).
// metrics::StateMetrics implements it over Prometheus; NoStateStats discards everything.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include "absl/time/time.h"

namespace credbroker::state {

class StateStats {
 public:
  enum class Op { kRead, kWrite, kGrantLease, kKeepAlive, kRevokeLease };
  virtual ~StateStats() = default;
  virtual void Call(Op op, bool ok, absl::Duration latency) = 0;
  virtual void Leader(bool leading) = 0;
  virtual void WatchConnected(bool connected) = 0;
  virtual void WatchDelay(absl::Duration delay) = 0;
};

class NoStateStats final : public StateStats {
 public:
  static NoStateStats* Get() {
    static auto* const kInstance = new NoStateStats();
    return kInstance;
  }
  void Call(Op, bool, absl::Duration) override {}
  void Leader(bool) override {}
  void WatchConnected(bool) override {}
  void WatchDelay(absl::Duration) override {}
};

}  // namespace credbroker::state
