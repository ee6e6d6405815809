#include "credbroker/state/etcd/key_state_store.h"

#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/state/etcd/range.h"
#include "credbroker/state/v1/records.pb.h"

namespace credbroker::state::etcd {
namespace {

using rotation::KeyState;
using rotation::PersistedKeyVersion;

constexpr std::array<KeyState, 6> kStates = {KeyState::kPending,     KeyState::kCurrent,
                                             KeyState::kPrevious,    KeyState::kRetired,
                                             KeyState::kQuarantined, KeyState::kRevoked};

absl::Status NotLeader() {
  return core::WithReason(
      absl::FailedPreconditionError(
          "not the leader: key-version decisions are written by the leading replica only"),
      "NOT_LEADER");
}

absl::Status Fenced(int64_t epoch) {
  return core::WithReason(
      absl::FailedPreconditionError(absl::StrCat("fenced: this replica's term (epoch ", epoch,
                                                 ") has ended; another replica leads")),
      "FENCED");
}

std::string Encode(const PersistedKeyVersion& r) {
  v1::KeyVersionValue v;
  v.set_provider(r.provider);
  v.set_version_id(r.version_id);
  v.set_fingerprint(r.fingerprint);
  v.set_state(std::string(rotation::KeyStateName(r.state)));
  v.set_created_at_us(absl::ToUnixMicros(r.created_at));
  v.set_retires_at_us(r.retires_at == absl::InfiniteFuture() ? 0
                                                             : absl::ToUnixMicros(r.retires_at));
  return v.SerializeAsString();
}

absl::StatusOr<PersistedKeyVersion> Decode(const mvccpb::KeyValue& kv) {
  v1::KeyVersionValue v;
  if (!v.ParseFromString(kv.value())) {
    return absl::DataLossError(absl::StrCat("etcd: key state ", kv.key(), ": unreadable value"));
  }
  PersistedKeyVersion r;
  r.provider = v.provider();
  r.version_id = v.version_id();
  r.fingerprint = v.fingerprint();
  bool known = false;
  for (KeyState s : kStates) {
    if (rotation::KeyStateName(s) == v.state()) {
      r.state = s;
      known = true;
    }
  }
  if (!known) {
    return absl::DataLossError(
        absl::StrCat("etcd: key state ", kv.key(), ": unknown state \"", v.state(), "\""));
  }
  r.created_at = absl::FromUnixMicros(v.created_at_us());
  r.retires_at =
      v.retires_at_us() == 0 ? absl::InfiniteFuture() : absl::FromUnixMicros(v.retires_at_us());
  r.revision = kv.mod_revision();
  return r;
}

}  // namespace

std::string EscapeKeyPart(const std::string& part) {
  std::string out;
  out.reserve(part.size());
  for (char c : part) {
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

EtcdKeyStateStore::EtcdKeyStateStore(EtcdClient* client, PrefixWatcher* watcher,
                                     EtcdLeadership* leadership, const std::string& prefix,
                                     int64_t revision)
    : client_(client),
      watcher_(watcher),
      leadership_(leadership),
      keys_(absl::StrCat(prefix, "keys/")),
      minted_(absl::StrCat(prefix, "minted/")),
      log_(revision),
      delivered_(revision) {
  watcher_->Register(keys_, this);
}

EtcdKeyStateStore::~EtcdKeyStateStore() { watcher_->Unregister(keys_); }

absl::StatusOr<rotation::KeyStateListing> EtcdKeyStateStore::ReadAll(int64_t revision) {
  rotation::KeyStateListing listing;
  CB_RETURN_IF_ERROR(ReadRange(
      *client_, keys_, revision,
      [&](const mvccpb::KeyValue& kv) -> absl::Status {
        CB_ASSIGN_OR_RETURN(PersistedKeyVersion r, Decode(kv));
        listing.records.push_back(std::move(r));
        return absl::OkStatus();
      },
      &listing.revision));
  return listing;
}

absl::StatusOr<rotation::KeyStateListing> EtcdKeyStateStore::List() { return ReadAll(0); }

absl::StatusOr<int64_t> EtcdKeyStateStore::Write(
    const std::vector<rotation::KeyStateWrite>& writes) {
  const int64_t epoch = leadership_->Epoch();
  if (epoch <= 0) return NotLeader();
  etcdserverpb::TxnRequest txn;
  *txn.add_compare() = leadership_->FenceCompare(epoch);
  std::vector<std::string> keys;
  for (const rotation::KeyStateWrite& w : writes) {
    const PersistedKeyVersion& r = w.record;
    std::string key = absl::StrCat(keys_, EscapeKeyPart(r.provider), "/",
                                   EscapeKeyPart(r.version_id), "/", EscapeKeyPart(r.fingerprint));
    if (w.expected_revision != rotation::KeyStateWrite::kAnyRevision) {
      etcdserverpb::Compare* c = txn.add_compare();
      c->set_key(key);
      c->set_result(etcdserverpb::Compare::EQUAL);
      c->set_target(etcdserverpb::Compare::MOD);
      c->set_mod_revision(w.expected_revision);  // 0: absent
    }
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(Encode(r));
    etcdserverpb::RangeRequest* read = txn.add_failure()->mutable_request_range();
    read->set_key(key);
    read->set_keys_only(true);
    keys.push_back(std::move(key));
  }
  leadership_->AddFenceCheck(txn);
  CB_ASSIGN_OR_RETURN(etcdserverpb::TxnResponse response, client_->Txn(txn));
  if (!response.succeeded()) {
    if (EtcdLeadership::IsFenced(response, static_cast<int>(writes.size()), epoch)) {
      return Fenced(epoch);
    }
    for (size_t i = 0; i < writes.size(); ++i) {
      const auto& kvs = response.responses(static_cast<int>(i)).response_range().kvs();
      const int64_t actual = kvs.empty() ? 0 : kvs[0].mod_revision();
      if (writes[i].expected_revision != rotation::KeyStateWrite::kAnyRevision &&
          writes[i].expected_revision != actual) {
        return rotation::KeyStateChanged(writes[i].record.Id(), writes[i].expected_revision,
                                         actual);
      }
    }
    return absl::AbortedError("etcd: key-state write refused; read again");
  }
  const int64_t revision = response.header().revision();
  // Answer once this replica's followers (the key ring's watch) have the decision.
  delivered_.WaitFor(revision, client_->request_timeout());
  return revision;
}

absl::StatusOr<std::unique_ptr<state::Watch>> EtcdKeyStateStore::Watch(
    int64_t after_revision, rotation::KeyStateWatchFn fn) {
  return log_.Watch(after_revision, std::move(fn));
}

absl::Status EtcdKeyStateStore::SaveMintedKeyId(const std::string& provider,
                                                const std::string& fingerprint,
                                                const std::string& key_id) {
  const int64_t epoch = leadership_->Epoch();
  if (epoch <= 0) return NotLeader();
  etcdserverpb::TxnRequest txn;
  *txn.add_compare() = leadership_->FenceCompare(epoch);
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(absl::StrCat(minted_, EscapeKeyPart(provider), "/", EscapeKeyPart(fingerprint)));
  put->set_value(key_id);
  CB_ASSIGN_OR_RETURN(etcdserverpb::TxnResponse response, client_->Txn(txn));
  if (!response.succeeded()) return Fenced(epoch);
  return absl::OkStatus();
}

absl::StatusOr<std::string> EtcdKeyStateStore::MintedKeyId(const std::string& provider,
                                                           const std::string& fingerprint) {
  etcdserverpb::RangeRequest request;
  request.set_key(absl::StrCat(minted_, EscapeKeyPart(provider), "/", EscapeKeyPart(fingerprint)));
  CB_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, client_->Range(request));
  if (response.kvs().empty()) {
    return absl::NotFoundError(
        absl::StrCat("no minted key id for ", provider, " key ", fingerprint));
  }
  return response.kvs(0).value();
}

void EtcdKeyStateStore::Apply(const std::vector<const mvccpb::Event*>& events) {
  std::vector<PersistedKeyVersion> changed;
  int64_t last = 0;
  for (const mvccpb::Event* e : events) {
    last = e->kv().mod_revision();
    if (e->type() != mvccpb::Event::PUT) continue;  // records are never deleted by the broker
    absl::StatusOr<PersistedKeyVersion> r = Decode(e->kv());
    if (!r.ok()) {
      core::LogError("etcd: skipping an unreadable key state", {{"error", r.status().ToString()}});
      continue;
    }
    changed.push_back(*std::move(r));
  }
  log_.Publish(std::move(changed));
  delivered_.Advance(last);
}

absl::Status EtcdKeyStateStore::Reload(int64_t revision) {
  CB_ASSIGN_OR_RETURN(rotation::KeyStateListing listing, ReadAll(revision));
  std::sort(listing.records.begin(), listing.records.end(),
            [](const PersistedKeyVersion& a, const PersistedKeyVersion& b) {
              return a.revision < b.revision;
            });
  log_.Resync(listing.records, revision);
  delivered_.Advance(revision);
  return absl::OkStatus();
}

}  // namespace credbroker::state::etcd
