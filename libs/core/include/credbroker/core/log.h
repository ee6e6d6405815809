// Structured logging: one JSON object per line on stderr (or a test sink).
// Fields are strings; callers pass fingerprints, never key material (SecretBytes cannot be
// passed: there is no conversion to string_view).
// Thread-safety: all functions may be called concurrently; each line is written atomically.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace credbroker::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

using LogField = std::pair<absl::string_view, absl::string_view>;

void Log(LogLevel level, absl::string_view message, absl::Span<const LogField> fields);
inline void Log(LogLevel level, absl::string_view message,
                std::initializer_list<LogField> fields = {}) {
  Log(level, message, absl::Span<const LogField>(fields.begin(), fields.size()));
}

inline void LogInfo(absl::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kInfo, m, f);
}
inline void LogWarning(absl::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kWarning, m, f);
}
inline void LogError(absl::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kError, m, f);
}
inline void LogDebug(absl::string_view m, std::initializer_list<LogField> f = {}) {
  Log(LogLevel::kDebug, m, f);
}

void SetLogLevel(LogLevel level);
// Parses "debug", "info", "warning", "error".
bool ParseLogLevel(absl::string_view text, LogLevel* out);

// Replaces the output (a whole line without the trailing newline) — for tests. nullptr restores
// stderr.
void SetLogSinkForTest(std::function<void(absl::string_view line)> sink);

// Appends `s` to `out` as a JSON string literal, quotes included.
void AppendJsonString(std::string& out, absl::string_view s);
// `s` as a JSON string literal, quotes included (for request bodies built by hand).
std::string JsonQuote(absl::string_view s);

// Appends `t` as RFC 3339 in UTC with `fraction_digits` (0 to 9) digits of second, the same text
// as absl::FormatTime("%Y-%m-%dT%H:%M:%E<n>SZ", t, absl::UTCTimeZone()) for years 0000-9999,
// without its time-zone machinery (log and audit lines stamp every line).
void AppendUtcTimestamp(std::string& out, absl::Time t, int fraction_digits);

}  // namespace credbroker::core
