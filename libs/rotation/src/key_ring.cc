#include "credbroker/rotation/key_ring.h"

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/key_state_machine.h"

namespace credbroker::rotation {
namespace {

// `v` carrying what the backend now says of it (stage, labels, expiry): the same object when
// nothing changed.
std::shared_ptr<const KeyVersion> WithBackendView(std::shared_ptr<const KeyVersion> v,
                                                  const secrets::VersionInfo& info) {
  if (v->backend_stage == info.stage && v->backend_labels == info.labels &&
      v->expires_at == info.expires_at) {
    return v;
  }
  auto updated = std::make_shared<KeyVersion>(*v);
  updated->backend_stage = info.stage;
  updated->backend_labels = info.labels;
  updated->expires_at = info.expires_at;
  return updated;
}

// The metric reason for a backend error: the backend's own (e.g. "sealed") when it set one.
std::string CodeReason(const absl::Status& s) {
  std::string own = core::ReasonOf(s);
  if (!own.empty()) return own;
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return "permission_denied";
    case absl::StatusCode::kDataLoss:
      return "data_loss";
    case absl::StatusCode::kDeadlineExceeded:
      return "timeout";
    case absl::StatusCode::kInvalidArgument:
      return "invalid";
    default:
      return "other";
  }
}

}  // namespace

absl::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kPending:
      return "PENDING";
    case KeyState::kCurrent:
      return "CURRENT";
    case KeyState::kPrevious:
      return "PREVIOUS";
    case KeyState::kRetired:
      return "RETIRED";
    case KeyState::kQuarantined:
      return "QUARANTINED";
    case KeyState::kRevoked:
      return "REVOKED";
  }
  return "UNKNOWN";
}

const KeyVersion* ProviderKeys::Find(absl::string_view version_id) const {
  for (const auto& v : versions) {
    if (v->version_id == version_id) return v.get();
  }
  return nullptr;
}

const std::vector<std::string>& ScopesOf(const KeyVersion& v, const providers::ProviderSpec& spec) {
  return v.scopes.empty() ? spec.scopes : v.scopes;
}

const std::vector<std::string>& ProviderKeys::Scopes() const {
  return current != nullptr ? ScopesOf(*current, *spec) : spec->scopes;
}

const ProviderKeys* KeySnapshot::Find(absl::string_view provider) const {
  auto it = providers.find(provider);
  return it == providers.end() ? nullptr : &it->second;
}

KeyRing::KeyRing(const providers::ProviderCatalog* catalog, const core::Clock* clock,
                 RotationStats* metrics,
                 absl::flat_hash_map<std::string, absl::Duration> max_staleness)
    : catalog_(catalog), clock_(clock), metrics_(metrics) {
  auto initial = std::make_shared<KeySnapshot>();
  for (const providers::ProviderSpec& spec : catalog_->providers()) {
    ProviderKeys keys;
    keys.spec = &spec;
    auto it = max_staleness.find(spec.name);
    if (it != max_staleness.end()) keys.max_staleness = it->second;
    keys.last_error = "not loaded yet";
    initial->providers.emplace(spec.name, std::move(keys));
    if (metrics_) metrics_->ProviderServable(spec.name, false);
  }
  snapshot_.store(std::move(initial));
}

KeyEvent MakeEvent(KeyEvent::Type type, const KeyVersion& v, absl::Time at, std::string reason) {
  KeyEvent e;
  e.type = type;
  e.provider = v.provider;
  e.version_id = v.version_id;
  e.fingerprint = v.fingerprint;
  e.hint = v.hint;
  e.state = v.state;
  e.retires_at = v.retires_at;
  e.at = at;
  e.reason = std::move(reason);
  return e;
}

