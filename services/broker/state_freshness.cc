#include "state_freshness.h"

#include "credbroker/core/log.h"

namespace credbroker::broker {
namespace {

constexpr char kStaleReason[] =
    "this replica's state store watch is down: decisions and leases from other replicas may not "
    "have reached it";
constexpr char kFreshReason[] = "this replica's state store watch is back";

}  // namespace

void StateFreshness::WatchConnected(bool connected) {
  inner_->WatchConnected(connected);
  absl::MutexLock lock(&mu_);
  const bool stale = stale_since_ != absl::InfiniteFuture();
  if (connected != stale) return;  // no change
  const absl::Time now = clock_->Now();
  if (connected) {
    core::LogInfo("state store watch restored: this replica is current again",
                  {{"stale_for",
                    absl::FormatDuration(absl::Trunc(now - stale_since_, absl::Milliseconds(1)))}});
    stale_since_ = absl::InfiniteFuture();
  } else {
    core::LogWarning(
        "state store watch lost: serving the leases and key states this replica knows, which "
        "may be behind the other replicas' until it reconnects");
    stale_since_ = now;
  }
  for (const auto& [id, listener] : listeners_) listener(!connected, now);
}

absl::Time StateFreshness::StaleSince() const {
  absl::MutexLock lock(&mu_);
  return stale_since_;
}

uint64_t StateFreshness::Subscribe(Listener listener) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void StateFreshness::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

RingFreshnessLink::RingFreshnessLink(StateFreshness* freshness, rotation::KeyRing* ring)
    : freshness_(freshness) {
  id_ = freshness_->Subscribe([ring](bool stale, absl::Time at) {
    ring->SetStateStale(stale, at, stale ? kStaleReason : kFreshReason);
  });
  // A change between Subscribe and here reached the ring already; this repeats the state.
  const absl::Time since = freshness_->StaleSince();
  if (since != absl::InfiniteFuture()) ring->SetStateStale(true, since, kStaleReason);
}

RingFreshnessLink::~RingFreshnessLink() { freshness_->Unsubscribe(id_); }

}  // namespace credbroker::broker
