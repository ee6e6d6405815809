// PrefixWatcher follows every change under the broker's etcd prefix with one watch stream, and
// hands each change to the store that owns its part of the key space (`<prefix>/leases/`,
// `<prefix>/keys/`, ...). It remembers the last revision it delivered: after a disconnect it
// reopens the stream on the next endpoint from the revision after it, so nothing is missed or
// repeated. When etcd has compacted that revision away, the stores reload (each handler's
// Reload is called with a fresh read) and the watch goes on from there.
//
// The revision it resumes from is that of the last event delivered, never one from a progress
// notification: etcd 3.4 before 3.4.25 could send those to a watcher still catching up (etcd
// issue #15220), and resuming from one would skip changes.
// Thread-safety: safe for concurrent use. Handlers run on the watcher's thread, one at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/state/etcd/client.h"
#include "etcd/mvcc/mvccpb/kv.pb.h"

namespace credbroker::state::etcd {

class PrefixWatcher {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // Changes under the handler's key range, in revision order.
    virtual void Apply(const std::vector<const mvccpb::Event*>& events) = 0;
    // The watch could not resume (etcd compacted the revisions after the last one delivered):
    // the handler reads its key range again at `revision` and replaces its view. An error
    // makes the watcher try again (from a later revision).
    virtual absl::Status Reload(int64_t revision) = 0;
  };

  // Watches `prefix` (every key starting with it) from `start_revision` + 1 on. Handlers are
  // registered before Start and outlive the watcher.
  PrefixWatcher(EtcdClient* client, std::string prefix, int64_t start_revision);
  PrefixWatcher(const PrefixWatcher&) = delete;
  PrefixWatcher& operator=(const PrefixWatcher&) = delete;
  ~PrefixWatcher();

  // Keys starting with `key_prefix` (itself starting with the watcher's prefix) go to `handler`
  // until it is unregistered (no call to it is running when Unregister returns).
  void Register(const std::string& key_prefix, Handler* handler);
  void Unregister(const std::string& key_prefix);
  void Start();
  // Stops the stream and joins the thread. Idempotent.
  void Stop();

  // The revision of the last change handed to the handlers (or the start revision).
  int64_t delivered() const;
  // Whether the stream is open now.
  bool connected() const;

 private:
  void Run();
  // One stream's life; returns when it fails or Stop was called.
  void Stream();
  void Dispatch(const google::protobuf::RepeatedPtrField<mvccpb::Event>& events)
      ABSL_LOCKS_EXCLUDED(dispatch_mu_);
  void ReloadAll() ABSL_LOCKS_EXCLUDED(dispatch_mu_);
  void SetDelivered(int64_t revision);

  EtcdClient* const client_;
  const std::string prefix_;
  // Held while a handler runs.
  absl::Mutex dispatch_mu_;
  std::map<std::string, Handler*> handlers_ ABSL_GUARDED_BY(dispatch_mu_);
  std::thread thread_;

  mutable absl::Mutex mu_;
  int64_t delivered_ ABSL_GUARDED_BY(mu_);
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// The end of the key range of every key starting with `prefix` (etcd's range_end).
std::string PrefixEnd(const std::string& prefix);

}  // namespace credbroker::state::etcd
