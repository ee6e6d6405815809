#include "credbroker/metrics/state_metrics.h"

#include <string>

namespace credbroker::metrics {
namespace {

const char* OpName(size_t op) {
  switch (static_cast<state::StateStats::Op>(op)) {
    case state::StateStats::Op::kRead:
      return "read";
    case state::StateStats::Op::kWrite:
      return "write";
    case state::StateStats::Op::kGrantLease:
      return "grant_lease";
    case state::StateStats::Op::kKeepAlive:
      return "keep_alive";
    case state::StateStats::Op::kRevokeLease:
      return "revoke_lease";
  }
  return "other";
}

}  // namespace

StateMetrics::StateMetrics(prometheus::Registry& registry) {
  auto& requests = prometheus::BuildCounter()
                       .Name("credbroker_state_requests_total")
                       .Help("Calls to the state store's backend (etcd), by operation and outcome.")
                       .Register(registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name("credbroker_state_request_duration_seconds")
                      .Help("Latency of calls to the state store's backend (etcd), by operation.")
                      .Register(registry);
  const prometheus::Histogram::BucketBoundaries buckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  for (size_t op = 0; op < kOps; ++op) {
    ok_[op] = &requests.Add({{"op", OpName(op)}, {"outcome", "ok"}});
    failed_[op] = &requests.Add({{"op", OpName(op)}, {"outcome", "error"}});
    latency_[op] = &latency.Add({{"op", OpName(op)}}, buckets);
  }
  leader_ = &prometheus::BuildGauge()
                 .Name("credbroker_state_leader")
                 .Help("1 while this replica leads (runs rotation work), else 0.")
                 .Register(registry)
                 .Add({});
  connected_ = &prometheus::BuildGauge()
                    .Name("credbroker_state_watch_connected")
                    .Help("1 while this replica's watch on the state store is open, else 0.")
                    .Register(registry)
                    .Add({});
  delay_ = &prometheus::BuildHistogram()
                .Name("credbroker_state_watch_delay_seconds")
                .Help("From a lease write's commit to its delivery by this replica's watch.")
                .Register(registry)
                .Add({}, buckets);
}

void StateMetrics::Call(Op op, bool ok, absl::Duration latency) {
  const auto i = static_cast<size_t>(op);
  if (i >= kOps) return;
  (ok ? ok_ : failed_)[i]->Increment();
  latency_[i]->Observe(absl::ToDoubleSeconds(latency));
}

void StateMetrics::Leader(bool leading) { leader_->Set(leading ? 1 : 0); }
void StateMetrics::WatchConnected(bool connected) { connected_->Set(connected ? 1 : 0); }
void StateMetrics::WatchDelay(absl::Duration delay) {
  delay_->Observe(absl::ToDoubleSeconds(delay));
}

}  // namespace credbroker::metrics
