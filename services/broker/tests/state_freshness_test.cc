#include "state_freshness.h"

#include <vector>

#include "broker_fixture.h"  // libs/leasing/tests
#include "gtest/gtest.h"

namespace credbroker::broker {
namespace {

using rotation::KeyEvent;

// Counts what reaches the inner stats, to show that everything is forwarded.
class CountingStats final : public state::StateStats {
 public:
  void Call(Op, bool, absl::Duration) override { ++calls; }
  void Leader(bool) override { ++leaders; }
  void WatchConnected(bool) override { ++watch_changes; }
  void WatchDelay(absl::Duration) override { ++delays; }
  int calls = 0;
  int leaders = 0;
  int watch_changes = 0;
  int delays = 0;
};

class StateFreshnessTest : public ::testing::Test, public leasing::BrokerFixture {
 protected:
  StateFreshnessTest() {
    ring->Subscribe(
        [this](const std::vector<KeyEvent>& events) {
          for (const KeyEvent& e : events) seen.push_back(e);
        },
        &subscription_);
  }
  ~StateFreshnessTest() override { ring->Unsubscribe(subscription_); }

  absl::Time StaleSince() const { return ring->Snapshot()->state_stale_since; }

  CountingStats inner;
  std::vector<KeyEvent> seen;

 private:
  uint64_t subscription_ = 0;
};

TEST_F(StateFreshnessTest, ALostWatchMakesTheRingStaleOnceAndItsReturnFreshAgain) {
  StateFreshness freshness(&inner, &clock);
  RingFreshnessLink link(&freshness, ring.get());
  freshness.WatchConnected(true);  // connected from the start: nothing changes
  EXPECT_EQ(StaleSince(), absl::InfiniteFuture());
  EXPECT_TRUE(seen.empty());

  const absl::Time lost = clock.Now();
  freshness.WatchConnected(false);
  freshness.WatchConnected(false);  // a second report of the same: nothing more
  EXPECT_EQ(freshness.StaleSince(), lost);
  EXPECT_EQ(StaleSince(), lost);
  ASSERT_EQ(seen.size(), 2u);  // one per provider
  for (const KeyEvent& e : seen) {
    EXPECT_EQ(e.type, KeyEvent::Type::kStateStale);
    EXPECT_EQ(e.at, lost);
    EXPECT_FALSE(e.reason.empty());
  }
  // The keys are still served: staleness is said, not enforced.
  EXPECT_NE(ring->Snapshot()->Find("lumenfall")->current, nullptr);

  clock.Advance(absl::Seconds(5));
  seen.clear();
  freshness.WatchConnected(true);
  EXPECT_EQ(freshness.StaleSince(), absl::InfiniteFuture());
  EXPECT_EQ(StaleSince(), absl::InfiniteFuture());
  ASSERT_EQ(seen.size(), 2u);
  for (const KeyEvent& e : seen) EXPECT_EQ(e.type, KeyEvent::Type::kStateFresh);
  EXPECT_EQ(inner.watch_changes, 4);
}

TEST_F(StateFreshnessTest, ALinkMadeWhileStaleMarksTheRingAndEndsWithItsLifetime) {
  StateFreshness freshness(&inner, &clock);
  freshness.WatchConnected(false);
  {
    RingFreshnessLink link(&freshness, ring.get());
    EXPECT_EQ(StaleSince(), clock.Now());
    freshness.WatchConnected(true);
    EXPECT_EQ(StaleSince(), absl::InfiniteFuture());
  }
  freshness.WatchConnected(false);  // no link any more: the ring hears nothing
  EXPECT_EQ(StaleSince(), absl::InfiniteFuture());
}

TEST_F(StateFreshnessTest, EveryFigureReachesTheInnerStats) {
  StateFreshness freshness(&inner, &clock);
  freshness.Call(state::StateStats::Op::kWrite, true, absl::Milliseconds(2));
  freshness.Leader(true);
  freshness.WatchDelay(absl::Milliseconds(1));
  freshness.WatchConnected(true);
  EXPECT_EQ(inner.calls, 1);
  EXPECT_EQ(inner.leaders, 1);
  EXPECT_EQ(inner.delays, 1);
  EXPECT_EQ(inner.watch_changes, 1);
}

}  // namespace
}  // namespace credbroker::broker
