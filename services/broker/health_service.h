// grpc.health.v1.Health (grpc/doc/health-checking.md) from one status table, registered on the
// main listener and on the plaintext health-only listener (server.health_listen), so the two can
// never disagree. Known services: "" (the server), "liveness", "readiness" and the broker's gRPC
// services; Check on any other is NOT_FOUND, Watch on it answers SERVICE_UNKNOWN.
//
// Thread-safe. Check runs on gRPC's callback API, like the lease RPCs (on the sync API every
// Check would hop to a sync server thread: half the throughput, which made a poor baseline for
// bench/grpc_load). Watch holds a server thread per stream (the kubelet uses Check only), and the
// health service answers without authentication, so at most `max_watchers` streams are open at
// once; more are refused with RESOURCE_EXHAUSTED. Shutdown() marks everything NOT_SERVING, tells
// every Watch stream, and ends the streams.
#pragma once

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace credbroker::broker {

class HealthService final
    : public grpc::health::v1::Health::WithCallbackMethod_Check<grpc::health::v1::Health::Service> {
 public:
  static constexpr int kDefaultMaxWatchers = 16;

  // The services this broker reports on, all NOT_SERVING until SetServing(true).
  explicit HealthService(int max_watchers = kDefaultMaxWatchers);

  // Every known service at once: the broker is either ready or not.
  void SetServing(bool serving);
  // NOT_SERVING for good, and Watch streams end (they would otherwise hold the server's drain).
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::Status Watch(grpc::ServerContext* context,
                     const grpc::health::v1::HealthCheckRequest* request,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  const int max_watchers_;
  absl::Mutex mu_;
  int watchers_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Status> statuses_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped on every change; Watch streams wait for it to move.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace credbroker::broker