absl::Status KeyRing::UsePersistedState(KeyStateStore* store) {
  CB_ASSIGN_OR_RETURN(KeyStateListing listing, store->List());
  absl::MutexLock lock(&mu_);
  store_ = store;
  persisted_revision_ = listing.revision;
  for (PersistedKeyVersion& r : listing.records) persisted_[r.Id()] = std::move(r);
  return absl::OkStatus();
}

absl::Status KeyRing::FollowDecisions(const state::Leadership* leadership) {
  int64_t from = 0;
  {
    absl::MutexLock lock(&mu_);
    if (store_ == nullptr) {
      return absl::FailedPreconditionError("FollowDecisions needs UsePersistedState first");
    }
    leadership_ = leadership;
    from = persisted_revision_;
  }
  CB_ASSIGN_OR_RETURN(
      watch_,
      store_->Watch(from, [this](const std::vector<PersistedKeyVersion>& r) { OnStored(r); }));
  return absl::OkStatus();
}

void KeyRing::OnStored(const std::vector<PersistedKeyVersion>& records) {
  // The leader wrote these itself (WriteDecision keeps persisted_ up to date). No lock before
  // this check: the leader's own write is delivered while it holds mu_.
  if (leadership_->IsLeader()) return;
  absl::MutexLock lock(&mu_);
  for (const PersistedKeyVersion& r : records) persisted_[r.Id()] = r;
  const absl::Time now = clock_->Now();
  std::shared_ptr<const KeySnapshot> prev = snapshot_.load();
  std::shared_ptr<KeySnapshot> next;
  std::vector<KeyEvent> events;
  for (const auto& [name, keys] : prev->providers) {
    Decision d = DecideFollow(keys, records, now);
    if (d.events.empty()) continue;
    if (next == nullptr) {
      next = std::make_shared<KeySnapshot>(*prev);
      next->generation = prev->generation + 1;
    }
    ProviderKeys& following = next->providers[name];
    ApplyDecision(following, d);
    if (metrics_) {
      metrics_->ProviderServable(name, following.current != nullptr && !following.Stale(now));
      for (const auto& v : following.versions) RecordState(*v);
    }
    events.insert(events.end(), d.events.begin(), d.events.end());
  }
  if (next != nullptr) Publish(std::move(next), events);
}

const PersistedKeyVersion* KeyRing::FindPersisted(const std::string& provider,
                                                  const KeyVersion& v) const {
  auto it = persisted_.find(KeyVersionId{provider, v.version_id, v.fingerprint});
  return it == persisted_.end() ? nullptr : &it->second;
}

void KeyRing::Persist(const ProviderKeys* before, const ProviderKeys& keys,
                      const std::vector<KeyEvent>& events) {
  if (store_ == nullptr) return;
  std::vector<PersistedKeyVersion> records;
  for (const auto& v : keys.versions) {
    bool unchanged = false;
    if (before != nullptr) {
      for (const auto& old : before->versions) unchanged |= old == v;
    }
    if (unchanged) continue;
    records.push_back(
        {v->provider, v->version_id, v->fingerprint, v->state, v->created_at, v->retires_at});
  }
  for (const KeyEvent& e : events) {
    const bool gone = e.type == KeyEvent::Type::kRetired || e.type == KeyEvent::Type::kQuarantined;
    if (!gone || e.fingerprint.empty() || e.provider != keys.spec->name) continue;
    records.push_back({e.provider, e.version_id, e.fingerprint, e.state, e.at});
  }
  WriteDecision(std::move(records));
}

