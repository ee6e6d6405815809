#include "credbroker/anomaly/suspension_feed.h"

#include "credbroker/core/status_macros.h"

namespace credbroker::anomaly {

absl::StatusOr<std::unique_ptr<SuspensionFeed>> SuspensionFeed::Start(state::SharedFacts* facts,
                                                                      AnomalyDetector* detector,
                                                                      absl::Time now) {
  std::unique_ptr<SuspensionFeed> feed(new SuspensionFeed(detector));
  SuspensionFeed* f = feed.get();
  CB_ASSIGN_OR_RETURN(
      feed->watch_, facts->Follow(now, [f](const std::vector<state::Fact>& v) { f->OnFacts(v); }));
  return feed;
}

SuspensionFeed::~SuspensionFeed() { watch_.reset(); }

void SuspensionFeed::OnFacts(const std::vector<state::Fact>& facts) {
  for (const state::Fact& fact : facts) {
    if (fact.kind != state::Fact::Kind::kSuspension) continue;
    const state::Suspension& s = fact.suspension;
    detector_->ApplySuspension(s.caller, s.provider, s.until);
  }
}

}  // namespace credbroker::anomaly
