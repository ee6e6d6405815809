// credbroker.v1.AdminService on gRPC's callback API, for identities with the admin role: every
// call is authenticated, authorized and audited (allowed or denied) before it touches anything.
// Thread-safety: safe for concurrent use, as gRPC calls it.
#pragma once

#include "credbroker/leasing/lease_broker.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/rotation_engine.h"
#include "credbroker/state/leadership.h"
#include "credbroker/v1/admin.grpc.pb.h"
#include "rpc_edge.h"

namespace credbroker::broker {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `engine` may be null (RotateKey is then UNAVAILABLE). Key decisions (RotateKey,
  // QuarantineKeyVersion) are the leader's: on another replica they fail FAILED_PRECONDITION
  // (NOT_LEADER) naming the leader; a null `leadership` always leads. Quarantines are counted by a
  // key-event subscriber (rotation::KeyQuarantineCounter), not here.
  AdminServiceImpl(leasing::LeaseBroker* broker, Edge edge,
                   const providers::ProviderCatalog* catalog, rotation::RotationEngine* engine,
                   const state::Leadership* leadership = nullptr)
      : broker_(broker),
        edge_(edge),
        metrics_(edge.metrics),
        catalog_(catalog),
        engine_(engine),
        leadership_(leadership) {}

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
  grpc::ServerUnaryReactor* ListKeysToDelete(grpc::CallbackServerContext* ctx,
                                             const v1::ListKeysToDeleteRequest* req,
                                             v1::ListKeysToDeleteResponse* resp) override;
  grpc::ServerUnaryReactor* ConfirmKeyDeleted(grpc::CallbackServerContext* ctx,
                                              const v1::ConfirmKeyDeletedRequest* req,
                                              v1::ConfirmKeyDeletedResponse* resp) override;

 private:
  // OK on the leader; FAILED_PRECONDITION (NOT_LEADER) naming the leader elsewhere.
  absl::Status LeaderOnly(absl::string_view what) const;
  // Authenticates and requires the admin role; audits the action (allowed or denied).
  absl::StatusOr<identity::Identity> Admin(grpc::CallbackServerContext* ctx,
                                           absl::string_view action, absl::string_view target = "");

  leasing::LeaseBroker* const broker_;
  const Edge edge_;
  rpc::RpcStats* const metrics_;
  const providers::ProviderCatalog* const catalog_;
  rotation::RotationEngine* const engine_;
  const state::Leadership* const leadership_;
};

}  // namespace credbroker::broker
