#include "credbroker/http/token_source.h"

#include <atomic>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::http {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::ElementsAre;

struct FakeCredential {
  std::string value;
  absl::Time expires_at = absl::InfiniteFuture();
};

// Answers from a script (then errors), counts calls and can hold a fetch until released.
class ScriptedSource final : public TokenSource<FakeCredential> {
 public:
  void Then(std::string value, absl::Time expires_at) {
    absl::MutexLock lock(&mu_);
    script_.push_back({absl::OkStatus(), std::make_shared<const FakeCredential>(
                                             FakeCredential{std::move(value), expires_at})});
  }
  void ThenError(absl::Status s) {
    absl::MutexLock lock(&mu_);
    script_.push_back({std::move(s), nullptr});
  }
  // The next fetches block until Release().
  void Hold() { gate_ = std::make_unique<absl::Notification>(); }
  void Release() { gate_->Notify(); }
  absl::Notification& entered() { return entered_; }

  absl::StatusOr<std::shared_ptr<const FakeCredential>> Fetch() override {
    calls_.fetch_add(1);
    if (!entered_.HasBeenNotified()) entered_.Notify();
    if (gate_ != nullptr) gate_->WaitForNotification();
    absl::MutexLock lock(&mu_);
    if (script_.empty()) return absl::InternalError("script exhausted");
    Step step = std::move(script_.front());
    script_.pop_front();
    if (!step.status.ok()) return step.status;
    return step.credential;
  }
  int calls() const { return calls_.load(); }

 private:
  absl::Mutex mu_;
  // (GCC 12 warns about copying a StatusOr<shared_ptr> out of a container: keep the parts.)
  struct Step {
    absl::Status status;
    std::shared_ptr<const FakeCredential> credential;
  };
  std::deque<Step> script_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> calls_{0};
  std::unique_ptr<absl::Notification> gate_;
  absl::Notification entered_;
};

// A FakeClock that counts how often it is read: the cache reads it once per Fetch, under its
// lock, before deciding to wait, so the count tells when callers have reached that point.
class CountingClock final : public core::Clock {
 public:
  absl::Time Now() const override {
    reads_.fetch_add(1);
    return clock_.Now();
  }
  int reads() const { return reads_.load(); }
  core::FakeClock clock_;

 private:
  mutable std::atomic<int> reads_{0};
};

class TokenSourceTest : public ::testing::Test {
 protected:
  TokenSourceTest() {
    auto inner = std::make_unique<ScriptedSource>();
    inner_ = inner.get();
    CachingTokenSourceOptions options;
    options.name = "test credential";
    options.on_fetch = [this](absl::string_view r) {
      absl::MutexLock lock(&mu_);
      reported_.emplace_back(r);
    };
    cache_ = std::make_unique<CachingTokenSource<FakeCredential>>(std::move(inner), &clock_,
                                                                  std::move(options));
  }
  ~TokenSourceTest() override { core::SetLogSinkForTest(nullptr); }

  std::string Value() {
    auto c = cache_->Fetch();
    EXPECT_THAT(c, IsOk());
    return c.ok() ? (*c)->value : "";
  }
  std::vector<std::string> reported() {
    absl::MutexLock lock(&mu_);
    return reported_;
  }

  core::FakeClock clock_;
  const absl::Time t0_ = clock_.Now();
  ScriptedSource* inner_ = nullptr;
  std::unique_ptr<CachingTokenSource<FakeCredential>> cache_;
  absl::Mutex mu_;
  std::vector<std::string> reported_ ABSL_GUARDED_BY(mu_);
};

TEST_F(TokenSourceTest, RefreshesWhenTheMarginIsLeftNotBefore) {
  inner_->Then("one", t0_ + absl::Hours(1));
  inner_->Then("two", t0_ + absl::Hours(2));
  EXPECT_EQ(Value(), "one");
  // One hour of life, 5 minutes margin (less than half of it): refresh at 55 minutes.
  clock_.Set(t0_ + absl::Minutes(55) - absl::Nanoseconds(1));
  EXPECT_EQ(Value(), "one");
  EXPECT_EQ(inner_->calls(), 1);
  clock_.Set(t0_ + absl::Minutes(55));
  EXPECT_EQ(Value(), "two");
  EXPECT_EQ(inner_->calls(), 2);
  EXPECT_EQ(Value(), "two");
  EXPECT_EQ(inner_->calls(), 2);
  EXPECT_THAT(reported(), ElementsAre("ok", "ok"));
}

TEST_F(TokenSourceTest, ShortLivedCredentialRefreshesAtHalfItsLife) {
  inner_->Then("one", t0_ + absl::Minutes(6));
  inner_->Then("two", t0_ + absl::Hours(1));
  EXPECT_EQ(Value(), "one");
  clock_.Set(t0_ + absl::Minutes(3) - absl::Nanoseconds(1));
  EXPECT_EQ(Value(), "one");
  clock_.Set(t0_ + absl::Minutes(3));
  EXPECT_EQ(Value(), "two");
  EXPECT_EQ(inner_->calls(), 2);
}

TEST_F(TokenSourceTest, NeverExpiringCredentialIsFetchedOnce) {
  inner_->Then("static", absl::InfiniteFuture());
  EXPECT_EQ(Value(), "static");
  clock_.Advance(absl::Hours(24 * 365 * 10));
  EXPECT_EQ(Value(), "static");
  EXPECT_EQ(inner_->calls(), 1);
}

