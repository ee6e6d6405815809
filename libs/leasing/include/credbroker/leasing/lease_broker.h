// LeaseBroker is the lease logic behind LeaseService, in plain C++: it picks the key version
// for a lease from the KeyRing snapshot, applies the TTL rules, writes through the LeaseTable
// and records metrics. The gRPC handlers only authenticate, call it and convert the result.
//
// Every decision, allowed or denied, goes to the audit log (when one is given).
//
// Errors (with reasons): INVALID_ARGUMENT (MISSING_PROVIDER, BAD_TTL, BAD_LEASE_ID,
// BAD_HTTP_STATUS, BAD_SCOPE), NOT_FOUND (UNKNOWN_PROVIDER, UNKNOWN_SCOPE, LEASE_NOT_FOUND,
// LEASE_EXPIRED), PERMISSION_DENIED (NO_RULE, SCOPE_DENIED), RESOURCE_EXHAUSTED (RATE_LIMITED,
// TOO_MANY_LEASES), UNAVAILABLE (NO_KEY, BACKEND_STALE), FAILED_PRECONDITION (KEY_RETIRED), store
// errors. Thread-safety: safe for concurrent use.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/anomaly/anomaly_detector.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/identity/audit_log.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/identity/policy.h"
#include "credbroker/leasing/lease_counts.h"
#include "credbroker/leasing/lease_stats.h"
#include "credbroker/leasing/lease_table.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/state/shared_facts.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::leasing {

struct TtlPolicy {
  absl::Duration default_ttl = absl::Minutes(15);
  absl::Duration min_ttl = absl::Seconds(30);
  absl::Duration max_ttl = absl::Hours(1);

  // From the validated `leases:` block.
  static TtlPolicy FromConfig(const v1::LeaseConfig& config) {
    return {core::FromProtoDuration(config.default_ttl()),
            core::FromProtoDuration(config.min_ttl()), core::FromProtoDuration(config.max_ttl())};
  }
};

// A lease together with the key it grants. `snapshot` keeps `key` alive.
struct LeaseGrant {
  LeaseRecord lease;
  std::shared_ptr<const rotation::KeySnapshot> snapshot;
  const rotation::KeyVersion* key = nullptr;
  const providers::ProviderSpec* spec = nullptr;
};

struct AuthFailureOutcome {
  bool newer_key_available = false;
  std::string current_key_version;
  // What the provider's answer means (providers::AuthFailureKindName).
  std::string classification;
};

// Bounds of what a caller may send of the provider's answer.
inline constexpr size_t kMaxErrorCodeBytes = 128;
inline constexpr size_t kMaxErrorBodyBytes = 4096;

class LeaseBroker final : public rotation::LeaseView {
 public:
  // `policy` and `audit` may be null: everyone may lease everything, nothing is audited.
  // `counts` must be fed by `table`'s changes (see LeaseCounts).
  LeaseBroker(rotation::KeyRing* ring, LeaseTable* table, LeaseCounts* counts, LeaseStats* metrics,
              const core::Clock* clock, TtlPolicy ttl, identity::Policy* policy = nullptr,
              identity::AuditLog* audit = nullptr);

  // Tells the anomaly detector which caller × provider pairs already hold leases (at start), so
  // they are not reported as new callers.
  void RestoreLoaded(const std::vector<LeaseRecord>& loaded);

  // The lease calls: `done` gets the outcome once the lease store committed the change, possibly
  // on the store's committer thread (it must not block). The gRPC handlers use these, so no
  // request thread waits for a commit.
  using GrantDone = std::function<void(absl::StatusOr<LeaseGrant>)>;
  using StatusDone = std::function<void(absl::Status)>;
  void AcquireAsync(const identity::Identity& caller, const std::string& provider,
                    absl::Duration ttl, const std::string& purpose, GrantDone done);
  // `scope`: a permission the key must carry (empty: any). `provider` may name a provider API
  // with several key lines (ProviderSpec::api); the lease goes to the least-privileged line the
  // caller's policy lets it hold that carries `scope`, and the lease's provider is that line.
  void AcquireAsync(const identity::Identity& caller, const std::string& provider,
                    absl::Duration ttl, const std::string& purpose, const std::string& scope,
                    GrantDone done);
  void RenewAsync(const identity::Identity& caller, const std::string& lease_id, absl::Duration ttl,
                  GrantDone done);
  void ReleaseAsync(const identity::Identity& caller, const std::string& lease_id, StatusDone done);

