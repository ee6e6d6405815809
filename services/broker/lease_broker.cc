#include "lease_broker.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::broker {
namespace {

using rotation::KeyState;

absl::Status Reason(absl::Status s, absl::string_view reason) {
  return core::WithReason(std::move(s), reason);
}

// The provider's keys when new leases may be handed out, or why not.
absl::StatusOr<const rotation::ProviderKeys*> ServableProvider(const rotation::KeySnapshot& snap,
                                                               const std::string& provider,
                                                               absl::Time now) {
  if (provider.empty()) {
    return Reason(absl::InvalidArgumentError("provider is required"), "MISSING_PROVIDER");
  }
  const rotation::ProviderKeys* keys = snap.Find(provider);
  if (keys == nullptr) {
    return Reason(absl::NotFoundError(absl::StrCat("unknown provider \"", provider, "\"")),
                  "UNKNOWN_PROVIDER");
  }
  if (keys->Stale(now)) {
    return Reason(
        absl::UnavailableError(absl::StrCat(
            "keys for ", provider, " could not be refreshed from the backend for longer than ",
            absl::FormatDuration(keys->max_staleness),
            keys->last_error.empty() ? "" : absl::StrCat(" (", keys->last_error, ")"))),
        "BACKEND_STALE");
  }
  return keys;
}

}  // namespace

LeaseBroker::LeaseBroker(rotation::KeyRing* ring, leases::LeaseTable* table,
                         metrics::BrokerMetrics* metrics, const core::Clock* clock, TtlPolicy ttl)
    : ring_(ring), table_(table), metrics_(metrics), clock_(clock), ttl_(ttl) {}

void LeaseBroker::RestoreLoaded(const std::vector<leases::LeaseRecord>& loaded) {
  for (const leases::LeaseRecord& l : loaded)
    metrics_->ActiveLeasesAdd(l.provider, l.key_version, 1);
}

void LeaseBroker::Denied(absl::string_view method, const absl::Status& status) {
  std::string reason = core::ReasonOf(status);
  metrics_->LeaseRequestDenied(method, reason.empty() ? "OTHER" : reason);
}

absl::StatusOr<absl::Duration> LeaseBroker::EffectiveTtl(absl::Duration requested) const {
  if (requested < absl::ZeroDuration()) {
    return Reason(absl::InvalidArgumentError("ttl must not be negative"), "BAD_TTL");
  }
  if (requested == absl::ZeroDuration()) return ttl_.default_ttl;
  return std::clamp(requested, ttl_.min_ttl, ttl_.max_ttl);
}

absl::StatusOr<LeaseGrant> LeaseBroker::Acquire(const identity::Identity& caller,
                                                const std::string& provider, absl::Duration ttl,
                                                const std::string& purpose) {
  const absl::Time now = clock_->Now();
  LeaseGrant grant;
  grant.snapshot = ring_->Snapshot();
  absl::Status status = [&]() -> absl::Status {
    CB_ASSIGN_OR_RETURN(absl::Duration lifetime, EffectiveTtl(ttl));
    CB_ASSIGN_OR_RETURN(const rotation::ProviderKeys* keys,
                        ServableProvider(*grant.snapshot, provider, now));
    if (keys->current == nullptr) {
      return Reason(absl::UnavailableError(absl::StrCat(
                        "no valid key is loaded for ", provider,
                        keys->last_error.empty() ? "" : absl::StrCat(": ", keys->last_error))),
                    "NO_KEY");
    }
    if (purpose.size() > 256) {
      return Reason(absl::InvalidArgumentError("purpose is longer than 256 bytes"), "BAD_PURPOSE");
    }
    grant.key = keys->current.get();
    grant.spec = keys->spec;
    leases::LeaseRecord& l = grant.lease;
    l.id = core::NewLeaseId();
    l.caller = caller.name;
    l.provider = provider;
    l.key_version = grant.key->version_id;
    l.key_fingerprint = grant.key->fingerprint;
    l.purpose = purpose;
    l.issued_at = now;
    l.expires_at = now + lifetime;
    return table_->Insert(l);
  }();
  if (!status.ok()) {
    Denied("AcquireLease", status);
    return status;
  }
  metrics_->LeaseIssued(provider, caller.name);
  metrics_->ActiveLeasesAdd(provider, grant.lease.key_version, 1);
  return grant;
}

