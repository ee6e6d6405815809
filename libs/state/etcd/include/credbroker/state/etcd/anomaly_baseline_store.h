// EtcdAnomalyBaselineStore: the anomaly detector's baselines and the end of the first learning
// period, in etcd (`<prefix>anomaly/baselines`, `<prefix>anomaly/learning_until`), so a restarted
// replica does not begin a new warm-up. Every replica learns from the traffic it serves and saves
// what it learned; the stored set is the last save of any replica.
// Thread-safety: safe for concurrent use.
#pragma once

#include <string>
#include <vector>

#include "credbroker/anomaly/baseline_store.h"
#include "credbroker/state/etcd/client.h"

namespace credbroker::state::etcd {

class EtcdAnomalyBaselineStore final : public anomaly::AnomalyBaselineStore {
 public:
  EtcdAnomalyBaselineStore(EtcdClient* client, const std::string& prefix);
  absl::StatusOr<absl::Time> LearningUntil(absl::Time if_new) override;
  absl::StatusOr<std::vector<anomaly::AnomalyBaseline>> Load() override;
  absl::Status Save(const std::vector<anomaly::AnomalyBaseline>& baselines) override;

 private:
  EtcdClient* const client_;
  const std::string baselines_key_;
  const std::string learning_key_;
};

}  // namespace credbroker::state::etcd
