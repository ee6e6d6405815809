// Reading a whole key range of etcd in pages, at one revision.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "credbroker/state/etcd/client.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"

namespace credbroker::state::etcd {

// Calls `fn` for every key starting with `prefix`, in key order, as of `revision` (0: the newest;
// `*read_revision` then gets the revision read). Pages of `page` keys keep each answer small.
// OUT_OF_RANGE when `revision` was compacted.
absl::Status ReadRange(EtcdClient& client, const std::string& prefix, int64_t revision,
                       const std::function<absl::Status(const mvccpb::KeyValue&)>& fn,
                       int64_t* read_revision, int64_t page = 2000);

}  // namespace credbroker::state::etcd
