#include "credbroker/core/log.h"

#include <string>
#include <vector>

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

TEST_F(LogTest, DropsLinesBelowTheLevel) {
  SetLogLevel(LogLevel::kWarning);
  LogInfo("quiet");
  LogDebug("quieter");
  LogError("loud");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_THAT(lines_[0], HasSubstr("loud"));
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
