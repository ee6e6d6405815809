#include "grpc_services.h"

#include <deque>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "status_mapping.h"

namespace credbroker::broker {
namespace {

using core::FromProtoDuration;
using core::ToProtoDuration;
using core::ToProtoTime;

v1::KeyState ToProto(rotation::KeyState s) {
  switch (s) {
    case rotation::KeyState::kPending:
      return v1::KEY_STATE_PENDING;
    case rotation::KeyState::kCurrent:
      return v1::KEY_STATE_CURRENT;
    case rotation::KeyState::kPrevious:
      return v1::KEY_STATE_PREVIOUS;
    case rotation::KeyState::kRetired:
      return v1::KEY_STATE_RETIRED;
    case rotation::KeyState::kQuarantined:
      return v1::KEY_STATE_QUARANTINED;
    case rotation::KeyState::kRevoked:
      return v1::KEY_STATE_REVOKED;
  }
  return v1::KEY_STATE_UNSPECIFIED;
}

v1::KeyEvent::Type ToProto(rotation::KeyEvent::Type t) {
  using T = rotation::KeyEvent::Type;
  switch (t) {
    case T::kSnapshot:
      return v1::KeyEvent::SNAPSHOT;
    case T::kSynced:
      return v1::KeyEvent::SYNCED;
    case T::kRotated:
      return v1::KeyEvent::ROTATED;
    case T::kRetiring:
      return v1::KeyEvent::RETIRING;
    case T::kRetired:
      return v1::KeyEvent::RETIRED;
    case T::kQuarantined:
      return v1::KeyEvent::QUARANTINED;
    case T::kRevoked:
      return v1::KeyEvent::REVOKED;
    case T::kRejected:
      return v1::KeyEvent::REJECTED;
    case T::kAdded:
      return v1::KeyEvent::ADDED;
    case T::kAnomaly:
      return v1::KeyEvent::ANOMALY;
  }
  return v1::KeyEvent::TYPE_UNSPECIFIED;
}

void FillKeyVersion(const providers::ProviderSpec& spec, const rotation::KeyVersion& v,
                    v1::KeyVersionInfo* info) {
  info->set_provider(spec.name);
  info->set_key_version(v.version_id);
  info->set_key_fingerprint(v.fingerprint);
  info->set_state(ToProto(v.state));
  ToProtoTime(v.created_at, info->mutable_created_at());
  if (v.retires_at != absl::InfiniteFuture()) ToProtoTime(v.retires_at, info->mutable_retires_at());
  if (v.state == rotation::KeyState::kCurrent) {
    ToProtoTime(v.created_at + spec.rotation_period, info->mutable_due_at());
  }
}

void FillLease(const LeaseGrant& g, v1::Lease* out) {
  out->set_lease_id(g.lease.id);
  out->set_provider(g.lease.provider);
  out->set_api_key(std::string(g.key->material->reveal()));
  out->set_key_version(g.lease.key_version);
  out->set_key_fingerprint(g.lease.key_fingerprint);
  ToProtoTime(g.lease.issued_at, out->mutable_issued_at());
  ToProtoTime(g.lease.expires_at, out->mutable_expires_at());
  if (g.key->retires_at != absl::InfiniteFuture()) {
    ToProtoTime(g.key->retires_at, out->mutable_key_retires_at());
  }
  out->set_base_url(g.spec->base_url);
  out->set_header_name(g.spec->header_name);
  out->set_header_value(g.spec->HeaderValue(g.key->material->reveal()));
  out->set_renew_count(g.lease.renew_count);
  out->set_key_state(ToProto(g.key->state));
}

// Records latency and outcome of one RPC.
class RpcScope {
 public:
  RpcScope(metrics::BrokerMetrics* metrics, absl::string_view method)
      : metrics_(metrics), method_(method), start_(absl::Now()) {}
  grpc::Status Finish(const absl::Status& status) {
    metrics_->RpcCompleted(method_, absl::StatusCodeToString(status.code()), absl::Now() - start_);
    return ToGrpcStatus(status);
  }

