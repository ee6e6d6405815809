#include "credbroker/core/lease_id_map.h"

#include <map>
#include <string>

#include "credbroker/core/ids.h"
#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

TEST(LeaseKeyTest, ANewLeaseIdRoundTripsThroughSixteenBytes) {
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewLeaseId();
    std::optional<LeaseKey> key = LeaseKey::Of(id);
    ASSERT_TRUE(key.has_value()) << id;
    EXPECT_EQ(key->Id(), id);
  }
  static_assert(sizeof(LeaseKey) == 16);
}

TEST(LeaseKeyTest, IdsNewLeaseIdCannotProduceHaveNoKey) {
  EXPECT_FALSE(LeaseKey::Of("l1").has_value());
  EXPECT_FALSE(LeaseKey::Of(std::string(23, 'A')).has_value());
  EXPECT_FALSE(LeaseKey::Of("AAAAAAAAAAAAAAAAAAAAA+").has_value());  // not base64url
  // 22 characters carry 132 bits; a last character with low bits set is not NewLeaseId's.
  EXPECT_FALSE(LeaseKey::Of("AAAAAAAAAAAAAAAAAAAAAB").has_value());
  EXPECT_TRUE(LeaseKey::Of("AAAAAAAAAAAAAAAAAAAAAA").has_value());
}

TEST(LeaseIdMapTest, HoldsAnyIdAndGivesEachBack) {
  LeaseIdMap<int> m;
  const std::string made = NewLeaseId();
  EXPECT_TRUE(m.Put(made, 1));
  EXPECT_TRUE(m.Put("l1", 2));  // not NewLeaseId's: kept whole
  EXPECT_FALSE(m.Put(made, 3)) << "an existing id is replaced, not added";
  EXPECT_EQ(m.size(), 2u);
  ASSERT_NE(m.Find(made), nullptr);
  EXPECT_EQ(*m.Find(made), 3);
  EXPECT_EQ(*m.Find("l1"), 2);
  EXPECT_EQ(m.Find(NewLeaseId()), nullptr);
  std::map<std::string, int> seen;
  m.ForEach([&](const std::string& id, int v) { seen[id] = v; });
  EXPECT_EQ(seen, (std::map<std::string, int>{{made, 3}, {"l1", 2}}));
  EXPECT_TRUE(m.Erase(made));
  EXPECT_FALSE(m.Erase(made));
  EXPECT_TRUE(m.Erase("l1"));
  EXPECT_EQ(m.size(), 0u);
}

}  // namespace
}  // namespace credbroker::core