void KeyRing::WriteDecision(std::vector<PersistedKeyVersion> records) {
  if (store_ == nullptr || records.empty()) return;
  // A follower's own view (e.g. of a refresh) is not a decision: the leader's records come
  // through the watch.
  if (leadership_ != nullptr && !leadership_->IsLeader()) return;
  // What an earlier refused write left unwritten goes with this one (this decision's own record
  // of the same version is newer).
  for (auto& [id, r] : unwritten_) {
    bool superseded = false;
    for (const PersistedKeyVersion& mine : records) superseded |= mine.Id() == id;
    if (!superseded) records.push_back(std::move(r));
  }
  unwritten_.clear();
  // One transaction for the whole decision, each record from the revision this ring last saw.
  std::vector<KeyStateWrite> writes;
  for (PersistedKeyVersion& r : records) {
    auto known = persisted_.find(r.Id());
    int64_t expected = 0;
    if (known != persisted_.end()) {
      r.created_at = known->second.created_at;  // first seen stays first seen
      expected = known->second.revision;
    }
    writes.push_back({r, expected});
  }
  absl::StatusOr<int64_t> revision = store_->Write(writes);
  if (!revision.ok()) {
    // The decision still applies here (a quarantined key must stop being served even when the
    // store is failing); its records are written with the next decision.
    core::LogError("cannot write key version decision",
                   {{"provider", records.front().provider},
                    {"key_versions", absl::StrCat(records.size())},
                    {"error", revision.status().ToString()}});
    for (PersistedKeyVersion& r : records) unwritten_[r.Id()] = std::move(r);
    if (absl::IsAborted(revision.status())) {
      // Someone else wrote these records: take their revisions for the next decision.
      absl::StatusOr<KeyStateListing> fresh = store_->List();
      if (fresh.ok()) {
        persisted_.clear();
        for (PersistedKeyVersion& r : fresh->records) persisted_[r.Id()] = std::move(r);
      }
    }
    return;
  }
  for (PersistedKeyVersion& r : records) {
    r.revision = *revision;
    persisted_[r.Id()] = std::move(r);
  }
}

absl::Status KeyRing::RefreshProvider(absl::string_view provider, secrets::SecretSource& source) {
  std::shared_ptr<const KeySnapshot> snap = Snapshot();
  const ProviderKeys* keys = snap->Find(provider);
  if (keys == nullptr) return absl::NotFoundError(absl::StrCat("unknown provider ", provider));
  const std::string& path = keys->spec->secret_path;
  std::string name(provider);

  absl::StatusOr<std::vector<secrets::VersionInfo>> listed = source.ListVersions(path);
  if (!listed.ok()) {
    absl::Status s =
        core::Annotate(listed.status(), absl::StrCat("source ", source.name(), ": list ", path));
    Apply(name, s, source.name());
    return s;
  }
  std::vector<Fetched> fetched;
  const std::vector<secrets::VersionInfo> servable = ServableListing(
      *std::move(listed),
      [keys](absl::string_view version) { return keys->Find(version) != nullptr; }, clock_->Now());
  for (const secrets::VersionInfo& info : servable) {
    Fetched f;
    f.info = info;
    const KeyVersion* known = keys->Find(info.version_id);
    if (known != nullptr && known->etag == info.etag && !info.etag.empty()) {
      for (const auto& v : keys->versions) {
        if (v.get() == known) f.reuse = v;
      }
      fetched.push_back(std::move(f));
      continue;
    }
    absl::StatusOr<secrets::SecretVersion> version = source.FetchVersion(path, info.version_id);
    if (!version.ok()) {
      // One unreadable version does not fail the refresh: the others still count.
      if (metrics_) metrics_->BackendFetchError(source.name(), CodeReason(version.status()));
      core::LogWarning("key version could not be fetched",
                       {{"provider", name},
                        {"key_version", info.version_id},
                        {"source", source.name()},
                        {"error", version.status().ToString()}});
      continue;
    }
    f.fingerprint = core::Fingerprint(version->material.reveal());
    f.material = std::make_shared<const core::SecretBytes>(std::move(version->material));
    f.scopes = std::move(version->scopes);
    fetched.push_back(std::move(f));
  }
  Apply(name, std::move(fetched), source.name());
  return absl::OkStatus();
}

