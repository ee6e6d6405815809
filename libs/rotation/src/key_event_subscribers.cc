#include "credbroker/rotation/key_event_subscribers.h"

#include "credbroker/core/log.h"

namespace credbroker::rotation {

bool IsTransition(const KeyEvent& e) {
  switch (e.type) {
    case KeyEvent::Type::kSnapshot:
    case KeyEvent::Type::kSynced:
    case KeyEvent::Type::kRejected:
    case KeyEvent::Type::kAnomaly:
    case KeyEvent::Type::kStateStale:
    case KeyEvent::Type::kStateFresh:
      return false;
    default:
      return true;
  }
}

void KeyTransitionLogger::operator()(const std::vector<KeyEvent>& events) const {
  for (const KeyEvent& e : events) {
    // Rejected versions are logged too (they are no transition, but an operator must see them).
    if (!IsTransition(e) && e.type != KeyEvent::Type::kRejected) continue;
    core::LogInfo("key version state", {{"provider", e.provider},
                                        {"key_version", e.version_id},
                                        {"fingerprint", e.fingerprint},
                                        {"state", KeyStateName(e.state)},
                                        {"reason", e.reason}});
  }
}

void KeyTransitionCounter::operator()(const std::vector<KeyEvent>& events) const {
  for (const KeyEvent& e : events) {
    if (IsTransition(e)) metrics_->KeyTransition(e.provider, KeyStateName(e.state));
  }
}

void KeyQuarantineCounter::operator()(const std::vector<KeyEvent>& events) const {
  for (const KeyEvent& e : events) {
    if (e.type != KeyEvent::Type::kQuarantined) continue;
    metrics_->KeyQuarantined(e.provider, e.cause.empty() ? kQuarantinedByOperator : e.cause);
  }
}

}  // namespace credbroker::rotation
