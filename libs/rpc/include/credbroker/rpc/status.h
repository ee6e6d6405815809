// Status conversion at the gRPC edge, both ways, in one place. absl::Status becomes grpc::Status
// with one explicit switch; the machine-readable reason attached with core::WithReason travels as
// google.rpc.ErrorInfo (domain kErrorDomain) in grpc-status-details-bin, and comes back the same
// way for clients (credctl, the client library, tests).
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace credbroker::rpc {

inline constexpr char kErrorDomain[] = "credbroker.dev";

// INTERNAL and UNKNOWN are bugs: the caller gets a generic message with a correlation id, the
// log gets the details.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The status a client got, with the reason (if any) attached again (core::ReasonOf reads it).
absl::Status FromGrpcStatus(const grpc::Status& status);

// The ErrorInfo reason of a gRPC status, or "".
std::string ErrorReason(const grpc::Status& status);

// "NOT_FOUND", "UNAVAILABLE", ... for a gRPC code.
absl::string_view GrpcCodeName(grpc::StatusCode code);

}  // namespace credbroker::rpc