void KeyRing::Apply(const std::string& provider, absl::StatusOr<std::vector<Fetched>> listing,
                    const std::string& source_name) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::shared_ptr<const KeySnapshot> prev = snapshot_.load();
  auto next = std::make_shared<KeySnapshot>(*prev);
  next->generation = prev->generation + 1;
  ProviderKeys& keys = next->providers[provider];
  const providers::ProviderSpec& spec = *keys.spec;
  std::vector<KeyEvent> events;
  auto event = [&](KeyEvent::Type type, const KeyVersion& v, std::string reason = "") {
    KeyEvent e = MakeEvent(type, v, now, std::move(reason));
    e.provider = provider;  // rejected versions are not KeyVersions of the ring: no provider set
    events.push_back(std::move(e));
  };

  if (!listing.ok()) {
    keys.last_error = std::string(listing.status().message());
    if (metrics_) metrics_->BackendFetchError(source_name, CodeReason(listing.status()));
    bool stale = keys.Stale(now);
    core::Log(stale ? core::LogLevel::kError : core::LogLevel::kWarning,
              stale ? "backend unreadable and cached keys are past max_staleness: not serving"
                    : "backend unreadable: serving cached keys",
              {{"provider", provider},
               {"source", source_name},
               {"error", listing.status().ToString()},
               {"last_success", keys.last_success == absl::InfinitePast()
                                    ? "never"
                                    : absl::FormatTime(keys.last_success)}});
    if (metrics_) metrics_->ProviderServable(provider, keys.current != nullptr && !stale);
    Publish(std::move(next), events);
    return;
  }

  // Validate what was listed; keep the last good material when a version turns bad.
  std::vector<std::shared_ptr<const KeyVersion>> valid;  // in listing order (oldest first)
  for (Fetched& f : *listing) {
    absl::Cleanup backend_view = [&valid, n = valid.size(), &f] {
      if (valid.size() > n) valid.back() = WithBackendView(std::move(valid.back()), f.info);
    };
    if (!f.reuse && keys.retired.contains(absl::StrCat(f.info.version_id, "\x1f", f.fingerprint))) {
      continue;
    }
    if (f.reuse) {
      valid.push_back(f.reuse);
      continue;
    }
    const KeyVersion* known = keys.Find(f.info.version_id);
    absl::Status ok = spec.ValidateKey(f.material->reveal());
    if (ok.ok()) ok = spec.ValidateScopes(f.scopes);
    if (ok.ok() && known != nullptr && known->fingerprint == f.fingerprint) {
      auto same = std::make_shared<KeyVersion>(*known);
      same->etag = f.info.etag;
      same->scopes = std::move(f.scopes);
      valid.push_back(std::move(same));
      continue;
    }
    if (!ok.ok()) {
      std::string reason = core::ReasonOf(ok);
      std::string key = absl::StrCat(provider, "\x1f", f.info.version_id, "\x1f", f.fingerprint);
      if (rejected_.insert(key).second) {
        if (metrics_) metrics_->KeyVersionRejected(provider, reason);
        core::LogError("key version rejected: not served",
                       {{"provider", provider},
                        {"key_version", f.info.version_id},
                        {"fingerprint", f.fingerprint},
                        {"reason", reason},
                        {"error", ok.message()},
                        {"source", source_name},
                        {"kept_version", known ? known->version_id
                                               : (keys.current ? keys.current->version_id : "")}});
        KeyVersion rejected;
        rejected.version_id = f.info.version_id;
        rejected.fingerprint = f.fingerprint;
        rejected.state = KeyState::kRetired;
        event(KeyEvent::Type::kRejected, rejected, reason);
      }
      if (known != nullptr) {
        // The version's content changed into something invalid: keep serving what we had.
        for (const auto& v : keys.versions) {
          if (v.get() == known) valid.push_back(v);
        }
      }
      continue;
    }
    auto v = std::make_shared<KeyVersion>();
    v->provider = provider;
    v->version_id = f.info.version_id;
    v->fingerprint = f.fingerprint;
    v->hint = spec.HintOf(f.material->reveal());
    v->scopes = std::move(f.scopes);
    v->etag = f.info.etag;
    v->material = f.material;
    if (known != nullptr) {
      core::LogWarning("key version content replaced", {{"provider", provider},
                                                        {"key_version", v->version_id},
                                                        {"old_fingerprint", known->fingerprint},
                                                        {"fingerprint", v->fingerprint}});
      v->state = known->state;
      v->created_at = known->created_at;
      v->retires_at = known->retires_at;
    } else {
      v->state = KeyState::kPending;
      v->created_at = now;
      // Seen before this process started: keep what was decided then.
      if (const PersistedKeyVersion* p = FindPersisted(provider, *v)) {
        if (p->state == KeyState::kRetired || p->state == KeyState::kQuarantined ||
            p->state == KeyState::kRevoked) {
          keys.retired.insert(absl::StrCat(v->version_id, "\x1f", v->fingerprint));
          continue;
        }
        v->created_at = p->created_at;
        v->state = p->state;
        if (p->state == KeyState::kPrevious) v->retires_at = p->retires_at;
      }
    }
    valid.push_back(std::move(v));
  }

  const bool first_load = keys.last_success == absl::InfinitePast();
  Decision d = DecideListing(keys, valid, gated_.contains(provider), first_load, now);
  for (const KeyVersion* old : d.removed) {
    if (metrics_) metrics_->RemoveKeyVersion(provider, old->version_id);
  }
  events.insert(events.end(), d.events.begin(), d.events.end());
  const bool had_key = keys.current != nullptr;
  ApplyDecision(keys, d);
  const std::shared_ptr<const KeyVersion> current = keys.current;
  if (valid.empty() && had_key) {
    core::LogError("backend lists no valid key versions: provider has no key",
                   {{"provider", provider}, {"source", source_name}});
  }
  std::stable_partition(events.begin(), events.end(),
                        [](const KeyEvent& e) { return e.type == KeyEvent::Type::kRotated; });
  keys.last_success = now;
  keys.last_error.clear();
  Persist(prev->Find(provider), keys, events);
  if (metrics_) {
    metrics_->BackendSuccess(source_name, now);
    metrics_->ProviderServable(provider, current != nullptr);
    for (const auto& v : keys.versions) RecordState(*v);
  }
  Publish(std::move(next), events);
}

