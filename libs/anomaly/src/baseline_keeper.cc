#include "credbroker/anomaly/baseline_keeper.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::anomaly {

absl::Status BaselineKeeper::Restore() {
  CB_ASSIGN_OR_RETURN(absl::Time learning_until,
                      store_->LearningUntil(detector_->learning_until()));
  CB_ASSIGN_OR_RETURN(std::vector<AnomalyBaseline> baselines, store_->Load());
  detector_->Restore(baselines, learning_until);
  core::LogInfo("anomaly baselines restored",
                {{"pairs", absl::StrCat(baselines.size())},
                 {"learning_until", absl::FormatTime(learning_until)}});
  return absl::OkStatus();
}

void BaselineKeeper::Tick() {
  if (detector_->Tick()) Save();
}

void BaselineKeeper::Save() {
  if (absl::Status s = store_->Save(detector_->Baselines()); !s.ok()) {
    core::LogError("cannot save anomaly baselines", {{"error", s.ToString()}});
  }
}

}  // namespace credbroker::anomaly
