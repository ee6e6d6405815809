#include "watch_reactor.h"

#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rpc/status.h"
#include "proto_conversion.h"

namespace credbroker::broker {

using core::ToProtoTime;

// One WatchKeys stream. Events from the KeyRing are queued and written one at a time; a
// watcher that falls more than kMaxQueued events behind is ended with RESOURCE_EXHAUSTED rather
// than letting its queue grow without bound.
class WatchReactor final : public grpc::ServerWriteReactor<v1::KeyEvent> {
 public:
  static constexpr size_t kMaxQueued = 4096;

  WatchReactor(rotation::KeyRing* ring, WatchRegistry* registry, WatchScope scope)
      : ring_(ring), registry_(registry), scope_(std::move(scope)) {
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
        e.set_key_hint(v->hint);
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
    if (snap->state_stale_since != absl::InfiniteFuture()) {
      for (const auto& [name, keys] : snap->providers) {
        if (!Wanted(name)) continue;
        v1::KeyEvent stale;
        stale.set_type(v1::KeyEvent::STATE_STALE);
        stale.set_provider(name);
        stale.set_reason("this replica's state store watch is down: key states may be behind");
        ToProtoTime(snap->state_stale_since, stale.mutable_at());
        initial.push_back(std::move(stale));
      }
    }
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
    registry_->Remove(this, scope_.caller);
    delete this;
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    FinishLocked(core::WithReason(absl::UnavailableError("broker is shutting down; reconnect"),
                                  "SHUTTING_DOWN"));
  }

 private:
  bool Wanted(const std::string& provider) const { return scope_.providers.contains(provider); }
  bool Wanted(const rotation::KeyEvent& ev) const {
    if (!Wanted(ev.provider)) return false;
    return ev.type != rotation::KeyEvent::Type::kAnomaly || scope_.admin ||
           ev.caller == scope_.caller;
  }

  void OnKeyEvents(const std::vector<rotation::KeyEvent>& events) {
    absl::MutexLock lock(&mu_);
    if (finished_ || pending_finish_) return;
    for (const rotation::KeyEvent& ev : events) {
      if (!Wanted(ev)) continue;
      queue_.push_back(ToProto(ev));
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
    Finish(rpc::ToGrpcStatus(status));
  }

  rotation::KeyRing* const ring_;
  WatchRegistry* const registry_;
  const WatchScope scope_;
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

absl::Status WatchRegistry::Admit(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  size_t& mine = per_caller_[caller];
  if (open_ >= limits_.total || mine >= limits_.per_caller) {
    const bool all = open_ >= limits_.total;
    if (mine == 0) per_caller_.erase(caller);
    return core::WithReason(
        absl::ResourceExhaustedError(
            all ? absl::StrCat("the broker has ", limits_.total,
                               " WatchKeys streams open (server.max_watch_streams); retry later")
                : absl::StrCat(caller, " has ", limits_.per_caller,
                               " WatchKeys streams open (server.max_watch_streams_per_caller)")),
        "TOO_MANY_WATCHERS");
  }
  ++mine;
  ++open_;
  return absl::OkStatus();
}

void WatchRegistry::Remove(WatchReactor* r, const std::string& caller) {
  absl::MutexLock lock(&mu_);
  reactors_.erase(r);
  --open_;
  auto it = per_caller_.find(caller);
  if (it != per_caller_.end() && --it->second == 0) per_caller_.erase(it);
}

void WatchRegistry::CloseAll() {
  absl::MutexLock lock(&mu_);
  for (WatchReactor* r : reactors_) r->Close();
}

grpc::ServerWriteReactor<v1::KeyEvent>* StartWatch(rotation::KeyRing* ring, WatchRegistry* registry,
                                                   WatchScope scope) {
  return new WatchReactor(ring, registry, std::move(scope));
}

grpc::ServerWriteReactor<v1::KeyEvent>* FailedWatch(const grpc::Status& status) {
  return new FailedStream(status);
}

}  // namespace credbroker::broker
