// AnomalyBaselineStore keeps what the anomaly detector learned across restarts: the baselines of
// every caller × provider and the end of the first run's learning period. Without it every
// restart (every deploy) would begin a new warm-up and learning window in which spikes and new
// callers go unnoticed. The broker's implementation lives in its state file
// (state::sqlite::SqliteAnomalyBaselineStore); InMemoryAnomalyBaselineStore is for tests.
// Errors: UNAVAILABLE / DATA_LOSS / INTERNAL from storage.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/anomaly/anomaly_detector.h"

namespace credbroker::anomaly {

class AnomalyBaselineStore {
 public:
  virtual ~AnomalyBaselineStore() = default;
  // When the learning period ends: the stored time, or `if_new` (stored now) when none is stored.
  virtual absl::StatusOr<absl::Time> LearningUntil(absl::Time if_new) = 0;
  virtual absl::StatusOr<std::vector<AnomalyBaseline>> Load() = 0;
  // Replaces everything stored with `baselines`, in one transaction.
  virtual absl::Status Save(const std::vector<AnomalyBaseline>& baselines) = 0;
};

class InMemoryAnomalyBaselineStore final : public AnomalyBaselineStore {
 public:
  absl::StatusOr<absl::Time> LearningUntil(absl::Time if_new) override {
    absl::MutexLock lock(&mu_);
    if (!learning_until_) learning_until_ = if_new;
    return *learning_until_;
  }
  absl::StatusOr<std::vector<AnomalyBaseline>> Load() override {
    absl::MutexLock lock(&mu_);
    return baselines_;
  }
  absl::Status Save(const std::vector<AnomalyBaseline>& baselines) override {
    absl::MutexLock lock(&mu_);
    baselines_ = baselines;
    return absl::OkStatus();
  }

 private:
  absl::Mutex mu_;
  std::optional<absl::Time> learning_until_ ABSL_GUARDED_BY(mu_);
  std::vector<AnomalyBaseline> baselines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::anomaly
