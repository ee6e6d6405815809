#include "credbroker/core/secret_bytes.h"

#include <sstream>
#include <string>
#include <type_traits>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

// A secret cannot turn into a string without reveal(), so StrCat/log fields cannot take one.
static_assert(!std::is_convertible_v<SecretBytes, absl::string_view>);
static_assert(!std::is_convertible_v<SecretBytes, std::string>);
static_assert(!std::is_copy_constructible_v<SecretBytes>);

TEST(SecretBytesTest, PrintsRedactedThroughStreams) {
  SecretBytes s("flx_live_0123456789abcdef");
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "<redacted>");
}

TEST(SecretBytesTest, RevealReturnsTheBytes) {
  SecretBytes s("abc");
  EXPECT_EQ(s.reveal(), "abc");
  EXPECT_EQ(s.size(), 3u);
}

TEST(SecretBytesTest, MoveLeavesSourceEmpty) {
  SecretBytes a("material");
  SecretBytes b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(b.reveal(), "material");
  SecretBytes c;
  c = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.reveal(), "material");
}

TEST(SecretBytesTest, CloneAndEquality) {
  SecretBytes a("same");
  SecretBytes b = a.Clone();
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a == SecretBytes("other"));
  EXPECT_FALSE(a == SecretBytes("sam"));
}

}  // namespace
}  // namespace credbroker::core
