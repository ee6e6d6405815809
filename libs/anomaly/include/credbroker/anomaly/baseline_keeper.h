// BaselineKeeper keeps what the anomaly detector learned across restarts: Restore() hands the
// detector the baselines and the learning window an earlier run stored (before serving), Tick()
// is the detector's periodic work and saves the baselines whenever a bucket closed, Save() is
// the last save at shutdown. A failed save is logged and retried at the next bucket: it costs at
// most a re-learned bucket, never a request.
// Errors: Restore returns the store's errors (UNAVAILABLE, DATA_LOSS, INTERNAL).
// Thread-safety: Tick and Save may run on different threads (the store and the detector are
// safe for concurrent use).
#pragma once

#include "absl/status/status.h"
#include "credbroker/anomaly/anomaly_detector.h"
#include "credbroker/anomaly/baseline_store.h"

namespace credbroker::anomaly {

class BaselineKeeper {
 public:
  // Both must outlive the keeper.
  BaselineKeeper(AnomalyDetector* detector, AnomalyBaselineStore* store)
      : detector_(detector), store_(store) {}

  absl::Status Restore();
  void Tick();
  void Save();

 private:
  AnomalyDetector* const detector_;
  AnomalyBaselineStore* const store_;
};

}  // namespace credbroker::anomaly
