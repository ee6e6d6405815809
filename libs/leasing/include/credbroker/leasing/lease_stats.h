// LeaseStats is what the lease path counts and nothing else: leases issued, renewed, released,
// expired and revoked per provider and caller label, active leases per key version, reported
// provider auth failures, and refused requests (by method and reason, by policy, by rate limit).
// LeaseBroker and the lease cache's listeners see this interface only; metrics::BrokerMetrics
// implements it over Prometheus (the series are documented there and in the README).
//
// `caller` is always the policy's bounded metric label, never a raw identity; no lease id or key
// material is ever passed.
// Thread-safety: implementations are safe for concurrent use and cheap enough for the hot path
// (no lock, no allocation once a label set was seen).
#pragma once

#include "absl/strings/string_view.h"

namespace credbroker::leasing {

class LeaseStats {
 public:
  virtual ~LeaseStats() = default;
  virtual void LeaseIssued(absl::string_view provider, absl::string_view caller) = 0;
  virtual void LeaseRenewed(absl::string_view provider, absl::string_view caller) = 0;
  virtual void LeaseReleased(absl::string_view provider, absl::string_view caller) = 0;
  virtual void LeaseExpired(absl::string_view provider, absl::string_view caller) = 0;
  virtual void LeaseRevoked(absl::string_view provider, absl::string_view caller) = 0;
  // Active leases on a key version (+1 when one appears in the lease data, -1 when it goes).
  virtual void ActiveLeasesAdd(absl::string_view provider, absl::string_view key_version,
                               double delta) = 0;
  // classification: what the provider's answer means (providers::AuthFailureKindName).
  virtual void AuthFailureReported(absl::string_view provider, absl::string_view key_version,
                                   absl::string_view caller, int http_status,
                                   absl::string_view classification) = 0;
  // reason: the machine-readable reason of the refusal (core::ReasonOf).
  virtual void LeaseRequestDenied(absl::string_view method, absl::string_view reason) = 0;
  virtual void PolicyDenied(absl::string_view caller, absl::string_view provider,
                            absl::string_view reason) = 0;
  virtual void RateLimitHit(absl::string_view caller, absl::string_view provider) = 0;
};

}  // namespace credbroker::leasing
