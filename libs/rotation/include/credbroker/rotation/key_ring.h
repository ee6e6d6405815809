// KeyRing holds every provider's key versions and their states, and publishes an immutable
// KeySnapshot that the lease hot path reads without locks beyond an atomic shared_ptr load.
// Refreshes (list + fetch from the provider's SecretSource) happen on background threads; each
// swaps in a new snapshot and tells subscribers what changed (the WatchKeys stream).
//
// States: PENDING → CURRENT → PREVIOUS (valid, no new leases) → RETIRED, or QUARANTINED/REVOKED.
// On the first load the newest version is CURRENT. After that, a new version of a provider whose
// promotions are gated (it has a probe; see GatePromotions) stays PENDING until the rotation
// engine probes it and calls Promote; other providers promote the newest version at once. The
// replaced CURRENT becomes PREVIOUS until its overlap ends — or RETIRED at once for single-key
// providers, whose old key the provider has already invalidated. Versions that fail the provider's
// key format are rejected (metric, log line with fingerprint, REJECTED event) and the last good
// version keeps serving. Every change is published to the subscribers (WatchKeys, audit, the
// transition log and counter: key_event_subscribers.h). When a backend cannot be read the cached
// versions keep serving until `max_staleness` has passed. Thread-safety: all methods are safe for
// concurrent use.
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/secret_bytes.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/key_state_store.h"
#include "credbroker/rotation/rotation_stats.h"
#include "credbroker/secrets/secret_source.h"
#include "credbroker/state/leadership.h"
#include "credbroker/state/watch.h"

namespace credbroker::rotation {

struct Decision;  // key_state_machine.h

enum class KeyState { kPending, kCurrent, kPrevious, kRetired, kQuarantined, kRevoked };
absl::string_view KeyStateName(KeyState state);

struct KeyVersion {
  std::string provider;
  std::string version_id;
  std::string fingerprint;
  // What the provider's dashboard shows of the key (ProviderSpec::HintOf); often empty.
  std::string hint;
  // The key's permissions at the provider from the secret's metadata (sorted; empty: none named).
  std::vector<std::string> scopes;
  std::string etag;
  KeyState state = KeyState::kPending;
  // When this broker first saw the version.
  absl::Time created_at = absl::InfinitePast();
  // End of validity for PREVIOUS versions; InfiniteFuture otherwise.
  absl::Time retires_at = absl::InfiniteFuture();
  // The backend's own view (secrets::VersionInfo): its stage and labels, and the end of the
  // validity it gives the version (Azure `exp`; InfiniteFuture when it sets none).
  secrets::BackendStage backend_stage = secrets::BackendStage::kNone;
  std::vector<std::string> backend_labels;
  absl::Time expires_at = absl::InfiniteFuture();
  std::shared_ptr<const core::SecretBytes> material;

  // No lease on this version may outlive this: its retire time or the backend's expiry.
  absl::Time ValidUntil() const { return std::min(retires_at, expires_at); }
};

// The permissions `v` carries: its own scopes, else its line's configured ones (empty: unknown).
const std::vector<std::string>& ScopesOf(const KeyVersion& v, const providers::ProviderSpec& spec);

struct ProviderKeys {
  const providers::ProviderSpec* spec = nullptr;
  // Live versions (not RETIRED), oldest first.
  std::vector<std::shared_ptr<const KeyVersion>> versions;
  std::shared_ptr<const KeyVersion> current;
  absl::Time last_success = absl::InfinitePast();
  std::string last_error;
  absl::Duration max_staleness = absl::Hours(24);
  // "version\x1ffingerprint" of versions that retired while still listed by the backend, so a
  // later refresh does not bring them back.
  absl::flat_hash_set<std::string> retired;

