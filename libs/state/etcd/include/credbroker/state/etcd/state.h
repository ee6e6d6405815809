// EtcdState: the state stores of replicas that share an etcd cluster (state.etcd): leases,
// key-version states and minted key ids, auth-failure reports and suspensions, anomaly
// baselines, and the election of the replica that leads. One etcd client and one watch stream
// serve them all. Built from the `state.etcd` configuration block.
// Errors (Open): INVALID_ARGUMENT naming the field for unreadable TLS or password files;
// UNAVAILABLE when etcd cannot be reached at start.
// Thread-safety: the stores are safe for concurrent use.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "credbroker/core/clock.h"
#include "credbroker/state/etcd/anomaly_baseline_store.h"
#include "credbroker/state/etcd/client.h"
#include "credbroker/state/etcd/key_state_store.h"
#include "credbroker/state/etcd/leadership.h"
#include "credbroker/state/etcd/lease_store.h"
#include "credbroker/state/etcd/shared_facts.h"
#include "credbroker/state/etcd/watcher.h"
#include "credbroker/state/stores.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::state::etcd {

class EtcdState final : public Stores {
 public:
  // `config` has its defaults applied (config::ApplyDefaults).
  static absl::StatusOr<std::unique_ptr<EtcdState>> Open(
      const v1::EtcdStoreConfig& config, absl::Duration report_retention = absl::Hours(1),
      StateStats* stats = nullptr, const core::Clock* clock = core::SystemClock::Get());
  ~EtcdState() override;

  LeaseStore& leases() override { return *leases_; }
  rotation::KeyStateStore& key_states() override { return *key_states_; }
  SharedFacts& facts() override { return *facts_; }
  anomaly::AnomalyBaselineStore& anomaly_baselines() override { return *anomaly_; }
  Leadership& leadership() override { return *leadership_; }
  EtcdLeadership& etcd_leadership() { return *leadership_; }
  // {"store", "etcd"}, the endpoints, the prefix, this replica's name.
  Fields Describe() const override;
  // Lease writes and the Txns that held them.
  Fields Summary() const override;

 private:
  EtcdState() = default;
  v1::EtcdStoreConfig config_;
  std::string replica_;
  // Declared in the order they are built; destroyed in reverse (stores before the watcher).
  std::unique_ptr<EtcdClient> client_;
  std::unique_ptr<PrefixWatcher> watcher_;
  std::unique_ptr<EtcdLeadership> leadership_;
  std::unique_ptr<EtcdLeaseStore> leases_;
  std::unique_ptr<EtcdKeyStateStore> key_states_;
  std::unique_ptr<EtcdSharedFacts> facts_;
  std::unique_ptr<EtcdAnomalyBaselineStore> anomaly_;
};

}  // namespace credbroker::state::etcd
