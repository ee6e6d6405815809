#include "credbroker/anomaly/anomaly_detector.h"

#include <random>
#include <vector>

#include "credbroker/anomaly/baseline_store.h"
#include "credbroker/core/log.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace credbroker::anomaly {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class AnomalyDetectorTest : public ::testing::Test {
 protected:
  AnomalyDetectorTest() {
    core::SetLogSinkForTest([this](absl::string_view line) { logs_ += std::string(line) + "\n"; });
  }
  ~AnomalyDetectorTest() override { core::SetLogSinkForTest(nullptr); }

  void Build(AnomalyOptions options = {}) {
    options.warmup_buckets = 10;
    options.learning_period = absl::Minutes(30);
    detector_ = std::make_unique<AnomalyDetector>(
        options, &clock_, &metrics_, [this](const Anomaly& a) { found_.push_back(a); });
  }
  // `leases` and `failures` in one bucket, then the bucket closes.
  void Bucket(int leases, int failures = 0, const std::string& caller = "billing/api") {
    for (int i = 0; i < leases; ++i) detector_->RecordLease(caller, "lumenfall");
    for (int i = 0; i < failures; ++i) detector_->RecordAuthFailure(caller, "lumenfall", 401);
    clock_.Advance(absl::Minutes(1));
    detector_->Tick();
  }
  std::string Scrape() { return prometheus::TextSerializer().Serialize(registry_->Collect()); }
  std::vector<std::string> Kinds() {
    std::vector<std::string> k;
    for (const Anomaly& a : found_) k.emplace_back(AnomalyKindName(a.kind));
    return k;
  }

  core::FakeClock clock_;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  metrics::BrokerMetrics metrics_{registry_};
  std::unique_ptr<AnomalyDetector> detector_;
  std::vector<Anomaly> found_;
  std::string logs_;
};

TEST_F(AnomalyDetectorTest, SteadyNoisyTrafficRaisesNothing) {
  Build();
  std::mt19937 gen(42);
  std::poisson_distribution<int> leases(15);
  std::binomial_distribution<int> failures(15, 0.02);
  for (int i = 0; i < 24 * 60; ++i) Bucket(leases(gen), failures(gen));
  EXPECT_THAT(found_, ::testing::IsEmpty());
}

TEST_F(AnomalyDetectorTest, LeaseRateSpikeIsReportedWithItsScore) {
  Build();
  // A spike during warm-up is not judged: there is no baseline yet.
  Bucket(200);
  for (int i = 0; i < 40; ++i) Bucket(10 + i % 3);
  EXPECT_THAT(found_, ::testing::IsEmpty());
  Bucket(120);
  ASSERT_EQ(Kinds(), std::vector<std::string>{"rate_spike"});
  EXPECT_GT(found_[0].score, 4.0);
  EXPECT_EQ(found_[0].caller, "billing/api");
  EXPECT_EQ(found_[0].action, AnomalyAction::kAlert);
  EXPECT_THAT(found_[0].detail, HasSubstr("120 leases"));
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_anomalies_total{action="alert",kind="rate_spike",provider="lumenfall"} 1)"));
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_anomaly_score{caller="billing/api",provider="lumenfall"} )"));
  EXPECT_THAT(logs_, HasSubstr("usage anomaly"));
}

TEST_F(AnomalyDetectorTest, SmallAbsoluteNumbersAreNotSpikes) {
  Build();
  for (int i = 0; i < 40; ++i) Bucket(1);
  Bucket(15);  // 15× the baseline, but below min_leases (20)
  EXPECT_THAT(found_, ::testing::IsEmpty());
}

TEST_F(AnomalyDetectorTest, AuthFailureRatioSpike) {
  Build();
  for (int i = 0; i < 40; ++i) Bucket(20, i % 10 == 0 ? 1 : 0);
  // 429s are rate limits, not auth failures.
  for (int i = 0; i < 50; ++i) detector_->RecordAuthFailure("billing/api", "lumenfall", 429);
  Bucket(20);
  EXPECT_THAT(found_, ::testing::IsEmpty());
  Bucket(20, 30);
  ASSERT_EQ(Kinds(), std::vector<std::string>{"failure_spike"});
  EXPECT_THAT(found_[0].detail, HasSubstr("30 of 50 provider calls failed auth"));
}

TEST_F(AnomalyDetectorTest, NewCallerOnlyAfterTheLearningPeriod) {
  Build();
  detector_->Known("restored/app", "lumenfall");
  detector_->RecordLease("early/app", "lumenfall");
  clock_.Advance(absl::Minutes(31));
  detector_->RecordLease("early/app", "lumenfall");
  detector_->RecordLease("restored/app", "lumenfall");
  EXPECT_THAT(found_, ::testing::IsEmpty());
  detector_->RecordLease("late/app", "lumenfall");
  detector_->RecordLease("late/app", "lumenfall");
  ASSERT_EQ(Kinds(), std::vector<std::string>{"new_caller"});
  EXPECT_EQ(found_[0].caller, "late/app");
  // Another provider is another pair.
  detector_->RecordLease("early/app", "magichour");
  EXPECT_EQ(found_.size(), 2u);
  // A suspension lookup records nothing; an admission (AcquireLease) does.
  EXPECT_EQ(detector_->SuspendedUntil("ghost/app", "lumenfall"), absl::InfinitePast());
  EXPECT_EQ(found_.size(), 2u);
  EXPECT_EQ(detector_->Admit("ghost/app", "lumenfall"), absl::InfinitePast());
  ASSERT_EQ(found_.size(), 3u);
  EXPECT_EQ(found_[2].caller, "ghost/app");
}

