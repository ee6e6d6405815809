#include "credbroker/core/ids.h"

#include <set>

#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

TEST(IdsTest, LeaseIdsAre22UrlSafeCharactersAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewLeaseId();
    EXPECT_EQ(id.size(), 22u);
    EXPECT_TRUE(LooksLikeLeaseId(id)) << id;
    EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
  }
}

TEST(IdsTest, LooksLikeLeaseIdRejectsOtherShapes) {
  EXPECT_FALSE(LooksLikeLeaseId(""));
  EXPECT_FALSE(LooksLikeLeaseId("short"));
  EXPECT_FALSE(LooksLikeLeaseId("AAAAAAAAAAAAAAAAAAAAA="));   // padding
  EXPECT_FALSE(LooksLikeLeaseId("AAAAAAAAAAAAAAAAAAAA+/"));   // not URL-safe
  EXPECT_FALSE(LooksLikeLeaseId("AAAAAAAAAAAAAAAAAAAAAAA"));  // 23
  EXPECT_TRUE(LooksLikeLeaseId("AAAAAAAAAAAAAAAAAAAA-_"));
}

TEST(IdsTest, Sha256MatchesFipsVector) {
  // FIPS 180-2 appendix B.1.
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Fingerprint("abc"), "ba7816bf8f01");
}

}  // namespace
}  // namespace credbroker::core
