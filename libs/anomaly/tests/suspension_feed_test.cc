#include "credbroker/anomaly/suspension_feed.h"

#include "credbroker/core/clock.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::anomaly {
namespace {

using ::credbroker::testing::IsOk;

// A suspension decided on one replica (stored in the shared facts) is enforced by the detector of
// every replica: those stored before this one started, and those stored later.
TEST(SuspensionFeedTest, EveryStoredSuspensionIsEnforcedHere) {
  core::FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  const absl::Time now = clock.Now();
  state::InMemorySharedFacts facts;
  AnomalyDetector detector(AnomalyOptions{}, &clock, nullptr, nullptr);
  ASSERT_THAT(facts.Suspend({"billing/api", "lumenfall", now + absl::Minutes(15), "rate_spike"}),
              IsOk());
  ASSERT_THAT(facts.Suspend({"old/caller", "lumenfall", now - absl::Minutes(1), "ended"}), IsOk());
  auto feed = SuspensionFeed::Start(&facts, &detector, now);
  ASSERT_THAT(feed, IsOk());
  EXPECT_EQ(detector.SuspendedUntil("billing/api", "lumenfall"), now + absl::Minutes(15));
  EXPECT_LE(detector.SuspendedUntil("old/caller", "lumenfall"), now);
  EXPECT_LE(detector.SuspendedUntil("search/api", "lumenfall"), now);
  ASSERT_THAT(facts.Suspend({"search/api", "lumenfall", now + absl::Hours(1), "new_caller"}),
              IsOk());
  EXPECT_EQ(detector.SuspendedUntil("search/api", "lumenfall"), now + absl::Hours(1));
  // A shorter suspension stored later does not cut the longer one short.
  ASSERT_THAT(facts.Suspend({"search/api", "lumenfall", now + absl::Minutes(5), "again"}), IsOk());
  EXPECT_EQ(detector.SuspendedUntil("search/api", "lumenfall"), now + absl::Hours(1));
}

}  // namespace
}  // namespace credbroker::anomaly
