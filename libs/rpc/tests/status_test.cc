#include "credbroker/rpc/status.h"

#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace credbroker::rpc {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(StatusMappingTest, CodesMapOneToOne) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcStatus(absl::UnauthenticatedError("x")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(ToGrpcStatus(absl::PermissionDeniedError("x")).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ToGrpcStatus(absl::InvalidArgumentError("x")).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(ToGrpcStatus(absl::DataLossError("x")).error_code(), grpc::StatusCode::DATA_LOSS);
}

TEST(StatusMappingTest, ReasonTravelsAsErrorInfo) {
  grpc::Status s =
      ToGrpcStatus(core::WithReason(absl::NotFoundError("lease has expired"), "LEASE_EXPIRED"));
  EXPECT_EQ(s.error_message(), "lease has expired");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(details.details(0).UnpackTo(&info));
  EXPECT_EQ(info.reason(), "LEASE_EXPIRED");
  EXPECT_EQ(info.domain(), kErrorDomain);
}

TEST(StatusMappingTest, InternalErrorsHideDetailsBehindACorrelationId) {
  std::string logged;
  core::SetLogSinkForTest([&](absl::string_view line) { logged += std::string(line); });
  grpc::Status s = ToGrpcStatus(absl::InternalError("sqlite: table leases has no column x"));
  core::SetLogSinkForTest(nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_THAT(s.error_message(), Not(HasSubstr("sqlite")));
  EXPECT_THAT(s.error_message(), HasSubstr("correlation id"));
  std::string id = s.error_message().substr(s.error_message().find("id ") + 3, 12);
  EXPECT_THAT(logged, HasSubstr(id));
  EXPECT_THAT(logged, HasSubstr("sqlite"));
}

TEST(StatusMappingTest, AClientGetsTheCodeMessageAndReasonBack) {
  absl::Status sent =
      core::WithReason(absl::ResourceExhaustedError("rate limited: retry in 2s"), "RATE_LIMITED");
  grpc::Status wire = ToGrpcStatus(sent);
  EXPECT_EQ(ErrorReason(wire), "RATE_LIMITED");
  absl::Status got = FromGrpcStatus(wire);
  EXPECT_EQ(got.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(got.message(), "rate limited: retry in 2s");
  EXPECT_EQ(core::ReasonOf(got), "RATE_LIMITED");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_EQ(core::ReasonOf(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"))),
            "");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::FAILED_PRECONDITION), "FAILED_PRECONDITION");
}

}  // namespace
}  // namespace credbroker::rpc
