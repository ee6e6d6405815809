#include "credbroker/core/batch_scope.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

using ::testing::ElementsAre;

TEST(BatchScopeTest, WithoutAScopeTheCallerFlushesAtOnce) {
  int flushed = 0;
  EXPECT_FALSE(BatchScope::AtEnd(&flushed, [&] { ++flushed; }));
  EXPECT_EQ(flushed, 0);
}

TEST(BatchScopeTest, FlushesRunOnceEachWhenTheScopeEndsInRegistrationOrder) {
  std::vector<char> order;
  const int a = 0;
  const int b = 0;
  {
    BatchScope scope;
    EXPECT_TRUE(BatchScope::AtEnd(&a, [&] { order.push_back('a'); }));
    EXPECT_TRUE(BatchScope::AtEnd(&b, [&] { order.push_back('b'); }));
    EXPECT_TRUE(BatchScope::AtEnd(&a, [&] { order.push_back('x'); }));  // already registered
    EXPECT_TRUE(order.empty());
  }
  EXPECT_THAT(order, ElementsAre('a', 'b'));
  EXPECT_FALSE(BatchScope::AtEnd(&a, [] {}));  // closed
}

TEST(BatchScopeTest, AnInnerScopeDefersToTheOuterOne) {
  int flushed = 0;
  {
    BatchScope outer;
    {
      BatchScope inner;
      EXPECT_TRUE(BatchScope::AtEnd(&flushed, [&] { ++flushed; }));
    }
    EXPECT_EQ(flushed, 0);
  }
  EXPECT_EQ(flushed, 1);
}

TEST(BatchScopeTest, AFlushThatRegistersAgainRunsInTheSameScope) {
  int first = 0;
  int second = 0;
  {
    BatchScope scope;
    EXPECT_TRUE(BatchScope::AtEnd(&first, [&] {
      ++first;
      EXPECT_TRUE(BatchScope::AtEnd(&second, [&] { ++second; }));
    }));
  }
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
}

TEST(BatchScopeTest, AScopeBelongsToItsThread) {
  BatchScope scope;
  bool registered_elsewhere = true;
  std::thread other([&] { registered_elsewhere = BatchScope::AtEnd(&scope, [] {}); });
  other.join();
  EXPECT_FALSE(registered_elsewhere);
}

}  // namespace
}  // namespace credbroker::core
