// RotationStats is what the key ring and the rotation engine count and nothing else: backend
// fetches, rejected key versions, each version's state and age, whether a provider is servable,
// time to the next rotation, key transitions, probes and their calibration, quarantines, mint
// failures and suspected revocations. The rotation code sees this interface only;
// metrics::BrokerMetrics implements it over Prometheus (the series are documented there and in
// the README).
//
// Labels are bounded: providers and backends are configured, key versions exist only while live
// (RemoveKeyVersion drops their series). No key material is ever passed.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace credbroker::rotation {

class RotationStats {
 public:
  virtual ~RotationStats() = default;

  // The key ring: fetching and serving.
  virtual void BackendFetchError(absl::string_view backend, absl::string_view reason) = 0;
  virtual void BackendSuccess(absl::string_view backend, absl::Time at) = 0;
  virtual void KeyVersionRejected(absl::string_view provider, absl::string_view reason) = 0;
  virtual void KeyVersionState(absl::string_view provider, absl::string_view key_version,
                               absl::string_view state) = 0;
  virtual void ProviderServable(absl::string_view provider, bool servable) = 0;
  virtual void KeyAge(absl::string_view provider, absl::string_view key_version,
                      absl::Duration age) = 0;
  // Time until the provider's CURRENT key is due for rotation (negative: overdue).
  virtual void RotationDueIn(absl::string_view provider, absl::Duration until_due) = 0;
  // Drops every series labelled with this key version (it retired).
  virtual void RemoveKeyVersion(absl::string_view provider, absl::string_view key_version) = 0;
  // Lets the implementation free what RemoveKeyVersion dropped (called periodically).
  virtual void PurgeRemoved() = 0;

  // The rotation engine.
  // A key version entered `state` (PENDING, CURRENT, PREVIOUS, RETIRED, QUARANTINED, REVOKED).
  virtual void KeyTransition(absl::string_view provider, absl::string_view state) = 0;
  // purpose: promotion, revocation_check, calibration; result: accepted, rejected, error.
  virtual void ProbeResult(absl::string_view provider, absl::string_view purpose,
                           absl::string_view result) = 0;
  // True while the newest PENDING version failed (or could not get) its probe.
  virtual void ProbeFailing(absl::string_view provider, bool failing) = 0;
  // True while a promotion waits because the backend's current marker could not be moved to the
  // new version (SecretSource::PromoteVersion failed).
  virtual void BackendPromoteFailing(absl::string_view provider, bool failing) = 0;
  // True once the probe was seen to reject a deliberately invalid key.
  virtual void ProbeCalibrated(absl::string_view provider, bool calibrated) = 0;
  // reason: operator, revoked_at_provider.
  virtual void KeyQuarantined(absl::string_view provider, absl::string_view reason) = 0;
  // operation: create, store, revoke.
  virtual void MintFailure(absl::string_view provider, absl::string_view operation) = 0;
  virtual void RevocationSuspected(absl::string_view provider) = 0;
  // Minted keys that left service at a provider without a key-deletion API, waiting for an
  // operator to delete them in its dashboard.
  virtual void KeysToDelete(absl::string_view provider, int64_t count) = 0;
};

}  // namespace credbroker::rotation
