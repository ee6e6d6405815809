#include "credbroker/core/status_macros.h"

#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  CB_ASSIGN_OR_RETURN(int h, Half(x));
  CB_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  CB_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Quarter(5).status().message(), "odd");
}

TEST(StatusMacrosTest, ReturnIfError) {
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(3).code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusMacrosTest, AnnotateKeepsCodeAndReason) {
  absl::Status s = WithReason(absl::NotFoundError("no such lease"), "LEASE_NOT_FOUND");
  absl::Status a = Annotate(s, "renew");
  EXPECT_EQ(a.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(a.message(), "renew: no such lease");
  EXPECT_EQ(ReasonOf(a), "LEASE_NOT_FOUND");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "x").ok());
}

TEST(StatusMacrosTest, ReasonIsEmptyWhenUnsetAndNotAttachedToOk) {
  EXPECT_EQ(ReasonOf(absl::InternalError("x")), "");
  EXPECT_TRUE(WithReason(absl::OkStatus(), "X").ok());
}

}  // namespace
}  // namespace credbroker::core