 private:
  metrics::BrokerMetrics* metrics_;
  absl::string_view method_;
  absl::Time start_;
};

absl::StatusOr<identity::Identity> Authenticate(grpc::CallbackServerContext* ctx, const Edge& edge,
                                                absl::string_view method) {
  identity::RequestCredentials creds;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it != md.end()) creds.authorization = absl::string_view(it->second.data(), it->second.size());
  // Set by gRPC only for a client certificate that verified against the client CA bundle.
  std::shared_ptr<const grpc::AuthContext> auth_ctx = ctx->auth_context();
  if (auth_ctx && auth_ctx->IsPeerAuthenticated()) {
    for (const auto& v : auth_ctx->FindPropertyValues("peer_spiffe_id")) {
      creds.peer_spiffe_ids.emplace_back(v.data(), v.size());
    }
    for (const auto& v : auth_ctx->FindPropertyValues("peer_dns")) {
      creds.peer_dns_names.emplace_back(v.data(), v.size());
    }
  }
  absl::StatusOr<identity::Identity> who = edge.auth->Authenticate(creds);
  if (!who.ok()) {
    std::string reason = core::ReasonOf(who.status());
    edge.metrics->CallerAuthFailure(identity::AuthFailureLabel(reason));
    if (edge.audit) {
      edge.audit->Record({std::string(method), "", "", "", "", "", "deny",
                          reason.empty() ? "UNAUTHENTICATED" : reason});
    }
  }
  return who;
}

template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, metrics::BrokerMetrics* metrics,
                                absl::string_view method, Fn&& fn) {
  RpcScope scope(metrics, method);
  absl::Status status = fn();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(scope.Finish(status));
  return reactor;
}

class WatchReactor;

}  // namespace

class WatchRegistry {
 public:
  void Add(WatchReactor* r) {
    absl::MutexLock lock(&mu_);
    reactors_.insert(r);
  }
  // Called from OnDone before the reactor deletes itself: waits for a running CloseAll.
  void Remove(WatchReactor* r) {
    absl::MutexLock lock(&mu_);
    reactors_.erase(r);
  }
  void CloseAll();

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<WatchReactor*> reactors_ ABSL_GUARDED_BY(mu_);
};

namespace {

// One WatchKeys stream. Events from the KeyRing are queued and written one at a time; a
// watcher that falls more than kMaxQueued events behind is ended with RESOURCE_EXHAUSTED rather
// than letting its queue grow without bound.
class WatchReactor final : public grpc::ServerWriteReactor<v1::KeyEvent> {
 public:
  static constexpr size_t kMaxQueued = 4096;

  WatchReactor(rotation::KeyRing* ring, WatchRegistry* registry,
               absl::flat_hash_set<std::string> providers)
      : ring_(ring), registry_(registry), providers_(std::move(providers)) {
    registry_->Add(this);
    std::shared_ptr<const rotation::KeySnapshot> snap = ring_->Subscribe(
        [this](const std::vector<rotation::KeyEvent>& events) { OnKeyEvents(events); },
        &subscription_);
    // Events published after Subscribe may already be queued by OnKeyEvents; the initial
    // state goes in front of them, and nothing is written before it is in place.
    std::vector<v1::KeyEvent> initial;
    for (const auto& [name, keys] : snap->providers) {
      if (!Wanted(name)) continue;
      for (const auto& v : keys.versions) {
        v1::KeyEvent e;
        e.set_type(v1::KeyEvent::SNAPSHOT);
        e.set_provider(name);
        e.set_key_version(v->version_id);
        e.set_key_fingerprint(v->fingerprint);
        e.set_state(ToProto(v->state));
        if (v->retires_at != absl::InfiniteFuture())
          ToProtoTime(v->retires_at, e.mutable_retires_at());
        ToProtoTime(absl::Now(), e.mutable_at());
        initial.push_back(std::move(e));
      }
    }
    v1::KeyEvent synced;
    synced.set_type(v1::KeyEvent::SYNCED);
    ToProtoTime(absl::Now(), synced.mutable_at());
    initial.push_back(std::move(synced));
    absl::MutexLock lock(&mu_);
    queue_.insert(queue_.begin(), std::make_move_iterator(initial.begin()),
                  std::make_move_iterator(initial.end()));
    ready_ = true;
    MaybeWriteLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(absl::CancelledError("stream closed"));
      return;
    }
    if (pending_finish_) {
      FinishLocked(*pending_finish_);
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(absl::CancelledError("cancelled"));
  }

  void OnDone() override {
    // After Unsubscribe returns no listener call is running or can start (the ring calls
    // listeners under the lock Unsubscribe takes), so deleting is safe.
    ring_->Unsubscribe(subscription_);
    registry_->Remove(this);
    delete this;
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    FinishLocked(core::WithReason(absl::UnavailableError("broker is shutting down; reconnect"),
                                  "SHUTTING_DOWN"));
  }

 private:
  bool Wanted(const std::string& provider) const {
    return providers_.empty() || providers_.contains(provider);
  }

