#include "credbroker/leasing/lease_broker.h"

#include <algorithm>
#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/log.h"
#include "credbroker/core/scopes.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/providers/auth_failure.h"

namespace credbroker::leasing {
namespace {

using rotation::KeyState;

absl::Status Reason(absl::Status s, absl::string_view reason) {
  return core::WithReason(std::move(s), reason);
}

// The provider's keys when new leases may be handed out, or why not.
// `backend_detail`: whether the caller may see the backend's last error (admins only: it names
// paths, hosts and roles of the secret store); asked only when there is an error to tell.
// `keys`: the provider's entry in the snapshot, or null when it has none.
absl::StatusOr<const rotation::ProviderKeys*> ServableProvider(
    const rotation::ProviderKeys* keys, const std::string& provider, absl::Time now,
    absl::FunctionRef<bool()> backend_detail) {
  if (keys == nullptr) {
    return Reason(absl::NotFoundError(absl::StrCat("unknown provider \"", provider, "\"")),
                  "UNKNOWN_PROVIDER");
  }
  if (keys->Stale(now)) {
    return Reason(
        absl::UnavailableError(absl::StrCat(
            "keys for ", provider, " could not be refreshed from the backend for longer than ",
            absl::FormatDuration(keys->max_staleness),
            keys->last_error.empty() || !backend_detail()
                ? ""
                : absl::StrCat(" (", keys->last_error, ")"))),
        "BACKEND_STALE");
  }
  return keys;
}

}  // namespace

LeaseBroker::LeaseBroker(rotation::KeyRing* ring, LeaseTable* table, LeaseCounts* counts,
                         LeaseStats* metrics, const core::Clock* clock, TtlPolicy ttl,
                         identity::Policy* policy, identity::AuditLog* audit)
    : ring_(ring),
      table_(table),
      counts_(counts),
      metrics_(metrics),
      clock_(clock),
      ttl_(ttl),
      policy_(policy),
      audit_(audit) {}

bool LeaseBroker::IsAdmin(const identity::Identity& caller) const {
  return policy_ != nullptr ? policy_->IsAdmin(caller) : caller.admin;
}

void LeaseBroker::RestoreLoaded(const std::vector<LeaseRecord>& loaded) {
  if (anomalies_ == nullptr) return;
  for (const LeaseRecord& l : loaded) anomalies_->Known(l.caller, l.provider);
}

std::string LeaseBroker::Label(absl::string_view caller) const {
  return policy_ ? policy_->MetricLabel(caller) : std::string(caller);
}

int64_t LeaseBroker::ActiveLeases(absl::string_view provider, absl::string_view version) const {
  return counts_->ByVersion(provider, version);
}

int64_t LeaseBroker::RevokeLeasesOn(absl::string_view provider, absl::string_view version,
                                    absl::string_view reason) {
  std::vector<LeaseRecord> revoked = RevokeMatching(
      [&](const LeaseRecord& l) { return l.provider == provider && l.key_version == version; },
      reason);
  {
    // Remember why, so later use of these leases is recognised as use of a retired key.
    absl::MutexLock lock(&revoked_mu_);
    for (const LeaseRecord& l : revoked) {
      revoked_for_key_[l.id] = {l.provider, l.key_version, std::string(reason)};
      revoked_order_.push_back(l.id);
    }
    constexpr size_t kRemembered = 100000;
    while (revoked_order_.size() > kRemembered) {
      revoked_for_key_.erase(revoked_order_.front());
      revoked_order_.pop_front();
    }
  }
  return static_cast<int64_t>(revoked.size());
}

void LeaseBroker::Unbook(const LeaseRecord& l) {
  metrics_->LeaseRevoked(l.provider, Label(l.caller));
}

std::vector<LeaseRecord> LeaseBroker::RevokeMatching(
    const std::function<bool(const LeaseRecord&)>& pred, absl::string_view reason) {
  absl::StatusOr<std::vector<LeaseRecord>> revoked = table_->RevokeIf(pred);
  if (!revoked.ok()) {
    core::LogError("revoking leases failed",
                   {{"reason", reason}, {"error", revoked.status().ToString()}});
    return {};
  }
  for (const LeaseRecord& l : *revoked) {
    Unbook(l);
    if (audit_) {
      audit_->Record({"RevokeLease", l.caller, l.provider, l.key_version, l.key_fingerprint, "",
                      l.id, "revoke", std::string(reason)});
    }
  }
  return *std::move(revoked);
}

int64_t LeaseBroker::RevokeCallerLeases(absl::string_view caller, absl::string_view provider,
                                        absl::string_view reason) {
  return static_cast<int64_t>(
      RevokeMatching(
          [&](const LeaseRecord& l) { return l.provider == provider && l.caller == caller; },
          reason)
          .size());
}

absl::Status LeaseBroker::CheckSuspended(const identity::Identity& caller,
                                         absl::string_view provider, absl::Time now, bool admit) {
  if (anomalies_ == nullptr) return absl::OkStatus();
  const absl::Time until = admit ? anomalies_->Admit(caller.name, provider)
                                 : anomalies_->SuspendedUntil(caller.name, provider);
  if (until <= now) return absl::OkStatus();
  return Reason(absl::PermissionDeniedError(absl::StrCat(
                    caller.name, " is suspended on ", provider, " until ", absl::FormatTime(until),
                    " after a usage anomaly (see the audit log)")),
                "CALLER_SUSPENDED");
}

void LeaseBroker::CheckRevokedForKey(const identity::Identity& caller, const std::string& lease_id,
                                     absl::string_view what) {
  if (anomalies_ == nullptr) return;
  RevokedForKey found;
  {
    absl::MutexLock lock(&revoked_mu_);
    auto it = revoked_for_key_.find(lease_id);
    if (it == revoked_for_key_.end()) return;
    found = it->second;
  }
  anomalies_->RecordRetiredKeyUse(
      caller.name, found.provider, found.key_version,
      absl::StrCat(what, " a lease revoked with its key version (", found.reason, ")"));
}

void LeaseBroker::Denied(absl::string_view method, const identity::Identity& caller,
                         absl::string_view provider, const absl::Status& status,
                         absl::string_view lease_id) {
  std::string reason = core::ReasonOf(status);
  if (reason.empty()) reason = "OTHER";
  metrics_->LeaseRequestDenied(method, reason);
  if (reason == "NO_RULE" || reason == "RATE_LIMITED" || reason == "TOO_MANY_LEASES") {
    metrics_->PolicyDenied(Label(caller.name), provider, reason);
  }
  if (audit_) {
    audit_->Record({std::string(method), caller.name, std::string(provider), "", "", "",
                    std::string(lease_id), "deny", reason});
  }
}

void LeaseBroker::Audit(absl::string_view method, const identity::Identity& caller,
                        const LeaseRecord& lease, const rotation::KeyVersion* key,
                        absl::string_view note) {
  if (!audit_) return;
  audit_->Record({std::string(method), caller.name, lease.provider, lease.key_version,
                  lease.key_fingerprint, key != nullptr ? key->hint : std::string(), lease.id,
                  "allow", std::string(note)});
}

absl::StatusOr<absl::Duration> LeaseBroker::EffectiveTtl(absl::Duration requested) const {
  if (requested < absl::ZeroDuration()) {
    return Reason(absl::InvalidArgumentError("ttl must not be negative"), "BAD_TTL");
  }
  if (requested == absl::ZeroDuration()) return ttl_.default_ttl;
  return std::clamp(requested, ttl_.min_ttl, ttl_.max_ttl);
}

namespace {

// Runs an asynchronous call to completion on this thread.
template <typename T, typename Start>
T Await(Start start) {
  absl::Notification finished;
  std::optional<T> out;
  start([&](T result) {
    out.emplace(std::move(result));
    finished.Notify();
  });
  finished.WaitForNotification();
  return *std::move(out);
}

}  // namespace

absl::StatusOr<LeaseGrant> LeaseBroker::Acquire(const identity::Identity& caller,
                                                const std::string& provider, absl::Duration ttl,
                                                const std::string& purpose,
                                                const std::string& scope) {
  return Await<absl::StatusOr<LeaseGrant>>([&](GrantDone done) {
    AcquireAsync(caller, provider, ttl, purpose, scope, std::move(done));
  });
}

absl::StatusOr<LeaseGrant> LeaseBroker::Renew(const identity::Identity& caller,
                                              const std::string& lease_id, absl::Duration ttl) {
  return Await<absl::StatusOr<LeaseGrant>>(
      [&](GrantDone done) { RenewAsync(caller, lease_id, ttl, std::move(done)); });
}

absl::Status LeaseBroker::Release(const identity::Identity& caller, const std::string& lease_id) {
  return Await<absl::Status>(
      [&](StatusDone done) { ReleaseAsync(caller, lease_id, std::move(done)); });
}

void LeaseBroker::AcquireAsync(const identity::Identity& caller, const std::string& provider,
                               absl::Duration ttl, const std::string& purpose, GrantDone done) {
  AcquireAsync(caller, provider, ttl, purpose, /*scope=*/"", std::move(done));
}

namespace {

// Orders key lines for a caller who asked for `requested`: known scopes before unknown ones
// (an unknown key may carry anything), fewer scopes first, then the line named `requested`.
bool LessPrivileged(const rotation::ProviderKeys& a, const rotation::ProviderKeys& b,
                    absl::string_view requested) {
  const size_t na = a.Scopes().size();
  const size_t nb = b.Scopes().size();
  if ((na == 0) != (nb == 0)) return na != 0;
  if (na != nb) return na < nb;
  if ((a.spec->name == requested) != (b.spec->name == requested)) {
    return a.spec->name == requested;
  }
  return a.spec->name < b.spec->name;
}

}  // namespace

absl::StatusOr<const rotation::ProviderKeys*> LeaseBroker::ChooseLine(
    const rotation::KeySnapshot& snap, const identity::Identity& caller,
    absl::string_view requested, absl::string_view scope) const {
  const rotation::ProviderKeys* named = snap.Find(requested);
  // Most providers are one line asked for by name.
  if (scope.empty() && named != nullptr && !named->spec->shares_api) return named;
  if (!scope.empty() && !core::IsScopeName(scope)) {
    return Reason(absl::InvalidArgumentError(absl::StrCat(
                      "scope \"", absl::CHexEscape(scope.substr(0, 64)),
                      "\" is not a scope name (lowercase letters, digits, '_', '-', '.', ':')")),
                  "BAD_SCOPE");
  }
  // A line asked for by its own name is the only candidate; an api name offers all its lines.
  std::vector<const rotation::ProviderKeys*> lines;
  if (named != nullptr && named->spec->api != requested) {
    lines.push_back(named);
  } else {
    for (const auto& [name, keys] : snap.providers) {
      if (keys.spec->api == requested) lines.push_back(&keys);
    }
  }
  if (lines.empty()) return nullptr;  // UNKNOWN_PROVIDER, after the policy
  std::sort(lines.begin(), lines.end(),
            [&](const auto* a, const auto* b) { return LessPrivileged(*a, *b, requested); });
  auto may_hold = [&](const rotation::ProviderKeys* line) {
    return policy_ ? policy_->MayHold(caller, {line->spec->name, line->spec->api, line->Scopes()})
                   : absl::OkStatus();
  };
  // The policy first: a caller no rule lets lease any line learns nothing about the scopes.
  absl::Status denied = absl::OkStatus();
  for (const rotation::ProviderKeys* line : lines) {
    denied = may_hold(line);
    if (core::ReasonOf(denied) != "NO_RULE") break;
  }
  if (core::ReasonOf(denied) == "NO_RULE") return denied;
  auto carries = [&](const rotation::ProviderKeys* line) {
    const std::vector<std::string>& scopes = line->Scopes();
    return scope.empty() || std::binary_search(scopes.begin(), scopes.end(), scope);
  };
  if (std::none_of(lines.begin(), lines.end(), carries)) {
    std::vector<std::string> offered;
    for (const rotation::ProviderKeys* line : lines) {
      offered.push_back(
          absl::StrCat(line->spec->name, " [", absl::StrJoin(line->Scopes(), ", "), "]"));
    }
    return Reason(
        absl::NotFoundError(absl::StrCat("no key of ", requested, " carries scope \"", scope,
                                         "\" (", absl::StrJoin(offered, "; "), ")")),
        "UNKNOWN_SCOPE");
  }
  // The least-privileged line that carries the scope and that the caller may hold: never an
  // admin key when a read key would do.
  denied = absl::OkStatus();
  for (const rotation::ProviderKeys* line : lines) {
    if (!carries(line)) continue;
    absl::Status may = may_hold(line);
    if (may.ok()) return line;
    if (denied.ok() || core::ReasonOf(denied) == "NO_RULE") denied = may;  // SCOPE_DENIED says more
  }
  return denied;
}

void LeaseBroker::AcquireAsync(const identity::Identity& caller, const std::string& provider,
                               absl::Duration ttl, const std::string& purpose,
                               const std::string& scope, GrantDone done) {
  const absl::Time now = clock_->Now();
  // What the completion needs, kept alive until the store answered.
  struct Call {
    identity::Identity caller;
    std::string provider;
    std::string label;
    LeaseGrant grant;
  };
  auto call = std::make_shared<Call>();
  call->caller = caller;
  call->provider = provider;
  call->label = Label(caller.name);  // a policy scan: once per request
  call->grant.snapshot = ring_->Snapshot();
  LeaseGrant& grant = call->grant;
  auto denied = [this, call](const absl::Status& status) {
    if (core::ReasonOf(status) == "RATE_LIMITED")
      metrics_->RateLimitHit(call->label, call->provider);
    Denied("AcquireLease", call->caller, call->provider, status);
  };
  absl::Status status = [&]() -> absl::Status {
    CB_ASSIGN_OR_RETURN(absl::Duration lifetime, EffectiveTtl(ttl));
    if (provider.empty()) {
      return Reason(absl::InvalidArgumentError("provider is required"), "MISSING_PROVIDER");
    }
    if (purpose.size() > 256) {
      return Reason(absl::InvalidArgumentError("purpose is longer than 256 bytes"), "BAD_PURPOSE");
    }
    // Which of the provider's key lines (by scope); the provider itself for most.
    CB_ASSIGN_OR_RETURN(const rotation::ProviderKeys* chosen,
                        ChooseLine(*grant.snapshot, caller, provider, scope));
    const identity::LeaseTarget target =
        chosen != nullptr
            ? identity::LeaseTarget{chosen->spec->name, chosen->spec->api, chosen->Scopes()}
            : identity::LeaseTarget{provider, provider, {}};
    call->provider = std::string(target.provider);
    const std::string& line = call->provider;
    // The policy first: a caller without rights learns nothing about the provider (whether it
    // exists, whether its keys load).
    int32_t max_active = 0;
    if (policy_) {
      CB_ASSIGN_OR_RETURN(identity::PolicyGrant allowed, policy_->AuthorizeAcquire(caller, target));
      lifetime = std::min(lifetime, allowed.max_ttl);
      max_active = allowed.max_active_leases;
    }
    auto backend_detail = [&] { return IsAdmin(caller); };
    CB_ASSIGN_OR_RETURN(const rotation::ProviderKeys* keys,
                        ServableProvider(chosen, line, now, backend_detail));
    if (keys->current == nullptr) {
      return Reason(
          absl::UnavailableError(absl::StrCat("no valid key is loaded for ", line,
                                              keys->last_error.empty() || !backend_detail()
                                                  ? ""
                                                  : absl::StrCat(": ", keys->last_error))),
          "NO_KEY");
    }
    // After the policy: only callers allowed to use the provider are judged by the detector (a
    // caller seen for the first time here may be suspended before it gets a key).
    CB_RETURN_IF_ERROR(CheckSuspended(caller, line, now, /*admit=*/true));
    LeaseRecord& l = grant.lease;
    l.id = core::NewLeaseId();
    if (!counts_->Reserve(l.id, caller.name, line, max_active)) {
      return Reason(absl::ResourceExhaustedError(
                        absl::StrCat(caller.name, " already holds ", max_active, " leases on ",
                                     line, " (the policy's max_active_leases); release one first")),
                    "TOO_MANY_LEASES");
    }
    grant.key = keys->current.get();
    grant.spec = keys->spec;
    l.caller = caller.name;
    l.provider = line;
    l.key_version = grant.key->version_id;
    l.key_fingerprint = grant.key->fingerprint;
    l.purpose = purpose;
    l.issued_at = now;
    // Never past the key's own validity (a backend-side expiry, e.g. Azure `exp`).
    l.expires_at = std::min(now + lifetime, grant.key->ValidUntil());
    if (l.expires_at <= now) {
      return Reason(absl::UnavailableError(absl::StrCat(
                        "the current key version of ", line,
                        " expired in its secret source; waiting for the next version")),
                    "KEY_EXPIRED");
    }
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    denied(status);
    return done(status);
  }
  table_->InsertAsync(grant.lease,
                      [this, call, denied, done = std::move(done)](const absl::Status& inserted) {
                        if (!inserted.ok()) {
                          counts_->Cancel(call->grant.lease.id);
                          denied(inserted);
                          return done(inserted);
                        }
                        metrics_->LeaseIssued(call->provider, call->label);
                        Audit("AcquireLease", call->caller, call->grant.lease, call->grant.key);
                        if (anomalies_) anomalies_->RecordLease(call->caller.name, call->provider);
                        done(std::move(call->grant));
                      });
}

void LeaseBroker::RenewAsync(const identity::Identity& caller, const std::string& lease_id,
                             absl::Duration ttl, GrantDone done) {
  struct Call {
    identity::Identity caller;
    std::string lease_id;
    std::string label;
    absl::Time now;
    absl::Duration lifetime;
    LeaseGrant grant;
    std::string retired_provider;  // set when the lease's key left service
    std::string retired_version;
  };
  auto call = std::make_shared<Call>();
  call->caller = caller;
  call->lease_id = lease_id;
  call->label = Label(caller.name);
  call->now = clock_->Now();
  call->grant.snapshot = ring_->Snapshot();
  // Failure bookkeeping, then `done`.
  auto fail = [this, call](const absl::Status& status, const GrantDone& done) {
    Denied("RenewLease", call->caller, "", status, call->lease_id);
    if (anomalies_ && core::ReasonOf(status) == "KEY_RETIRED") {
      anomalies_->RecordRetiredKeyUse(call->caller.name, call->retired_provider,
                                      call->retired_version,
                                      "renewal of a lease after its key version's retire time");
    } else if (absl::IsNotFound(status)) {
      CheckRevokedForKey(call->caller, call->lease_id, "renewal of");
    }
    done(status);
  };
  if (!core::LooksLikeLeaseId(lease_id)) {
    return fail(Reason(absl::InvalidArgumentError("lease_id is malformed"), "BAD_LEASE_ID"), done);
  }
  absl::StatusOr<absl::Duration> lifetime = EffectiveTtl(ttl);
  if (!lifetime.ok()) return fail(lifetime.status(), done);
  call->lifetime = *lifetime;
  table_->RenewAsync(
      lease_id, caller.name,
      [this, call](const LeaseRecord& l) -> absl::StatusOr<absl::Time> {
        const absl::Time now = call->now;
        LeaseGrant& grant = call->grant;
        CB_ASSIGN_OR_RETURN(const rotation::ProviderKeys* keys,
                            ServableProvider(grant.snapshot->Find(l.provider), l.provider, now,
                                             [&] { return IsAdmin(call->caller); }));
        // A lookup only (an admission could run the anomaly sink, which revokes leases).
        CB_RETURN_IF_ERROR(CheckSuspended(call->caller, l.provider, now,
                                          /*admit=*/false));
        call->retired_provider = l.provider;
        call->retired_version = l.key_version;
        const rotation::KeyVersion* key = keys->Find(l.key_version);
        if (key == nullptr || key->fingerprint != l.key_fingerprint ||
            (key->state != KeyState::kCurrent && key->state != KeyState::kPrevious)) {
          return Reason(absl::FailedPreconditionError(
                            absl::StrCat("key version ", l.key_version,
                                         " of this lease has been retired; acquire a new lease")),
                        "KEY_RETIRED");
        }
        grant.key = key;
        grant.spec = keys->spec;
        absl::Duration allowed_lifetime = call->lifetime;
        if (policy_) {
          CB_ASSIGN_OR_RETURN(
              identity::PolicyGrant allowed,
              policy_->AuthorizeRenew(
                  call->caller, identity::LeaseTarget{l.provider, keys->spec->api,
                                                      rotation::ScopesOf(*key, *keys->spec)}));
          allowed_lifetime = std::min(allowed_lifetime, allowed.max_ttl);
        }
        absl::Time expiry = std::min(now + allowed_lifetime, key->ValidUntil());
        if (expiry <= now) {
          return Reason(
              absl::FailedPreconditionError("key version is retiring now; acquire a new lease"),
              "KEY_RETIRED");
        }
        return expiry;
      },
      [this, call, fail, done = std::move(done)](absl::StatusOr<LeaseRecord> renewed) {
        if (!renewed.ok()) return fail(renewed.status(), done);
        call->grant.lease = *std::move(renewed);
        metrics_->LeaseRenewed(call->grant.lease.provider, call->label);
        Audit("RenewLease", call->caller, call->grant.lease, call->grant.key);
        if (anomalies_) anomalies_->RecordLease(call->caller.name, call->grant.lease.provider);
        done(std::move(call->grant));
      });
}

void LeaseBroker::ReleaseAsync(const identity::Identity& caller, const std::string& lease_id,
                               StatusDone done) {
  if (!core::LooksLikeLeaseId(lease_id)) {
    absl::Status s = Reason(absl::InvalidArgumentError("lease_id is malformed"), "BAD_LEASE_ID");
    Denied("ReleaseLease", caller, "", s);
    return done(s);
  }
  table_->ReleaseAsync(
      lease_id, caller.name,
      [this, caller, lease_id, done = std::move(done)](absl::StatusOr<LeaseRecord> released) {
        if (!released.ok()) {
          Denied("ReleaseLease", caller, "", released.status(), lease_id);
          return done(released.status());
        }
        metrics_->LeaseReleased(released->provider, Label(caller.name));
        Audit("ReleaseLease", caller, *released, nullptr);
        done(absl::OkStatus());
      });
}

absl::StatusOr<AuthFailureOutcome> LeaseBroker::ReportAuthFailure(const identity::Identity& caller,
                                                                  const std::string& lease_id,
                                                                  int http_status,
                                                                  const std::string& error_code,
                                                                  const std::string& body) {
  absl::StatusOr<AuthFailureOutcome> result = [&]() -> absl::StatusOr<AuthFailureOutcome> {
    if (http_status != 401 && http_status != 403 && http_status != 429) {
      return Reason(absl::InvalidArgumentError(
                        absl::StrCat("http_status must be 401, 403 or 429, got ", http_status)),
                    "BAD_HTTP_STATUS");
    }
    if (!core::LooksLikeLeaseId(lease_id)) {
      return Reason(absl::InvalidArgumentError("lease_id is malformed"), "BAD_LEASE_ID");
    }
    if (error_code.size() > kMaxErrorCodeBytes || body.size() > kMaxErrorBodyBytes) {
      return Reason(absl::InvalidArgumentError(absl::StrCat(
                        "error_code is limited to ", kMaxErrorCodeBytes, " bytes and body to ",
                        kMaxErrorBodyBytes, " (send the start of the answer)")),
                    "BAD_ERROR_BODY");
    }
    CB_ASSIGN_OR_RETURN(LeaseRecord lease, table_->Get(lease_id, caller.name));
    const std::string label = Label(caller.name);
    const std::shared_ptr<const rotation::KeySnapshot> snap = ring_->Snapshot();
    const rotation::ProviderKeys* keys = snap->Find(lease.provider);
    const providers::AuthFailureKind kind =
        keys != nullptr && keys->spec != nullptr
            ? providers::ClassifyAuthFailure(*keys->spec, {http_status, error_code, body})
            : providers::ClassifyAuthFailure(providers::ProviderSpec{}, {http_status, "", ""});
    const absl::string_view kind_name = providers::AuthFailureKindName(kind);
    metrics_->AuthFailureReported(lease.provider, lease.key_version, label, http_status, kind_name);
    Audit("ReportAuthFailure", caller, lease, keys ? keys->Find(lease.key_version) : nullptr,
          absl::StrCat("provider answered ", http_status, ": ", kind_name));
    if (facts_ != nullptr && providers::IsEvidenceAgainstTheKey(kind)) {
      // For the leader's revocation detection (RevocationFeed), whichever replica got the report.
      // Only what says the key stopped working: a missing key is the client's bug, and rate
      // limits or a refusal that may be one say nothing about the key.
      facts_->AddAuthFailure({lease.provider, lease.key_version, caller.name, http_status,
                              clock_->Now(), std::string(kind_name)},
                             [provider = lease.provider](const absl::Status& s) {
                               if (!s.ok()) {
                                 core::LogError("cannot store auth-failure report",
                                                {{"provider", provider}, {"error", s.ToString()}});
                               }
                             });
    }
    if (anomalies_) {
      // The failure ratio counts refusals of the key only (not a missing key, a rate limit or
      // an ambiguous 403).
      if (providers::IsEvidenceAgainstTheKey(kind) ||
          kind == providers::AuthFailureKind::kForbidden) {
        anomalies_->RecordAuthFailure(caller.name, lease.provider, http_status);
      }
      const rotation::KeyVersion* key = keys ? keys->Find(lease.key_version) : nullptr;
      if (key == nullptr || key->retires_at <= clock_->Now()) {
        anomalies_->RecordRetiredKeyUse(caller.name, lease.provider, lease.key_version,
                                        "provider call with a key version past its retire time");
      }
    }
    core::LogWarning("provider auth failure reported", {{"provider", lease.provider},
                                                        {"key_version", lease.key_version},
                                                        {"fingerprint", lease.key_fingerprint},
                                                        {"caller", caller.name},
                                                        {"http_status", absl::StrCat(http_status)},
                                                        {"error_code", error_code.substr(0, 64)},
                                                        {"classification", kind_name}});
    AuthFailureOutcome out;
    out.classification = std::string(kind_name);
    if (keys != nullptr && keys->current != nullptr) {
      out.current_key_version = keys->current->version_id;
      out.newer_key_available = keys->current->version_id != lease.key_version;
    }
    return out;
  }();
  if (!result.ok()) {
    Denied("ReportAuthFailure", caller, "", result.status(), lease_id);
    if (absl::IsNotFound(result.status()))
      CheckRevokedForKey(caller, lease_id, "a provider call with");
  }
  return result;
}

size_t LeaseBroker::SweepExpired() {
  absl::StatusOr<std::vector<LeaseRecord>> expired = table_->SweepExpired();
  if (!expired.ok()) {
    // The rows stay; the next sweep removes them (expired leases are refused meanwhile).
    core::LogError("sweeping expired leases failed", {{"error", expired.status().ToString()}});
    return 0;
  }
  for (const LeaseRecord& l : *expired) {
    metrics_->LeaseExpired(l.provider, Label(l.caller));
  }
  if (!expired->empty()) {
    core::LogDebug("expired leases swept", {{"count", absl::StrCat(expired->size())}});
  }
  return expired->size();
}

absl::StatusOr<size_t> LeaseBroker::Revoke(const std::function<bool(const LeaseRecord&)>& pred) {
  CB_ASSIGN_OR_RETURN(std::vector<LeaseRecord> revoked, table_->RevokeIf(pred));
  for (const LeaseRecord& l : revoked) {
    Unbook(l);
    core::LogInfo("lease revoked",
                  {{"provider", l.provider}, {"caller", l.caller}, {"key_version", l.key_version}});
  }
  return revoked.size();
}

}  // namespace credbroker::leasing
