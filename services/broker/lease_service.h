// credbroker.v1.LeaseService on gRPC's callback API: each handler authenticates the caller, calls
// leasing::LeaseBroker and converts the result. The lease writes finish from the store's commit, so
// no handler thread waits for one; WatchKeys streams are reactors (watch_reactor.h). Thread-safety:
// safe for concurrent use, as gRPC calls it.
#pragma once

#include <memory>

#include "credbroker/leasing/lease_broker.h"
#include "credbroker/v1/lease.grpc.pb.h"
#include "rpc_edge.h"
#include "watch_reactor.h"

namespace credbroker::broker {

class LeaseServiceImpl final : public v1::LeaseService::CallbackService {
 public:
  LeaseServiceImpl(leasing::LeaseBroker* broker, Edge edge, WatchLimits watch_limits = {});
  ~LeaseServiceImpl() override;

  // Ends every open WatchKeys stream with UNAVAILABLE (the broker is going away).
  void CloseWatchers();

  grpc::ServerUnaryReactor* AcquireLease(grpc::CallbackServerContext* ctx,
                                         const v1::AcquireLeaseRequest* req,
                                         v1::Lease* resp) override;
  grpc::ServerUnaryReactor* RenewLease(grpc::CallbackServerContext* ctx,
                                       const v1::RenewLeaseRequest* req, v1::Lease* resp) override;
  grpc::ServerUnaryReactor* ReleaseLease(grpc::CallbackServerContext* ctx,
                                         const v1::ReleaseLeaseRequest* req,
                                         v1::ReleaseLeaseResponse* resp) override;
  grpc::ServerUnaryReactor* ReportAuthFailure(grpc::CallbackServerContext* ctx,
                                              const v1::ReportAuthFailureRequest* req,
                                              v1::ReportAuthFailureResponse* resp) override;
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* ctx, const v1::PingRequest* req,
                                 v1::PingResponse* resp) override;
  grpc::ServerWriteReactor<v1::KeyEvent>* WatchKeys(grpc::CallbackServerContext* ctx,
                                                    const v1::WatchKeysRequest* req) override;

 private:
  // What a WatchKeys stream of `who` may see: PERMISSION_DENIED (NO_RULE), NOT_FOUND.
  absl::StatusOr<WatchScope> ScopeOf(const identity::Identity& who,
                                     const v1::WatchKeysRequest& req) const;

  leasing::LeaseBroker* const broker_;
  const Edge edge_;
  rpc::RpcStats* const metrics_;
  std::unique_ptr<WatchRegistry> watchers_;
};

}  // namespace credbroker::broker
