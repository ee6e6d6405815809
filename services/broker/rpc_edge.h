// What every gRPC handler does around its call: authenticate the caller (counting and auditing
// failures), time and count the RPC, and finish it with the status converted once.
#pragma once

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "credbroker/identity/audit_log.h"
#include "credbroker/identity/auth_failure_folder.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/identity/policy.h"
#include "credbroker/rpc/rpc_stats.h"
#include "credbroker/rpc/status.h"

namespace credbroker::broker {

// What every handler needs to authenticate, authorize admin calls, count and audit.
struct Edge {
  const identity::Authenticator* auth = nullptr;
  rpc::RpcStats* metrics = nullptr;
  // Admin role beyond admin static tokens; may be null.
  const identity::Policy* policy = nullptr;
  // May be null (nothing audited).
  identity::AuditLog* audit = nullptr;
  // Folds repeated authentication failures of one peer in the audit log; may be null (each one
  // audited).
  identity::AuthFailureFolder* auth_folder = nullptr;
};

// Records latency and outcome of one RPC.
class RpcScope {
 public:
  RpcScope(rpc::RpcStats* metrics, absl::string_view method)
      : metrics_(metrics), method_(method), start_(absl::Now()) {}
  grpc::Status Finish(const absl::Status& status) {
    metrics_->RpcCompleted(method_, absl::StatusCodeToString(status.code()), absl::Now() - start_);
    return rpc::ToGrpcStatus(status);
  }

 private:
  rpc::RpcStats* metrics_;
  absl::string_view method_;
  absl::Time start_;
};

// The caller's identity from the bearer token or the verified client certificate. Failures are
// counted (credbroker_caller_auth_failures_total) and audited. UNAVAILABLE (AUDIT_UNAVAILABLE)
// before anything else while a fail-closed audit log cannot be written.
absl::StatusOr<identity::Identity> Authenticate(grpc::CallbackServerContext* ctx, const Edge& edge,
                                                absl::string_view method);

// A unary handler whose work is done when `fn` returns.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, rpc::RpcStats* metrics,
                                absl::string_view method, Fn&& fn) {
  RpcScope scope(metrics, method);
  absl::Status status = fn();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(scope.Finish(status));
  return reactor;
}

}  // namespace credbroker::broker
