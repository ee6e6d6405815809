// RevocationFeed runs revocation detection over the auth-failure reports of every replica. Each
// replica stores its callers' reports in the shared facts (LeaseBroker::ReportAuthFailure); the
// feed watches them and hands each one to the RevocationDetector, and while this replica leads,
// a completed burst (401s on one key version from enough distinct callers) goes to `suspect` (the
// rotation engine probes the key and quarantines it when the provider refuses it). Followers
// count too, so a new leader starts with the window already filled, but decide nothing.
// At start the retained reports are replayed, so a restart in the middle of a burst loses none.
// Thread-safety: the watch callback runs on the store's committing thread; `suspect` must not
// block (RotationEngine::SuspectRevoked queues and wakes).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "credbroker/rotation/revocation_detector.h"
#include "credbroker/state/leadership.h"
#include "credbroker/state/shared_facts.h"

namespace credbroker::leasing {

class RevocationFeed {
 public:
  using SuspectFn = std::function<void(const std::string& provider, const std::string& version)>;

  // Replays the reports retained at `now` and follows new ones. Everything passed must outlive
  // the feed.
  static absl::StatusOr<std::unique_ptr<RevocationFeed>> Start(
      state::SharedFacts* facts, const state::Leadership* leadership,
      rotation::RevocationDetector* detector, SuspectFn suspect, absl::Time now);
  ~RevocationFeed();
  RevocationFeed(const RevocationFeed&) = delete;
  RevocationFeed& operator=(const RevocationFeed&) = delete;

 private:
  RevocationFeed(const state::Leadership* leadership, rotation::RevocationDetector* detector,
                 SuspectFn suspect)
      : leadership_(leadership), detector_(detector), suspect_(std::move(suspect)) {}
  void OnFacts(const std::vector<state::Fact>& facts);

  const state::Leadership* const leadership_;
  rotation::RevocationDetector* const detector_;
  const SuspectFn suspect_;
  std::unique_ptr<state::Watch> watch_;
};

}  // namespace credbroker::leasing
