// RpcStats is what the gRPC edge counts and nothing else: every RPC's method, status code and
// latency, and callers refused before any method ran (no or an invalid identity). The services
// see this interface only; metrics::BrokerMetrics implements it over Prometheus.
// Thread-safety: implementations are safe for concurrent use and cheap enough for every RPC.
#pragma once

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace credbroker::rpc {

class RpcStats {
 public:
  virtual ~RpcStats() = default;
  // code: the canonical name of the status code (absl::StatusCodeToString).
  virtual void RpcCompleted(absl::string_view method, absl::string_view code,
                            absl::Duration latency) = 0;
  // reason: the machine-readable reason the caller was not authenticated.
  virtual void CallerAuthFailure(absl::string_view reason) = 0;
};

}  // namespace credbroker::rpc
