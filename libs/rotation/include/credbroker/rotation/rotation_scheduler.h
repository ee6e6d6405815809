// RotationScheduler owns the one loop that drives key versions and leases over time, and runs
// the work that must happen once only while this replica leads (state::Leadership):
//  - rotation passes (RotationEngine::RunOnce: probe calibration, promotion, minting, revocation
//    at the provider, confirmation of suspected revocations) every check_interval, and at once
//    when woken (a new PENDING version, a suspected revocation, a gained leadership);
//  - retirement of replaced versions (KeyRing::Tick) every tick_interval;
//  - removal of expired leases (`sweep`) every sweep_interval.
// On every replica it refreshes the key gauges (KeyRing::RefreshGauges) and runs `every_replica`
// (anomaly buckets) at the sweep interval. Losing leadership stops the leader work from the next
// step on; writes a step already started are fenced by the store.
// Time comes from `clock`; the owned thread waits in real time for the earliest deadline. Tests
// with a FakeClock do not Start() the thread: they call RunDue() after moving the clock, which
// runs exactly what the thread would run at that time.
// Thread-safety: Start/Stop from one thread; the work runs on an owned thread. RunDue only while
// the thread is not started.
#pragma once

#include <functional>
#include <thread>

#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/wakeup.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/rotation/rotation_engine.h"
#include "credbroker/state/leadership.h"

namespace credbroker::rotation {

struct RotationSchedulerOptions {
  absl::Duration check_interval = absl::Seconds(30);
  absl::Duration tick_interval = absl::Seconds(1);
  absl::Duration sweep_interval = absl::Seconds(10);
};

class RotationScheduler {
 public:
  struct Work {
    RotationEngine* engine = nullptr;
    KeyRing* ring = nullptr;
    std::function<void()> sweep;          // leader only; may be empty
    std::function<void()> every_replica;  // may be empty
  };

  // Everything must outlive the scheduler. `wakeup` is the one the engine notifies.
  RotationScheduler(state::Leadership* leadership, core::Wakeup* wakeup, Work work,
                    RotationSchedulerOptions options, const core::Clock* clock);
  ~RotationScheduler();
  RotationScheduler(const RotationScheduler&) = delete;
  RotationScheduler& operator=(const RotationScheduler&) = delete;

  void Start();
  void Stop();

  // Runs the work that is due at the clock's now (all of it on the first call, as the thread's
  // first pass does); `woken`: a wake-up arrived since the last call (it runs a rotation pass at
  // once). Returns when the next work is due.
  absl::Time RunDue(bool woken);

 private:
  void Loop();

  state::Leadership* const leadership_;
  core::Wakeup* const wakeup_;
  const Work work_;
  const RotationSchedulerOptions options_;
  const core::Clock* const clock_;
  // The loop's state: owned by the thread (or by the test calling RunDue).
  bool started_ = false;
  bool was_leader_ = false;
  absl::Time next_check_;
  absl::Time next_tick_;
  absl::Time next_sweep_;
  uint64_t subscription_ = 0;
  std::thread thread_;
};

}  // namespace credbroker::rotation
