// RotationEngine drives key versions through their lives beyond what the secret source says:
//  - probes a provider's newest PENDING version (the one the backend marks current first) and
//    promotes it when the provider accepts it (a failed probe keeps the old key CURRENT, sets
//    credbroker_probe_failing and is retried); a backend with a current marker (AWS AWSCURRENT)
//    has it moved first, and a promotion whose marker cannot move waits
//    (credbroker_backend_promote_failing) and is retried, so broker and backend agree;
//  - calibrates each probe once with a deliberately invalid key, and promotes nothing on an
//    uncalibrated probe's word (an operator can force with RotateNow(skip_probe));
//  - for minted providers, creates a new key through the provider's key API when the CURRENT one
//    is due, stores it in the source as a new version, and revokes old keys at the provider once
//    they retired or were quarantined;
//  - confirms suspected revocations (bursts of 401s) with a probe and quarantines the version,
//    promoting the newest version the provider still accepts.
// Network calls never run on a request thread or under the KeyRing's lock: RunOnce does them on
// the RotationScheduler's thread (only while this replica leads) or a test's, RotateNow on the
// admin RPC's thread. Events that call for a pass soon (a new PENDING version, a suspected
// revocation, a retired minted key) notify `wakeup`.
// Thread-safety: all methods are safe for concurrent use; RunOnce and RotateNow are serialized.
#pragma once

#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/wakeup.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/key_minter.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/rotation/key_state_store.h"
#include "credbroker/rotation/probe.h"
#include "credbroker/rotation/rotation_stats.h"
#include "credbroker/secrets/secret_source.h"

namespace credbroker::rotation {

struct RotationEngineOptions {
  // After a failed or inconclusive probe (or mint), wait this long before trying again.
  absl::Duration probe_retry_interval = absl::Minutes(5);
};

enum class Calibration { kUnknown, kTrusted, kLying };

// A key the broker minted that left service at a provider whose key API cannot delete keys
// (mint without revoke, e.g. firemoon): an operator deletes it in the provider's dashboard.
struct KeyToDelete {
  std::string provider;
  std::string version;
  std::string fingerprint;
  // How the dashboard names it: the id the key API returned, or the description it was created
  // with.
  std::string provider_key;
  std::string hint;  // while the ring still knows the version
  KeyState state = KeyState::kRetired;
  absl::Time created_at = absl::InfinitePast();
};

class RotationEngine {
 public:
  // Everything must outlive the engine. `sources` maps provider name → its source. `minter` and
  // `key_ids` may be null when no provider is minted; `wakeup` may be null (tests that call
  // RunOnce themselves).
  RotationEngine(KeyRing* ring, const providers::ProviderCatalog* catalog,
                 absl::flat_hash_map<std::string, secrets::SecretSource*> sources,
                 ProviderProbe* probe, KeyMinter* minter, KeyStateStore* key_ids,
                 const core::Clock* clock, RotationStats* metrics, RotationEngineOptions options,
                 core::Wakeup* wakeup = nullptr);
  ~RotationEngine();
  RotationEngine(const RotationEngine&) = delete;
  RotationEngine& operator=(const RotationEngine&) = delete;

  // Providers whose new versions must wait for a probe: those with a probe configured. Pass to
  // KeyRing::GatePromotions before the first refresh.
  absl::flat_hash_set<std::string> GatedProviders() const;

  // One pass over every provider: calibrate probes, probe and promote pending versions, confirm
  // suspected revocations, mint due keys, revoke retired minted keys.
  void RunOnce();

  // Forces a rotation now (AdminService.RotateKey). Minted: creates, stores, probes and promotes
  // a new key. Staged: re-reads the source and probes and promotes the newest PENDING version.
  // `skip_probe` promotes without asking the provider (an operator's decision, logged).
  // FAILED_PRECONDITION with reason NO_PENDING_VERSION or PROBE_FAILED; NOT_FOUND for an unknown
  // provider; UNAVAILABLE when the provider or source cannot be reached.
  absl::StatusOr<std::shared_ptr<const KeyVersion>> RotateNow(absl::string_view provider,
                                                              bool skip_probe);

  // Several callers report 401 on this version: check it on the next pass (soon).
  void SuspectRevoked(absl::string_view provider, absl::string_view version);

  Calibration CalibrationOf(absl::string_view provider) const;

  // Queues the revocation of keys the broker minted that left service but were not revoked at
  // the provider yet (the broker, or the previous leader, stopped before it could): from the
  // persisted key states. The scheduler calls it when this replica starts leading. A revocation
  // already queued in this process is not queued again (each key is revoked once).
  void ResumeRevocations() ABSL_LOCKS_EXCLUDED(work_mu_);