TEST_F(AnomalyDetectorTest, RetiredKeyUseIsReportedOncePerBucket) {
  Build();
  detector_->RecordRetiredKeyUse("billing/api", "lumenfall", "v1", "renewal after retirement");
  detector_->RecordRetiredKeyUse("billing/api", "lumenfall", "v1", "renewal after retirement");
  ASSERT_EQ(Kinds(), std::vector<std::string>{"retired_key_use"});
  EXPECT_EQ(found_[0].key_version, "v1");
  clock_.Advance(absl::Minutes(2));
  detector_->RecordRetiredKeyUse("billing/api", "lumenfall", "v1", "again");
  EXPECT_EQ(found_.size(), 2u);
}

TEST_F(AnomalyDetectorTest, SuspendActionSuspendsTheCallerForAWhile) {
  AnomalyOptions options;
  options.retired_key_use = AnomalyAction::kSuspend;
  options.new_caller = AnomalyAction::kLog;
  options.suspend_for = absl::Minutes(10);
  Build(options);
  EXPECT_EQ(detector_->SuspendedUntil("billing/api", "lumenfall"), absl::InfinitePast());
  detector_->RecordRetiredKeyUse("billing/api", "lumenfall", "v1", "report on a quarantined key");
  ASSERT_EQ(found_.size(), 1u);
  EXPECT_EQ(found_[0].action, AnomalyAction::kSuspend);
  EXPECT_EQ(detector_->SuspendedUntil("billing/api", "lumenfall"),
            clock_.Now() + absl::Minutes(10));
  EXPECT_EQ(detector_->SuspendedUntil("search/api", "lumenfall"), absl::InfinitePast());
  clock_.Advance(absl::Minutes(1));
  detector_->Tick();
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_suspended_callers{provider="lumenfall"} 1)"));
  clock_.Advance(absl::Minutes(10));
  detector_->Tick();
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_suspended_callers{provider="lumenfall"} 0)"));
  EXPECT_THAT(Scrape(), HasSubstr(R"(action="suspend",kind="retired_key_use")"));
  // A log-only kind is counted as such: the shipped alerts ignore action="log".
  clock_.Advance(absl::Hours(1));
  detector_->RecordLease("late/app", "lumenfall");
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_anomalies_total{action="log",kind="new_caller",provider="lumenfall"} 1)"));
}

TEST_F(AnomalyDetectorTest, RestoredBaselinesJudgeAtOnceAndKeepTheLearningWindowClosed) {
  Build();
  for (int i = 0; i < 40; ++i) Bucket(10 + i % 3);
  // (The SQLite store's round trip across a reopen is tested with it, in libs/state/sqlite.)
  InMemoryAnomalyBaselineStore store;
  {
    // First run: the learning window is stored once and never moves.
    auto until = store.LearningUntil(detector_->learning_until());
    ASSERT_TRUE(until.ok());
    EXPECT_EQ(*until, detector_->learning_until());
    ASSERT_TRUE(store.Save(detector_->Baselines()).ok());
  }
  // A restart: a new detector (new learning period) restores what the first one learned.
  clock_.Advance(absl::Hours(5));
  const absl::Time first_learning_until = detector_->learning_until();
  Build();
  auto until = store.LearningUntil(clock_.Now() + absl::Hours(1));
  ASSERT_TRUE(until.ok());
  EXPECT_EQ(*until, first_learning_until);
  auto baselines = store.Load();
  ASSERT_TRUE(baselines.ok());
  ASSERT_EQ(baselines->size(), 1u);
  EXPECT_EQ((*baselines)[0].buckets, 40);
  detector_->Restore(*baselines, *until);
  // No warm-up: the first bucket after the restart is judged against the restored baseline.
  Bucket(120);
  EXPECT_EQ(Kinds(), std::vector<std::string>{"rate_spike"});
  EXPECT_EQ((*baselines)[0].suspended_until, absl::InfinitePast());
  // The learning window stayed closed: a caller never seen is new right away.
  detector_->RecordLease("fresh/app", "lumenfall");
  EXPECT_EQ(Kinds(), (std::vector<std::string>{"rate_spike", "new_caller"}));
}

