// gMock matchers for absl::Status / absl::StatusOr (Debian's Abseil ships none).
#pragma once

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace credbroker::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code, "has code " + absl::StatusCodeToString(code)) {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + absl::StatusCodeToString(code) + " and a matching message") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

#define CB_ASSERT_OK(expr) ASSERT_THAT((expr), ::credbroker::testing::IsOk())
#define CB_EXPECT_OK(expr) EXPECT_THAT((expr), ::credbroker::testing::IsOk())

// `CB_ASSERT_OK_AND_ASSIGN(auto x, F());` — `lhs` is a declaration and cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define CB_ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  CB_ASSERT_OK_AND_ASSIGN_IMPL_(CB_TESTING_CONCAT_(cb_sor_, __LINE__), lhs, rexpr)
#define CB_TESTING_CONCAT_INNER_(a, b) a##b
#define CB_TESTING_CONCAT_(a, b) CB_TESTING_CONCAT_INNER_(a, b)
#define CB_ASSERT_OK_AND_ASSIGN_IMPL_(sor, lhs, rexpr)      \
  auto sor = (rexpr);                                       \
  ASSERT_THAT(sor.status(), ::credbroker::testing::IsOk()); \
  lhs = std::move(sor).value()
// NOLINTEND(bugprone-macro-parentheses)

}  // namespace credbroker::testing
