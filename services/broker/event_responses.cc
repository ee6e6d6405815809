#include "event_responses.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "credbroker/core/log.h"
#include "credbroker/rotation/key_event_subscribers.h"

namespace credbroker::broker {

void KeyTransitionAuditor::operator()(const std::vector<rotation::KeyEvent>& events) const {
  for (const rotation::KeyEvent& e : events) {
    if (!rotation::IsTransition(e) && e.type != rotation::KeyEvent::Type::kRejected) continue;
    identity::AuditRecord r;
    r.action = "KeyTransition";
    r.caller = "credbroker";
    r.provider = e.provider;
    r.key_version = e.version_id;
    r.key_fingerprint = e.fingerprint;
    r.key_hint = e.hint;
    r.decision = e.type == rotation::KeyEvent::Type::kRejected
                     ? "REJECTED"
                     : std::string(rotation::KeyStateName(e.state));
    r.reason = e.reason;
    audit_->Record(r);
  }
}

void AnomalyResponder::operator()(const anomaly::Anomaly& a) const {
  std::string what = absl::StrCat(anomaly::AnomalyKindName(a.kind), ": ", a.detail);
  if (a.action == anomaly::AnomalyAction::kSuspend) {
    if (absl::Status stored = facts_->Suspend({a.caller, a.provider, a.suspended_until,
                                               std::string(anomaly::AnomalyKindName(a.kind))});
        !stored.ok()) {
      // Enforced here all the same; other replicas and a restart will not know of it.
      core::LogError(
          "cannot store caller suspension",
          {{"caller", a.caller}, {"provider", a.provider}, {"error", stored.ToString()}});
    }
    const int64_t n = broker_->RevokeCallerLeases(a.caller, a.provider, "CALLER_SUSPENDED");
    absl::StrAppend(&what, "; caller suspended until ", absl::FormatTime(a.suspended_until), ", ",
                    n, " leases revoked");
  }
  audit_->Record({"Anomaly", a.caller, a.provider, a.key_version, "", "", "",
                  std::string(anomaly::AnomalyActionName(a.action)), what});
  rotation::KeyEvent e;
  e.type = rotation::KeyEvent::Type::kAnomaly;
  e.provider = a.provider;
  e.version_id = a.key_version;
  e.at = a.at;
  e.reason = what;
  e.caller = a.caller;
  e.anomaly_kind = std::string(anomaly::AnomalyKindName(a.kind));
  ring_->Announce({e});
}

}  // namespace credbroker::broker
