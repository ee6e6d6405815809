// SuspensionFeed makes every replica enforce every suspension: the anomaly detector that decides
// one (on any replica) has it stored in the shared facts (AnomalyResponder), and each replica's
// feed applies the stored suspensions to its own detector — at start (those still in force) and
// as they are written.
// Thread-safety: the watch callback runs on the store's committing thread and only sets atomics.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "credbroker/anomaly/anomaly_detector.h"
#include "credbroker/state/shared_facts.h"

namespace credbroker::anomaly {

class SuspensionFeed {
 public:
  // `facts` and `detector` must outlive the feed.
  static absl::StatusOr<std::unique_ptr<SuspensionFeed>> Start(state::SharedFacts* facts,
                                                               AnomalyDetector* detector,
                                                               absl::Time now);
  ~SuspensionFeed();
  SuspensionFeed(const SuspensionFeed&) = delete;
  SuspensionFeed& operator=(const SuspensionFeed&) = delete;

 private:
  explicit SuspensionFeed(AnomalyDetector* detector) : detector_(detector) {}
  void OnFacts(const std::vector<state::Fact>& facts);

  AnomalyDetector* const detector_;
  std::unique_ptr<state::Watch> watch_;
};

}  // namespace credbroker::anomaly
