#include "credbroker/rotation/revocation_detector.h"

#include "gtest/gtest.h"

namespace credbroker::rotation {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(RevocationDetectorTest, TriggersOnceWhenEnoughDistinctCallersReport401) {
  RevocationDetector d(3, absl::Minutes(5));
  EXPECT_FALSE(d.Record("lumenfall", "v2", "a", 401, kT0));
  // The same caller again does not count twice.
  EXPECT_FALSE(d.Record("lumenfall", "v2", "a", 401, kT0 + absl::Seconds(1)));
  EXPECT_FALSE(d.Record("lumenfall", "v2", "b", 401, kT0 + absl::Seconds(2)));
  EXPECT_EQ(d.DistinctCallers("lumenfall", "v2", kT0 + absl::Seconds(2)), 2);
  EXPECT_TRUE(d.Record("lumenfall", "v2", "c", 401, kT0 + absl::Seconds(3)));
  // Later reports of the same burst do not trigger again...
  EXPECT_FALSE(d.Record("lumenfall", "v2", "d", 401, kT0 + absl::Seconds(4)));
  // ...until a window has passed and a new burst completes.
  const absl::Time later = kT0 + absl::Minutes(6);
  EXPECT_FALSE(d.Record("lumenfall", "v2", "a", 401, later));
  EXPECT_FALSE(d.Record("lumenfall", "v2", "b", 401, later));
  EXPECT_TRUE(d.Record("lumenfall", "v2", "c", 401, later));
}

TEST(RevocationDetectorTest, ReportsOutsideTheWindowDoNotAddUp) {
  RevocationDetector d(3, absl::Minutes(5));
  EXPECT_FALSE(d.Record("lumenfall", "v2", "a", 401, kT0));
  EXPECT_FALSE(d.Record("lumenfall", "v2", "b", 401, kT0 + absl::Minutes(4)));
  EXPECT_FALSE(d.Record("lumenfall", "v2", "c", 401, kT0 + absl::Minutes(6)));  // a expired
  EXPECT_TRUE(d.Record("lumenfall", "v2", "d", 401, kT0 + absl::Minutes(7)));
}

TEST(RevocationDetectorTest, ForbiddenAndRateLimitedNeverCount) {
  RevocationDetector d(2, absl::Minutes(5));
  for (int status : {403, 429, 500}) {
    EXPECT_FALSE(d.Record("lumenfall", "v2", "a", status, kT0));
    EXPECT_FALSE(d.Record("lumenfall", "v2", "b", status, kT0));
    EXPECT_FALSE(d.Record("lumenfall", "v2", "c", status, kT0));
  }
  EXPECT_EQ(d.DistinctCallers("lumenfall", "v2", kT0), 0);
}

TEST(RevocationDetectorTest, VersionsAndProvidersAreCountedApart) {
  RevocationDetector d(2, absl::Minutes(5));
  EXPECT_FALSE(d.Record("lumenfall", "v1", "a", 401, kT0));
  EXPECT_FALSE(d.Record("lumenfall", "v2", "b", 401, kT0));
  EXPECT_FALSE(d.Record("magichour", "v1", "c", 401, kT0));
  EXPECT_TRUE(d.Record("lumenfall", "v1", "d", 401, kT0));
}

}  // namespace
}  // namespace credbroker::rotation
