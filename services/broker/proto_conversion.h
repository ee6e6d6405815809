// Domain types to the protos of credbroker.v1, in one place (the handlers and the WatchKeys
// stream use them).
#pragma once

#include "credbroker/leasing/lease_broker.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/v1/admin.pb.h"
#include "credbroker/v1/lease.pb.h"

namespace credbroker::broker {

v1::KeyState ToProto(rotation::KeyState s);
v1::KeyEvent::Type ToProto(rotation::KeyEvent::Type t);
// One event of the WatchKeys stream.
v1::KeyEvent ToProto(const rotation::KeyEvent& ev);
void FillKeyVersion(const providers::ProviderSpec& spec, const rotation::KeyVersion& v,
                    v1::KeyVersionInfo* info);
void FillLease(const leasing::LeaseGrant& g, v1::Lease* out);

}  // namespace credbroker::broker