  // Minted keys that left service (RETIRED or QUARANTINED) at providers whose key API cannot
  // delete keys, oldest first; `provider` empty: all. From the persisted key states.
  absl::StatusOr<std::vector<KeyToDelete>> KeysToDelete(absl::string_view provider) const;
  // An operator deleted the key in the provider's dashboard: it is recorded REVOKED (announced,
  // off the list). NOT_FOUND (reason NOT_TO_DELETE) when it is not on the list.
  absl::Status ConfirmDeleted(absl::string_view provider, absl::string_view version,
                              absl::string_view who);

 private:
  struct Attempt {
    absl::Time next = absl::InfinitePast();
    int failures = 0;
  };
  struct RevokeJob {
    std::string provider;
    std::string version;
    std::string fingerprint;
    absl::Time next = absl::InfinitePast();
  };

  void OnKeyEvents(const std::vector<KeyEvent>& events);
  void Calibrate(const providers::ProviderSpec& spec, const ProviderKeys& keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  // Probes the newest PENDING version and promotes it when accepted (or when skip_probe).
  absl::StatusOr<std::shared_ptr<const KeyVersion>> TryPromote(const providers::ProviderSpec& spec,
                                                               bool forced, bool skip_probe)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  // Moves the backend's current marker (SecretSource::PromoteVersion), then promotes in the ring;
  // UNAVAILABLE (BACKEND_PROMOTE_FAILED) without promoting when the marker cannot move.
  absl::StatusOr<std::shared_ptr<const KeyVersion>> PromoteEverywhere(
      const providers::ProviderSpec& spec, const KeyVersion& version, absl::string_view reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  absl::Status MoveBackendMarker(const providers::ProviderSpec& spec, const KeyVersion& version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  // After a quarantine the backend may still mark the quarantined version current: moves the
  // marker to the broker's CURRENT (retried every pass until it succeeds).
  void SyncBackendMarker(const providers::ProviderSpec& spec, const ProviderKeys& keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  // Creates a key at the provider and stores it in the source; the new version is PENDING after.
  absl::Status Mint(const providers::ProviderSpec& spec) ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  void CheckSuspect(const std::string& provider, const std::string& version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  bool RevokeAtProvider(const RevokeJob& job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(work_mu_);
  // The credential for the provider's key API: mint.admin_key_file, else the CURRENT key.
  absl::StatusOr<std::string> KeyApiCredential(const providers::ProviderSpec& spec);
  ProbeResult RunProbe(const providers::ProviderSpec& spec, absl::string_view key,
                       absl::string_view purpose);
  void Wake();
  // Sets credbroker_provider_keys_to_delete and logs each key once as it joins the list.
  void ReportKeysToDelete() ABSL_LOCKS_EXCLUDED(delete_mu_);

  KeyRing* const ring_;
  const providers::ProviderCatalog* const catalog_;
  const absl::flat_hash_map<std::string, secrets::SecretSource*> sources_;
  ProviderProbe* const probe_;
  KeyMinter* const minter_;
  KeyStateStore* const key_ids_;
  const core::Clock* const clock_;
  RotationStats* const metrics_;
  const RotationEngineOptions options_;
  core::Wakeup* const wakeup_;
  uint64_t listener_id_ = 0;

  // Serializes passes and forced rotations (they call providers and write to sources).
  absl::Mutex work_mu_ ABSL_ACQUIRED_BEFORE(queue_mu_);
  absl::flat_hash_map<std::string, Attempt> promote_attempts_ ABSL_GUARDED_BY(work_mu_);
  absl::flat_hash_map<std::string, Attempt> mint_attempts_ ABSL_GUARDED_BY(work_mu_);
  absl::flat_hash_map<std::string, Attempt> calibrate_attempts_ ABSL_GUARDED_BY(work_mu_);
  absl::flat_hash_set<std::string> logged_ ABSL_GUARDED_BY(work_mu_);

  // Filled by ring listeners and SuspectRevoked (which must not block).
  mutable absl::Mutex queue_mu_;
  absl::flat_hash_map<std::string, Calibration> calibration_ ABSL_GUARDED_BY(queue_mu_);
  std::deque<std::pair<std::string, std::string>> suspects_ ABSL_GUARDED_BY(queue_mu_);
  std::deque<RevokeJob> revokes_ ABSL_GUARDED_BY(queue_mu_);

  absl::Mutex delete_mu_;
  // provider\x1ffingerprint of the keys to delete already logged.
  absl::flat_hash_set<std::string> told_to_delete_ ABSL_GUARDED_BY(delete_mu_);
};

}  // namespace credbroker::rotation
