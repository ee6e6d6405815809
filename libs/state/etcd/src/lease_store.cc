#include "credbroker/state/etcd/lease_store.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/change_log.h"
#include "credbroker/state/etcd/range.h"
#include "credbroker/state/lease_value.h"
#include "credbroker/state/v1/records.pb.h"

namespace credbroker::state::etcd {
namespace {

// How long the committer sleeps at most when idle: it also answers writers whose batch the watch
// has not delivered within the request timeout.
constexpr absl::Duration kIdleWake = absl::Milliseconds(50);

std::string Encode(const LeaseRecord& l) {
  v1::LeaseValue v;
  ToLeaseValue(l, &v);
  return v.SerializeAsString();
}

absl::StatusOr<LeaseRecord> Decode(absl::string_view id, const std::string& value) {
  v1::LeaseValue v;
  if (!v.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("etcd: lease ", id, ": unreadable value"));
  }
  return FromLeaseValue(std::string(id), v);
}

// One queued write.
struct Pending {
  enum class Kind { kCreate, kUpdate, kDelete };
  Kind kind = Kind::kCreate;
  LeaseRecord lease;  // kCreate, kUpdate: the record to store; kDelete: its id (and as_seen)
  int64_t expected = 0;
  LeaseStore::Done<int64_t> done_revision;     // kCreate, kUpdate
  LeaseStore::Done<LeaseRecord> done_deleted;  // kDelete
};

// Writers whose batch committed at `revision`, waiting for the watch to deliver it here.
struct Ack {
  int64_t revision = 0;
  absl::Time committed_at;
  absl::Time give_up_at;
  std::vector<std::function<void()>> answers;
};

}  // namespace

struct EtcdLeaseStore::Impl {
  Impl(EtcdClient* c, PrefixWatcher* w, std::string p, int64_t revision,
       const EtcdLeaseStoreOptions& o)
      : client(c), watcher(w), prefix(std::move(p)), options(o), log(revision) {}

  EtcdClient* const client;
  PrefixWatcher* const watcher;
  const std::string prefix;  // "<prefix>leases/"
  const EtcdLeaseStoreOptions options;
  ChangeLog log;

  // What the watch delivered: every lease by id, and the ids by expiry (for the sweep).
  absl::Mutex index_mu;
  absl::flat_hash_map<std::string, VersionedLease> index ABSL_GUARDED_BY(index_mu);
  std::set<std::pair<absl::Time, std::string>> by_expiry ABSL_GUARDED_BY(index_mu);

  absl::Mutex mu;
  std::deque<Pending> queue ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;

  absl::Mutex ack_mu;
  std::deque<Ack> acks ABSL_GUARDED_BY(ack_mu);
  int64_t applied ABSL_GUARDED_BY(ack_mu) = 0;

  // Committer thread only: etcd lease per bucket end.
  std::map<absl::Time, int64_t> buckets;
  std::atomic<int64_t> writes{0};
  std::atomic<int64_t> commits{0};
  std::thread committer;

  std::string Key(absl::string_view id) const { return absl::StrCat(prefix, id); }

  void Enqueue(Pending p) {
    absl::MutexLock lock(&mu);
    queue.push_back(std::move(p));
  }

