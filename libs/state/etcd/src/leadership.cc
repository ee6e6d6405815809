#include "credbroker/state/etcd/leadership.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "credbroker/core/log.h"

namespace credbroker::state::etcd {

std::unique_ptr<EtcdLeadership> EtcdLeadership::Start(EtcdClient* client, PrefixWatcher* watcher,
                                                      const std::string& prefix,
                                                      const EtcdLeadershipOptions& options) {
  std::unique_ptr<EtcdLeadership> l(
      new EtcdLeadership(client, watcher, absl::StrCat(prefix, "leader/"), options));
  watcher->Register(l->prefix_, l.get());
  EtcdLeadership* raw = l.get();
  l->thread_ = std::thread([raw] { raw->Run(); });
  return l;
}

EtcdLeadership::EtcdLeadership(EtcdClient* client, PrefixWatcher* watcher, std::string prefix,
                               EtcdLeadershipOptions options)
    : client_(client),
      watcher_(watcher),
      prefix_(std::move(prefix)),
      options_(std::move(options)) {}

EtcdLeadership::~EtcdLeadership() {
  watcher_->Unregister(prefix_);
  {
    absl::MutexLock lock(&notify_mu_);
    listeners_.clear();
  }
  int64_t session = 0;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    session = session_;
  }
  if (thread_.joinable()) thread_.join();
  if (session != 0) {
    // Hand over at once instead of after the TTL: revoking deletes the candidate key.
    if (absl::Status s = client_->RevokeLease(session); !s.ok() && !absl::IsNotFound(s)) {
      core::LogWarning(
          "etcd leadership: could not end the session; another replica takes over "
          "when it expires",
          {{"error", s.ToString()}});
    }
  }
}

bool EtcdLeadership::IsLeader() const { return Epoch() > 0; }

int64_t EtcdLeadership::Epoch() const {
  absl::MutexLock lock(&mu_);
  // Past the session's sure end the term is over, even before the election thread says so.
  return absl::Now() < valid_until_ ? epoch_ : 0;
}

uint64_t EtcdLeadership::Subscribe(Listener listener) {
  absl::MutexLock lock(&notify_mu_);
  const int64_t epoch = Epoch();
  listener(epoch > 0, epoch);
  const uint64_t id = next_id_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void EtcdLeadership::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&notify_mu_);
  listeners_.erase(id);
}

std::string EtcdLeadership::CandidateKey() const {
  absl::MutexLock lock(&mu_);
  return absl::StrCat(prefix_, absl::Hex(session_, absl::kZeroPad16));
}

etcdserverpb::Compare EtcdLeadership::FenceCompare(int64_t epoch) const {
  etcdserverpb::Compare c;
  c.set_key(CandidateKey());
  c.set_target(etcdserverpb::Compare::CREATE);
  c.set_result(etcdserverpb::Compare::EQUAL);
  // No key is ever created at revision -1: not leading fails every fenced write.
  c.set_create_revision(epoch > 0 ? epoch : -1);
  return c;
}

void EtcdLeadership::AddFenceCheck(etcdserverpb::TxnRequest& txn) const {
  etcdserverpb::RangeRequest* r = txn.add_failure()->mutable_request_range();
  r->set_key(CandidateKey());
  r->set_keys_only(true);
}

bool EtcdLeadership::IsFenced(const etcdserverpb::TxnResponse& response, int response_index,
                              int64_t epoch) {
  if (epoch <= 0 || response_index >= response.responses_size()) return true;
  const auto& kvs = response.responses(response_index).response_range().kvs();
  return kvs.empty() || kvs[0].create_revision() != epoch;
}

void EtcdLeadership::Apply(const std::vector<const mvccpb::Event*>& events) {
  for (const mvccpb::Event* e : events) {
    if (e->type() == mvccpb::Event::DELETE) {
      absl::MutexLock lock(&mu_);
      wake_ = true;
      return;
    }
  }
}

absl::Status EtcdLeadership::Reload(int64_t) {
  absl::MutexLock lock(&mu_);
  wake_ = true;
  return absl::OkStatus();
}

void EtcdLeadership::SetEpoch(int64_t epoch) {
  absl::MutexLock notifying(&notify_mu_);
  bool was = false;
  {
    absl::MutexLock lock(&mu_);
    if (epoch == epoch_) return;
    was = epoch_ > 0;
    epoch_ = epoch;
  }
  if (epoch > 0) {
    core::LogInfo("etcd leadership: this replica leads",
                  {{"replica", options_.replica_name}, {"epoch", absl::StrCat(epoch)}});
  } else if (was) {
    core::LogWarning("etcd leadership: this replica no longer leads",
                     {{"replica", options_.replica_name}});
  }
  for (const auto& [id, l] : listeners_) l(epoch > 0, epoch);
}

std::string EtcdLeadership::LeaderName() const {
  absl::MutexLock lock(&mu_);
  return leader_name_;
}

