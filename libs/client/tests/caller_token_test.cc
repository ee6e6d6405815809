#include "credbroker/client/caller_token.h"

#include <cstdio>

#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::client {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;

TEST(CallerTokenTest, StaticTokenIsItself) { EXPECT_EQ(*StaticToken("abc")->Token(), "abc"); }

// The kubelet replaces a projected token by swapping a link to a new file: the next call sees
// the new token, whatever the old and new files' sizes and times.
TEST(CallerTokenTest, TokenFileIsReadAgainWhenReplaced) {
  testing::TempDir dir;
  const std::string path = dir.Join("token");
  testing::WriteFile(path, "first-token\n");
  TokenFile token(path);
  EXPECT_EQ(*token.Token(), "first-token");
  EXPECT_EQ(*token.Token(), "first-token");
  testing::WriteFile(dir.Join("token.new"), "other-token");  // the same size, a new inode
  ASSERT_EQ(std::rename(dir.Join("token.new").c_str(), path.c_str()), 0);
  EXPECT_EQ(*token.Token(), "other-token");
  testing::WriteFile(path, "  a-longer-third-token \n");  // rewritten in place
  EXPECT_EQ(*token.Token(), "a-longer-third-token");
}

TEST(CallerTokenTest, AMissingOrEmptyTokenFileIsUnauthenticatedNamingThePath) {
  testing::TempDir dir;
  TokenFile missing(dir.Join("nope"));
  EXPECT_THAT(missing.Token(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr(dir.Join("nope"))));
  testing::WriteFile(dir.Join("empty"), "\n");
  TokenFile empty(dir.Join("empty"));
  EXPECT_THAT(empty.Token(), StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("empty")));
  // A token that was readable and then vanished is not served from memory.
  testing::WriteFile(dir.Join("gone"), "t0k3n");
  TokenFile gone(dir.Join("gone"));
  ASSERT_THAT(gone.Token(), IsOk());
  std::remove(dir.Join("gone").c_str());
  EXPECT_THAT(gone.Token(), StatusIs(absl::StatusCode::kUnauthenticated));
}

}  // namespace
}  // namespace credbroker::client
