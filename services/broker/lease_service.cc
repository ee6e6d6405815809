#include "lease_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "proto_conversion.h"

namespace credbroker::broker {

using core::FromProtoDuration;

LeaseServiceImpl::LeaseServiceImpl(leasing::LeaseBroker* broker, Edge edge,
                                   WatchLimits watch_limits)
    : broker_(broker),
      edge_(edge),
      metrics_(edge.metrics),
      watchers_(std::make_unique<WatchRegistry>(watch_limits)) {}

LeaseServiceImpl::~LeaseServiceImpl() = default;

void LeaseServiceImpl::CloseWatchers() { watchers_->CloseAll(); }

// The lease writes answer from the store's commit (group commit): the handler thread returns at
// once and the reactor is finished when the write is durable.
grpc::ServerUnaryReactor* LeaseServiceImpl::AcquireLease(grpc::CallbackServerContext* ctx,
                                                         const v1::AcquireLeaseRequest* req,
                                                         v1::Lease* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  RpcScope scope(metrics_, "AcquireLease");
  absl::StatusOr<identity::Identity> who = Authenticate(ctx, edge_, "AcquireLease");
  if (!who.ok()) {
    reactor->Finish(scope.Finish(who.status()));
    return reactor;
  }
  broker_->AcquireAsync(*who, req->provider(), FromProtoDuration(req->ttl()), req->purpose(),
                        req->scope(),
                        [reactor, scope, resp](absl::StatusOr<leasing::LeaseGrant> grant) mutable {
                          if (grant.ok()) FillLease(*grant, resp);
                          reactor->Finish(scope.Finish(grant.status()));
                        });
  return reactor;
}

grpc::ServerUnaryReactor* LeaseServiceImpl::RenewLease(grpc::CallbackServerContext* ctx,
                                                       const v1::RenewLeaseRequest* req,
                                                       v1::Lease* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  RpcScope scope(metrics_, "RenewLease");
  absl::StatusOr<identity::Identity> who = Authenticate(ctx, edge_, "RenewLease");
  if (!who.ok()) {
    reactor->Finish(scope.Finish(who.status()));
    return reactor;
  }
  broker_->RenewAsync(*who, req->lease_id(), FromProtoDuration(req->ttl()),
                      [reactor, scope, resp](absl::StatusOr<leasing::LeaseGrant> grant) mutable {
                        if (grant.ok()) FillLease(*grant, resp);
                        reactor->Finish(scope.Finish(grant.status()));
                      });
  return reactor;
}

grpc::ServerUnaryReactor* LeaseServiceImpl::ReleaseLease(grpc::CallbackServerContext* ctx,
                                                         const v1::ReleaseLeaseRequest* req,
                                                         v1::ReleaseLeaseResponse*) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  RpcScope scope(metrics_, "ReleaseLease");
  absl::StatusOr<identity::Identity> who = Authenticate(ctx, edge_, "ReleaseLease");
  if (!who.ok()) {
    reactor->Finish(scope.Finish(who.status()));
    return reactor;
  }
  broker_->ReleaseAsync(*who, req->lease_id(), [reactor, scope](const absl::Status& s) mutable {
    reactor->Finish(scope.Finish(s));
  });
  return reactor;
}

