// AnomalyStats is what the anomaly detector counts and nothing else: anomalies by provider, kind
// and action (credbroker_anomalies_total), each caller's latest score (credbroker_anomaly_score)
// and the callers suspended per provider (credbroker_suspended_callers). The detector sees this
// interface only; metrics::BrokerMetrics implements it over Prometheus.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include "absl/strings/string_view.h"

namespace credbroker::anomaly {

class AnomalyStats {
 public:
  virtual ~AnomalyStats() = default;
  // kind: rate_spike, failure_spike, new_caller, retired_key_use; action: log, alert, suspend.
  virtual void Anomaly(absl::string_view provider, absl::string_view kind,
                       absl::string_view action) = 0;
  virtual void AnomalyScore(absl::string_view caller, absl::string_view provider, double score) = 0;
  virtual void SuspendedCallers(absl::string_view provider, double count) = 0;
};

}  // namespace credbroker::anomaly
