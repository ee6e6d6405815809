#include "health_service.h"

#include "absl/cleanup/cleanup.h"
#include "absl/time/time.h"

namespace credbroker::broker {

namespace health = grpc::health::v1;

HealthService::HealthService(int max_watchers) : max_watchers_(max_watchers) {
  for (const char* service :
       {"", "liveness", "readiness", "credbroker.v1.LeaseService", "credbroker.v1.AdminService"}) {
    statuses_[service] = health::HealthCheckResponse::NOT_SERVING;
  }
}

void HealthService::SetServing(bool serving) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return;
  for (auto& [name, status] : statuses_) {
    status =
        serving ? health::HealthCheckResponse::SERVING : health::HealthCheckResponse::NOT_SERVING;
  }
  ++generation_;
}

void HealthService::Shutdown() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, status] : statuses_) status = health::HealthCheckResponse::NOT_SERVING;
  shut_down_ = true;
  ++generation_;
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const health::HealthCheckRequest* request,
                                               health::HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status status = grpc::Status::OK;
  {
    absl::MutexLock lock(&mu_);
    auto it = statuses_.find(request->service());
    if (it == statuses_.end()) {
      status = grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
    } else {
      response->set_status(it->second);
    }
  }
  reactor->Finish(status);
  return reactor;
}

grpc::Status HealthService::Watch(grpc::ServerContext* context,
                                  const health::HealthCheckRequest* request,
                                  grpc::ServerWriter<health::HealthCheckResponse>* writer) {
  {
    absl::MutexLock lock(&mu_);
    if (watchers_ >= max_watchers_) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many health watchers");
    }
    ++watchers_;
  }
  absl::Cleanup release = [this] {
    absl::MutexLock lock(&mu_);
    --watchers_;
  };
  uint64_t seen = 0;
  bool first = true;
  while (true) {
    health::HealthCheckResponse response;
    bool last = false;
    {
      absl::MutexLock lock(&mu_);
      // Wakes on a change; a cancelled call (client gone) is noticed within a second.
      auto changed = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return first || generation_ != seen; };
      while (!mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Seconds(1))) {
        if (context->IsCancelled()) return grpc::Status::CANCELLED;
      }
      first = false;
      seen = generation_;
      auto it = statuses_.find(request->service());
      response.set_status(it == statuses_.end() ? health::HealthCheckResponse::SERVICE_UNKNOWN
                                                : it->second);
      last = shut_down_;
    }
    if (!writer->Write(response)) return grpc::Status::CANCELLED;
    if (last) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the broker is shutting down");
  }
}

}  // namespace credbroker::broker
