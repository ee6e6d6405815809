#include "credbroker/core/log.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

using ::testing::HasSubstr;

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogSinkForTest([this](absl::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override {
    SetLogSinkForTest(nullptr);
    SetLogLevel(LogLevel::kInfo);
  }
  std::vector<std::string> lines_;
};

TEST_F(LogTest, WritesOneJsonObjectPerLineWithFields) {
  LogInfo("key loaded", {{"provider", "lumenfall"}, {"fingerprint", "3e0811e732f0"}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr("\"level\":\"info\""));
  EXPECT_THAT(lines_[0], HasSubstr("\"msg\":\"key loaded\""));
  EXPECT_THAT(lines_[0], HasSubstr("\"provider\":\"lumenfall\""));
  EXPECT_EQ(lines_[0].front(), '{');
  EXPECT_EQ(lines_[0].back(), '}');
}

TEST_F(LogTest, EscapesQuotesNewlinesAndControlCharacters) {
  LogWarning("a \"quoted\"\nline", {{"k", std::string("tab\there\x01", 9)}});
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr(R"("msg":"a \"quoted\"\nline")"));
  EXPECT_THAT(lines_[0], HasSubstr(R"("k":"tab\there\u0001")"));
  EXPECT_EQ(lines_[0].find('\n'), std::string::npos);
}

TEST(AppendJsonStringTest, EscapesEveryPositionAndKeepsRunsBetween) {
  std::string out = "x";
  AppendJsonString(out, "\\start mid\"dle end\x1f");
  EXPECT_EQ(out, R"(x"\\start mid\"dle end\u001f")");
  out.clear();
  AppendJsonString(out, "");
  EXPECT_EQ(out, R"("")");
}

TEST_F(LogTest, DropsLinesBelowTheLevel) {
  SetLogLevel(LogLevel::kWarning);
  LogInfo("quiet");
  LogDebug("quieter");
  LogError("loud");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr("loud"));
}

// The timestamp formatter must print what absl::FormatTime prints, across leap years, century
// rules, month ends, before the epoch and at every precision used.
TEST(AppendUtcTimestampTest, MatchesAbslFormatTime) {
  std::vector<absl::Time> times = {
      absl::UnixEpoch(),
      absl::FromCivil(absl::CivilSecond(2000, 2, 29, 23, 59, 59), absl::UTCTimeZone()),
      absl::FromCivil(absl::CivilSecond(2100, 3, 1, 0, 0, 0), absl::UTCTimeZone()),
      absl::FromCivil(absl::CivilSecond(1969, 12, 31, 23, 59, 59), absl::UTCTimeZone()) +
          absl::Nanoseconds(123456789),
      absl::FromCivil(absl::CivilSecond(1900, 1, 1, 0, 0, 0), absl::UTCTimeZone()) -
          absl::Nanoseconds(1),
      absl::FromUnixMicros(1796083200123456),  // 2026-12-01T00:00:00.123456Z
  };
  // A deterministic spread over 1601..2400 (a 64-bit LCG; no seed to carry between runs).
  uint64_t x = 0x9e3779b97f4a7c15u;
  for (int i = 0; i < 2000; ++i) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    const int64_t span_s = int64_t{800} * 366 * 86400;
    const int64_t s = static_cast<int64_t>(x % static_cast<uint64_t>(span_s)) - 11644473600;
    times.push_back(absl::FromUnixSeconds(s) + absl::Nanoseconds(static_cast<int64_t>(x >> 34)));
  }
  for (absl::Time t : times) {
    for (int digits : {0, 3, 6, 9}) {
      std::string got;
      AppendUtcTimestamp(got, t, digits);
      const std::string format =
          digits == 0 ? "%Y-%m-%dT%H:%M:%SZ" : absl::StrCat("%Y-%m-%dT%H:%M:%E", digits, "SZ");
      ASSERT_EQ(got, absl::FormatTime(format, t, absl::UTCTimeZone()))
          << "digits " << digits << " at " << absl::ToUnixNanos(t);
    }
  }
}

TEST(LogLevelTest, ParsesNames) {
  LogLevel level;
  EXPECT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_TRUE(ParseLogLevel("error", &level));
  EXPECT_EQ(level, LogLevel::kError);
  EXPECT_FALSE(ParseLogLevel("verbose", &level));
}

}  // namespace
}  // namespace credbroker::core