grpc::ServerUnaryReactor* LeaseServiceImpl::ReportAuthFailure(
    grpc::CallbackServerContext* ctx, const v1::ReportAuthFailureRequest* req,
    v1::ReportAuthFailureResponse* resp) {
  return Unary(ctx, metrics_, "ReportAuthFailure", [&]() -> absl::Status {
    CB_ASSIGN_OR_RETURN(identity::Identity who, Authenticate(ctx, edge_, "ReportAuthFailure"));
    CB_ASSIGN_OR_RETURN(leasing::AuthFailureOutcome out,
                        broker_->ReportAuthFailure(who, req->lease_id(), req->http_status(),
                                                   req->error_code(), req->body()));
    resp->set_newer_key_available(out.newer_key_available);
    resp->set_current_key_version(out.current_key_version);
    resp->set_classification(out.classification);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LeaseServiceImpl::Ping(grpc::CallbackServerContext* ctx,
                                                 const v1::PingRequest* req,
                                                 v1::PingResponse* resp) {
  return Unary(ctx, metrics_, "Ping", [&]() -> absl::Status {
    CB_ASSIGN_OR_RETURN(identity::Identity who, Authenticate(ctx, edge_, "Ping"));
    constexpr size_t kMaxPayload = 1024;
    if (req->payload().size() > kMaxPayload) {
      return core::WithReason(
          absl::InvalidArgumentError(absl::StrCat("payload is ", req->payload().size(),
                                                  " bytes; at most ", kMaxPayload, " are echoed")),
          "PAYLOAD_TOO_LARGE");
    }
    resp->set_caller(who.name);
    resp->set_payload(req->payload());
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::KeyEvent>* LeaseServiceImpl::WatchKeys(
    grpc::CallbackServerContext* ctx, const v1::WatchKeysRequest* req) {
  RpcScope scope(metrics_, "WatchKeys");
  absl::StatusOr<identity::Identity> who = Authenticate(ctx, edge_, "WatchKeys");
  if (!who.ok()) return FailedWatch(scope.Finish(who.status()));
  absl::StatusOr<WatchScope> watch = ScopeOf(*who, *req);
  if (watch.ok()) {
    if (absl::Status admitted = watchers_->Admit(who->name); !admitted.ok()) watch = admitted;
  }
  if (!watch.ok()) {
    if (edge_.audit != nullptr) {
      edge_.audit->Record({"WatchKeys", who->name, absl::StrJoin(req->providers(), ","), "", "", "",
                           "", "deny", std::string(core::ReasonOf(watch.status()))});
    }
    return FailedWatch(scope.Finish(watch.status()));
  }
  (void)scope.Finish(absl::OkStatus());  // latency of the subscribe; the stream lives on
  return StartWatch(&broker_->ring(), watchers_.get(), *std::move(watch));
}

absl::StatusOr<WatchScope> LeaseServiceImpl::ScopeOf(const identity::Identity& who,
                                                     const v1::WatchKeysRequest& req) const {
  WatchScope scope;
  scope.caller = who.name;
  scope.admin = edge_.policy != nullptr ? edge_.policy->IsAdmin(who) : who.admin;
  std::shared_ptr<const rotation::KeySnapshot> snap = broker_->ring().Snapshot();
  // The rules that let the caller lease a provider's key line (with its key's scopes) let it
  // watch that line's versions.
  auto allowed = [&](const std::string& provider) {
    if (scope.admin || edge_.policy == nullptr) return true;
    const rotation::ProviderKeys* keys = snap->Find(provider);
    if (keys == nullptr) {
      // Unknown: only NO_RULE hides that it does not exist.
      return core::ReasonOf(edge_.policy->MayHold(who, {provider, provider, {}})) != "NO_RULE";
    }
    return edge_.policy->MayHold(who, {provider, keys->spec->api, keys->Scopes()}).ok();
  };
  for (const std::string& p : req.providers()) {
    if (snap->Find(p) == nullptr) {
      // An api whose key lines have other names: every line the caller may hold.
      bool is_api = false;
      bool any = false;
      for (const auto& [name, keys] : snap->providers) {
        if (keys.spec->api != p) continue;
        is_api = true;
        if (allowed(name)) {
          scope.providers.insert(name);
          any = true;
        }
      }
      if (is_api && any) continue;
      if (is_api) {
        return core::WithReason(absl::PermissionDeniedError(absl::StrCat(
                                    "no policy rule allows ", who.name, " to watch ", p)),
                                "NO_RULE");
      }
    }
    // The policy first, as for AcquireLease: no answer tells a caller which providers exist.
    if (!allowed(p)) {
      return core::WithReason(absl::PermissionDeniedError(absl::StrCat("no policy rule allows ",
                                                                       who.name, " to watch ", p)),
                              "NO_RULE");
    }
    if (snap->Find(p) == nullptr) {
      return core::WithReason(absl::NotFoundError(absl::StrCat("unknown provider \"", p, "\"")),
                              "UNKNOWN_PROVIDER");
    }
    scope.providers.insert(p);
  }
  if (req.providers().empty()) {
    for (const auto& [name, keys] : snap->providers) {
      if (allowed(name)) scope.providers.insert(name);
    }
    if (scope.providers.empty()) {
      return core::WithReason(absl::PermissionDeniedError(absl::StrCat(
                                  "no policy rule allows ", who.name, " to watch any provider")),
                              "NO_RULE");
    }
  }
  return scope;
}

}  // namespace credbroker::broker
