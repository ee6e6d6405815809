// The errors every LeaseStore implementation returns, worded once.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace credbroker::state {

inline absl::Status LeaseExists() {
  return absl::AlreadyExistsError("a lease with this id exists");
}
inline absl::Status LeaseMissing() { return absl::NotFoundError("no such lease in the store"); }
inline absl::Status LeaseChanged(int64_t expected, int64_t actual) {
  return absl::AbortedError(
      absl::StrCat("lease changed concurrently (revision ", actual, ", expected ", expected, ")"));
}

}  // namespace credbroker::state
