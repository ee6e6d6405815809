#include "credbroker/core/scopes.h"

#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

using ::credbroker::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ScopesTest, ParsesCommasAndSpacesSortedWithoutDuplicates) {
  auto scopes = ParseScopes(" write, read\nread  webhook,");
  ASSERT_TRUE(scopes.ok()) << scopes.status();
  EXPECT_THAT(*scopes, ElementsAre("read", "webhook", "write"));
  auto empty = ParseScopes(" , \n");
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(*empty, IsEmpty());
}

TEST(ScopesTest, RefusesWhatIsNotAScopeName) {
  EXPECT_THAT(ParseScopes("read Admin"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                  HasSubstr("\"Admin\" is not a scope name")));
  EXPECT_THAT(ParseScopes("-read"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseScopes(std::string(65, 'a')), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(IsScopeName("full_access"));
  EXPECT_TRUE(IsScopeName("images:generate"));
  EXPECT_FALSE(IsScopeName(""));
  EXPECT_FALSE(IsScopeName("read\x01"));
}

TEST(ScopesTest, RefusesMoreThanTheMaximum) {
  std::string many;
  for (size_t i = 0; i <= kMaxScopes; ++i) absl::StrAppend(&many, "s", i, " ");
  EXPECT_THAT(ParseScopes(many),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 16")));
}

TEST(ScopesTest, WithinIsSubsetOfSortedLists) {
  const std::vector<std::string> all = {"admin", "read", "write"};
  EXPECT_TRUE(ScopesWithin(std::vector<std::string>{"read"}, all));
  EXPECT_TRUE(ScopesWithin(std::vector<std::string>{}, all));
  EXPECT_TRUE(ScopesWithin(all, all));
  EXPECT_FALSE(ScopesWithin(std::vector<std::string>{"read", "webhook"}, all));
}

}  // namespace
}  // namespace credbroker::core
