// StateMetrics: state::StateStats over Prometheus. Series (documented in the README):
//   credbroker_state_requests_total{op, outcome}   calls to the state store's backend (etcd)
//   credbroker_state_request_duration_seconds{op}  their latency
//   credbroker_state_leader                        1 while this replica leads
//   credbroker_state_watch_connected               1 while the watch stream is open
//   credbroker_state_watch_delay_seconds           own write committed → delivered by the watch
// Every child is created up front: recording allocates and locks nothing.
// Thread-safety: safe for concurrent use.
#pragma once

#include <array>
#include <memory>

#include "credbroker/state/state_stats.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace credbroker::metrics {

class StateMetrics final : public state::StateStats {
 public:
  explicit StateMetrics(prometheus::Registry& registry);
  void Call(Op op, bool ok, absl::Duration latency) override;
  void Leader(bool leading) override;
  void WatchConnected(bool connected) override;
  void WatchDelay(absl::Duration delay) override;

 private:
  static constexpr size_t kOps = 5;
  std::array<prometheus::Counter*, kOps> ok_{};
  std::array<prometheus::Counter*, kOps> failed_{};
  std::array<prometheus::Histogram*, kOps> latency_{};
  prometheus::Gauge* leader_ = nullptr;
  prometheus::Gauge* connected_ = nullptr;
  prometheus::Histogram* delay_ = nullptr;
};

}  // namespace credbroker::metrics
