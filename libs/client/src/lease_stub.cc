#include "lease_stub.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace credbroker::client::internal {
namespace {

class GrpcLeaseStub final : public LeaseStub {
 public:
  explicit GrpcLeaseStub(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::LeaseService::NewStub(std::move(channel))) {}

  grpc::Status AcquireLease(grpc::ClientContext& ctx, const v1::AcquireLeaseRequest& req,
                            v1::Lease* out) override {
    return stub_->AcquireLease(&ctx, req, out);
  }
  grpc::Status RenewLease(grpc::ClientContext& ctx, const v1::RenewLeaseRequest& req,
                          v1::Lease* out) override {
    return stub_->RenewLease(&ctx, req, out);
  }
  grpc::Status ReleaseLease(grpc::ClientContext& ctx, const v1::ReleaseLeaseRequest& req,
                            v1::ReleaseLeaseResponse* out) override {
    return stub_->ReleaseLease(&ctx, req, out);
  }
  grpc::Status ReportAuthFailure(grpc::ClientContext& ctx, const v1::ReportAuthFailureRequest& req,
                                 v1::ReportAuthFailureResponse* out) override {
    return stub_->ReportAuthFailure(&ctx, req, out);
  }
  absl::StatusOr<std::unique_ptr<Reader>> WatchKeys(grpc::ClientContext& ctx,
                                                    const v1::WatchKeysRequest& req) override {
    return std::unique_ptr<Reader>(stub_->WatchKeys(&ctx, req));
  }

 private:
  std::unique_ptr<v1::LeaseService::Stub> stub_;
};

class AuthLeaseStub final : public LeaseStub {
 public:
  AuthLeaseStub(std::shared_ptr<LeaseStub> child, std::shared_ptr<CallerToken> token)
      : child_(std::move(child)), token_(std::move(token)) {}

  grpc::Status AcquireLease(grpc::ClientContext& ctx, const v1::AcquireLeaseRequest& req,
                            v1::Lease* out) override {
    if (grpc::Status s = Authorize(ctx); !s.ok()) return s;
    return child_->AcquireLease(ctx, req, out);
  }
  grpc::Status RenewLease(grpc::ClientContext& ctx, const v1::RenewLeaseRequest& req,
                          v1::Lease* out) override {
    if (grpc::Status s = Authorize(ctx); !s.ok()) return s;
    return child_->RenewLease(ctx, req, out);
  }
  grpc::Status ReleaseLease(grpc::ClientContext& ctx, const v1::ReleaseLeaseRequest& req,
                            v1::ReleaseLeaseResponse* out) override {
    if (grpc::Status s = Authorize(ctx); !s.ok()) return s;
    return child_->ReleaseLease(ctx, req, out);
  }
  grpc::Status ReportAuthFailure(grpc::ClientContext& ctx, const v1::ReportAuthFailureRequest& req,
                                 v1::ReportAuthFailureResponse* out) override {
    if (grpc::Status s = Authorize(ctx); !s.ok()) return s;
    return child_->ReportAuthFailure(ctx, req, out);
  }
  absl::StatusOr<std::unique_ptr<Reader>> WatchKeys(grpc::ClientContext& ctx,
                                                    const v1::WatchKeysRequest& req) override {
    if (grpc::Status s = Authorize(ctx); !s.ok()) {
      return absl::UnauthenticatedError(s.error_message());
    }
    return child_->WatchKeys(ctx, req);
  }

 private:
  grpc::Status Authorize(grpc::ClientContext& ctx) const {
    absl::StatusOr<std::string> token = token_->Token();
    if (!token.ok()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(token.status().message()));
    }
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", *token));
    return grpc::Status::OK;
  }

  std::shared_ptr<LeaseStub> child_;
  std::shared_ptr<CallerToken> token_;
};

}  // namespace

std::shared_ptr<LeaseStub> MakeGrpcLeaseStub(std::shared_ptr<grpc::Channel> channel) {
  return std::make_shared<GrpcLeaseStub>(std::move(channel));
}

std::shared_ptr<LeaseStub> MakeAuthLeaseStub(std::shared_ptr<LeaseStub> child,
                                             std::shared_ptr<CallerToken> token) {
  return std::make_shared<AuthLeaseStub>(std::move(child), std::move(token));
}

}  // namespace credbroker::client::internal