  void IndexPut(const VersionedLease& v) ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu) {
    auto [it, inserted] = index.try_emplace(v.lease.id, v);
    if (!inserted) {
      by_expiry.erase({it->second.lease.expires_at, v.lease.id});
      it->second = v;
    }
    by_expiry.insert({v.lease.expires_at, v.lease.id});
  }
  void IndexErase(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(index_mu) {
    auto it = index.find(id);
    if (it == index.end()) return;
    by_expiry.erase({it->second.lease.expires_at, id});
    index.erase(it);
  }

  // Answers the writers of batches up to `revision`, and those that waited too long.
  void Acknowledge(int64_t revision) {
    std::vector<std::function<void()>> due;
    {
      absl::MutexLock lock(&ack_mu);
      applied = std::max(applied, revision);
      const absl::Time now = absl::Now();
      while (!acks.empty() &&
             (acks.front().revision <= applied || acks.front().give_up_at <= now)) {
        if (acks.front().revision <= applied) {
          client->stats().WatchDelay(now - acks.front().committed_at);
        }
        for (auto& a : acks.front().answers) due.push_back(std::move(a));
        acks.pop_front();
      }
    }
    for (auto& a : due) a();
  }

  void AwaitDelivery(int64_t revision, std::vector<std::function<void()>> answers) {
    {
      absl::MutexLock lock(&ack_mu);
      if (applied < revision) {
        const absl::Time now = absl::Now();
        acks.push_back({revision, now, now + client->request_timeout(), std::move(answers)});
        return;
      }
    }
    client->stats().WatchDelay(absl::ZeroDuration());  // delivered before the commit returned
    for (auto& a : answers) a();
  }

  absl::StatusOr<int64_t> EtcdLeaseFor(absl::Time expires_at) {
    const absl::Time now = options.clock->Now();
    buckets.erase(buckets.begin(), buckets.lower_bound(now));
    absl::Time end = std::max(expires_at, now);
    const int64_t width = absl::ToInt64Microseconds(options.bucket);
    const int64_t us = absl::ToUnixMicros(end);
    end = absl::FromUnixMicros((us / width + 1) * width);
    auto it = buckets.find(end);
    if (it != buckets.end()) return it->second;
    // A bucket's lease ends one bucket after its last broker lease: etcd only ever removes what
    // the leader's sweep would have removed.
    CB_ASSIGN_OR_RETURN(int64_t id, client->GrantLease(end - now + options.bucket));
    buckets.emplace(end, id);
    return id;
  }

  void CommitterLoop() {
    for (;;) {
      std::vector<Pending> batch;
      {
        absl::MutexLock lock(&mu);
        auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return !queue.empty() || stopping; };
        mu.AwaitWithTimeout(absl::Condition(&ready), kIdleWake);
        if (queue.empty() && stopping) break;
        // Up to max_batch writes of distinct leases (etcd refuses a Txn that writes one key
        // twice); the others keep their place for the next batch.
        absl::flat_hash_set<std::string> ids;
        std::deque<Pending> rest;
        while (!queue.empty()) {
          Pending& p = queue.front();
          if (batch.size() < options.max_batch && ids.insert(p.lease.id).second) {
            batch.push_back(std::move(p));
          } else {
            rest.push_back(std::move(p));
          }
          queue.pop_front();
        }
        queue.swap(rest);
      }
      Acknowledge(0);  // writers the watch left waiting too long
      if (!batch.empty()) Commit(batch);
    }
    // Stopping: whoever still waits for the watch is answered with what was decided.
    std::deque<Ack> left;
    {
      absl::MutexLock lock(&ack_mu);
      left.swap(acks);
    }
    for (Ack& a : left) {
      for (auto& f : a.answers) f();
    }
  }

  absl::StatusOr<etcdserverpb::TxnRequest> BuildTxn(const std::vector<Pending>& batch) {
    etcdserverpb::TxnRequest txn;
    for (const Pending& p : batch) {
      etcdserverpb::TxnRequest* inner = txn.add_success()->mutable_request_txn();
      const std::string key = Key(p.lease.id);
      etcdserverpb::Compare* c = inner->add_compare();
      c->set_key(key);
      c->set_result(etcdserverpb::Compare::EQUAL);
      switch (p.kind) {
        case Pending::Kind::kCreate:
          c->set_target(etcdserverpb::Compare::CREATE);
          c->set_create_revision(0);
          break;
        case Pending::Kind::kUpdate:
          c->set_target(etcdserverpb::Compare::MOD);
          c->set_mod_revision(p.expected);
          break;
        case Pending::Kind::kDelete:
          if (p.expected > 0) {
            c->set_target(etcdserverpb::Compare::MOD);
            c->set_mod_revision(p.expected);
          } else {
            c->set_target(etcdserverpb::Compare::VERSION);
            c->set_result(etcdserverpb::Compare::GREATER);
            c->set_version(0);
          }
          break;
      }
      if (p.kind == Pending::Kind::kDelete) {
        etcdserverpb::DeleteRangeRequest* d = inner->add_success()->mutable_request_delete_range();
        d->set_key(key);
        d->set_prev_kv(true);
      } else {
        CB_ASSIGN_OR_RETURN(int64_t etcd_lease, EtcdLeaseFor(p.lease.expires_at));
        etcdserverpb::PutRequest* put = inner->add_success()->mutable_request_put();
        put->set_key(key);
        put->set_value(Encode(p.lease));
        put->set_lease(etcd_lease);
      }
      if (p.kind != Pending::Kind::kCreate) {
        // On a failed compare: is the lease gone (NOT_FOUND) or changed (ABORTED)?
        etcdserverpb::RangeRequest* r = inner->add_failure()->mutable_request_range();
        r->set_key(key);
        r->set_keys_only(true);
      }
    }
    return txn;
  }

  void Commit(std::vector<Pending>& batch) {
    absl::StatusOr<etcdserverpb::TxnResponse> response;
    for (int attempt = 0; attempt < 2; ++attempt) {
      absl::StatusOr<etcdserverpb::TxnRequest> txn = BuildTxn(batch);
      if (!txn.ok()) {
        response = txn.status();
        break;
      }
      response = client->Txn(*txn);
      // A bucket's etcd lease vanished (expired early, or etcd was restored from a backup):
      // nothing was written; grant new ones and send the batch once more.
      if (response.ok() || !absl::StrContains(response.status().message(), "lease not found")) {
        break;
      }
      buckets.clear();
    }
    commits.fetch_add(1, std::memory_order_relaxed);
    writes.fetch_add(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
    if (!response.ok()) {
      for (Pending& p : batch) {
        if (p.kind == Pending::Kind::kDelete) {
          p.done_deleted(response.status());
        } else {
          p.done_revision(response.status());
        }
      }
      return;
    }
    const int64_t revision = response->header().revision();
    bool wrote = false;
    std::vector<std::function<void()>> answers;
    answers.reserve(batch.size());
    for (int i = 0; i < static_cast<int>(batch.size()); ++i) {
      Pending& p = batch[i];
      const etcdserverpb::TxnResponse& r = response->responses(i).response_txn();
      if (r.succeeded()) wrote = true;
      if (p.kind == Pending::Kind::kDelete) {
        absl::StatusOr<LeaseRecord> out;
        if (r.succeeded()) {
          const auto& prev = r.responses(0).response_delete_range().prev_kvs();
          if (prev.empty()) {
            out = absl::NotFoundError("no such lease");
          } else {
            out = Decode(p.lease.id, prev[0].value());
          }
        } else if (r.responses(0).response_range().kvs().empty()) {
          out = absl::NotFoundError("no such lease");
        } else {
          out = absl::AbortedError(
              absl::StrCat("lease ", p.lease.id, " changed since revision ", p.expected));
        }
        answers.emplace_back([done = std::move(p.done_deleted), out = std::move(out)]() mutable {
          done(std::move(out));
        });
        continue;
      }
      absl::StatusOr<int64_t> out;
      if (r.succeeded()) {
        out = revision;
      } else if (p.kind == Pending::Kind::kCreate) {
        out = absl::AlreadyExistsError(absl::StrCat("lease ", p.lease.id, " exists"));
      } else if (r.responses(0).response_range().kvs().empty()) {
        out = absl::NotFoundError("no such lease");
      } else {
        out = absl::AbortedError(
            absl::StrCat("lease ", p.lease.id, " changed since revision ", p.expected));
      }
      answers.emplace_back([done = std::move(p.done_revision), out = std::move(out)]() mutable {
        done(std::move(out));
      });
    }
    if (wrote) {
      AwaitDelivery(revision, std::move(answers));
    } else {
      for (auto& a : answers) a();
    }
  }

  // Every lease under the prefix at `revision` (0: now), read in pages.
  absl::StatusOr<LeaseListing> ReadAll(int64_t revision) {
    LeaseListing listing;
    CB_RETURN_IF_ERROR(ReadRange(
        *client, prefix, revision,
        [&](const mvccpb::KeyValue& kv) -> absl::Status {
          absl::string_view id = kv.key();
          id.remove_prefix(prefix.size());
          CB_ASSIGN_OR_RETURN(LeaseRecord l, Decode(id, kv.value()));
          listing.leases.push_back({std::move(l), kv.mod_revision()});
          return absl::OkStatus();
        },
        &listing.revision));
    return listing;
  }
};