void KeyRing::RecordState(const KeyVersion& v) {
  metrics_->KeyVersionState(v.provider, v.version_id, KeyStateName(v.state));
}

void KeyRing::TickImpl(bool retire) {
  // Series of retired versions leave the scrape once no request thread can still hold them.
  if (metrics_) metrics_->PurgeRemoved();
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::shared_ptr<const KeySnapshot> prev = snapshot_.load();
  std::vector<std::pair<std::string, Decision>> decisions;
  for (const auto& [name, keys] : prev->providers) {
    // Staleness is crossed by time passing, not only by a failed refresh.
    if (metrics_) metrics_->ProviderServable(name, keys.current != nullptr && !keys.Stale(now));
    if (keys.current != nullptr) {
      const absl::Time due = keys.current->created_at + keys.spec->rotation_period;
      if (metrics_) {
        metrics_->RotationDueIn(name, due - now);
        for (const auto& v : keys.versions)
          metrics_->KeyAge(name, v->version_id, now - v->created_at);
      }
      const std::string due_key = absl::StrCat(name, "\x1f", keys.current->version_id);
      if (now >= due && due_logged_.insert(due_key).second) {
        core::LogWarning("key rotation due: stage a new version in the secret source",
                         {{"provider", name},
                          {"key_version", keys.current->version_id},
                          {"fingerprint", keys.current->fingerprint},
                          {"due_since", absl::FormatTime(due)}});
      }
    }
    if (!retire) continue;
    // The leases that hold versions whose overlap has ended: the input of the decision.
    absl::flat_hash_map<std::string, int64_t> held;
    for (const auto& v : keys.versions) {
      if (v->state == KeyState::kPrevious && v->retires_at <= now && leases_ != nullptr) {
        held[v->version_id] = leases_->ActiveLeases(name, v->version_id);
      }
    }
    if (held.empty() && leases_ != nullptr) continue;
    Decision d = DecideRetirement(keys, held, leases_ != nullptr, now);
    for (const Decision::Waiting& w : d.waiting) {
      if (waiting_.insert(absl::StrCat(name, "\x1f", w.version)).second) {
        const KeyVersion* v = keys.Find(w.version);
        core::LogInfo("key version retirement waits for leases",
                      {{"provider", name},
                       {"key_version", w.version},
                       {"fingerprint", v ? v->fingerprint : ""},
                       {"leases", absl::StrCat(w.leases)},
                       {"hard_deadline", absl::FormatTime(w.deadline)}});
      }
    }
    if (d.events.empty()) continue;
    decisions.emplace_back(name, std::move(d));
  }
  if (decisions.empty()) return;
  auto next = std::make_shared<KeySnapshot>(*prev);
  next->generation = prev->generation + 1;
  std::vector<KeyEvent> events;
  for (auto& [name, d] : decisions) {
    for (const auto& [version, reason] : d.revoke_leases) {
      const int64_t revoked = leases_->RevokeLeasesOn(name, version, reason);
      const KeyVersion* v = prev->Find(name)->Find(version);
      core::LogWarning("key version retired at its hard deadline",
                       {{"provider", name},
                        {"key_version", version},
                        {"fingerprint", v ? v->fingerprint : ""},
                        {"revoked_leases", absl::StrCat(revoked)}});
    }
    for (const KeyEvent& e : d.events) waiting_.erase(absl::StrCat(name, "\x1f", e.version_id));
    ApplyDecision(next->providers[name], d);
    Persist(prev->Find(name), next->providers[name], d.events);
    events.insert(events.end(), d.events.begin(), d.events.end());
  }
  Publish(std::move(next), events);
}

