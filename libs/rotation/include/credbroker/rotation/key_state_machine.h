// The rules of a provider's key versions as pure functions: (the provider's live versions and
// their states, an input, now) → a Decision (the new live versions, the events to publish, the
// versions that left service for good, the leases to revoke). They read no clock, do no I/O and
// take no lock; the KeyRing commits a decision (persists it, publishes the snapshot, tells the
// subscribers). Inputs: a listing from the backend, promotion, quarantine and retirement. (What
// a listing's versions are — their material validated, their earlier decisions restored from the
// state store — the KeyRing works out first; the machine decides their states.)
//
// States: PENDING → CURRENT → PREVIOUS (valid until retires_at, no new leases) → RETIRED, or
// QUARANTINED at any time. Exactly one CURRENT version while any version is live and not PENDING.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "credbroker/rotation/key_ring.h"

namespace credbroker::rotation {

struct Decision {
  // The provider's live versions afterwards, oldest first, and the CURRENT one among them.
  std::vector<std::shared_ptr<const KeyVersion>> live;
  std::shared_ptr<const KeyVersion> current;
  // What watchers hear, in order (a new CURRENT before what it replaced).
  std::vector<KeyEvent> events;
  // Versions that left service and must never come back (RETIRED, QUARANTINED).
  std::vector<const KeyVersion*> gone;
  // Versions the backend no longer lists (RETIRED; they would come back if listed again).
  std::vector<const KeyVersion*> removed;
  // Versions whose remaining leases must be revoked, with the reason given to their holders.
  std::vector<std::pair<std::string, std::string>> revoke_leases;
  // PREVIOUS versions past their overlap that still wait for leases: (version, leases, deadline).
  struct Waiting {
    std::string version;
    int64_t leases = 0;
    absl::Time deadline;
  };
  std::vector<Waiting> waiting;
};

// What of a backend's listing (oldest first) can be served at `now`, in the order DecideListing
// reads as oldest → newest. Left out: versions the backend disabled or whose validity window
// (not_before, expires_at) excludes `now` — a live one among them retires as removed from the
// backend — and deprecated ones (a staged backend's versions with no stage) unless `is_live`
// (the broker keeps serving a PREVIOUS whose AWSPREVIOUS label moved on, but never adopts an old
// version). A staged backend's versions are ordered by stage: PREVIOUS and deprecated, then
// CURRENT, then PENDING, so the backend's CURRENT is the newest version it does not hold back.
std::vector<secrets::VersionInfo> ServableListing(
    std::vector<secrets::VersionInfo> listed, const std::function<bool(absl::string_view)>& is_live,
    absl::Time now);

// A refresh: `listed` are the versions the backend lists now (oldest first, each with the state
// the ring knows or restored, PENDING when new). Versions no longer listed are retired. CURRENT
// stays where it is while listed; otherwise, or when promotions are not `gated` (no probe), the
// newest version becomes CURRENT — on a gated provider the newest one that is not PENDING, except
// on the `first_load`, which trusts what the backend has. A version the backend holds back
// (BackendStage::kPending) never becomes CURRENT here. Versions newer than CURRENT wait
// (PENDING); older ones are demoted (PREVIOUS, or RETIRED for a single-key provider) or, when
// PENDING and already known, superseded.
Decision DecideListing(const ProviderKeys& keys,
                       const std::vector<std::shared_ptr<const KeyVersion>>& listed, bool gated,
                       bool first_load, absl::Time now);

// Makes the PENDING `version` CURRENT. The CURRENT version becomes PREVIOUS until now + overlap,
// or RETIRED at once for a single-key provider (its old key is already dead); older PENDING
// versions are superseded (RETIRED). NOT_FOUND (UNKNOWN_KEY_VERSION) when `version` is not live,
// FAILED_PRECONDITION (NOT_PENDING) when it is not PENDING.
absl::StatusOr<Decision> DecidePromote(const ProviderKeys& keys, absl::string_view version,
                                       absl::string_view reason, absl::Time now);

// Takes `version` out of service at once. When it was CURRENT another live version becomes
// CURRENT: `replacement` when given and live, else the newest that is not PENDING, else the
// newest PENDING one. Its leases are revoked (KEY_QUARANTINED). NOT_FOUND when not live.
absl::StatusOr<Decision> DecideQuarantine(const ProviderKeys& keys, absl::string_view version,
                                          absl::string_view reason, absl::string_view replacement,
                                          absl::Time now);

// Retires every PREVIOUS version whose overlap has ended and that no lease holds (`leases` by
// version id; absent means none), and at the hard deadline (retires_at + retire_grace) retires it
// anyway and revokes its leases (KEY_RETIRED_AT_DEADLINE). Versions still waiting are listed.
// `count_leases` false: leases are not tracked, a version retires when its overlap ends.
Decision DecideRetirement(const ProviderKeys& keys,
                          const absl::flat_hash_map<std::string, int64_t>& leases,
                          bool count_leases, absl::Time now);

// A follower applies what the leader decided: `stored` are key-version records the leader wrote
// (from the key-state store's watch). A live version of this provider with a stored record takes
// its state and retire time (a version the follower has not loaded yet is left to its next
// refresh, which restores the stored state); RETIRED, QUARANTINED and REVOKED ones leave service.
// CURRENT is the live version whose state is CURRENT. Events as the leader's watchers heard them:
// ROTATED, RETIRING, RETIRED, QUARANTINED, REVOKED, the new CURRENT first. Records of other
// providers and unchanged states decide nothing.
Decision DecideFollow(const ProviderKeys& keys, const std::vector<PersistedKeyVersion>& stored,
                      absl::Time now);

}  // namespace credbroker::rotation
