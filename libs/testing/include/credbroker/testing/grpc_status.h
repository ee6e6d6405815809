// Reads the machine-readable reason (google.rpc.ErrorInfo) from a gRPC status, as clients do.
// Users link credbroker::rpc.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "credbroker/rpc/status.h"

namespace credbroker::testing {

inline std::string ErrorReason(const grpc::Status& s) { return rpc::ErrorReason(s); }

}  // namespace credbroker::testing
