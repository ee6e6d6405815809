#include "credbroker/metrics/broker_metrics.h"

#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace credbroker::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Scrape(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

TEST(BrokerMetricsTest, CountersCarryTheirLabels) {
  auto registry = std::make_shared<prometheus::Registry>();
  BrokerMetrics m(registry);
  m.LeaseIssued("lumenfall", "svc-a");
  m.LeaseIssued("lumenfall", "svc-a");
  m.LeaseIssued("fluximage", "svc-b");
  m.AuthFailureReported("lumenfall", "v2", "svc-a", 401, "key_rejected");
  m.AuthFailureReported("lumenfall", "v2", "svc-a", 500, "key_rejected");
  m.RpcCompleted("AcquireLease", "OK", absl::Microseconds(120));
  std::string text = Scrape(*registry);
  EXPECT_THAT(
      text, HasSubstr(R"(credbroker_leases_issued_total{caller="svc-a",provider="lumenfall"} 2)"));
  EXPECT_THAT(
      text, HasSubstr(R"(credbroker_leases_issued_total{caller="svc-b",provider="fluximage"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(http_status="401")"));
  EXPECT_THAT(text, HasSubstr(R"(http_status="other")"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(credbroker_grpc_request_duration_seconds_count{code="OK",method="AcquireLease"} 1)"));
}

TEST(BrokerMetricsTest, ActiveLeasesGoUpAndDown) {
  auto registry = std::make_shared<prometheus::Registry>();
  BrokerMetrics m(registry);
  m.ActiveLeasesAdd("p", "v1", 1);
  m.ActiveLeasesAdd("p", "v1", 1);
  m.ActiveLeasesAdd("p", "v1", -1);
  EXPECT_THAT(Scrape(*registry),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="p"} 1)"));
}

TEST(BrokerMetricsTest, KeyStateHasOneSeriesPerVersionAndRetiredVersionsDisappear) {
  auto registry = std::make_shared<prometheus::Registry>();
  BrokerMetrics m(registry);
  m.KeyVersionState("p", "v1", "CURRENT");
  m.KeyVersionState("q", "v1", "CURRENT");
  m.KeyVersionState("p", "v1", "PREVIOUS");
  m.ActiveLeasesAdd("p", "v1", 1);
  std::string text = Scrape(*registry);
  EXPECT_THAT(text, HasSubstr(R"(key_version="v1",provider="p",state="PREVIOUS"} 1)"));
  EXPECT_THAT(text, Not(HasSubstr(R"(key_version="v1",provider="p",state="CURRENT")")));
  EXPECT_THAT(text, HasSubstr(R"(key_version="v1",provider="q",state="CURRENT"} 1)"));
  m.RemoveKeyVersion("p", "v1");
  m.ActiveLeasesAdd("p", "v1", -1);  // a late release on the retired version
  text = Scrape(*registry);
  EXPECT_THAT(text, Not(HasSubstr(R"(credbroker_key_version_info{key_version="v1",provider="p")")));
  // Hot-path series go after the grace period.
  m.PurgeRemoved(absl::ZeroDuration());
  text = Scrape(*registry);
  EXPECT_THAT(text, Not(HasSubstr(R"(key_version="v1",provider="p")")));
  EXPECT_THAT(text, HasSubstr(R"(key_version="v1",provider="q",state="CURRENT"} 1)"));
}

TEST(BrokerMetricsTest, RemovedHotPathSeriesAreRecreatedFreshAndPurgedOnlyAfterTheGrace) {
  auto registry = std::make_shared<prometheus::Registry>();
  BrokerMetrics m(registry);
  m.ActiveLeasesAdd("p", "v1", 5);  // cached by this thread
  m.RemoveKeyVersion("p", "v1");
  m.PurgeRemoved(absl::Hours(1));  // too recent: kept (another thread may be touching it)
  EXPECT_THAT(Scrape(*registry),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="p"} 5)"));
  m.PurgeRemoved(absl::ZeroDuration());
  EXPECT_THAT(Scrape(*registry), Not(HasSubstr(R"(key_version="v1")")));
  // The thread's cache was invalidated: a new lease on a re-listed v1 starts a fresh series.
  m.ActiveLeasesAdd("p", "v1", 1);
  EXPECT_THAT(Scrape(*registry),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="p"} 1)"));
  // Re-created before the purge: the same child comes back and is not deleted under the caller.
  m.RemoveKeyVersion("p", "v1");
  m.ActiveLeasesAdd("p", "v1", 1);
  m.PurgeRemoved(absl::ZeroDuration());
  EXPECT_THAT(Scrape(*registry),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="p"} 2)"));
}

TEST(BrokerMetricsTest, ConcurrentRecordingAndRemovalKeepCountsExact) {
  auto registry = std::make_shared<prometheus::Registry>();
  BrokerMetrics m(registry);
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kPerThread; ++i) {
        m.LeaseIssued("lumenfall", t % 2 == 0 ? "a" : "b");
        m.ActiveLeasesAdd("lumenfall", "v9", 1);
      }
    });
  }
  threads.emplace_back([&m] {
    for (int i = 0; i < 200; ++i) m.RemoveKeyVersion("lumenfall", "v0");  // other version churn
  });
  for (auto& th : threads) th.join();
  std::string text = Scrape(*registry);
  EXPECT_THAT(
      text, HasSubstr(R"(credbroker_leases_issued_total{caller="a",provider="lumenfall"} 40000)"));
  EXPECT_THAT(
      text, HasSubstr(R"(credbroker_leases_issued_total{caller="b",provider="lumenfall"} 40000)"));
  EXPECT_THAT(
      text, HasSubstr(R"(credbroker_active_leases{key_version="v9",provider="lumenfall"} 80000)"));
}

TEST(BrokerMetricsTest, ProviderEventCountersStartAtZero) {
  auto registry = std::make_shared<prometheus::Registry>();
  BrokerMetrics m(registry);
  m.InitProvider("lumenfall", /*minted=*/true, {{"rate_spike", "alert"}});
  m.InitProvider("fluximage", /*minted=*/false, {});
  std::string text = Scrape(*registry);
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(credbroker_key_quarantines_total{provider="lumenfall",reason="revoked_at_provider"} 0)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(credbroker_key_mint_failures_total{operation="revoke",provider="lumenfall"} 0)"));
  EXPECT_THAT(
      text, Not(HasSubstr(
                R"(credbroker_key_mint_failures_total{operation="revoke",provider="fluximage"})")));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(credbroker_anomalies_total{action="alert",kind="rate_spike",provider="lumenfall"} 0)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(credbroker_key_versions_rejected_total{provider="fluximage",reason="format"} 0)"));
  m.KeyQuarantined("lumenfall", "operator");
  EXPECT_THAT(
      Scrape(*registry),
      HasSubstr(R"(credbroker_key_quarantines_total{provider="lumenfall",reason="operator"} 1)"));
}

TEST(BrokerMetricsTest, HttpStatusLabelIsBounded) {
  EXPECT_EQ(HttpStatusLabel(401), "401");
  EXPECT_EQ(HttpStatusLabel(403), "403");
  EXPECT_EQ(HttpStatusLabel(429), "429");
  EXPECT_EQ(HttpStatusLabel(418), "other");
  EXPECT_EQ(HttpStatusLabel(-1), "other");
}

}  // namespace
}  // namespace credbroker::metrics
