#include "proto_conversion.h"

#include "credbroker/core/proto_time.h"

namespace credbroker::broker {

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
    case T::kStateStale:
      return v1::KeyEvent::STATE_STALE;
    case T::kStateFresh:
      return v1::KeyEvent::STATE_FRESH;
  }
  return v1::KeyEvent::TYPE_UNSPECIFIED;
}

void FillKeyVersion(const providers::ProviderSpec& spec, const rotation::KeyVersion& v,
                    v1::KeyVersionInfo* info) {
  info->set_provider(spec.name);
  info->set_key_version(v.version_id);
  info->set_key_fingerprint(v.fingerprint);
  info->set_key_hint(v.hint);
  for (const std::string& scope : rotation::ScopesOf(v, spec)) info->add_scopes(scope);
  info->set_state(ToProto(v.state));
  ToProtoTime(v.created_at, info->mutable_created_at());
  if (v.retires_at != absl::InfiniteFuture()) ToProtoTime(v.retires_at, info->mutable_retires_at());
  if (v.state == rotation::KeyState::kCurrent) {
    ToProtoTime(v.created_at + spec.rotation_period, info->mutable_due_at());
  }
}

void FillLease(const leasing::LeaseGrant& g, v1::Lease* out) {
  out->set_lease_id(g.lease.id);
  out->set_provider(g.lease.provider);
  out->set_api_key(std::string(g.key->material->reveal()));
  out->set_key_version(g.lease.key_version);
  out->set_key_fingerprint(g.lease.key_fingerprint);
  ToProtoTime(g.lease.issued_at, out->mutable_issued_at());
  ToProtoTime(g.lease.expires_at, out->mutable_expires_at());
  if (g.key->ValidUntil() != absl::InfiniteFuture()) {
    ToProtoTime(g.key->ValidUntil(), out->mutable_key_retires_at());
  }
  out->set_base_url(g.spec->base_url);
  out->set_header_name(g.spec->header_name);
  out->set_header_value(g.spec->HeaderValue(g.key->material->reveal()));
  out->set_renew_count(g.lease.renew_count);
  out->set_key_state(ToProto(g.key->state));
  for (const std::string& scope : rotation::ScopesOf(*g.key, *g.spec)) out->add_scopes(scope);
}

v1::KeyEvent ToProto(const rotation::KeyEvent& ev) {
  v1::KeyEvent e;
  e.set_type(ToProto(ev.type));
  e.set_provider(ev.provider);
  e.set_key_version(ev.version_id);
  e.set_key_fingerprint(ev.fingerprint);
  e.set_key_hint(ev.hint);
  e.set_state(ToProto(ev.state));
  if (ev.retires_at != absl::InfiniteFuture()) ToProtoTime(ev.retires_at, e.mutable_retires_at());
  ToProtoTime(ev.at, e.mutable_at());
  e.set_reason(ev.reason);
  e.set_caller(ev.caller);
  e.set_anomaly_kind(ev.anomaly_kind);
  return e;
}

}  // namespace credbroker::broker