// Identities the policy does not name share the metric label "unknown", and nothing else.
TEST_F(AnomalyDetectorTest, IdentitiesSharingALabelShareNoVerdict) {
  AnomalyOptions options;
  options.warmup_buckets = 10;
  options.learning_period = absl::Minutes(30);
  options.rate_spike = AnomalyAction::kSuspend;
  options.suspend_for = absl::Minutes(10);
  detector_ = std::make_unique<AnomalyDetector>(
      options, &clock_, &metrics_, [this](const Anomaly& a) { found_.push_back(a); },
      [](absl::string_view) { return std::string("unknown"); });
  auto both = [this](int one, int two) {
    for (int i = 0; i < one; ++i) detector_->RecordLease("team-a/job", "lumenfall");
    for (int i = 0; i < two; ++i) detector_->RecordLease("team-b/job", "lumenfall");
    clock_.Advance(absl::Minutes(1));
    detector_->Tick();
  };
  for (int i = 0; i < 40; ++i) both(10 + i % 3, 10 + i % 2);
  ASSERT_THAT(found_, ::testing::IsEmpty());
  // team-a bursts; team-b's traffic is as usual.
  both(120, 11);
  ASSERT_EQ(Kinds(), std::vector<std::string>{"rate_spike"});
  EXPECT_EQ(found_[0].caller, "team-a/job");
  EXPECT_GT(detector_->SuspendedUntil("team-a/job", "lumenfall"), clock_.Now());
  EXPECT_EQ(detector_->SuspendedUntil("team-b/job", "lumenfall"), absl::InfinitePast());
  // One series per label in the metrics: the highest score of the identities behind it.
  const std::string scrape = Scrape();
  EXPECT_THAT(scrape,
              HasSubstr(R"(credbroker_anomaly_score{caller="unknown",provider="lumenfall"})"));
  EXPECT_THAT(scrape, Not(HasSubstr("team-a")));
  EXPECT_THAT(
      scrape,
      Not(HasSubstr(R"(credbroker_anomaly_score{caller="unknown",provider="lumenfall"} 0)")));
}

TEST_F(AnomalyDetectorTest, ABaselineSharedByUnlabelledCallersIsRelearnedOneByOne) {
  Build();
  // Saved by an earlier version: one series for every identity labelled "unknown", and the
  // learning window long closed.
  AnomalyBaseline shared;
  shared.caller = kSharedBaselineCaller;
  shared.provider = "lumenfall";
  shared.buckets = 500;
  detector_->Restore({shared}, clock_.Now() - absl::Hours(24));
  // Not a verdict on anyone: the identities behind it are learned anew, so none is "new" yet.
  detector_->RecordLease("team-a/job", "lumenfall");
  EXPECT_THAT(found_, ::testing::IsEmpty());
  for (const AnomalyBaseline& b : detector_->Baselines()) EXPECT_NE(b.caller, "unknown");
  EXPECT_THAT(logs_, HasSubstr("learning them one by one"));
  // Once that learning period is over, a caller never seen is new again.
  clock_.Advance(absl::Minutes(31));
  detector_->RecordLease("team-c/job", "lumenfall");
  EXPECT_EQ(Kinds(), std::vector<std::string>{"new_caller"});
}

TEST(AnomalyActionTest, Parses) {
  AnomalyAction a;
  EXPECT_TRUE(ParseAnomalyAction("suspend", &a));
  EXPECT_EQ(a, AnomalyAction::kSuspend);
  EXPECT_FALSE(ParseAnomalyAction("block", &a));
}

}  // namespace
}  // namespace credbroker::anomaly

namespace credbroker::anomaly {
namespace {

TEST(AnomalyOptionsTest, FromConfigTakesEveryField) {
  v1::AnomalyConfig c;
  c.mutable_bucket()->set_seconds(30);
  c.mutable_baseline_window()->set_seconds(7200);
  c.set_threshold(5.5);
  c.set_warmup_buckets(12);
  c.set_min_leases(40);
  c.set_min_failures(8);
  c.mutable_learning_period()->set_seconds(600);
  c.mutable_suspend_for()->set_seconds(900);
  c.set_rate_spike_action("suspend");
  c.set_failure_spike_action("log");
  c.set_new_caller_action("alert");
  c.set_retired_key_use_action("suspend");
  const AnomalyOptions o = AnomalyOptions::FromConfig(c);
  EXPECT_EQ(o.bucket, absl::Seconds(30));
  EXPECT_EQ(o.baseline_window, absl::Hours(2));
  EXPECT_EQ(o.threshold, 5.5);
  EXPECT_EQ(o.warmup_buckets, 12);
  EXPECT_EQ(o.min_leases, 40);
  EXPECT_EQ(o.min_failures, 8);
  EXPECT_EQ(o.learning_period, absl::Minutes(10));
  EXPECT_EQ(o.suspend_for, absl::Minutes(15));
  EXPECT_EQ(o.rate_spike, AnomalyAction::kSuspend);
  EXPECT_EQ(o.failure_spike, AnomalyAction::kLog);
  EXPECT_EQ(o.new_caller, AnomalyAction::kAlert);
  EXPECT_EQ(o.retired_key_use, AnomalyAction::kSuspend);
}

}  // namespace
}  // namespace credbroker::anomaly
