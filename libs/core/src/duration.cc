#include "credbroker/core/duration.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace credbroker::core {

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text) {
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  if (rest.empty()) return absl::InvalidArgumentError("empty duration");
  absl::Duration days = absl::ZeroDuration();
  // A leading "<N>d" component; the remainder (if any) goes to absl::ParseDuration.
  size_t d_pos = rest.find('d');
  if (d_pos != absl::string_view::npos) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(rest.substr(0, d_pos), &n) || n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid duration \"", text, "\": expected e.g. 90s, 15m, 1h30m, 7d"));
    }
    days = absl::Hours(24) * n;
    rest.remove_prefix(d_pos + 1);
    if (rest.empty()) return days;
  }
  absl::Duration d;
  if (!absl::ParseDuration(rest, &d) || d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid duration \"", text, "\": expected e.g. 90s, 15m, 1h30m, 7d"));
  }
  // absl accepts a bare "0" without unit; anything else without a unit is rejected by absl.
  return days + d;
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) return absl::StrCat("-", core::HumanDuration(-d));
  int64_t days = absl::IDivDuration(d, absl::Hours(24), &d);
  if (days == 0) return ::absl::FormatDuration(d);
  if (d == absl::ZeroDuration()) return absl::StrCat(days, "d");
  return absl::StrCat(days, "d", ::absl::FormatDuration(d));
}

}  // namespace credbroker::core