TEST_F(TokenSourceTest, FailedRefreshKeepsServingAValidCredentialAndRetriesNextCall) {
  std::vector<std::string> lines;
  core::SetLogSinkForTest([&lines](absl::string_view line) { lines.emplace_back(line); });
  inner_->Then("secret-one", t0_ + absl::Hours(1));
  inner_->ThenError(absl::UnavailableError("sts down"));
  inner_->Then("secret-two", t0_ + absl::Hours(2));
  EXPECT_EQ(Value(), "secret-one");
  clock_.Set(t0_ + absl::Minutes(56));
  EXPECT_EQ(Value(), "secret-one");
  EXPECT_EQ(inner_->calls(), 2);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(absl::StrContains(lines[0], "sts down")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "test credential")) << lines[0];
  EXPECT_FALSE(absl::StrContains(lines[0], "secret-one")) << lines[0];
  EXPECT_EQ(Value(), "secret-two");
  EXPECT_EQ(inner_->calls(), 3);
  EXPECT_THAT(reported(), ElementsAre("ok", "error", "ok"));
}

TEST_F(TokenSourceTest, FailedRefreshOfAnExpiredCredentialReturnsTheError) {
  inner_->Then("one", t0_ + absl::Hours(1));
  inner_->ThenError(absl::PermissionDeniedError("refused"));
  inner_->ThenError(absl::UnavailableError("down"));
  EXPECT_EQ(Value(), "one");
  clock_.Set(t0_ + absl::Hours(1));  // expires_at itself is no longer valid
  EXPECT_THAT(cache_->Fetch(), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(cache_->Fetch(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(inner_->calls(), 3);
}

TEST_F(TokenSourceTest, FirstFetchErrorIsReturnedAndTheNextCallTriesAgain) {
  inner_->ThenError(absl::UnavailableError("down"));
  inner_->Then("one", t0_ + absl::Hours(1));
  EXPECT_THAT(cache_->Fetch(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Value(), "one");
  EXPECT_THAT(reported(), ElementsAre("error", "ok"));
}

TEST_F(TokenSourceTest, InvalidateDropsOnlyTheRejectedCredential) {
  inner_->Then("one", t0_ + absl::Hours(1));
  inner_->Then("two", t0_ + absl::Hours(1));
  auto one = cache_->Fetch();
  ASSERT_THAT(one, IsOk());
  const FakeCredential unrelated{"other", t0_ + absl::Hours(1)};
  cache_->Invalidate(&unrelated);
  EXPECT_EQ(Value(), "one");
  EXPECT_EQ(inner_->calls(), 1);
  cache_->Invalidate(one->get());
  EXPECT_EQ(Value(), "two");
  EXPECT_EQ(inner_->calls(), 2);
  // A second caller that was also refused with "one" must not drop its replacement.
  cache_->Invalidate(one->get());
  EXPECT_EQ(Value(), "two");
  EXPECT_EQ(inner_->calls(), 2);
}

TEST(CachingTokenSourceTest, ConcurrentCallersShareOneFetch) {
  constexpr int kThreads = 8;
  auto owned = std::make_unique<ScriptedSource>();
  ScriptedSource* inner = owned.get();
  CountingClock clock;
  inner->Then("shared", clock.clock_.Now() + absl::Hours(1));
  inner->Hold();
  CachingTokenSource<FakeCredential> cache(std::move(owned), &clock);
  std::vector<absl::StatusOr<std::shared_ptr<const FakeCredential>>> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  threads.emplace_back([&] { results[0] = cache.Fetch(); });
  inner->entered().WaitForNotification();
  for (int i = 1; i < kThreads; ++i) threads.emplace_back([&, i] { results[i] = cache.Fetch(); });
  // Every caller has read the clock under the cache's lock, found the fetch under way and waits.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (clock.reads() < kThreads && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(clock.reads(), kThreads);
  inner->Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(inner->calls(), 1);
  for (const auto& r : results) {
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->get(), results[0]->get());
  }
}

TEST(CachingTokenSourceTest, ConcurrentCallersShareTheFetchError) {
  constexpr int kThreads = 4;
  auto owned = std::make_unique<ScriptedSource>();
  ScriptedSource* inner = owned.get();
  CountingClock clock;
  inner->ThenError(absl::PermissionDeniedError("refused"));
  inner->Hold();
  CachingTokenSource<FakeCredential> cache(std::move(owned), &clock);
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  threads.emplace_back([&] { results[0] = cache.Fetch().status(); });
  inner->entered().WaitForNotification();
  for (int i = 1; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = cache.Fetch().status(); });
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (clock.reads() < kThreads && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(clock.reads(), kThreads);
  inner->Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(inner->calls(), 1);
  for (const auto& s : results) EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
}

TEST(CachingTokenSourceTest, ValidCredentialIsServedWhileARefreshIsUnderWay) {
  auto owned = std::make_unique<ScriptedSource>();
  ScriptedSource* inner = owned.get();
  core::FakeClock clock;
  const absl::Time t0 = clock.Now();
  inner->Then("one", t0 + absl::Hours(1));
  inner->Then("two", t0 + absl::Hours(2));
  CachingTokenSource<FakeCredential> cache(std::move(owned), &clock);
  ASSERT_THAT(cache.Fetch(), IsOk());
  clock.Set(t0 + absl::Minutes(56));
  inner->Hold();
  absl::StatusOr<std::shared_ptr<const FakeCredential>> refreshed;
  std::thread refresher([&] { refreshed = cache.Fetch(); });
  // (entered() fired on the first fetch: wait for the second call instead.)
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (inner->calls() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(inner->calls(), 2);
  auto during = cache.Fetch();  // would block until Release() if it waited for the refresh
  ASSERT_THAT(during, IsOk());
  EXPECT_EQ((*during)->value, "one");
  inner->Release();
  refresher.join();
  ASSERT_THAT(refreshed, IsOk());
  EXPECT_EQ((*refreshed)->value, "two");
  EXPECT_EQ(inner->calls(), 2);
}

}  // namespace
}  // namespace credbroker::http