  void OnKeyEvents(const std::vector<rotation::KeyEvent>& events) {
    absl::MutexLock lock(&mu_);
    if (finished_ || pending_finish_) return;
    for (const rotation::KeyEvent& ev : events) {
      if (!Wanted(ev.provider)) continue;
      v1::KeyEvent e;
      e.set_type(ToProto(ev.type));
      e.set_provider(ev.provider);
      e.set_key_version(ev.version_id);
      e.set_key_fingerprint(ev.fingerprint);
      e.set_state(ToProto(ev.state));
      if (ev.retires_at != absl::InfiniteFuture())
        ToProtoTime(ev.retires_at, e.mutable_retires_at());
      ToProtoTime(ev.at, e.mutable_at());
      e.set_reason(ev.reason);
      e.set_caller(ev.caller);
      e.set_anomaly_kind(ev.anomaly_kind);
      queue_.push_back(std::move(e));
    }
    if (queue_.size() > kMaxQueued) {
      queue_.clear();
      FinishLocked(core::WithReason(
          absl::ResourceExhaustedError("watcher fell too far behind; reconnect for a fresh state"),
          "WATCHER_TOO_SLOW"));
      return;
    }
    MaybeWriteLocked();
  }

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!ready_ || writing_ || finished_ || queue_.empty()) return;
    in_flight_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&in_flight_);
  }

  void FinishLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    if (writing_) {
      // Finish once the outstanding write completes.
      if (!pending_finish_) pending_finish_ = status;
      return;
    }
    finished_ = true;
    Finish(ToGrpcStatus(status));
  }

  rotation::KeyRing* const ring_;
  WatchRegistry* const registry_;
  const absl::flat_hash_set<std::string> providers_;
  uint64_t subscription_ = 0;
  absl::Mutex mu_;
  std::deque<v1::KeyEvent> queue_ ABSL_GUARDED_BY(mu_);
  v1::KeyEvent in_flight_ ABSL_GUARDED_BY(mu_);
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Status> pending_finish_ ABSL_GUARDED_BY(mu_);
};

// Finishes a stream at once with an error.
class FailedStream final : public grpc::ServerWriteReactor<v1::KeyEvent> {
 public:
  explicit FailedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

void WatchRegistry::CloseAll() {
  absl::MutexLock lock(&mu_);
  for (WatchReactor* r : reactors_) r->Close();
}

LeaseServiceImpl::LeaseServiceImpl(LeaseBroker* broker, Edge edge)
    : broker_(broker), edge_(edge), metrics_(edge.metrics), watchers_(new WatchRegistry()) {}

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
                        [reactor, scope, resp](absl::StatusOr<LeaseGrant> grant) mutable {
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
                      [reactor, scope, resp](absl::StatusOr<LeaseGrant> grant) mutable {
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
    CB_ASSIGN_OR_RETURN(
        AuthFailureOutcome out,
        broker_->ReportAuthFailure(who, req->lease_id(), req->http_status(), req->error_code()));
    resp->set_newer_key_available(out.newer_key_available);
    resp->set_current_key_version(out.current_key_version);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::KeyEvent>* LeaseServiceImpl::WatchKeys(
    grpc::CallbackServerContext* ctx, const v1::WatchKeysRequest* req) {
  RpcScope scope(metrics_, "WatchKeys");
  absl::StatusOr<identity::Identity> who = Authenticate(ctx, edge_, "WatchKeys");
  if (!who.ok()) return new FailedStream(scope.Finish(who.status()));
  absl::flat_hash_set<std::string> providers;
  std::shared_ptr<const rotation::KeySnapshot> snap = broker_->ring().Snapshot();
  for (const std::string& p : req->providers()) {
    if (snap->Find(p) == nullptr) {
      return new FailedStream(scope.Finish(core::WithReason(
          absl::NotFoundError(absl::StrCat("unknown provider \"", p, "\"")), "UNKNOWN_PROVIDER")));
    }
    providers.insert(p);
  }
  (void)scope.Finish(absl::OkStatus());  // latency of the subscribe; the stream lives on
  return new WatchReactor(&broker_->ring(), watchers_.get(), std::move(providers));
}

absl::StatusOr<identity::Identity> AdminServiceImpl::Admin(grpc::CallbackServerContext* ctx,
                                                           absl::string_view action,
                                                           absl::string_view target) {
  CB_ASSIGN_OR_RETURN(identity::Identity who, Authenticate(ctx, edge_, action));
  bool admin = edge_.policy ? edge_.policy->IsAdmin(who) : who.admin;
  if (edge_.audit) {
    edge_.audit->Record({std::string(action), who.name, std::string(target), "", "", "",
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
    std::string reason = req->reason().empty()
                             ? absl::StrCat("by ", who.name)
                             : absl::StrCat(req->reason().substr(0, 200), " (by ", who.name, ")");
    CB_RETURN_IF_ERROR(broker_->ring().Quarantine(req->provider(), req->key_version(), reason));
    metrics_->KeyQuarantined(req->provider(), "operator");
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListLeases(grpc::CallbackServerContext* ctx,
                                                       const v1::ListLeasesRequest* req,
                                                       v1::ListLeasesResponse* resp) {
  return Unary(ctx, metrics_, "ListLeases", [&]() -> absl::Status {
    CB_RETURN_IF_ERROR(Admin(ctx, "ListLeases", req->provider()).status());
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
