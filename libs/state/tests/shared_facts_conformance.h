// The behaviour every SharedFacts implementation shares, as a typed test suite. An implementation's
// test instantiates it with a factory whose Make(retention) returns a store the factory owns:
//   INSTANTIATE_TYPED_TEST_SUITE_P(My, SharedFactsConformanceTest, ::testing::Types<MyFactory>);
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "credbroker/state/shared_facts.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::state {

inline const absl::Time kFactsT0 = absl::FromUnixSeconds(1'800'000'000);

inline AuthFailureReport Report401(const std::string& caller, absl::Time at) {
  return {"lumenfall", "v1", caller, 401, at, "key_rejected"};
}

// "report:caller@revision" / "suspend:caller@revision" for each fact, in order.
inline std::vector<std::string> Describe(const std::vector<Fact>& facts) {
  std::vector<std::string> out;
  for (const Fact& f : facts) {
    out.push_back(f.kind == Fact::Kind::kAuthFailure
                      ? absl::StrCat("report:", f.report.caller, "@", f.revision)
                      : absl::StrCat("suspend:", f.suspension.caller, "@", f.revision));
  }
  return out;
}

template <typename Factory>
class SharedFactsConformanceTest : public ::testing::Test {
 protected:
  void AddReport(const AuthFailureReport& r) {
    absl::Status stored;
    absl::Notification done;
    facts_->AddAuthFailure(r, [&](absl::Status s) {
      stored = std::move(s);
      done.Notify();
    });
    // A store may answer from another thread.
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    ASSERT_THAT(stored, testing::IsOk());
  }
  Factory factory_;
  SharedFacts* facts_ = factory_.Make(absl::Minutes(10));
};

TYPED_TEST_SUITE_P(SharedFactsConformanceTest);

TYPED_TEST_P(SharedFactsConformanceTest, FactsAreListedAndWatchedInRevisionOrder) {
  SharedFacts& facts = *this->facts_;
  this->AddReport(Report401("billing/api", kFactsT0));
  auto listing = facts.List(kFactsT0);
  ASSERT_THAT(listing, testing::IsOk());
  ASSERT_EQ(listing->facts.size(), 1u);
  EXPECT_EQ(listing->facts[0].report.kind, "key_rejected");
  absl::Mutex mu;
  std::vector<Fact> seen;
  auto watch = facts.Watch(listing->revision, [&](const std::vector<Fact>& f) {
    absl::MutexLock lock(&mu);
    seen.insert(seen.end(), f.begin(), f.end());
  });
  ASSERT_THAT(watch, testing::IsOk());
  this->AddReport(Report401("search/api", kFactsT0 + absl::Seconds(1)));
  ASSERT_THAT(facts.Suspend({"billing/api", "lumenfall", kFactsT0 + absl::Minutes(15), "spike"}),
              testing::IsOk());
  const int64_t r = listing->revision;
  {
    absl::MutexLock lock(&mu);
    EXPECT_THAT(Describe(seen),
                ::testing::ElementsAre(absl::StrCat("report:search/api@", r + 1),
                                       absl::StrCat("suspend:billing/api@", r + 2)));
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].report.http_status, 401);
    EXPECT_EQ(seen[0].report.key_version, "v1");
    EXPECT_EQ(seen[0].report.kind, "key_rejected");
    EXPECT_EQ(seen[0].report.at, kFactsT0 + absl::Seconds(1));
    EXPECT_EQ(seen[1].suspension.until, kFactsT0 + absl::Minutes(15));
    EXPECT_EQ(seen[1].suspension.reason, "spike");
  }
  auto all = facts.List(kFactsT0 + absl::Seconds(2));
  ASSERT_THAT(all, testing::IsOk());
  EXPECT_THAT(Describe(all->facts),
              ::testing::ElementsAre(absl::StrCat("report:billing/api@", r),
                                     absl::StrCat("report:search/api@", r + 1),
                                     absl::StrCat("suspend:billing/api@", r + 2)));
  EXPECT_EQ(all->revision, r + 2);
  // A watch from an earlier revision replays what it missed.
  std::vector<Fact> replayed;
  auto late = facts.Watch(
      r, [&](const std::vector<Fact>& f) { replayed.insert(replayed.end(), f.begin(), f.end()); });
  ASSERT_THAT(late, testing::IsOk());
  EXPECT_EQ(replayed.size(), 2u);
}

TYPED_TEST_P(SharedFactsConformanceTest, OldReportsAndEndedSuspensionsAreNotListed) {
  SharedFacts& facts = *this->facts_;
  this->AddReport(Report401("old/caller", kFactsT0));
  ASSERT_THAT(facts.Suspend({"brief/caller", "lumenfall", kFactsT0 + absl::Minutes(1), "x"}),
              testing::IsOk());
  // Eleven minutes later: the report is past the 10-minute retention, the suspension has ended.
  this->AddReport(Report401("new/caller", kFactsT0 + absl::Minutes(11)));
  auto listing = facts.List(kFactsT0 + absl::Minutes(11));
  ASSERT_THAT(listing, testing::IsOk());
  ASSERT_EQ(listing->facts.size(), 1u);
  EXPECT_EQ(listing->facts[0].report.caller, "new/caller");
}

TYPED_TEST_P(SharedFactsConformanceTest, ALaterSuspensionReplacesTheEarlierOne) {
  SharedFacts& facts = *this->facts_;
  ASSERT_THAT(facts.Suspend({"billing/api", "lumenfall", kFactsT0 + absl::Minutes(15), "first"}),
              testing::IsOk());
  ASSERT_THAT(facts.Suspend({"billing/api", "lumenfall", kFactsT0 + absl::Hours(1), "second"}),
              testing::IsOk());
  ASSERT_THAT(facts.Suspend({"billing/api", "magichour", kFactsT0 + absl::Hours(1), "other"}),
              testing::IsOk());
  auto listing = facts.List(kFactsT0);
  ASSERT_THAT(listing, testing::IsOk());
  ASSERT_EQ(listing->facts.size(), 2u);
  EXPECT_EQ(listing->facts[0].suspension.reason, "second");
  EXPECT_EQ(listing->facts[0].suspension.until, kFactsT0 + absl::Hours(1));
  EXPECT_EQ(listing->facts[1].suspension.provider, "magichour");
}

REGISTER_TYPED_TEST_SUITE_P(SharedFactsConformanceTest, FactsAreListedAndWatchedInRevisionOrder,
                            OldReportsAndEndedSuspensionsAreNotListed,
                            ALaterSuspensionReplacesTheEarlierOne);

}  // namespace credbroker::state
