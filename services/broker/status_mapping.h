// The one place where absl::Status becomes grpc::Status. The machine-readable reason attached
// with core::WithReason travels as google.rpc.ErrorInfo in grpc-status-details-bin.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace credbroker::broker {

inline constexpr char kErrorDomain[] = "credbroker.dev";

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace credbroker::broker
