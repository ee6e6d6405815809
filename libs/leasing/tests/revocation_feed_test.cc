#include "credbroker/leasing/revocation_feed.h"

#include <string>
#include <vector>

#include "credbroker/state/leadership.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::leasing {
namespace {

using ::credbroker::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

class RevocationFeedTest : public ::testing::Test {
 protected:
  void Report(const std::string& caller, int status, absl::Time at,
              const std::string& kind = "key_rejected") {
    facts_.AddAuthFailure({"lumenfall", "v1", caller, status, at, kind},
                          [](const absl::Status& s) { EXPECT_THAT(s, IsOk()); });
  }
  absl::StatusOr<std::unique_ptr<RevocationFeed>> Start(absl::Time now) {
    return RevocationFeed::Start(
        &facts_, &leadership_, &detector_,
        [this](const std::string& p, const std::string& v) { suspected_.push_back(p + "/" + v); },
        now);
  }
  state::InMemorySharedFacts facts_;
  state::ManualLeadership leadership_;
  rotation::RevocationDetector detector_{2, absl::Minutes(5)};
  std::vector<std::string> suspected_;
};

// Reports stored by any replica reach the leader's detection; two distinct callers with 401s on
// one version make a burst.
TEST_F(RevocationFeedTest, TheLeaderSuspectsAKeyFromReportsOfEveryReplica) {
  leadership_.Set(1);
  auto feed = Start(kT0);
  ASSERT_THAT(feed, IsOk());
  Report("billing/api", 401, kT0);
  Report("billing/api", 429, kT0);  // rate limits never count
  EXPECT_THAT(suspected_, IsEmpty());
  Report("search/api", 401, kT0 + absl::Seconds(3));
  EXPECT_THAT(suspected_, ElementsAre("lumenfall/v1"));
}

// "EXPIRED_API_KEY" (example-ai) from a single caller is enough to check the key at once; a
// flood of them still makes one check per window.
TEST_F(RevocationFeedTest, OneExpiredKeyReportIsEnough) {
  leadership_.Set(1);
  auto feed = Start(kT0);
  ASSERT_THAT(feed, IsOk());
  Report("billing/api", 401, kT0, "key_expired");
  EXPECT_THAT(suspected_, ElementsAre("lumenfall/v1"));
  Report("search/api", 401, kT0 + absl::Seconds(1), "key_expired");
  EXPECT_THAT(suspected_, ElementsAre("lumenfall/v1"));
}

// A follower counts (so a new leader has the window) but never acts.
TEST_F(RevocationFeedTest, AFollowerDecidesNothing) {
  auto feed = Start(kT0);
  ASSERT_THAT(feed, IsOk());
  Report("billing/api", 401, kT0);
  Report("search/api", 401, kT0);
  EXPECT_THAT(suspected_, IsEmpty());
  EXPECT_EQ(detector_.DistinctCallers("lumenfall", "v1", kT0), 2);
}

// A restart in the middle of a burst: the reports stored before it count with those after.
TEST_F(RevocationFeedTest, ReportsStoredBeforeAStartCount) {
  leadership_.Set(1);
  Report("billing/api", 401, kT0);
  auto feed = Start(kT0 + absl::Seconds(10));
  ASSERT_THAT(feed, IsOk());
  EXPECT_THAT(suspected_, IsEmpty());
  Report("search/api", 401, kT0 + absl::Seconds(20));
  EXPECT_THAT(suspected_, ElementsAre("lumenfall/v1"));
}

}  // namespace
}  // namespace credbroker::leasing
