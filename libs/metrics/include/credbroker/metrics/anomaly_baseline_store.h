// AnomalyBaselineStore keeps what the anomaly detector learned across restarts: the baselines of
// every caller × provider and the end of the first run's learning period. Without it every
// restart (every deploy) would begin a new warm-up and learning window in which spikes and new
// callers go unnoticed.
// Errors: FAILED_PRECONDITION (cannot open), UNAVAILABLE / DATA_LOSS from SQLite.
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "credbroker/metrics/anomaly_detector.h"

namespace credbroker::metrics {

class AnomalyBaselineStore {
 public:
  // A SQLite file of its own (WAL), e.g. <data_dir>/anomaly.db.
  static absl::StatusOr<std::unique_ptr<AnomalyBaselineStore>> Open(const std::string& path);
  ~AnomalyBaselineStore();

  // When the learning period ends: the stored time, or `if_new` (stored now) on a new file.
  absl::StatusOr<absl::Time> LearningUntil(absl::Time if_new);
  absl::StatusOr<std::vector<AnomalyBaseline>> Load();
  // Replaces everything stored with `baselines`, in one transaction.
  absl::Status Save(const std::vector<AnomalyBaseline>& baselines);

 private:
  struct Impl;
  explicit AnomalyBaselineStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace credbroker::metrics