  const KeyVersion* Find(absl::string_view version_id) const;
  // The permissions a new lease's key carries: CURRENT's own scopes, else the line's configured
  // ones (empty: unknown).
  const std::vector<std::string>& Scopes() const;
  // True when the keys were last confirmed by the backend longer than max_staleness ago.
  bool Stale(absl::Time now) const { return now - last_success > max_staleness; }
};

struct KeySnapshot {
  uint64_t generation = 0;
  absl::flat_hash_map<std::string, ProviderKeys> providers;
  // Since when this replica may have missed decisions made elsewhere (its state store's watch is
  // down); InfiniteFuture while it is current. The keys are still served from this snapshot.
  absl::Time state_stale_since = absl::InfiniteFuture();
  const ProviderKeys* Find(absl::string_view provider) const;
};

// What the ring needs to know about leases to retire a version: how many unexpired leases hold
// it, and a way to revoke them at the hard deadline. Implemented by the lease layer.
class LeaseView {
 public:
  virtual ~LeaseView() = default;
  virtual int64_t ActiveLeases(absl::string_view provider, absl::string_view version) const = 0;
  // Revokes every lease on the version; returns how many.
  virtual int64_t RevokeLeasesOn(absl::string_view provider, absl::string_view version,
                                 absl::string_view reason) = 0;
};

// Why a version was quarantined (KeyEvent::cause; the quarantine counter's `reason` label).
inline constexpr absl::string_view kQuarantinedByOperator = "operator";
inline constexpr absl::string_view kQuarantinedRevokedAtProvider = "revoked_at_provider";

struct KeyEvent {
  enum class Type {
    kSnapshot,
    kSynced,
    kRotated,
    kRetiring,
    kRetired,
    kQuarantined,
    kRevoked,
    kRejected,
    kAdded,
    kAnomaly,     // not a key change: unusual use of the provider (see Announce)
    kStateStale,  // not a key change: this replica's view of the shared state may be behind
    kStateFresh   // ... and is current again (see SetStateStale)
  };
  Type type = Type::kSnapshot;
  std::string provider;
  std::string version_id;
  std::string fingerprint;
  std::string hint;
  KeyState state = KeyState::kPending;
  absl::Time retires_at = absl::InfiniteFuture();
  absl::Time at;
  std::string reason;
  // kQuarantined only: who decided it (kQuarantinedByOperator, kQuarantinedRevokedAtProvider).
  std::string cause;
  // kAnomaly only.
  std::string caller;
  std::string anomaly_kind;
};

// The event announcing that `v` (in its new state) changed at `at`.
KeyEvent MakeEvent(KeyEvent::Type type, const KeyVersion& v, absl::Time at, std::string reason);

class KeyRing {
 public:
  // Listeners run on the thread that changed the ring, in order, and must not block or call
  // back into the KeyRing.
  using Listener = std::function<void(const std::vector<KeyEvent>&)>;

  // `catalog` and `metrics` must outlive the KeyRing. `max_staleness` is per provider name;
  // providers not in it get 24h.
  KeyRing(const providers::ProviderCatalog* catalog, const core::Clock* clock,
          RotationStats* metrics,
          absl::flat_hash_map<std::string, absl::Duration> max_staleness = {});

  std::shared_ptr<const KeySnapshot> Snapshot() const { return snapshot_.load(); }

  // Lists the provider's versions in `source`, fetches new or changed ones, validates them and
  // applies the result. Returns the backend error, if any (the ring keeps its cached versions).
  absl::Status RefreshProvider(absl::string_view provider, secrets::SecretSource& source);

  // Retires PREVIOUS versions whose overlap has ended and that no lease holds any more — or,
  // at the hard deadline (overlap + retire_grace), revokes the remaining leases and retires them
  // anyway (leader work). Also does what RefreshGauges does.
  void Tick() { TickImpl(/*retire=*/true); }
  // Refreshes the servable, key-age and rotation-due gauges and logs keys that became due (every
  // replica).
  void RefreshGauges() { TickImpl(/*retire=*/false); }

  // Takes a version out of service at once (compromised or revoked at the provider): it is never
  // served again (also after restarts), leases on it are revoked, and if it was CURRENT another
  // live version is promoted: `replacement` when given, else the newest that is not PENDING,
  // else the newest PENDING one. NOT_FOUND when the version is not live. `cause` goes into the
  // QUARANTINED event.
  absl::Status Quarantine(absl::string_view provider, absl::string_view version,
                          absl::string_view reason, absl::string_view replacement = "",
                          absl::string_view cause = kQuarantinedByOperator);

  // Makes a PENDING version CURRENT (it passed its probe, or an operator forced it). The replaced
  // CURRENT becomes PREVIOUS (RETIRED for single-key providers) and older PENDING versions are
  // retired as superseded. FAILED_PRECONDITION (NOT_PENDING) when the version is not PENDING.
  absl::StatusOr<std::shared_ptr<const KeyVersion>> Promote(absl::string_view provider,
                                                            absl::string_view version,
                                                            absl::string_view reason);

  // Records that a version that already left the ring (retired) was revoked at the provider:
  // persisted as REVOKED and announced with a REVOKED event.
  void RecordRevokedAtProvider(absl::string_view provider, absl::string_view version,
                               absl::string_view fingerprint, absl::string_view reason);

  // Tells the listeners (WatchKeys) about events that change no key state, such as anomalies.
  void Announce(const std::vector<KeyEvent>& events) ABSL_LOCKS_EXCLUDED(mu_);

  // The shared state this ring follows may be behind since `at` (stale), or is current again:
  // recorded in the snapshot and announced once per provider (kStateStale / kStateFresh). A
  // repeated call with the same staleness changes nothing.
  void SetStateStale(bool stale, absl::Time at, absl::string_view reason) ABSL_LOCKS_EXCLUDED(mu_);

