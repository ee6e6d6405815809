#include "credbroker/leasing/lease_counts.h"

#include "gtest/gtest.h"

namespace credbroker::leasing {
namespace {

state::LeaseRecord Lease(const std::string& id, const std::string& caller,
                         const std::string& version = "v1") {
  state::LeaseRecord l;
  l.id = id;
  l.caller = caller;
  l.provider = "lumenfall";
  l.key_version = version;
  return l;
}

TEST(LeaseCountsTest, CountsLeasesPerCallerAndPerVersion) {
  LeaseCounts counts;
  counts.Apply(Lease("1", "a"), +1);
  counts.Apply(Lease("2", "a", "v2"), +1);
  counts.Apply(Lease("3", "b"), +1);
  EXPECT_EQ(counts.ByCaller("a", "lumenfall"), 2);
  EXPECT_EQ(counts.ByCaller("a", "fluximage"), 0);
  EXPECT_EQ(counts.ByVersion("lumenfall", "v1"), 2);
  counts.Apply(Lease("1", "a"), -1);
  EXPECT_EQ(counts.ByCaller("a", "lumenfall"), 1);
  EXPECT_EQ(counts.ByVersion("lumenfall", "v1"), 1);
}

TEST(LeaseCountsTest, AReservationHoldsASlotUntilItsLeaseArrivesOrIsCancelled) {
  LeaseCounts counts;
  counts.Apply(Lease("1", "a"), +1);  // e.g. held through another replica
  ASSERT_TRUE(counts.Reserve("2", "a", "lumenfall", 2));
  EXPECT_FALSE(counts.Reserve("3", "a", "lumenfall", 2));  // the in-flight one counts
  EXPECT_TRUE(counts.Reserve("3", "b", "lumenfall", 2));   // per caller
  counts.Apply(Lease("2", "a"), +1);                       // the reserved lease was written
  EXPECT_EQ(counts.ByCaller("a", "lumenfall"), 2);         // counted once
  counts.Cancel("3");                                      // b's write failed
  EXPECT_EQ(counts.ByCaller("b", "lumenfall"), 0);
  counts.Cancel("2");  // already counted: no-op
  EXPECT_EQ(counts.ByCaller("a", "lumenfall"), 2);
  EXPECT_TRUE(counts.Reserve("4", "a", "lumenfall", 0));  // 0: no limit
}

}  // namespace
}  // namespace credbroker::leasing