  // The same, blocking (tests, benchmarks, tools). Never from a store callback.
  absl::StatusOr<LeaseGrant> Acquire(const identity::Identity& caller, const std::string& provider,
                                     absl::Duration ttl, const std::string& purpose,
                                     const std::string& scope = "");
  absl::StatusOr<LeaseGrant> Renew(const identity::Identity& caller, const std::string& lease_id,
                                   absl::Duration ttl);
  absl::Status Release(const identity::Identity& caller, const std::string& lease_id);
  // The provider's answer as the caller saw it: status, error code and/or the start of the body
  // (bounded; INVALID_ARGUMENT BAD_ERROR_BODY beyond), classified by the provider's documented
  // error shapes (providers/auth_failure.h). Only refusals of the key feed revocation detection.
  absl::StatusOr<AuthFailureOutcome> ReportAuthFailure(const identity::Identity& caller,
                                                       const std::string& lease_id, int http_status,
                                                       const std::string& error_code,
                                                       const std::string& body = "");
  // Removes expired leases; returns how many.
  size_t SweepExpired();
  // Administrative revocation of every lease matching `pred`.
  absl::StatusOr<size_t> Revoke(const std::function<bool(const LeaseRecord&)>& pred);

  // rotation::LeaseView: leases per key version, and revocation at a retirement deadline.
  int64_t ActiveLeases(absl::string_view provider, absl::string_view version) const override;
  int64_t RevokeLeasesOn(absl::string_view provider, absl::string_view version,
                         absl::string_view reason) override;

  LeaseTable& table() { return *table_; }
  rotation::KeyRing& ring() { return *ring_; }

  // Auth-failure reports are stored in `facts` for the revocation detection of the leading
  // replica (RevocationFeed). Set once, before serving.
  void SetAuthFailureReports(state::SharedFacts* facts) { facts_ = facts; }
  // Leases, renewals and failure reports feed `anomalies`; callers it suspends are refused
  // (PERMISSION_DENIED, CALLER_SUSPENDED). Set once, before serving.
  void SetAnomalyDetector(anomaly::AnomalyDetector* anomalies) { anomalies_ = anomalies; }

  // Revokes every lease the caller (an identity) holds on the provider; returns how many.
  int64_t RevokeCallerLeases(absl::string_view caller, absl::string_view provider,
                             absl::string_view reason);
  // Whether the caller may see backend errors in its answers (the policy's admins).
  bool IsAdmin(const identity::Identity& caller) const;
  // The `caller` metric label for an identity (bounded: "unknown" for identities no policy
  // rule names).
  std::string Label(absl::string_view caller) const;

 private:
  absl::StatusOr<absl::Duration> EffectiveTtl(absl::Duration requested) const;
  // The key line of `requested` (in `snap`) a new lease with `scope` goes to; null when no
  // line has that name or api (UNKNOWN_PROVIDER, reported after the policy).
  absl::StatusOr<const rotation::ProviderKeys*> ChooseLine(const rotation::KeySnapshot& snap,
                                                           const identity::Identity& caller,
                                                           absl::string_view requested,
                                                           absl::string_view scope) const;
  void Denied(absl::string_view method, const identity::Identity& caller,
              absl::string_view provider, const absl::Status& status,
              absl::string_view lease_id = "");
  // `key`: the lease's key version when at hand (its dashboard hint goes into the line).
  void Audit(absl::string_view method, const identity::Identity& caller, const LeaseRecord& lease,
             const rotation::KeyVersion* key, absl::string_view note = "");
  // Bookkeeping for a lease just revoked: the revoked counter.
  void Unbook(const LeaseRecord& l);
  // Revokes the leases matching `pred` with bookkeeping and one audit line each; on a store
  // error logs it and revokes nothing.
  std::vector<LeaseRecord> RevokeMatching(const std::function<bool(const LeaseRecord&)>& pred,
                                          absl::string_view reason);
  // CALLER_SUSPENDED when the anomaly detector suspended the caller (`label`, its metric label)
  // on the provider. `admit` (AcquireLease, outside every lock) also lets the detector see a new
  // caller first.
  absl::Status CheckSuspended(const identity::Identity& caller, absl::string_view provider,
                              absl::Time now, bool admit);
  // A NOT_FOUND lease that was revoked with its key version: report the use of a retired key.
  void CheckRevokedForKey(const identity::Identity& caller, const std::string& lease_id,
                          absl::string_view what);

  rotation::KeyRing* const ring_;
  LeaseTable* const table_;
  LeaseCounts* const counts_;
  LeaseStats* const metrics_;
  const core::Clock* const clock_;
  const TtlPolicy ttl_;
  identity::Policy* const policy_;
  identity::AuditLog* const audit_;
  state::SharedFacts* facts_ = nullptr;
  anomaly::AnomalyDetector* anomalies_ = nullptr;
  // Leases revoked because their key version left service, by id (bounded, oldest dropped):
  // a caller still using one is using a retired or quarantined key.
  struct RevokedForKey {
    std::string provider;
    std::string key_version;
    std::string reason;
  };
  absl::Mutex revoked_mu_;
  absl::flat_hash_map<std::string, RevokedForKey> revoked_for_key_ ABSL_GUARDED_BY(revoked_mu_);
  std::deque<std::string> revoked_order_ ABSL_GUARDED_BY(revoked_mu_);
};

}  // namespace credbroker::leasing
