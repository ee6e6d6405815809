#include "admin_service.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "proto_conversion.h"

namespace credbroker::broker {

using core::ToProtoDuration;
using core::ToProtoTime;

absl::StatusOr<identity::Identity> AdminServiceImpl::Admin(grpc::CallbackServerContext* ctx,
                                                           absl::string_view action,
                                                           absl::string_view target) {
  CB_ASSIGN_OR_RETURN(identity::Identity who, Authenticate(ctx, edge_, action));
  bool admin = edge_.policy ? edge_.policy->IsAdmin(who) : who.admin;
  if (edge_.audit) {
    edge_.audit->Record({std::string(action), who.name, std::string(target), "", "", "", "",
                         admin ? "allow" : "deny", admin ? "" : "NOT_ADMIN"});
  }
  if (!admin) {
    return core::WithReason(
        absl::PermissionDeniedError(absl::StrCat(who.name, " does not have the admin role")),
        "NOT_ADMIN");
  }
  return who;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListProviders(grpc::CallbackServerContext* ctx,
                                                          const v1::ListProvidersRequest*,
                                                          v1::ListProvidersResponse* resp) {
  return Unary(ctx, metrics_, "ListProviders", [&]() -> absl::Status {
    CB_RETURN_IF_ERROR(Admin(ctx, "ListProviders").status());
    std::shared_ptr<const rotation::KeySnapshot> snap = broker_->ring().Snapshot();
    for (const providers::ProviderSpec& spec : catalog_->providers()) {
      v1::ProviderInfo* p = resp->add_providers();
      p->set_name(spec.name);
      p->set_base_url(spec.base_url);
      p->set_header_name(spec.header_name);
      p->set_header_prefix(spec.header_prefix);
      p->set_key_format(spec.key_format);
      p->set_single_key(spec.single_key);
      p->set_builtin(spec.builtin);
      p->set_source(spec.source);
      p->set_secret_path(spec.secret_path);
      p->set_rotation_mode(spec.mint ? "minted" : "staged");
      if (!spec.probe.enabled()) {
        p->set_probe_status("none");
      } else if (engine_ == nullptr) {
        p->set_probe_status("uncalibrated");
      } else {
        switch (engine_->CalibrationOf(spec.name)) {
          case rotation::Calibration::kTrusted:
            p->set_probe_status("calibrated");
            break;
          case rotation::Calibration::kLying:
            p->set_probe_status("untrusted");
            break;
          case rotation::Calibration::kUnknown:
            p->set_probe_status("uncalibrated");
            break;
        }
      }
      ToProtoDuration(spec.rotation_period, p->mutable_rotation_period());
      ToProtoDuration(spec.overlap, p->mutable_overlap());
      if (const rotation::ProviderKeys* keys = snap->Find(spec.name)) {
        if (keys->current) p->set_current_key_version(keys->current->version_id);
        if (keys->last_success != absl::InfinitePast()) {
          ToProtoTime(keys->last_success, p->mutable_last_refresh());
        }
        p->set_last_error(keys->last_error);
      }
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListKeyVersions(grpc::CallbackServerContext* ctx,
                                                            const v1::ListKeyVersionsRequest* req,
                                                            v1::ListKeyVersionsResponse* resp) {
  return Unary(ctx, metrics_, "ListKeyVersions", [&]() -> absl::Status {
    CB_RETURN_IF_ERROR(Admin(ctx, "ListKeyVersions", req->provider()).status());
    std::shared_ptr<const rotation::KeySnapshot> snap = broker_->ring().Snapshot();
    if (snap->state_stale_since != absl::InfiniteFuture()) {
      ToProtoTime(snap->state_stale_since, resp->mutable_stale_since());
    }
    if (!req->provider().empty() && snap->Find(req->provider()) == nullptr) {
      return core::WithReason(
          absl::NotFoundError(absl::StrCat("unknown provider \"", req->provider(), "\"")),
          "UNKNOWN_PROVIDER");
    }
    absl::flat_hash_map<std::string, int64_t> active;
    for (const leasing::LeaseRecord& l :
         broker_->table().List([](const leasing::LeaseRecord&) { return true; })) {
      active[absl::StrCat(l.provider, "\x1f", l.key_version)]++;
    }
    for (const providers::ProviderSpec& spec : catalog_->providers()) {
      if (!req->provider().empty() && spec.name != req->provider()) continue;
      const rotation::ProviderKeys* keys = snap->Find(spec.name);
      if (keys == nullptr) continue;
      for (const auto& v : keys->versions) {
        v1::KeyVersionInfo* info = resp->add_versions();
        FillKeyVersion(spec, *v, info);
        auto it = active.find(absl::StrCat(spec.name, "\x1f", v->version_id));
        info->set_active_leases(it == active.end() ? 0 : it->second);
      }
    }
    return absl::OkStatus();
  });
}

absl::Status AdminServiceImpl::LeaderOnly(absl::string_view what) const {
  if (leadership_ == nullptr || leadership_->IsLeader()) return absl::OkStatus();
  const std::string leader = leadership_->LeaderName();
  return core::WithReason(
      absl::FailedPreconditionError(
          absl::StrCat("this replica does not lead; ", what, " is decided by the leader (",
                       leader.empty() ? "not known yet" : absl::StrCat("replica \"", leader, "\""),
                       "): send the request to it")),
      "NOT_LEADER");
}

grpc::ServerUnaryReactor* AdminServiceImpl::RotateKey(grpc::CallbackServerContext* ctx,
                                                      const v1::RotateKeyRequest* req,
                                                      v1::RotateKeyResponse* resp) {
  return Unary(ctx, metrics_, "RotateKey", [&]() -> absl::Status {
    CB_RETURN_IF_ERROR(Admin(ctx, "RotateKey", req->provider()).status());
    if (req->provider().empty()) {
      return core::WithReason(absl::InvalidArgumentError("provider is required"), "MISSING_FILTER");
    }
    const providers::ProviderSpec* spec = catalog_->Find(req->provider());
    if (spec == nullptr) {
      return core::WithReason(
          absl::NotFoundError(absl::StrCat("unknown provider \"", req->provider(), "\"")),
          "UNKNOWN_PROVIDER");
    }
    if (engine_ == nullptr) {
      return core::WithReason(absl::UnavailableError("the rotation engine is not running"),
                              "NOT_READY");
    }
    CB_RETURN_IF_ERROR(LeaderOnly("rotation"));
    // Blocks this callback thread on the provider (bounded by probe and key API timeouts); an
    // operator action, rare enough not to need a thread of its own.
    absl::StatusOr<std::shared_ptr<const rotation::KeyVersion>> rotated =
        engine_->RotateNow(req->provider(), req->skip_probe());
    if (!rotated.ok()) return rotated.status();
    FillKeyVersion(*spec, **rotated, resp->mutable_new_current());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::QuarantineKeyVersion(
    grpc::CallbackServerContext* ctx, const v1::QuarantineKeyVersionRequest* req,
    v1::QuarantineKeyVersionResponse*) {
  return Unary(ctx, metrics_, "QuarantineKeyVersion", [&]() -> absl::Status {
    CB_ASSIGN_OR_RETURN(identity::Identity who,
                        Admin(ctx, "QuarantineKeyVersion", req->provider()));
    if (req->provider().empty() || req->key_version().empty()) {
      return core::WithReason(absl::InvalidArgumentError("provider and key_version are required"),
                              "MISSING_FILTER");
    }
    CB_RETURN_IF_ERROR(LeaderOnly("quarantine"));
    std::string reason = req->reason().empty()
                             ? absl::StrCat("by ", who.name)
                             : absl::StrCat(req->reason().substr(0, 200), " (by ", who.name, ")");
    return broker_->ring().Quarantine(req->provider(), req->key_version(), reason, "",
                                      rotation::kQuarantinedByOperator);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListKeysToDelete(grpc::CallbackServerContext* ctx,
                                                             const v1::ListKeysToDeleteRequest* req,
                                                             v1::ListKeysToDeleteResponse* resp) {
  return Unary(ctx, metrics_, "ListKeysToDelete", [&]() -> absl::Status {
    CB_RETURN_IF_ERROR(Admin(ctx, "ListKeysToDelete", req->provider()).status());
    if (engine_ == nullptr) return absl::OkStatus();  // nothing is minted without the engine
    CB_ASSIGN_OR_RETURN(std::vector<rotation::KeyToDelete> keys,
                        engine_->KeysToDelete(req->provider()));
    for (const rotation::KeyToDelete& k : keys) {
      v1::KeyToDelete* out = resp->add_keys();
      out->set_provider(k.provider);
      out->set_key_version(k.version);
      out->set_key_fingerprint(k.fingerprint);
      out->set_provider_key(k.provider_key);
      out->set_key_hint(k.hint);
      out->set_state(ToProto(k.state));
      ToProtoTime(k.created_at, out->mutable_created_at());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ConfirmKeyDeleted(
    grpc::CallbackServerContext* ctx, const v1::ConfirmKeyDeletedRequest* req,
    v1::ConfirmKeyDeletedResponse*) {
  return Unary(ctx, metrics_, "ConfirmKeyDeleted", [&]() -> absl::Status {
    CB_ASSIGN_OR_RETURN(
        identity::Identity who,
        Admin(ctx, "ConfirmKeyDeleted", absl::StrCat(req->provider(), "/", req->key_version())));
    if (req->provider().empty() || req->key_version().empty()) {
      return core::WithReason(absl::InvalidArgumentError("provider and key_version are required"),
                              "MISSING_FILTER");
    }
    if (engine_ == nullptr) {
      return core::WithReason(absl::UnavailableError("the rotation engine is not running"),
                              "NOT_READY");
    }
    return engine_->ConfirmDeleted(req->provider(), req->key_version(), who.name);
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListLeases(grpc::CallbackServerContext* ctx,
                                                       const v1::ListLeasesRequest* req,
                                                       v1::ListLeasesResponse* resp) {
  return Unary(ctx, metrics_, "ListLeases", [&]() -> absl::Status {
    CB_RETURN_IF_ERROR(Admin(ctx, "ListLeases", req->provider()).status());
    // The lease cache follows the same watch as the key states: stale together.
    const absl::Time stale_since = broker_->ring().Snapshot()->state_stale_since;
    if (stale_since != absl::InfiniteFuture())
      ToProtoTime(stale_since, resp->mutable_stale_since());
    std::vector<leasing::LeaseRecord> found =
        broker_->table().List([req](const leasing::LeaseRecord& l) {
          return (req->provider().empty() || l.provider == req->provider()) &&
                 (req->caller().empty() || l.caller == req->caller()) &&
                 (req->key_version().empty() || l.key_version == req->key_version());
        });
    std::sort(found.begin(), found.end(),
              [](const auto& a, const auto& b) { return a.issued_at < b.issued_at; });
    for (const leasing::LeaseRecord& l : found) {
      v1::LeaseInfo* info = resp->add_leases();
      info->set_lease_id(l.id);
      info->set_caller(l.caller);
      info->set_provider(l.provider);
      info->set_key_version(l.key_version);
      info->set_key_fingerprint(l.key_fingerprint);
      ToProtoTime(l.issued_at, info->mutable_issued_at());
      ToProtoTime(l.expires_at, info->mutable_expires_at());
      info->set_renew_count(l.renew_count);
      info->set_purpose(l.purpose);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RevokeLeases(grpc::CallbackServerContext* ctx,
                                                         const v1::RevokeLeasesRequest* req,
                                                         v1::RevokeLeasesResponse* resp) {
  return Unary(ctx, metrics_, "RevokeLeases", [&]() -> absl::Status {
    CB_ASSIGN_OR_RETURN(identity::Identity who, Admin(ctx, "RevokeLeases", req->provider()));
    if (req->lease_id().empty() && req->provider().empty() && req->caller().empty() &&
        req->key_version().empty()) {
      return core::WithReason(
          absl::InvalidArgumentError("set at least one of lease_id, provider, caller, key_version"),
          "MISSING_FILTER");
    }
    CB_ASSIGN_OR_RETURN(size_t n, broker_->Revoke([req](const leasing::LeaseRecord& l) {
      return (req->lease_id().empty() || l.id == req->lease_id()) &&
             (req->provider().empty() || l.provider == req->provider()) &&
             (req->caller().empty() || l.caller == req->caller()) &&
             (req->key_version().empty() || l.key_version == req->key_version());
    }));
    core::LogInfo("admin revoked leases", {{"admin", who.name},
                                           {"count", absl::StrCat(n)},
                                           {"provider", req->provider()},
                                           {"caller", req->caller()},
                                           {"key_version", req->key_version()}});
    resp->set_revoked(static_cast<int64_t>(n));
    return absl::OkStatus();
  });
}

}  // namespace credbroker::broker
