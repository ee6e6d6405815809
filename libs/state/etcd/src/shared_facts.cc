#include "credbroker/state/etcd/shared_facts.h"

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/etcd/key_state_store.h"
#include "credbroker/state/etcd/range.h"
#include "credbroker/state/v1/records.pb.h"

namespace credbroker::state::etcd {
namespace {

constexpr absl::Duration kLeaseBucket = absl::Minutes(1);

absl::StatusOr<Fact> Decode(const std::string& prefix, const mvccpb::KeyValue& kv) {
  Fact f;
  f.revision = kv.mod_revision();
  if (absl::StartsWith(kv.key(), absl::StrCat(prefix, "reports/"))) {
    v1::AuthFailureValue v;
    if (!v.ParseFromString(kv.value())) {
      return absl::DataLossError(absl::StrCat("etcd: fact ", kv.key(), ": unreadable value"));
    }
    f.kind = Fact::Kind::kAuthFailure;
    f.report = {
        v.provider(), v.key_version(), v.caller(), v.http_status(), absl::FromUnixMicros(v.at_us()),
        v.kind()};
    return f;
  }
  v1::SuspensionValue v;
  if (!v.ParseFromString(kv.value())) {
    return absl::DataLossError(absl::StrCat("etcd: fact ", kv.key(), ": unreadable value"));
  }
  f.kind = Fact::Kind::kSuspension;
  f.suspension = {v.caller(), v.provider(), absl::FromUnixMicros(v.until_us()), v.reason()};
  return f;
}

}  // namespace

EtcdSharedFacts::EtcdSharedFacts(EtcdClient* client, PrefixWatcher* watcher,
                                 const std::string& prefix, int64_t revision,
                                 absl::Duration report_retention, const core::Clock* clock)
    : client_(client),
      watcher_(watcher),
      prefix_(absl::StrCat(prefix, "facts/")),
      retention_(report_retention),
      clock_(clock),
      log_(revision),
      delivered_(revision) {
  watcher_->Register(prefix_, this);
}

EtcdSharedFacts::~EtcdSharedFacts() { watcher_->Unregister(prefix_); }

absl::StatusOr<int64_t> EtcdSharedFacts::Put(const std::string& key, const std::string& value,
                                             absl::Time expires_at) {
  int64_t lease = 0;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    leases_.erase(leases_.begin(), leases_.lower_bound(now));
    const int64_t width = absl::ToInt64Microseconds(kLeaseBucket);
    const absl::Time end =
        absl::FromUnixMicros((absl::ToUnixMicros(std::max(expires_at, now)) / width + 1) * width);
    auto it = leases_.find(end);
    if (it == leases_.end()) {
      CB_ASSIGN_OR_RETURN(int64_t id, client_->GrantLease(end - now + kLeaseBucket));
      it = leases_.emplace(end, id).first;
    }
    lease = it->second;
  }
  etcdserverpb::TxnRequest txn;
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  put->set_lease(lease);
  absl::StatusOr<etcdserverpb::TxnResponse> response = client_->Txn(txn);
  if (!response.ok() && absl::StrContains(response.status().message(), "lease not found")) {
    absl::MutexLock lock(&mu_);
    leases_.clear();  // granted leases vanished (etcd restored?): the next write grants anew
  }
  if (!response.ok()) return response.status();
  const int64_t revision = response->header().revision();
  delivered_.WaitFor(revision, client_->request_timeout());
  return revision;
}

void EtcdSharedFacts::AddAuthFailure(const AuthFailureReport& report,
                                     std::function<void(absl::Status)> done) {
  v1::AuthFailureValue v;
  v.set_provider(report.provider);
  v.set_key_version(report.key_version);
  v.set_caller(report.caller);
  v.set_http_status(report.http_status);
  v.set_at_us(absl::ToUnixMicros(report.at));
  v.set_kind(report.kind);
  thread_local std::mt19937_64 random{std::random_device{}()};
  const std::string key =
      absl::StrCat(prefix_, "reports/", absl::StrFormat("%020d", absl::ToUnixMicros(report.at)),
                   "-", absl::Hex(random(), absl::kZeroPad16));
  done(Put(key, v.SerializeAsString(), report.at + retention_).status());
}

absl::Status EtcdSharedFacts::Suspend(const Suspension& suspension) {
  v1::SuspensionValue v;
  v.set_caller(suspension.caller);
  v.set_provider(suspension.provider);
  v.set_until_us(absl::ToUnixMicros(suspension.until));
  v.set_reason(suspension.reason);
  const std::string key = absl::StrCat(prefix_, "suspensions/", EscapeKeyPart(suspension.provider),
                                       "/", EscapeKeyPart(suspension.caller));
  return Put(key, v.SerializeAsString(), suspension.until).status();
}

absl::StatusOr<FactListing> EtcdSharedFacts::ReadAll(int64_t revision) {
  FactListing listing;
  CB_RETURN_IF_ERROR(ReadRange(
      *client_, prefix_, revision,
      [&](const mvccpb::KeyValue& kv) -> absl::Status {
        CB_ASSIGN_OR_RETURN(Fact f, Decode(prefix_, kv));
        listing.facts.push_back(std::move(f));
        return absl::OkStatus();
      },
      &listing.revision));
  std::sort(listing.facts.begin(), listing.facts.end(),
            [](const Fact& a, const Fact& b) { return a.revision < b.revision; });
  return listing;
}

absl::StatusOr<FactListing> EtcdSharedFacts::List(absl::Time now) {
  CB_ASSIGN_OR_RETURN(FactListing listing, ReadAll(0));
  // etcd removes facts a little after they end (their leases are per minute): filter exactly.
  std::erase_if(listing.facts, [&](const Fact& f) {
    return f.kind == Fact::Kind::kAuthFailure ? f.report.at < now - retention_
                                              : f.suspension.until <= now;
  });
  return listing;
}

absl::StatusOr<std::unique_ptr<state::Watch>> EtcdSharedFacts::Watch(int64_t after_revision,
                                                                     FactWatchFn fn) {
  return log_.Watch(after_revision, std::move(fn));
}

void EtcdSharedFacts::Apply(const std::vector<const mvccpb::Event*>& events) {
  std::vector<Fact> facts;
  int64_t last = 0;
  for (const mvccpb::Event* e : events) {
    last = e->kv().mod_revision();
    if (e->type() != mvccpb::Event::PUT) continue;  // a fact that ended
    absl::StatusOr<Fact> f = Decode(prefix_, e->kv());
    if (!f.ok()) {
      core::LogError("etcd: skipping an unreadable fact", {{"error", f.status().ToString()}});
      continue;
    }
    facts.push_back(*std::move(f));
  }
  log_.Publish(std::move(facts));
  delivered_.Advance(last);
}

absl::Status EtcdSharedFacts::Reload(int64_t revision) {
  CB_ASSIGN_OR_RETURN(FactListing listing, ReadAll(revision));
  log_.Resync(listing.facts, revision);
  delivered_.Advance(revision);
  return absl::OkStatus();
}

}  // namespace credbroker::state::etcd
