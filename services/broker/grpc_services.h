// The gRPC edge: LeaseService and AdminService on gRPC's callback API. Handlers authenticate
// the caller, call LeaseBroker / KeyRing, convert to protos, and map statuses with
// ToGrpcStatus. WatchKeys streams are reactors fed by KeyRing subscriptions.
#pragma once

#include "credbroker/identity/audit_log.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/identity/policy.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/rotation_engine.h"
#include "credbroker/v1/admin.grpc.pb.h"
#include "credbroker/v1/lease.grpc.pb.h"
#include "lease_broker.h"

namespace credbroker::broker {

// What every handler needs to authenticate, authorize admin calls, count and audit.
struct Edge {
  const identity::Authenticator* auth = nullptr;
  metrics::BrokerMetrics* metrics = nullptr;
  // Admin role beyond admin static tokens; may be null.
  const identity::Policy* policy = nullptr;
  // May be null (nothing audited).
  identity::AuditLog* audit = nullptr;
};

// Open WatchKeys streams, so shutdown can end them at once instead of waiting out the grace
// period.
class WatchRegistry;

class LeaseServiceImpl final : public v1::LeaseService::CallbackService {
 public:
  LeaseServiceImpl(LeaseBroker* broker, Edge edge);
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
  grpc::ServerWriteReactor<v1::KeyEvent>* WatchKeys(grpc::CallbackServerContext* ctx,
                                                    const v1::WatchKeysRequest* req) override;

 private:
  LeaseBroker* const broker_;
  const Edge edge_;
  metrics::BrokerMetrics* const metrics_;
  std::unique_ptr<WatchRegistry> watchers_;
};

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `engine` may be null (RotateKey is then UNAVAILABLE).
  AdminServiceImpl(LeaseBroker* broker, Edge edge, const providers::ProviderCatalog* catalog,
                   rotation::RotationEngine* engine)
      : broker_(broker), edge_(edge), metrics_(edge.metrics), catalog_(catalog), engine_(engine) {}

  grpc::ServerUnaryReactor* ListProviders(grpc::CallbackServerContext* ctx,
                                          const v1::ListProvidersRequest* req,
                                          v1::ListProvidersResponse* resp) override;
  grpc::ServerUnaryReactor* ListKeyVersions(grpc::CallbackServerContext* ctx,
                                            const v1::ListKeyVersionsRequest* req,
                                            v1::ListKeyVersionsResponse* resp) override;
  grpc::ServerUnaryReactor* RotateKey(grpc::CallbackServerContext* ctx,
                                      const v1::RotateKeyRequest* req,
                                      v1::RotateKeyResponse* resp) override;
  grpc::ServerUnaryReactor* QuarantineKeyVersion(grpc::CallbackServerContext* ctx,
                                                 const v1::QuarantineKeyVersionRequest* req,
                                                 v1::QuarantineKeyVersionResponse* resp) override;
  grpc::ServerUnaryReactor* ListLeases(grpc::CallbackServerContext* ctx,
                                       const v1::ListLeasesRequest* req,
                                       v1::ListLeasesResponse* resp) override;
  grpc::ServerUnaryReactor* RevokeLeases(grpc::CallbackServerContext* ctx,
                                         const v1::RevokeLeasesRequest* req,
                                         v1::RevokeLeasesResponse* resp) override;

 private:
  // Authenticates and requires the admin role; audits the action (allowed or denied).
  absl::StatusOr<identity::Identity> Admin(grpc::CallbackServerContext* ctx,
                                           absl::string_view action, absl::string_view target = "");

  LeaseBroker* const broker_;
  const Edge edge_;
  metrics::BrokerMetrics* const metrics_;
  const providers::ProviderCatalog* const catalog_;
  rotation::RotationEngine* const engine_;
};

}  // namespace credbroker::broker
