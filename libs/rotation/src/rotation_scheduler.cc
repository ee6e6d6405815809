#include "credbroker/rotation/rotation_scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "credbroker/core/log.h"

namespace credbroker::rotation {

RotationScheduler::RotationScheduler(state::Leadership* leadership, core::Wakeup* wakeup, Work work,
                                     RotationSchedulerOptions options)
    : leadership_(leadership), wakeup_(wakeup), work_(std::move(work)), options_(options) {}

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

void RotationScheduler::Loop() {
  const absl::Time start = absl::Now();
  absl::Time next_check = start;  // a first pass at once: calibrate, promote what is pending
  absl::Time next_tick = start;
  absl::Time next_sweep = start + options_.sweep_interval;
  bool was_leader = false;
  bool woken = true;
  while (!wakeup_->stopped()) {
    const absl::Time now = absl::Now();
    const bool leader = leadership_->IsLeader();
    if (leader != was_leader) {
      core::LogInfo(leader ? "leading: rotation work runs on this replica"
                           : "no longer leading: rotation work stops on this replica",
                    {{"epoch", absl::StrCat(leadership_->Epoch())}});
      // Keys this broker minted that left service but were not revoked yet (the previous leader,
      // or this process before a restart, stopped before it could).
      if (leader) work_.engine->ResumeRevocations();
      woken = woken || leader;
      was_leader = leader;
    }
    if (leader && (woken || now >= next_check)) {
      work_.engine->RunOnce();
      next_check = absl::Now() + options_.check_interval;
    }
    if (now >= next_tick) {
      if (leader) {
        work_.ring->Tick();
      } else {
        work_.ring->RefreshGauges();
      }
      next_tick = now + options_.tick_interval;
    }
    if (now >= next_sweep) {
      if (leader && work_.sweep) work_.sweep();
      if (work_.every_replica) work_.every_replica();
      next_sweep = now + options_.sweep_interval;
    }
    absl::Time deadline = std::min(next_tick, next_sweep);
    if (leader) deadline = std::min(deadline, next_check);
    woken = wakeup_->WaitUntil(deadline);
  }
}

}  // namespace credbroker::rotation