EtcdLeaseStore::EtcdLeaseStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

EtcdLeaseStore::~EtcdLeaseStore() {
  impl_->watcher->Unregister(impl_->prefix);
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
  }
  if (impl_->committer.joinable()) impl_->committer.join();
}

absl::StatusOr<std::unique_ptr<EtcdLeaseStore>> EtcdLeaseStore::Open(
    EtcdClient* client, PrefixWatcher* watcher, const std::string& prefix, int64_t revision,
    const EtcdLeaseStoreOptions& options) {
  auto impl =
      std::make_unique<Impl>(client, watcher, absl::StrCat(prefix, "leases/"), revision, options);
  CB_ASSIGN_OR_RETURN(LeaseListing listing, impl->ReadAll(revision));
  {
    absl::MutexLock lock(&impl->index_mu);
    for (const VersionedLease& v : listing.leases) impl->IndexPut(v);
  }
  {
    absl::MutexLock lock(&impl->ack_mu);
    impl->applied = revision;
  }
  Impl* raw = impl.get();
  std::unique_ptr<EtcdLeaseStore> store(new EtcdLeaseStore(std::move(impl)));
  watcher->Register(raw->prefix, store.get());
  raw->committer = std::thread([raw] { raw->CommitterLoop(); });
  return store;
}

