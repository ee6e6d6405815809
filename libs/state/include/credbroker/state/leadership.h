// Leadership decides which replica does the work that must happen once: probe calibration,
// promotion, minting, revocation at the provider, retirement, lease expiry and revocation
// detection (the RotationScheduler runs those only while IsLeader()). Every leader-only write
// carries the leader's fencing epoch, and the state store refuses a write from an older epoch, so
// a deposed leader that has not noticed yet can never overwrite its successor's decisions.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"

namespace credbroker::state {

class Leadership {
 public:
  // `leader` and the epoch of the term (0 when not leader).
  using Listener = std::function<void(bool leader, int64_t epoch)>;

  virtual ~Leadership() = default;
  virtual bool IsLeader() const = 0;
  // The term this replica leads, increasing with every new term; 0 while not leader.
  virtual int64_t Epoch() const = 0;
  // Calls `listener` at once with the current state, then at every gain and loss (on the thread
  // that noticed). It must not block. Returns an id for Unsubscribe.
  virtual uint64_t Subscribe(Listener listener) = 0;
  virtual void Unsubscribe(uint64_t id) = 0;
  // The name of the replica that leads, as last seen (for operators sent to it); empty when
  // unknown.
  virtual std::string LeaderName() const { return ""; }
};

// One broker that owns its state (SQLite): always the leader, for one term per process start
// (the store persists and raises the epoch at every open).
class SingleNodeLeadership final : public Leadership {
 public:
  explicit SingleNodeLeadership(int64_t epoch) : epoch_(epoch) {}
  bool IsLeader() const override { return true; }
  int64_t Epoch() const override { return epoch_; }
  uint64_t Subscribe(Listener listener) override;
  void Unsubscribe(uint64_t id) override;

 private:
  const int64_t epoch_;
  absl::Mutex mu_;
  std::map<uint64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

// A leadership a test sets by hand (gain with a new epoch, lose).
class ManualLeadership final : public Leadership {
 public:
  bool IsLeader() const override;
  int64_t Epoch() const override;
  uint64_t Subscribe(Listener listener) override;
  void Unsubscribe(uint64_t id) override;
  // Leads `epoch` from now on (0: not leader), telling the listeners.
  void Set(int64_t epoch);

 private:
  mutable absl::Mutex mu_;
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace credbroker::state