  // Providers whose new versions wait in PENDING for Promote. Call once, before the first refresh.
  void GatePromotions(absl::flat_hash_set<std::string> providers) ABSL_LOCKS_EXCLUDED(mu_);

  // Loads what was persisted about key versions and keeps `store` up to date from now on: a
  // version seen again after a restart keeps its first-seen time and retire time, and retired
  // versions stay retired. Call once, before the first refresh.
  absl::Status UsePersistedState(KeyStateStore* store);

  // Follows the decisions of whichever replica leads: while this replica does not lead, the
  // key-version records written to the store (UsePersistedState's) are applied to this ring as
  // they arrive (DecideFollow) and told to the listeners, and this ring writes nothing itself.
  // While it leads it writes its decisions and ignores the echo. Call once, after
  // UsePersistedState and before the first refresh; `leadership` must outlive the ring.
  absl::Status FollowDecisions(const state::Leadership* leadership) ABSL_LOCKS_EXCLUDED(mu_);

  // Where Tick counts and revokes leases. Without one, versions retire when the overlap ends.
  // Set once, before the refreshers start.
  void SetLeaseView(LeaseView* leases) { leases_ = leases; }

  // Subscribes and returns the snapshot the listener's events start after, atomically: no change
  // can fall between the returned state and the first event.
  std::shared_ptr<const KeySnapshot> Subscribe(Listener listener, uint64_t* id);
  void Unsubscribe(uint64_t id);

 private:
  struct Fetched {
    secrets::VersionInfo info;
    std::shared_ptr<const KeyVersion> reuse;  // unchanged version already in the ring
    std::shared_ptr<const core::SecretBytes> material;
    std::string fingerprint;
    std::vector<std::string> scopes;
  };
  void Apply(const std::string& provider, absl::StatusOr<std::vector<Fetched>> listing,
             const std::string& source_name) ABSL_LOCKS_EXCLUDED(mu_);
  // Swaps in `next` (unless null: events only) and tells the listeners.
  void Publish(std::shared_ptr<KeySnapshot> next, const std::vector<KeyEvent>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TickImpl(bool retire) ABSL_LOCKS_EXCLUDED(mu_);
  // Sets the provider's live versions and CURRENT from a decision; the versions that left service
  // are remembered as retired (never loaded again) and their series removed.
  void ApplyDecision(ProviderKeys& keys, const Decision& d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordState(const KeyVersion& v);
  // Writes the versions of `keys` that changed since `before`, and those `events` took out of
  // service, as one decision.
  void Persist(const ProviderKeys* before, const ProviderKeys& keys,
               const std::vector<KeyEvent>& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `records` (and what an earlier refused write left) to the store in one
  // compare-and-swap from the revisions last seen (a record seen before keeps its first-seen
  // time). A refusal is logged and its records kept for the next write; after a conflict the
  // revisions are read again.
  void WriteDecision(std::vector<PersistedKeyVersion> records) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the store committed (the key-state watch).
  void OnStored(const std::vector<PersistedKeyVersion>& records) ABSL_LOCKS_EXCLUDED(mu_);
  const PersistedKeyVersion* FindPersisted(const std::string& provider, const KeyVersion& v) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const providers::ProviderCatalog* const catalog_;
  const core::Clock* const clock_;
  RotationStats* const metrics_;
  LeaseView* leases_ = nullptr;
  KeyStateStore* store_ = nullptr;
  // Set by FollowDecisions before the watch starts; null: this ring always decides.
  const state::Leadership* leadership_ = nullptr;
  std::atomic<std::shared_ptr<const KeySnapshot>> snapshot_;

  absl::Mutex mu_;
  // (provider, version, etag) already rejected: log and count once, not on every refresh.
  absl::flat_hash_set<std::string> rejected_ ABSL_GUARDED_BY(mu_);
  // (provider, version) whose retirement is waiting for leases: logged once.
  absl::flat_hash_set<std::string> waiting_ ABSL_GUARDED_BY(mu_);
  // (provider, version) already logged as due for rotation.
  absl::flat_hash_set<std::string> due_logged_ ABSL_GUARDED_BY(mu_);
  // What the store holds, with revisions (the base of the next compare-and-swap).
  absl::flat_hash_map<KeyVersionId, PersistedKeyVersion> persisted_ ABSL_GUARDED_BY(mu_);
  // Decided here, refused by the store: written with the next decision.
  absl::flat_hash_map<KeyVersionId, PersistedKeyVersion> unwritten_ ABSL_GUARDED_BY(mu_);
  // The store revision persisted_ was listed at (where FollowDecisions' watch starts).
  int64_t persisted_revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<std::string> gated_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  uint64_t next_listener_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Last: stops the key-state watch before anything it uses is destroyed.
  std::unique_ptr<state::Watch> watch_;
};

}  // namespace credbroker::rotation