absl::Time EtcdLeadership::CallDeadline() const {
  return absl::Now() < session_valid_until_ ? session_valid_until_ : absl::InfiniteFuture();
}

void EtcdLeadership::SetValidUntil(absl::Time t) {
  absl::MutexLock lock(&mu_);
  valid_until_ = t;
}

void EtcdLeadership::Run() {
  for (;;) {
    const absl::Time next = Round();
    absl::MutexLock lock(&mu_);
    auto woken = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || wake_; };
    mu_.AwaitWithDeadline(absl::Condition(&woken), next);
    if (stopping_) return;
    wake_ = false;
  }
}

absl::Time EtcdLeadership::Round() {
  const absl::Duration margin = options_.ttl / 10;
  const absl::Duration period = options_.ttl / 3;
  int64_t session = 0;
  int64_t candidate = 0;
  {
    absl::MutexLock lock(&mu_);
    session = session_;
    candidate = candidate_revision_;
  }
  // A term past its sure end is over before anything else is tried (a call below may block).
  if (session != 0 && absl::Now() >= session_valid_until_) SetEpoch(0);
  // The session: granted once, then kept alive. Its validity is counted from when the request
  // that confirmed it was sent, so it ends here before it can end in etcd.
  const absl::Time sent = absl::Now();
  if (session == 0) {
    absl::StatusOr<int64_t> granted = client_->GrantLease(options_.ttl);
    if (!granted.ok()) {
      SetEpoch(0);
      return absl::Now() + std::min(period, absl::Seconds(1));
    }
    session = *granted;
    session_valid_until_ = sent + options_.ttl - margin;
    SetValidUntil(session_valid_until_);
    absl::MutexLock lock(&mu_);
    session_ = session;
    candidate_revision_ = candidate = 0;
  } else {
    // While the term may still hold, no call may outlast it (so losing it is noticed on time);
    // after that, calls get the usual timeout.
    absl::StatusOr<absl::Duration> left = client_->KeepAliveOnce(session, CallDeadline());
    if (left.ok()) {
      session_valid_until_ = sent + *left - margin;
      SetValidUntil(session_valid_until_);
    } else if (absl::IsNotFound(left.status())) {
      core::LogWarning("etcd leadership: the session expired",
                       {{"replica", options_.replica_name}});
      SetEpoch(0);
      absl::MutexLock lock(&mu_);
      session_ = 0;
      candidate_revision_ = 0;
      return absl::Now();
    }
  }
  if (absl::Now() >= session_valid_until_) {
    SetEpoch(0);  // etcd unreachable for longer than the session is sure to last
    return absl::Now() + std::min(period, absl::Seconds(1));
  }
  const std::string key = CandidateKey();
  if (candidate == 0) {
    etcdserverpb::TxnRequest txn;
    etcdserverpb::Compare* c = txn.add_compare();
    c->set_key(key);
    c->set_target(etcdserverpb::Compare::CREATE);
    c->set_result(etcdserverpb::Compare::EQUAL);
    c->set_create_revision(0);
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(options_.replica_name);
    put->set_lease(session);
    etcdserverpb::RangeRequest* read = txn.add_failure()->mutable_request_range();
    read->set_key(key);
    absl::StatusOr<etcdserverpb::TxnResponse> r = client_->Txn(txn, CallDeadline());
    if (!r.ok())
      return std::min(absl::Now() + std::min(period, absl::Seconds(1)), session_valid_until_);
    if (r->succeeded()) {
      candidate = r->header().revision();
    } else if (!r->responses(0).response_range().kvs().empty()) {
      candidate = r->responses(0).response_range().kvs(0).create_revision();
    }
    absl::MutexLock lock(&mu_);
    candidate_revision_ = candidate;
  }
  // Who leads: the candidate created first.
  etcdserverpb::RangeRequest who;
  who.set_key(prefix_);
  who.set_range_end(PrefixEnd(prefix_));
  who.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  who.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  // Values are replica names (short): the first one tells an operator where to go.
  absl::StatusOr<etcdserverpb::RangeResponse> seen = client_->Range(who, CallDeadline());
  if (seen.ok()) {
    bool mine_exists = false;
    for (const mvccpb::KeyValue& kv : seen->kvs()) mine_exists |= kv.key() == key;
    if (!mine_exists) {
      // Our key is gone while the session lives (deleted by hand?): campaign again.
      SetEpoch(0);
      absl::MutexLock lock(&mu_);
      candidate_revision_ = 0;
      return absl::Now();
    }
    const mvccpb::KeyValue& first = seen->kvs(0);
    {
      absl::MutexLock lock(&mu_);
      leader_name_ = first.value();
    }
    SetEpoch(first.key() == key && first.create_revision() == candidate ? candidate : 0);
  }
  return std::min(absl::Now() + period, session_valid_until_);
}

}  // namespace credbroker::state::etcd
