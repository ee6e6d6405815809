// Status propagation macros. Debian's Abseil (20220623) has no RETURN_IF_ERROR /
// ASSIGN_OR_RETURN, so credbroker defines its own once, here.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define CB_STATUS_CONCAT_INNER_(a, b) a##b
#define CB_STATUS_CONCAT_(a, b) CB_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define CB_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status cb_status_ = (expr);      \
    if (!cb_status_.ok()) return cb_status_; \
  } while (false)

// `CB_ASSIGN_OR_RETURN(auto x, F())` declares x from F()'s value or returns its status.
// `lhs` is a declaration and `statusor` a name, so neither can be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define CB_ASSIGN_OR_RETURN(lhs, rexpr) \
  CB_ASSIGN_OR_RETURN_IMPL_(CB_STATUS_CONCAT_(cb_statusor_, __LINE__), lhs, rexpr)

#define CB_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)    \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
// NOLINTEND(bugprone-macro-parentheses)

namespace credbroker::core {

// Prefixes `status`'s message with `context` ("backend file/local: read fluximage: ...").
// Keeps the code and payloads. OK stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

// Attaches a machine-readable reason (UPPER_SNAKE, e.g. "LEASE_EXPIRED") that the gRPC edge
// sends as google.rpc.ErrorInfo.reason.
absl::Status WithReason(absl::Status status, absl::string_view reason);

// The reason attached by WithReason, or "" when none.
std::string ReasonOf(const absl::Status& status);

}  // namespace credbroker::core
