#include "credbroker/state/leadership.h"

#include <utility>

namespace credbroker::state {

uint64_t SingleNodeLeadership::Subscribe(Listener listener) {
  listener(true, epoch_);
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void SingleNodeLeadership::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

bool ManualLeadership::IsLeader() const {
  absl::MutexLock lock(&mu_);
  return epoch_ > 0;
}

int64_t ManualLeadership::Epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

uint64_t ManualLeadership::Subscribe(Listener listener) {
  absl::MutexLock lock(&mu_);
  listener(epoch_ > 0, epoch_);
  const uint64_t id = next_id_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void ManualLeadership::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

void ManualLeadership::Set(int64_t epoch) {
  absl::MutexLock lock(&mu_);
  epoch_ = epoch;
  for (const auto& [id, l] : listeners_) l(epoch > 0, epoch);
}

}  // namespace credbroker::state
