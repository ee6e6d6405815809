#include "credbroker/core/duration.h"

#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

TEST(DurationTest, ParsesAbslUnitsAndDays) {
  EXPECT_EQ(*ParseDuration("90s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("15m"), absl::Minutes(15));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseDuration("7d"), absl::Hours(24 * 7));
  EXPECT_EQ(*ParseDuration("90d"), absl::Hours(24 * 90));
  EXPECT_EQ(*ParseDuration("1d12h"), absl::Hours(36));
  EXPECT_EQ(*ParseDuration(" 0 "), absl::ZeroDuration());
}

TEST(DurationTest, RejectsMalformedAndNegative) {
  for (const char* bad : {"", "15", "abc", "-5m", "1x", "d", "xd", "7d3", "inf", "1.5.2s"}) {
    auto d = ParseDuration(bad);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(DurationTest, HumanDurationUsesDays) {
  EXPECT_EQ(HumanDuration(absl::Hours(24 * 90)), "90d");
  EXPECT_EQ(HumanDuration(absl::Hours(36)), "1d12h");
  EXPECT_EQ(HumanDuration(absl::Minutes(15)), "15m");
  EXPECT_EQ(HumanDuration(-absl::Hours(48)), "-2d");
}

}  // namespace
}  // namespace credbroker::core
