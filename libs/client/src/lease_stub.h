// The stub layer under LeaseConnection (internal): the generated gRPC stub behind an interface,
// and decorators around it. LeaseConnection adds deadlines and retries on top.
// Thread-safety: safe for concurrent use.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/statusor.h"
#include "credbroker/client/caller_token.h"
#include "credbroker/v1/lease.grpc.pb.h"

namespace credbroker::client::internal {

class LeaseStub {
 public:
  using Reader = grpc::ClientReaderInterface<v1::KeyEvent>;
  virtual ~LeaseStub() = default;
  virtual grpc::Status AcquireLease(grpc::ClientContext& ctx, const v1::AcquireLeaseRequest& req,
                                    v1::Lease* out) = 0;
  virtual grpc::Status RenewLease(grpc::ClientContext& ctx, const v1::RenewLeaseRequest& req,
                                  v1::Lease* out) = 0;
  virtual grpc::Status ReleaseLease(grpc::ClientContext& ctx, const v1::ReleaseLeaseRequest& req,
                                    v1::ReleaseLeaseResponse* out) = 0;
  virtual grpc::Status ReportAuthFailure(grpc::ClientContext& ctx,
                                         const v1::ReportAuthFailureRequest& req,
                                         v1::ReportAuthFailureResponse* out) = 0;
  // The stream, or the status that kept it from starting.
  virtual absl::StatusOr<std::unique_ptr<Reader>> WatchKeys(grpc::ClientContext& ctx,
                                                            const v1::WatchKeysRequest& req) = 0;
};

// The generated stub over `channel`.
std::shared_ptr<LeaseStub> MakeGrpcLeaseStub(std::shared_ptr<grpc::Channel> channel);

// Adds `authorization: Bearer <token>` to every call; UNAUTHENTICATED (without calling) when the
// token cannot be read.
std::shared_ptr<LeaseStub> MakeAuthLeaseStub(std::shared_ptr<LeaseStub> child,
                                             std::shared_ptr<CallerToken> token);

}  // namespace credbroker::client::internal
