// SqliteAnomalyBaselineStore: anomaly::AnomalyBaselineStore in the broker's SQLite state file.
// Thread-safety: safe for concurrent use.
#pragma once

#include <vector>

#include "credbroker/anomaly/baseline_store.h"
#include "credbroker/state/sqlite/database.h"

namespace credbroker::state::sqlite {

class SqliteAnomalyBaselineStore final : public anomaly::AnomalyBaselineStore {
 public:
  static const char* Schema();
  // `db` must outlive the store and have been opened with Schema().
  explicit SqliteAnomalyBaselineStore(Database* db) : db_(db) {}

  absl::StatusOr<absl::Time> LearningUntil(absl::Time if_new) override;
  absl::StatusOr<std::vector<anomaly::AnomalyBaseline>> Load() override;
  absl::Status Save(const std::vector<anomaly::AnomalyBaseline>& baselines) override;

 private:
  Database* const db_;
};

}  // namespace credbroker::state::sqlite
