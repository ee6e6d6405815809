#include "credbroker/state/etcd/watcher.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::state::etcd {
namespace {

constexpr absl::Duration kMinBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(1);

}  // namespace

std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    auto& c = reinterpret_cast<unsigned char&>(end.back());
    if (c < 0xff) {
      ++c;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

PrefixWatcher::PrefixWatcher(EtcdClient* client, std::string prefix, int64_t start_revision)
    : client_(client), prefix_(std::move(prefix)), delivered_(start_revision) {}

PrefixWatcher::~PrefixWatcher() { Stop(); }

void PrefixWatcher::Register(const std::string& key_prefix, Handler* handler) {
  absl::MutexLock lock(&dispatch_mu_);
  handlers_[key_prefix] = handler;
}

void PrefixWatcher::Unregister(const std::string& key_prefix) {
  absl::MutexLock lock(&dispatch_mu_);
  handlers_.erase(key_prefix);
}

void PrefixWatcher::Start() {
  absl::MutexLock lock(&mu_);
  if (started_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void PrefixWatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

int64_t PrefixWatcher::delivered() const {
  absl::MutexLock lock(&mu_);
  return delivered_;
}

bool PrefixWatcher::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

void PrefixWatcher::SetDelivered(int64_t revision) {
  absl::MutexLock lock(&mu_);
  if (revision > delivered_) delivered_ = revision;
}

void PrefixWatcher::Run() {
  absl::Duration backoff = kMinBackoff;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    const absl::Time started = absl::Now();
    Stream();
    client_->stats().WatchConnected(false);
    {
      absl::MutexLock lock(&mu_);
      connected_ = false;
      if (stopping_) return;
    }
    // A stream that lived a while was healthy: retry soon. One that failed at once backs off.
    backoff =
        absl::Now() - started > kMaxBackoff ? kMinBackoff : std::min(backoff * 2, kMaxBackoff);
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stopping), backoff);
  }
}

void PrefixWatcher::Stream() {
  EtcdClient::WatchChannel channel = client_->WatchStub();
  grpc::ClientContext context;
  if (absl::Status s = client_->PrepareContext(context); !s.ok()) {
    core::LogWarning("etcd watch: cannot open the stream", {{"error", s.ToString()}});
    client_->EndpointFailed(channel.endpoint);
    return;
  }
  int64_t from = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    context_ = &context;
    from = delivered_ + 1;
  }
  auto stream = channel.stub->Watch(&context);
  etcdserverpb::WatchRequest create;
  etcdserverpb::WatchCreateRequest* c = create.mutable_create_request();
  c->set_key(prefix_);
  c->set_range_end(PrefixEnd(prefix_));
  c->set_start_revision(from);
  c->set_prev_kv(true);
  bool compacted = false;
  const bool written = stream->Write(create);
  etcdserverpb::WatchResponse response;
  while (written && stream->Read(&response)) {
    if (response.compact_revision() > 0) {
      compacted = true;
      core::LogWarning(
          "etcd watch: the revisions after the last one seen were compacted; "
          "reloading the state",
          {{"from_revision", absl::StrCat(from)},
           {"compact_revision", absl::StrCat(response.compact_revision())}});
      break;
    }
    if (response.created()) {
      {
        absl::MutexLock lock(&mu_);
        connected_ = true;
      }
      client_->stats().WatchConnected(true);
      continue;
    }
    if (response.canceled()) {
      core::LogWarning("etcd watch: cancelled by etcd", {{"reason", response.cancel_reason()}});
      break;
    }
    if (response.events_size() == 0) continue;  // a progress notification
    Dispatch(response.events());
    SetDelivered(response.events(response.events_size() - 1).kv().mod_revision());
  }
  context.TryCancel();
  grpc::Status status = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
    if (stopping_) return;
  }
  if (compacted) {
    ReloadAll();
    return;
  }
  core::LogWarning("etcd watch: stream ended; resuming on the next endpoint",
                   {{"endpoint", channel.endpoint},
                    {"error", EtcdClient::FromGrpc(status, channel.endpoint, "watch").ToString()}});
  client_->EndpointFailed(channel.endpoint);
}

void PrefixWatcher::Dispatch(const google::protobuf::RepeatedPtrField<mvccpb::Event>& events) {
  // Events arrive in revision order; each handler gets its own, in that order.
  absl::MutexLock lock(&dispatch_mu_);
  std::map<Handler*, std::vector<const mvccpb::Event*>> by_handler;
  for (const mvccpb::Event& e : events) {
    const std::string& key = e.kv().key();
    auto it = handlers_.upper_bound(key);
    if (it == handlers_.begin()) continue;
    --it;
    if (!absl::StartsWith(key, it->first)) continue;
    by_handler[it->second].push_back(&e);
  }
  for (auto& [handler, list] : by_handler) handler->Apply(list);
}

void PrefixWatcher::ReloadAll() {
  etcdserverpb::RangeRequest probe;
  probe.set_key(prefix_);
  probe.set_range_end(PrefixEnd(prefix_));
  probe.set_count_only(true);
  absl::StatusOr<etcdserverpb::RangeResponse> now = client_->Range(probe);
  if (!now.ok()) {
    core::LogWarning("etcd watch: cannot read the revision to reload at",
                     {{"error", now.status().ToString()}});
    return;  // retried by the next stream, which will find the revision compacted again
  }
  const int64_t revision = now->header().revision();
  absl::MutexLock dispatching(&dispatch_mu_);
  for (auto& [key, handler] : handlers_) {
    if (absl::Status s = handler->Reload(revision); !s.ok()) {
      core::LogWarning("etcd watch: reload failed; trying again",
                       {{"range", key}, {"error", s.ToString()}});
      return;
    }
  }
  absl::MutexLock lock(&mu_);
  delivered_ = revision;
}

}  // namespace credbroker::state::etcd
