#include "credbroker/metrics/broker_metrics.h"

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
  m.AuthFailureReported("lumenfall", "v2", "svc-a", 401);
  m.AuthFailureReported("lumenfall", "v2", "svc-a", 500);
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
  EXPECT_THAT(text, Not(HasSubstr(R"(key_version="v1",provider="p")")));
  EXPECT_THAT(text, HasSubstr(R"(key_version="v1",provider="q",state="CURRENT"} 1)"));
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
