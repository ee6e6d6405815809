// Cross-cutting work on key events, one small class each, subscribed to the KeyRing by the
// composition root: the KeyRing decides and publishes; logging and the transition counter (here),
// the audit trail and WatchKeys (services/broker) listen. Each runs on the thread that changed
// the ring and must not block.
// Thread-safety: the subscribers are stateless or use thread-safe sinks.
#pragma once

#include <vector>

#include "credbroker/rotation/key_ring.h"
#include "credbroker/rotation/rotation_stats.h"

namespace credbroker::rotation {

// True for events that move a key version into a state (not snapshots, syncs, anomalies or
// rejected versions, which never entered the ring).
bool IsTransition(const KeyEvent& e);

// One log line per key-version event ("key version state").
class KeyTransitionLogger {
 public:
  void operator()(const std::vector<KeyEvent>& events) const;
};

// credbroker_key_transitions_total{provider,state}.
class KeyTransitionCounter {
 public:
  explicit KeyTransitionCounter(RotationStats* metrics) : metrics_(metrics) {}
  void operator()(const std::vector<KeyEvent>& events) const;

 private:
  RotationStats* const metrics_;
};

// credbroker_key_quarantines_total{provider,reason}: each QUARANTINED event by its cause
// (operator, revoked_at_provider).
class KeyQuarantineCounter {
 public:
  explicit KeyQuarantineCounter(RotationStats* metrics) : metrics_(metrics) {}
  void operator()(const std::vector<KeyEvent>& events) const;

 private:
  RotationStats* const metrics_;
};

// Keeps a listener subscribed to a ring for its own lifetime.
class KeyEventSubscription {
 public:
  KeyEventSubscription(KeyRing* ring, KeyRing::Listener listener) : ring_(ring) {
    ring_->Subscribe(std::move(listener), &id_);
  }
  ~KeyEventSubscription() { ring_->Unsubscribe(id_); }
  KeyEventSubscription(const KeyEventSubscription&) = delete;
  KeyEventSubscription& operator=(const KeyEventSubscription&) = delete;

 private:
  KeyRing* const ring_;
  uint64_t id_ = 0;
};

}  // namespace credbroker::rotation