absl::StatusOr<LeaseGrant> LeaseBroker::Renew(const identity::Identity& caller,
                                              const std::string& lease_id, absl::Duration ttl) {
  const absl::Time now = clock_->Now();
  LeaseGrant grant;
  grant.snapshot = ring_->Snapshot();
  absl::Status status = [&]() -> absl::Status {
    if (!core::LooksLikeLeaseId(lease_id)) {
      return Reason(absl::InvalidArgumentError("lease_id is malformed"), "BAD_LEASE_ID");
    }
    CB_ASSIGN_OR_RETURN(absl::Duration lifetime, EffectiveTtl(ttl));
    auto renewed = table_->Renew(
        lease_id, caller.name, [&](const leases::LeaseRecord& l) -> absl::StatusOr<absl::Time> {
          CB_ASSIGN_OR_RETURN(const rotation::ProviderKeys* keys,
                              ServableProvider(*grant.snapshot, l.provider, now));
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
          absl::Time expiry = std::min(now + lifetime, key->retires_at);
          if (expiry <= now) {
            return Reason(
                absl::FailedPreconditionError("key version is retiring now; acquire a new lease"),
                "KEY_RETIRED");
          }
          return expiry;
        });
    if (!renewed.ok()) return renewed.status();
    grant.lease = *std::move(renewed);
    return absl::OkStatus();
  }();
  if (!status.ok()) {
    Denied("RenewLease", status);
    return status;
  }
  metrics_->LeaseRenewed(grant.lease.provider, caller.name);
  return grant;
}

absl::Status LeaseBroker::Release(const identity::Identity& caller, const std::string& lease_id) {
  if (!core::LooksLikeLeaseId(lease_id)) {
    absl::Status s = Reason(absl::InvalidArgumentError("lease_id is malformed"), "BAD_LEASE_ID");
    Denied("ReleaseLease", s);
    return s;
  }
  absl::StatusOr<leases::LeaseRecord> released = table_->Release(lease_id, caller.name);
  if (!released.ok()) {
    Denied("ReleaseLease", released.status());
    return released.status();
  }
  metrics_->LeaseReleased(released->provider, caller.name);
  // Removed from the table here, so the sweeper will not count it again.
  metrics_->ActiveLeasesAdd(released->provider, released->key_version, -1);
  return absl::OkStatus();
}

absl::StatusOr<AuthFailureOutcome> LeaseBroker::ReportAuthFailure(const identity::Identity& caller,
                                                                  const std::string& lease_id,
                                                                  int http_status,
                                                                  const std::string& error_code) {
  absl::StatusOr<AuthFailureOutcome> result = [&]() -> absl::StatusOr<AuthFailureOutcome> {
    if (http_status != 401 && http_status != 403 && http_status != 429) {
      return Reason(absl::InvalidArgumentError(
                        absl::StrCat("http_status must be 401, 403 or 429, got ", http_status)),
                    "BAD_HTTP_STATUS");
    }
    if (!core::LooksLikeLeaseId(lease_id)) {
      return Reason(absl::InvalidArgumentError("lease_id is malformed"), "BAD_LEASE_ID");
    }
    CB_ASSIGN_OR_RETURN(leases::LeaseRecord lease, table_->Get(lease_id, caller.name));
    metrics_->AuthFailureReported(lease.provider, lease.key_version, caller.name, http_status);
    core::LogWarning("provider auth failure reported", {{"provider", lease.provider},
                                                        {"key_version", lease.key_version},
                                                        {"fingerprint", lease.key_fingerprint},
                                                        {"caller", caller.name},
                                                        {"http_status", absl::StrCat(http_status)},
                                                        {"error_code", error_code.substr(0, 64)}});
    AuthFailureOutcome out;
    std::shared_ptr<const rotation::KeySnapshot> snap = ring_->Snapshot();
    if (const rotation::ProviderKeys* keys = snap->Find(lease.provider);
        keys != nullptr && keys->current != nullptr) {
      out.current_key_version = keys->current->version_id;
      out.newer_key_available = keys->current->version_id != lease.key_version;
    }
    return out;
  }();
  if (!result.ok()) Denied("ReportAuthFailure", result.status());
  return result;
}

size_t LeaseBroker::SweepExpired() {
  std::vector<leases::LeaseRecord> expired = table_->SweepExpired();
  for (const leases::LeaseRecord& l : expired) {
    metrics_->LeaseExpired(l.provider, l.caller);
    metrics_->ActiveLeasesAdd(l.provider, l.key_version, -1);
  }
  return expired.size();
}

absl::StatusOr<size_t> LeaseBroker::Revoke(
    const std::function<bool(const leases::LeaseRecord&)>& pred) {
  CB_ASSIGN_OR_RETURN(std::vector<leases::LeaseRecord> revoked, table_->RevokeIf(pred));
  for (const leases::LeaseRecord& l : revoked) {
    metrics_->LeaseRevoked(l.provider, l.caller);
    metrics_->ActiveLeasesAdd(l.provider, l.key_version, -1);
    core::LogInfo("lease revoked",
                  {{"provider", l.provider}, {"caller", l.caller}, {"key_version", l.key_version}});
  }
  return revoked.size();
}

}  // namespace credbroker::broker
