#include "credbroker/anomaly/baseline_keeper.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "credbroker/core/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/metrics/broker_metrics.h"
#include "prometheus/registry.h"

namespace credbroker::anomaly {
namespace {

using ::testing::HasSubstr;

// A store whose saves can be made to fail.
class FlakyStore final : public AnomalyBaselineStore {
 public:
  absl::StatusOr<absl::Time> LearningUntil(absl::Time if_new) override {
    return inner.LearningUntil(if_new);
  }
  absl::StatusOr<std::vector<AnomalyBaseline>> Load() override { return inner.Load(); }
  absl::Status Save(const std::vector<AnomalyBaseline>& baselines) override {
    ++saves;
    if (fail) return absl::UnavailableError("disk full");
    return inner.Save(baselines);
  }
  InMemoryAnomalyBaselineStore inner;
  bool fail = false;
  int saves = 0;
};

class BaselineKeeperTest : public ::testing::Test {
 protected:
  BaselineKeeperTest() {
    core::SetLogSinkForTest([this](absl::string_view line) { logs_.emplace_back(line); });
  }
  ~BaselineKeeperTest() override { core::SetLogSinkForTest(nullptr); }

  std::unique_ptr<AnomalyDetector> NewDetector() {
    AnomalyOptions o;
    o.warmup_buckets = 2;
    return std::make_unique<AnomalyDetector>(o, &clock_, &metrics_, [](const Anomaly&) {});
  }
  // Leases in the current bucket, then the bucket closes.
  void Bucket(AnomalyDetector& d, int leases) {
    for (int i = 0; i < leases; ++i) d.RecordLease("billing/api", "lumenfall");
    clock_.Advance(absl::Minutes(1));
  }

  core::FakeClock clock_{absl::FromUnixSeconds(1'700'000'000)};
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  metrics::BrokerMetrics metrics_{registry_};
  std::vector<std::string> logs_;
};

TEST_F(BaselineKeeperTest, SavesWhenABucketClosesAndRestoresInTheNextRun) {
  FlakyStore store;
  auto first = NewDetector();
  BaselineKeeper keeper(first.get(), &store);
  ASSERT_TRUE(keeper.Restore().ok());
  keeper.Tick();  // no bucket closed yet: nothing to save
  EXPECT_EQ(store.saves, 0);
  Bucket(*first, 10);
  keeper.Tick();
  EXPECT_EQ(store.saves, 1);
  const absl::Time learning_until = first->learning_until();

  // The next run: its own learning window would start now; the stored one wins.
  clock_.Advance(absl::Hours(3));
  auto second = NewDetector();
  BaselineKeeper next(second.get(), &store);
  ASSERT_TRUE(next.Restore().ok());
  EXPECT_EQ(second->learning_until(), learning_until);
  ASSERT_EQ(second->Baselines().size(), 1u);
  EXPECT_EQ(second->Baselines()[0].caller, "billing/api");
  EXPECT_THAT(logs_.back(), HasSubstr(R"("pairs":"1")"));
}

TEST_F(BaselineKeeperTest, AFailedSaveIsLoggedAndTheNextBucketSavesAgain) {
  FlakyStore store;
  auto d = NewDetector();
  BaselineKeeper keeper(d.get(), &store);
  store.fail = true;
  Bucket(*d, 10);
  keeper.Tick();
  EXPECT_EQ(store.saves, 1);
  EXPECT_THAT(logs_.back(), HasSubstr("cannot save anomaly baselines"));
  EXPECT_THAT(logs_.back(), HasSubstr("disk full"));
  store.fail = false;
  Bucket(*d, 10);
  keeper.Tick();
  EXPECT_EQ(store.saves, 2);
  auto saved = store.inner.Load();
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->size(), 1u);
}

}  // namespace
}  // namespace credbroker::anomaly
