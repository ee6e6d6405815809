// What the broker does in response to events, as small classes the composition root subscribes:
//  - KeyTransitionAuditor: one audit line per key-version transition ("KeyTransition").
//  - AnomalyResponder: an anomaly's consequences — with the `suspend` action the caller's leases
//    on the provider are revoked — then one audit line ("Anomaly") and an ANOMALY event to the
//    provider's WatchKeys watchers.
// Thread-safety: both are safe for concurrent use (their sinks are).
#pragma once

#include <vector>

#include "credbroker/anomaly/anomaly_detector.h"
#include "credbroker/identity/audit_log.h"
#include "credbroker/leasing/lease_broker.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/state/shared_facts.h"

namespace credbroker::broker {

class KeyTransitionAuditor {
 public:
  explicit KeyTransitionAuditor(identity::AuditLog* audit) : audit_(audit) {}
  void operator()(const std::vector<rotation::KeyEvent>& events) const;

 private:
  identity::AuditLog* const audit_;
};

class AnomalyResponder {
 public:
  // All must outlive the responder.
  AnomalyResponder(leasing::LeaseBroker* broker, identity::AuditLog* audit, rotation::KeyRing* ring,
                   state::SharedFacts* facts)
      : broker_(broker), audit_(audit), ring_(ring), facts_(facts) {}
  void operator()(const anomaly::Anomaly& a) const;

 private:
  leasing::LeaseBroker* const broker_;
  identity::AuditLog* const audit_;
  rotation::KeyRing* const ring_;
  // Where a suspension is stored for every replica (SuspensionFeed).
  state::SharedFacts* const facts_;
};

}  // namespace credbroker::broker