void KeyRing::ApplyDecision(ProviderKeys& keys, const Decision& d) {
  keys.versions = d.live;
  keys.current = d.current;
  for (const KeyVersion* gone : d.gone) {
    keys.retired.insert(absl::StrCat(gone->version_id, "\x1f", gone->fingerprint));
    if (metrics_) metrics_->RemoveKeyVersion(gone->provider, gone->version_id);
  }
}

absl::Status KeyRing::Quarantine(absl::string_view provider, absl::string_view version,
                                 absl::string_view reason, absl::string_view replacement,
                                 absl::string_view cause) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::shared_ptr<const KeySnapshot> prev = snapshot_.load();
  const ProviderKeys* before = prev->Find(provider);
  if (before == nullptr) {
    return core::WithReason(absl::NotFoundError(absl::StrCat("unknown provider ", provider)),
                            "UNKNOWN_PROVIDER");
  }
  CB_ASSIGN_OR_RETURN(Decision d, DecideQuarantine(*before, version, reason, replacement, now));
  for (KeyEvent& e : d.events) {
    if (e.type == KeyEvent::Type::kQuarantined) e.cause = std::string(cause);
  }
  const std::string fingerprint = d.gone.front()->fingerprint;
  auto next = std::make_shared<KeySnapshot>(*prev);
  next->generation = prev->generation + 1;
  ProviderKeys& keys = next->providers[std::string(provider)];
  int64_t revoked = 0;
  if (leases_ != nullptr) {
    for (const auto& [v, why] : d.revoke_leases)
      revoked += leases_->RevokeLeasesOn(provider, v, why);
  }
  ApplyDecision(keys, d);
  core::LogError("key version quarantined",
                 {{"provider", provider},
                  {"key_version", version},
                  {"fingerprint", fingerprint},
                  {"reason", reason},
                  {"revoked_leases", absl::StrCat(revoked)},
                  {"current", keys.current ? keys.current->version_id : "none"}});
  if (metrics_) {
    metrics_->ProviderServable(provider, keys.current != nullptr && !keys.Stale(now));
    for (const auto& v : keys.versions) RecordState(*v);
  }
  Persist(before, keys, d.events);
  Publish(std::move(next), d.events);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const KeyVersion>> KeyRing::Promote(absl::string_view provider,
                                                                   absl::string_view version,
                                                                   absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::shared_ptr<const KeySnapshot> prev = snapshot_.load();
  const ProviderKeys* before = prev->Find(provider);
  if (before == nullptr) {
    return core::WithReason(absl::NotFoundError(absl::StrCat("unknown provider ", provider)),
                            "UNKNOWN_PROVIDER");
  }
  CB_ASSIGN_OR_RETURN(Decision d, DecidePromote(*before, version, reason, now));
  auto next = std::make_shared<KeySnapshot>(*prev);
  next->generation = prev->generation + 1;
  ProviderKeys& keys = next->providers[std::string(provider)];
  ApplyDecision(keys, d);
  Persist(before, keys, d.events);
  if (metrics_) {
    metrics_->ProviderServable(provider, !keys.Stale(now));
    for (const auto& v : keys.versions) RecordState(*v);
  }
  Publish(std::move(next), d.events);
  return d.current;
}

