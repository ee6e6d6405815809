// Human durations for configuration and the CLI: "90s", "15m", "1h30m", "7d", "500ms".
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace credbroker::core {

// Parses a non-negative duration. Accepts absl's units (ns, us, ms, s, m, h) plus "d" (24h),
// which rotation periods need. Returns INVALID_ARGUMENT naming the bad input.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text);

// Formats for humans: "90d", "7d12h", "15m", "1.5s".
std::string HumanDuration(absl::Duration d);

}  // namespace credbroker::core
