// SharedFacts holds the small facts that every replica must see, not only the one that learned
// them:
//   - auth-failure reports (a caller's provider call was refused with 401/403/429): the leader's
//     revocation detection counts distinct callers over the reports of all replicas;
//   - caller suspensions (the anomaly detector's "suspend" action): every replica refuses the
//     suspended caller's leases until the suspension ends, also after a restart.
// Each fact written gets the next store revision; Watch delivers them in revision order, first
// those after the start revision still remembered, then new ones. Reports are kept for
// `report_retention` (longer than any detection window), suspensions until they end.
// Errors: UNAVAILABLE / INTERNAL from storage; OUT_OF_RANGE from Watch when the facts after the
// revision are no longer remembered (List again).
// Implementations: InMemorySharedFacts (tests), state::sqlite::SqliteSharedFacts (the state file).
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/state/change_log.h"
#include "credbroker/state/watch.h"

namespace credbroker::state {

struct AuthFailureReport {
  std::string provider;
  std::string key_version;
  std::string caller;  // the caller's identity
  int http_status = 0;
  absl::Time at;
  // What the provider's answer means (providers::AuthFailureKindName): "key_rejected" or
  // "key_expired", the only kinds stored; empty in reports stored before it was recorded.
  std::string kind;
};

struct Suspension {
  std::string caller;  // as the anomaly detector knows callers (policy metric label)
  std::string provider;
  absl::Time until;
  std::string reason;
};

struct Fact {
  enum class Kind { kAuthFailure, kSuspension };
  Kind kind = Kind::kAuthFailure;
  int64_t revision = 0;
  AuthFailureReport report;  // kAuthFailure
  Suspension suspension;     // kSuspension
};

struct FactListing {
  // Retained reports and the suspensions that have not ended, oldest revision first.
  std::vector<Fact> facts;
  // The store revision the listing reflects: watch from here to miss nothing.
  int64_t revision = 0;
};

// Receives facts in revision order, one call per committed write, on the committing thread: it
// must not block or call back into the store.
using FactWatchFn = std::function<void(const std::vector<Fact>& facts)>;

class SharedFacts {
 public:
  virtual ~SharedFacts() = default;

  // Stores a report; `done` gets the outcome once it is stored (it may run before this returns).
  virtual void AddAuthFailure(const AuthFailureReport& report,
                              std::function<void(absl::Status)> done) = 0;
  // Stores a suspension of the caller on the provider (a later one replaces it).
  virtual absl::Status Suspend(const Suspension& suspension) = 0;

  // Retained reports and suspensions still in force at `now`.
  virtual absl::StatusOr<FactListing> List(absl::Time now) = 0;
  virtual absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision,
                                                              FactWatchFn fn) = 0;

  // What a replica that acts on the facts needs: `fn` gets the facts in force at `now` (on this
  // thread), then every fact written after them.
  absl::StatusOr<std::unique_ptr<state::Watch>> Follow(absl::Time now, const FactWatchFn& fn) {
    absl::StatusOr<FactListing> listing = List(now);
    if (!listing.ok()) return listing.status();
    fn(listing->facts);
    return Watch(listing->revision, fn);
  }
};

class InMemorySharedFacts final : public SharedFacts {
 public:
  explicit InMemorySharedFacts(absl::Duration report_retention = absl::Hours(1))
      : retention_(report_retention), log_(0) {}

  void AddAuthFailure(const AuthFailureReport& report,
                      std::function<void(absl::Status)> done) override;
  absl::Status Suspend(const Suspension& suspension) override;
  absl::StatusOr<FactListing> List(absl::Time now) override;
  absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision,
                                                      FactWatchFn fn) override;

 private:
  const absl::Duration retention_;
  absl::Mutex mu_;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Fact> reports_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::pair<std::string, std::string>, Fact> suspensions_ ABSL_GUARDED_BY(mu_);
  ChangeLogOf<Fact> log_;
};

}  // namespace credbroker::state