void KeyRing::RecordRevokedAtProvider(absl::string_view provider, absl::string_view version,
                                      absl::string_view fingerprint, absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  KeyVersion gone;
  gone.provider = std::string(provider);
  gone.version_id = std::string(version);
  gone.fingerprint = std::string(fingerprint);
  gone.state = KeyState::kRevoked;
  std::vector<KeyEvent> events = {
      MakeEvent(KeyEvent::Type::kRevoked, gone, clock_->Now(), std::string(reason))};
  WriteDecision(
      {{gone.provider, gone.version_id, gone.fingerprint, KeyState::kRevoked, clock_->Now()}});
  Publish(nullptr, events);
}

void KeyRing::Announce(const std::vector<KeyEvent>& events) {
  absl::MutexLock lock(&mu_);
  Publish(nullptr, events);
}

void KeyRing::SetStateStale(bool stale, absl::Time at, absl::string_view reason) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const KeySnapshot> prev = snapshot_.load();
  if (stale == (prev->state_stale_since != absl::InfiniteFuture())) return;
  auto next = std::make_shared<KeySnapshot>(*prev);
  next->generation = prev->generation + 1;
  next->state_stale_since = stale ? at : absl::InfiniteFuture();
  std::vector<KeyEvent> events;
  for (const auto& [name, keys] : next->providers) {
    KeyEvent e;
    e.type = stale ? KeyEvent::Type::kStateStale : KeyEvent::Type::kStateFresh;
    e.provider = name;
    e.at = at;
    e.reason = std::string(reason);
    events.push_back(std::move(e));
  }
  Publish(std::move(next), events);
}

void KeyRing::GatePromotions(absl::flat_hash_set<std::string> providers) {
  absl::MutexLock lock(&mu_);
  gated_ = std::move(providers);
}

void KeyRing::Publish(std::shared_ptr<KeySnapshot> next, const std::vector<KeyEvent>& events) {
  if (next != nullptr) snapshot_.store(std::move(next));
  if (events.empty()) return;
  for (const auto& [id, listener] : listeners_) listener(events);
}

std::shared_ptr<const KeySnapshot> KeyRing::Subscribe(Listener listener, uint64_t* id) {
  absl::MutexLock lock(&mu_);
  *id = next_listener_id_++;
  listeners_.emplace(*id, std::move(listener));
  return snapshot_.load();
}

void KeyRing::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  listeners_.erase(id);
}

}  // namespace credbroker::rotation
