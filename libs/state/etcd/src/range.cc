#include "credbroker/state/etcd/range.h"

#include "credbroker/core/status_macros.h"
#include "credbroker/state/etcd/watcher.h"

namespace credbroker::state::etcd {

absl::Status ReadRange(EtcdClient& client, const std::string& prefix, int64_t revision,
                       const std::function<absl::Status(const mvccpb::KeyValue&)>& fn,
                       int64_t* read_revision, int64_t page) {
  const std::string end = PrefixEnd(prefix);
  std::string from = prefix;
  for (;;) {
    etcdserverpb::RangeRequest request;
    request.set_key(from);
    request.set_range_end(end);
    request.set_limit(page);
    request.set_revision(revision);
    CB_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, client.Range(request));
    // Every later page is read at the first page's revision, so the whole is one snapshot.
    if (revision == 0) revision = response.header().revision();
    for (const mvccpb::KeyValue& kv : response.kvs()) CB_RETURN_IF_ERROR(fn(kv));
    if (!response.more() || response.kvs().empty()) break;
    from = response.kvs(response.kvs_size() - 1).key();
    from.push_back('\0');  // the next key after the last one read
  }
  if (read_revision != nullptr) *read_revision = revision;
  return absl::OkStatus();
}

}  // namespace credbroker::state::etcd
