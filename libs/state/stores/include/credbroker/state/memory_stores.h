// MemoryStores: the whole state set in this process's memory (`state: {memory: {}}`): one
// replica, always the leader, and nothing survives a restart. For development and for measuring
// what the durable store costs (bench/grpc_load runs the broker on both); never for a broker that
// hands out production leases.
// Thread-safety: the stores are safe for concurrent use.
#pragma once

#include "absl/time/time.h"
#include "credbroker/anomaly/baseline_store.h"
#include "credbroker/rotation/key_state_store.h"
#include "credbroker/state/in_memory_lease_store.h"
#include "credbroker/state/shared_facts.h"
#include "credbroker/state/stores.h"

namespace credbroker::state {

class MemoryStores final : public Stores {
 public:
  // `report_retention`: how long auth-failure reports are kept.
  explicit MemoryStores(absl::Duration report_retention)
      : facts_(report_retention), leadership_(/*epoch=*/1) {}

  LeaseStore& leases() override { return leases_; }
  rotation::KeyStateStore& key_states() override { return key_states_; }
  SharedFacts& facts() override { return facts_; }
  anomaly::AnomalyBaselineStore& anomaly_baselines() override { return baselines_; }
  Leadership& leadership() override { return leadership_; }
  Fields Describe() const override { return {{"store", "memory"}}; }
  Fields Summary() const override { return {}; }

 private:
  InMemoryLeaseStore leases_;
  rotation::InMemoryKeyStateStore key_states_;
  InMemorySharedFacts facts_;
  anomaly::InMemoryAnomalyBaselineStore baselines_;
  SingleNodeLeadership leadership_;
};

}  // namespace credbroker::state
