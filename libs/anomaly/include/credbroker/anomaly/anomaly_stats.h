// AnomalyStats is what the anomaly detector counts and nothing else: anomalies by provider, kind
// and action (credbroker_anomalies_total), each caller's latest score (credbroker_anomaly_score)
// the callers suspended per provider (credbroker_suspended_callers) and the end of the learning
// period. The detector sees this
// interface only; metrics::BrokerMetrics implements it over Prometheus.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace credbroker::anomaly {

class AnomalyStats {
 public:
  virtual ~AnomalyStats() = default;
  // kind: rate_spike, failure_spike, new_caller, retired_key_use; action: log, alert, suspend.
  virtual void Anomaly(absl::string_view provider, absl::string_view kind,
                       absl::string_view action) = 0;
  virtual void AnomalyScore(absl::string_view caller, absl::string_view provider, double score) = 0;
  virtual void SuspendedCallers(absl::string_view provider, double count) = 0;
  // When the learning period ends (credbroker_anomaly_learning_until_timestamp_seconds): until
  // then no caller is "new". Set at start and when earlier baselines are restored.
  virtual void LearningUntil(absl::Time until) = 0;
};

}  // namespace credbroker::anomaly
