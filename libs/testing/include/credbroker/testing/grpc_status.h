// Reads the machine-readable reason (google.rpc.ErrorInfo) from a gRPC status, as clients do.
// Header-only: users link credbroker::proto and gRPC themselves.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace credbroker::testing {

inline std::string ErrorReason(const grpc::Status& s) {
  google::rpc::Status details;
  if (!details.ParseFromString(s.error_details())) return "";
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.UnpackTo(&info)) return info.reason();
  }
  return "";
}

}  // namespace credbroker::testing
