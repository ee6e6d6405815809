// LeaseRecord <-> v1::LeaseValue (proto/credbroker/state/v1/records.proto), the stored form of a
// lease: the etcd store's values and the SQLite store's journal records. The id is not in it (the
// etcd key, the journal record's own field). Header-only: include it from a target that links
// cb_proto.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "credbroker/state/lease_store.h"
#include "credbroker/state/v1/records.pb.h"

namespace credbroker::state {

inline void ToLeaseValue(const LeaseRecord& l, v1::LeaseValue* v) {
  v->set_caller(l.caller);
  v->set_provider(l.provider);
  v->set_key_version(l.key_version);
  v->set_key_fingerprint(l.key_fingerprint);
  v->set_purpose(l.purpose);
  v->set_issued_at_us(absl::ToUnixMicros(l.issued_at));
  v->set_expires_at_us(absl::ToUnixMicros(l.expires_at));
  v->set_renew_count(l.renew_count);
}

inline LeaseRecord FromLeaseValue(std::string id, const v1::LeaseValue& v) {
  LeaseRecord l;
  l.id = std::move(id);
  l.caller = v.caller();
  l.provider = v.provider();
  l.key_version = v.key_version();
  l.key_fingerprint = v.key_fingerprint();
  l.purpose = v.purpose();
  l.issued_at = absl::FromUnixMicros(v.issued_at_us());
  l.expires_at = absl::FromUnixMicros(v.expires_at_us());
  l.renew_count = v.renew_count();
  return l;
}

}  // namespace credbroker::state
