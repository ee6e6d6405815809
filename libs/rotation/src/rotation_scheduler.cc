#include "credbroker/rotation/rotation_scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "credbroker/core/log.h"

namespace credbroker::rotation {

RotationScheduler::RotationScheduler(state::Leadership* leadership, core::Wakeup* wakeup, Work work,
                                     RotationSchedulerOptions options, const core::Clock* clock)
    : leadership_(leadership),
      wakeup_(wakeup),
      work_(std::move(work)),
      options_(options),
      clock_(clock) {}

RotationScheduler::~RotationScheduler() { Stop(); }

void RotationScheduler::Start() {
  if (thread_.joinable()) return;
  // A gain or loss wakes the loop: a new leader starts at once, a deposed one stops at once.
  subscription_ = leadership_->Subscribe([this](bool, int64_t) { wakeup_->Notify(); });
  thread_ = std::thread([this] { Loop(); });
}

void RotationScheduler::Stop() {
  if (!thread_.joinable()) return;
  wakeup_->Stop();
  thread_.join();
  leadership_->Unsubscribe(subscription_);
}

absl::Time RotationScheduler::RunDue(bool woken) {
  const absl::Time now = clock_->Now();
  if (!started_) {
    // A first pass at once: calibrate, promote what is pending.
    started_ = true;
    woken = true;
    next_check_ = now;
    next_tick_ = now;
    next_sweep_ = now + options_.sweep_interval;
  }
  const bool leader = leadership_->IsLeader();
  if (leader != was_leader_) {
    core::LogInfo(leader ? "leading: rotation work runs on this replica"
                         : "no longer leading: rotation work stops on this replica",
                  {{"epoch", absl::StrCat(leadership_->Epoch())}});
    // Keys this broker minted that left service but were not revoked yet (the previous leader,
    // or this process before a restart, stopped before it could).
    if (leader) work_.engine->ResumeRevocations();
    woken = woken || leader;
    was_leader_ = leader;
  }
  if (leader && (woken || now >= next_check_)) {
    work_.engine->RunOnce();
    next_check_ = clock_->Now() + options_.check_interval;
  }
  if (now >= next_tick_) {
    if (leader) {
      work_.ring->Tick();
    } else {
      work_.ring->RefreshGauges();
    }
    next_tick_ = now + options_.tick_interval;
  }
  if (now >= next_sweep_) {
    if (leader && work_.sweep) work_.sweep();
    if (work_.every_replica) work_.every_replica();
    next_sweep_ = now + options_.sweep_interval;
  }
  absl::Time deadline = std::min(next_tick_, next_sweep_);
  if (leader) deadline = std::min(deadline, next_check_);
  return deadline;
}

void RotationScheduler::Loop() {
  bool woken = false;
  while (!wakeup_->stopped()) {
    const absl::Time due = RunDue(woken);
    // The wait is in real time: the clock's time left until `due`.
    woken = wakeup_->WaitUntil(absl::Now() + (due - clock_->Now()));
  }
}

}  // namespace credbroker::rotation
