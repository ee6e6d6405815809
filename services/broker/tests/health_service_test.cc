#include "health_service.h"

#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace credbroker::broker {
namespace {

namespace health = grpc::health::v1;
using Serving = health::HealthCheckResponse;

// One HealthService on a real server (loopback, port 0), as the broker registers it.
class HealthServiceTest : public ::testing::Test {
 protected:
  HealthServiceTest() : service_(/*max_watchers=*/2) {}

  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    builder.RegisterService(&service_);
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = health::Health::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                        grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    service_.Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  grpc::Status Check(const std::string& service, Serving::ServingStatus* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    health::HealthCheckRequest req;
    req.set_service(service);
    health::HealthCheckResponse resp;
    grpc::Status s = stub_->Check(&ctx, req, &resp);
    *out = resp.status();
    return s;
  }

  HealthService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<health::Health::Stub> stub_;
};

TEST_F(HealthServiceTest, NotServingUntilToldThenEveryKnownServiceAtOnce) {
  Serving::ServingStatus status;
  ASSERT_TRUE(Check("readiness", &status).ok());
  EXPECT_EQ(status, Serving::NOT_SERVING);
  service_.SetServing(true);
  for (const char* name :
       {"", "liveness", "readiness", "credbroker.v1.LeaseService", "credbroker.v1.AdminService"}) {
    ASSERT_TRUE(Check(name, &status).ok()) << name;
    EXPECT_EQ(status, Serving::SERVING) << name;
  }
  EXPECT_EQ(Check("no.such.Service", &status).error_code(), grpc::StatusCode::NOT_FOUND);
  service_.Shutdown();
  ASSERT_TRUE(Check("", &status).ok());
  EXPECT_EQ(status, Serving::NOT_SERVING);
  // After Shutdown nothing turns it back on.
  service_.SetServing(true);
  ASSERT_TRUE(Check("", &status).ok());
  EXPECT_EQ(status, Serving::NOT_SERVING);
}

TEST_F(HealthServiceTest, WatchSendsTheStatusThenEveryChangeAndEndsOnShutdown) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  health::HealthCheckRequest req;
  req.set_service("readiness");
  auto reader = stub_->Watch(&ctx, req);
  health::HealthCheckResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), Serving::NOT_SERVING);
  service_.SetServing(true);
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), Serving::SERVING);
  service_.Shutdown();
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), Serving::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(HealthServiceTest, WatchOfAnUnknownServiceSaysSoAndStaysOpen) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  health::HealthCheckRequest req;
  req.set_service("no.such.Service");
  auto reader = stub_->Watch(&ctx, req);
  health::HealthCheckResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), Serving::SERVICE_UNKNOWN);
  // Still open: a later change is sent too (still unknown).
  service_.SetServing(true);
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_EQ(resp.status(), Serving::SERVICE_UNKNOWN);
  ctx.TryCancel();
  EXPECT_FALSE(reader->Read(&resp));
}

// The health service needs no token, so Watch streams (a server thread each) are capped.
TEST_F(HealthServiceTest, WatchStreamsBeyondTheCapAreRefused) {
  health::HealthCheckRequest req;
  health::HealthCheckResponse resp;
  grpc::ClientContext first_ctx;
  grpc::ClientContext second_ctx;
  auto first = stub_->Watch(&first_ctx, req);
  auto second = stub_->Watch(&second_ctx, req);
  // Each has its first answer, so each holds its slot.
  ASSERT_TRUE(first->Read(&resp));
  ASSERT_TRUE(second->Read(&resp));
  grpc::ClientContext third_ctx;
  auto third = stub_->Watch(&third_ctx, req);
  EXPECT_FALSE(third->Read(&resp));
  EXPECT_EQ(third->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A stream that ends gives its slot back.
  first_ctx.TryCancel();
  EXPECT_FALSE(first->Read(&resp));
  first->Finish();
  // The server notices the cancellation within a second; poll for the freed slot.
  bool admitted = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!admitted && absl::Now() < deadline) {
    grpc::ClientContext ctx;
    auto again = stub_->Watch(&ctx, req);
    admitted = again->Read(&resp);
    ctx.TryCancel();
    again->Finish();
    if (!admitted) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(admitted);
  second_ctx.TryCancel();
  second->Finish();
}

}  // namespace
}  // namespace credbroker::broker
