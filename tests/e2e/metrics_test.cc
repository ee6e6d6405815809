// End to end: The /metrics endpoint: the metric set, and promtool's lint of a live scrape.
#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

TEST_F(EndToEndTest, MetricsPassPromtoolCheck) {
  StartBroker();
  // Fill a few families first: a lease, a renewal, a refused token.
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  ASSERT_TRUE(Renew(lease.lease_id(), &lease).ok());
  EXPECT_FALSE(Acquire("lumenfall", &lease, "wrong-token-0123456789").ok());
  auto check = RunCommand({std::string(CB_SOURCE_DIR) + "/scripts/check-prometheus.sh", "--metrics",
                           absl::StrCat("http://", broker_->metrics_address(), "/metrics")});
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_THAT(check.output, HasSubstr("OK"));
}

TEST_F(EndToEndTest, MetricsEndpointServesTheMetricSet) {
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  v1::ReportAuthFailureRequest report;
  report.set_lease_id(lease.lease_id());
  report.set_http_status(401);
  report.set_error_code("INVALID_API_KEY");
  v1::ReportAuthFailureResponse resp;
  ASSERT_TRUE(lease_->ReportAuthFailure(Ctx().get(), report, &resp).ok());
  EXPECT_FALSE(resp.newer_key_available());
  EXPECT_EQ(resp.classification(), "key_rejected");
  // A 429 with the provider's body: understood as a rate limit, counted apart.
  report.set_http_status(429);
  report.clear_error_code();
  report.set_body(R"({"error":{"message":"Rate limit reached","type":"requests"}})");
  ASSERT_TRUE(lease_->ReportAuthFailure(Ctx().get(), report, &resp).ok());
  EXPECT_EQ(resp.classification(), "rate_limited");
  report.set_body(std::string(5000, 'x'));
  grpc::Status too_long = lease_->ReportAuthFailure(Ctx().get(), report, &resp);
  EXPECT_EQ(too_long.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Reason(too_long), "BAD_ERROR_BODY");
  std::string m = Metrics();
  EXPECT_THAT(
      m, HasSubstr(R"(credbroker_leases_issued_total{caller="e2e-app",provider="lumenfall"} 1)"));
  EXPECT_THAT(m, HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="lumenfall"} 1)"));
  EXPECT_THAT(
      m,
      HasSubstr(
          R"(credbroker_auth_failure_reports_total{caller="e2e-app",classification="key_rejected",http_status="401",key_version="v1",provider="lumenfall"} 1)"));
  EXPECT_THAT(m, HasSubstr("credbroker_grpc_request_duration_seconds_bucket"));
  EXPECT_THAT(m,
              HasSubstr(R"(credbroker_backend_last_success_timestamp_seconds{backend="local"})"));
  EXPECT_THAT(m, Not(HasSubstr(lease.lease_id())));
  EXPECT_THAT(m, Not(HasSubstr(kLmnV1)));
}

}  // namespace
}  // namespace credbroker::e2e