void EtcdLeaseStore::CreateAsync(const LeaseRecord& lease, Done<int64_t> done) {
  Pending p;
  p.kind = Pending::Kind::kCreate;
  p.lease = lease;
  p.done_revision = std::move(done);
  impl_->Enqueue(std::move(p));
}

void EtcdLeaseStore::UpdateAsync(const LeaseRecord& lease, int64_t expected_revision,
                                 Done<int64_t> done) {
  Pending p;
  p.kind = Pending::Kind::kUpdate;
  p.lease = lease;
  p.expected = expected_revision;
  p.done_revision = std::move(done);
  impl_->Enqueue(std::move(p));
}

void EtcdLeaseStore::DeleteAsync(LeaseDelete request, Done<LeaseRecord> done) {
  Pending p;
  p.kind = Pending::Kind::kDelete;
  p.lease.id = std::move(request.id);
  p.expected = request.expected_revision;
  p.done_deleted = std::move(done);
  impl_->Enqueue(std::move(p));
}

namespace {

template <typename T, typename Start>
absl::StatusOr<T> Wait(Start start) {
  absl::Notification finished;
  absl::StatusOr<T> out;
  start([&](absl::StatusOr<T> r) {
    out = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return out;
}

}  // namespace

absl::StatusOr<int64_t> EtcdLeaseStore::Create(const LeaseRecord& lease) {
  return Wait<int64_t>([&](Done<int64_t> done) { CreateAsync(lease, std::move(done)); });
}

absl::StatusOr<int64_t> EtcdLeaseStore::Update(const LeaseRecord& lease,
                                               int64_t expected_revision) {
  return Wait<int64_t>(
      [&](Done<int64_t> done) { UpdateAsync(lease, expected_revision, std::move(done)); });
}

absl::StatusOr<LeaseRecord> EtcdLeaseStore::Delete(const LeaseDelete& request) {
  return Wait<LeaseRecord>([&](Done<LeaseRecord> done) { DeleteAsync(request, std::move(done)); });
}

absl::StatusOr<std::vector<LeaseRecord>> EtcdLeaseStore::DeleteAll(
    const std::vector<LeaseDelete>& requests) {
  // Sent through the committer like any write: Txns of at most max_batch deletes each.
  absl::Mutex mu;
  std::vector<LeaseRecord> deleted;
  absl::Status failure;
  size_t left = requests.size();
  for (const LeaseDelete& r : requests) {
    DeleteAsync(LeaseDelete{r.id, r.expected_revision}, [&](absl::StatusOr<LeaseRecord> gone) {
      absl::MutexLock lock(&mu);
      if (gone.ok()) {
        deleted.push_back(*std::move(gone));
      } else if (!absl::IsNotFound(gone.status()) && !absl::IsAborted(gone.status()) &&
                 failure.ok()) {
        failure = gone.status();
      }
      --left;
    });
  }
  absl::MutexLock lock(&mu);
  auto all_done = [&left]() { return left == 0; };
  mu.Await(absl::Condition(&all_done));
  if (!failure.ok()) return failure;
  return deleted;
}

absl::StatusOr<std::vector<LeaseRecord>> EtcdLeaseStore::DeleteExpired(absl::Time now) {
  std::vector<LeaseDelete> expired;
  {
    absl::MutexLock lock(&impl_->index_mu);
    for (auto it = impl_->by_expiry.begin(); it != impl_->by_expiry.end() && it->first <= now;
         ++it) {
      expired.push_back({it->second, impl_->index.at(it->second).revision});
    }
  }
  if (expired.empty()) return std::vector<LeaseRecord>{};
  return DeleteAll(expired);
}

absl::StatusOr<VersionedLease> EtcdLeaseStore::Get(const std::string& id) {
  etcdserverpb::RangeRequest request;
  request.set_key(impl_->Key(id));
  CB_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, impl_->client->Range(request));
  if (response.kvs().empty()) return absl::NotFoundError("no such lease");
  CB_ASSIGN_OR_RETURN(LeaseRecord lease, Decode(id, response.kvs(0).value()));
  return VersionedLease{std::move(lease), response.kvs(0).mod_revision()};
}

absl::StatusOr<LeaseListing> EtcdLeaseStore::List() {
  // The listing may be ahead of this replica's watch: a Watch from its revision gets only the
  // changes after it (the change log filters what the watch delivers late).
  return impl_->ReadAll(0);
}

absl::StatusOr<std::unique_ptr<LeaseWatch>> EtcdLeaseStore::Watch(int64_t after_revision,
                                                                  LeaseWatchFn fn) {
  return impl_->log.Watch(after_revision, std::move(fn));
}

void EtcdLeaseStore::Apply(const std::vector<const mvccpb::Event*>& events) {
  std::vector<LeaseChange> changes;
  changes.reserve(events.size());
  int64_t last = 0;
  {
    absl::MutexLock lock(&impl_->index_mu);
    for (const mvccpb::Event* e : events) {
      absl::string_view id = e->kv().key();
      id.remove_prefix(impl_->prefix.size());
      last = e->kv().mod_revision();
      LeaseChange c;
      c.revision = e->kv().mod_revision();
      if (e->type() == mvccpb::Event::PUT) {
        absl::StatusOr<LeaseRecord> l = Decode(id, e->kv().value());
        if (!l.ok()) {
          core::LogError("etcd: skipping an unreadable lease", {{"error", l.status().ToString()}});
          continue;
        }
        c.type = LeaseChange::Type::kPut;
        c.lease = *std::move(l);
        impl_->IndexPut({c.lease, c.revision});
      } else {
        c.type = LeaseChange::Type::kDelete;
        absl::StatusOr<LeaseRecord> l = Decode(id, e->prev_kv().value());
        if (l.ok()) {
          c.lease = *std::move(l);
        } else if (auto it = impl_->index.find(id); it != impl_->index.end()) {
          c.lease = it->second.lease;
        } else {
          c.lease.id = std::string(id);
        }
        impl_->IndexErase(c.lease.id);
      }
      changes.push_back(std::move(c));
    }
  }
  impl_->log.Publish(std::move(changes));
  impl_->Acknowledge(last);
}

absl::Status EtcdLeaseStore::Reload(int64_t revision) {
  CB_ASSIGN_OR_RETURN(LeaseListing listing, impl_->ReadAll(revision));
  std::vector<LeaseChange> changes;
  {
    absl::MutexLock lock(&impl_->index_mu);
    absl::flat_hash_set<std::string> present;
    for (const VersionedLease& v : listing.leases) {
      present.insert(v.lease.id);
      auto it = impl_->index.find(v.lease.id);
      if (it == impl_->index.end() || it->second.revision != v.revision) {
        changes.push_back({LeaseChange::Type::kPut, v.revision, v.lease});
      }
    }
    std::sort(changes.begin(), changes.end(),
              [](const LeaseChange& a, const LeaseChange& b) { return a.revision < b.revision; });
    std::vector<std::string> gone;
    for (const auto& [id, v] : impl_->index) {
      if (!present.contains(id)) {
        changes.push_back({LeaseChange::Type::kDelete, revision, v.lease});
        gone.push_back(id);
      }
    }
    for (const std::string& id : gone) impl_->IndexErase(id);
    for (const VersionedLease& v : listing.leases) impl_->IndexPut(v);
  }
  impl_->log.Resync(changes, revision);
  impl_->Acknowledge(revision);
  return absl::OkStatus();
}

int64_t EtcdLeaseStore::writes() const { return impl_->writes.load(std::memory_order_relaxed); }
int64_t EtcdLeaseStore::commits() const { return impl_->commits.load(std::memory_order_relaxed); }

}  // namespace credbroker::state::etcd
