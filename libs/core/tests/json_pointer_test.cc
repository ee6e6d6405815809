#include "credbroker/core/json_pointer.h"

#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

using ::credbroker::testing::StatusIs;

TEST(JsonPointerTest, WalksObjectsAndArrays) {
  const std::string doc =
      R"({"data":{"id":7,"keys":[{"k":"x"},{"k":"y"}],"a/b":"slash","m~n":"t"}})";
  EXPECT_EQ(*JsonPointerString(doc, "/data/id"), "7");
  EXPECT_EQ(*JsonPointerString(doc, "/data/keys/1/k"), "y");
  EXPECT_EQ(*JsonPointerString(doc, "/data/a~1b"), "slash");
  EXPECT_EQ(*JsonPointerString(doc, "/data/m~0n"), "t");
  EXPECT_THAT(JsonPointerString(doc, "/data/missing"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(JsonPointerString(doc, "/data/keys/9/k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(JsonPointerString(doc, "/data"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(JsonPointerString("not json", "/a"), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Numbers print as integers only when a double holds one exactly; larger ones (which no int64
// holds) and fractions print as numbers, never through an out-of-range cast.
TEST(JsonPointerTest, NumbersOutsideInt64AreNotCast) {
  EXPECT_EQ(*JsonPointerString(R"({"id":9007199254740992})", "/id"), "9007199254740992");
  EXPECT_EQ(*JsonPointerString(R"({"id":-42})", "/id"), "-42");
  EXPECT_EQ(*JsonPointerString(R"({"id":1e300})", "/id"), "1e+300");
  EXPECT_EQ(*JsonPointerString(R"({"id":2.5})", "/id"), "2.5");
}

}  // namespace
}  // namespace credbroker::core
