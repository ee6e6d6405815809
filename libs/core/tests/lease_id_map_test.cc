#include "credbroker/core/lease_id_map.h"

#include <map>
#include <string>

#include "absl/strings/escaping.h"
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

TEST(LeaseKeyTest, DecodesAsBase64UrlDoes) {
  // Every byte value in every position, against absl's codec.
  for (int b = 0; b < 256; ++b) {
    std::string bytes(16, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((b + 37 * i) & 0xFF);
    const std::string id = absl::WebSafeBase64Escape(bytes);
    std::optional<LeaseKey> key = LeaseKey::Of(id);
    ASSERT_TRUE(key.has_value()) << id;
    EXPECT_EQ(key->Id(), id);
    std::string decoded;
    ASSERT_TRUE(absl::WebSafeBase64Unescape(key->Id(), &decoded));
    EXPECT_EQ(decoded, bytes);
  }
  // 'x' differs from 'w' only in the padding bits: the same bytes, but not the id they encode.
  EXPECT_TRUE(LeaseKey::Of("_____________________w").has_value());
  EXPECT_FALSE(LeaseKey::Of("_____________________x").has_value());
}

TEST(LeaseKeyTest, IdsNewLeaseIdCannotProduceHaveNoKey) {
  EXPECT_FALSE(LeaseKey::Of("l1").has_value());
  EXPECT_FALSE(LeaseKey::Of(std::string(23, 'A')).has_value());
  EXPECT_FALSE(LeaseKey::Of("AAAAAAAAAAAAAAAAAAAAA+").has_value());  // not base64url
  // 22 characters carry 132 bits; a last character with low bits set is not NewLeaseId's.
  EXPECT_FALSE(LeaseKey::Of("AAAAAAAAAAAAAAAAAAAAAB").has_value());
  EXPECT_TRUE(LeaseKey::Of("AAAAAAAAAAAAAAAAAAAAAA").has_value());
}

TEST(LeaseIdMapTest, FindOrAddGivesTheValueAddingItWhenAbsent) {
  LeaseIdMap<int> m;
  const std::string made = NewLeaseId();
  for (const std::string& id : {made, std::string("l1")}) {
    EXPECT_EQ(m.FindOrAdd(id), 0) << id;
    m.FindOrAdd(id) = 7;
    EXPECT_EQ(m.FindOrAdd(id), 7) << id;
    ASSERT_NE(m.Find(id), nullptr);
    EXPECT_EQ(*m.Find(id), 7);
  }
  EXPECT_EQ(m.size(), 2u);
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
