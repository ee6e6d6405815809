#include "credbroker/rotation/key_state_machine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::rotation {
namespace {

std::shared_ptr<const KeyVersion> WithState(const KeyVersion& v, KeyState state,
                                            absl::Time retires_at = absl::InfiniteFuture()) {
  auto out = std::make_shared<KeyVersion>(v);
  out->state = state;
  out->retires_at = retires_at;
  return out;
}

absl::StatusOr<const KeyVersion*> FindLive(const ProviderKeys& keys, absl::string_view version) {
  const KeyVersion* v = keys.Find(version);
  if (v == nullptr) {
    return core::WithReason(absl::NotFoundError(absl::StrCat("no live version ", version, " of ",
                                                             keys.spec ? keys.spec->name : "")),
                            "UNKNOWN_KEY_VERSION");
  }
  return v;
}

// The backend stages the version as pending (AWSPENDING): only the broker's own promotion, which
// moves the backend's marker too, makes it CURRENT.
bool HeldByBackend(const KeyVersion& v) {
  return v.backend_stage == secrets::BackendStage::kPending;
}

int StageRank(secrets::BackendStage stage) {
  switch (stage) {
    case secrets::BackendStage::kCurrent:
      return 1;
    case secrets::BackendStage::kPending:
      return 2;
    default:
      return 0;
  }
}

// Watchers hear about the new CURRENT first, then what it replaced.
void NewCurrentFirst(std::vector<KeyEvent>& events) {
  std::stable_partition(events.begin(), events.end(),
                        [](const KeyEvent& e) { return e.type == KeyEvent::Type::kRotated; });
}

}  // namespace

// The CURRENT (or first-seen, older) version `v` makes way for a new CURRENT.
void Demote(const ProviderKeys& keys, const std::shared_ptr<const KeyVersion>& v, absl::Time now,
            std::string reason, Decision& d) {
  if (keys.spec->single_key) {
    auto retired = WithState(*v, KeyState::kRetired);
    d.events.push_back(MakeEvent(KeyEvent::Type::kRetired, *retired, now,
                                 "single-key provider: replaced at once"));
    d.gone.push_back(v.get());
    return;
  }
  auto previous = WithState(*v, KeyState::kPrevious, now + keys.spec->overlap);
  d.events.push_back(MakeEvent(KeyEvent::Type::kRetiring, *previous, now, std::move(reason)));
  d.live.push_back(std::move(previous));
}

void Supersede(const KeyVersion& v, absl::Time now, Decision& d) {
  auto retired = WithState(v, KeyState::kRetired);
  d.events.push_back(MakeEvent(KeyEvent::Type::kRetired, *retired, now,
                               "superseded by a newer version before promotion"));
  d.gone.push_back(&v);
}

std::vector<secrets::VersionInfo> ServableListing(
    std::vector<secrets::VersionInfo> listed, const std::function<bool(absl::string_view)>& is_live,
    absl::Time now) {
  std::erase_if(listed, [&](const secrets::VersionInfo& v) {
    return !v.ServableAt(now) ||
           (v.stage == secrets::BackendStage::kDeprecated && !is_live(v.version_id));
  });
  std::stable_sort(listed.begin(), listed.end(),
                   [](const secrets::VersionInfo& a, const secrets::VersionInfo& b) {
                     return StageRank(a.stage) < StageRank(b.stage);
                   });
  return listed;
}

Decision DecideListing(const ProviderKeys& keys,
                       const std::vector<std::shared_ptr<const KeyVersion>>& listed, bool gated,
                       bool first_load, absl::Time now) {
  Decision d;
  // Versions no longer listed are gone from the backend.
  for (const auto& old : keys.versions) {
    bool still = false;
    for (const auto& v : listed) still |= v->version_id == old->version_id;
    if (!still) {
      auto retired = WithState(*old, KeyState::kRetired, old->retires_at);
      d.events.push_back(
          MakeEvent(KeyEvent::Type::kRetired, *retired, now, "removed from backend"));
      d.removed.push_back(old.get());
    }
  }
  int cur = -1;
  for (int i = 0; i < static_cast<int>(listed.size()); ++i) {
    if (listed[i]->state == KeyState::kCurrent) cur = i;
  }
  if (!listed.empty() && (!gated || cur < 0)) {
    // The newest version the backend does not hold back, or on a gated provider the newest of
    // those that passed its probe.
    cur = -1;
    for (int i = static_cast<int>(listed.size()) - 1; i >= 0 && cur < 0; --i) {
      if (!HeldByBackend(*listed[i])) cur = i;
    }
    if (gated && !first_load) {
      for (int i = cur; i >= 0; --i) {
        if (listed[i]->state != KeyState::kPending && !HeldByBackend(*listed[i])) {
          cur = i;
          break;
        }
      }
    }
  }
  const std::string old_current = keys.current ? keys.current->version_id : "";
  for (int i = 0; i < static_cast<int>(listed.size()); ++i) {
    std::shared_ptr<const KeyVersion> v = listed[i];
    const bool was_listed = keys.Find(v->version_id) != nullptr;
    if (i == cur) {
      if (v->state != KeyState::kCurrent) {
        v = WithState(*v, KeyState::kCurrent);
        d.events.push_back(MakeEvent(first_load ? KeyEvent::Type::kAdded : KeyEvent::Type::kRotated,
                                     *v, now,
                                     first_load            ? "loaded"
                                     : old_current.empty() ? "first valid version"
                                     : gated ? "replaces a version removed from the backend"
                                             : "new version in backend (no probe configured)"));
      }
      d.current = v;
      d.live.push_back(v);
      continue;
    }
    if (i > cur) {
      // Newer than CURRENT with gated promotions: waits for its probe.
      if (!was_listed) {
        d.events.push_back(MakeEvent(KeyEvent::Type::kAdded, *v, now,
                                     HeldByBackend(*v)
                                         ? "new version: held PENDING while the backend stages it"
                                         : "new version: waiting for its probe"));
      }
      d.live.push_back(v);
      continue;
    }
    if (v->state == KeyState::kPrevious) {
      d.live.push_back(v);
      continue;
    }
    if (v->state == KeyState::kPending && was_listed) {
      Supersede(*v, now, d);
      continue;
    }
    // Was CURRENT (replaced now) or first seen and older than CURRENT.
    Demote(keys, v, now,
           v->version_id == old_current ? "replaced by a newer version" : "older version", d);
  }
  NewCurrentFirst(d.events);
  return d;
}

absl::StatusOr<Decision> DecidePromote(const ProviderKeys& keys, absl::string_view version,
                                       absl::string_view reason, absl::Time now) {
  CB_ASSIGN_OR_RETURN(const KeyVersion* target, FindLive(keys, version));
  if (target->state != KeyState::kPending) {
    return core::WithReason(
        absl::FailedPreconditionError(absl::StrCat("version ", version, " is ",
                                                   KeyStateName(target->state), ", not PENDING")),
        "NOT_PENDING");
  }
  Decision d;
  bool older = true;  // versions before the target in the list (oldest first)
  for (const auto& v : keys.versions) {
    if (v->version_id == version) {
      older = false;
      d.current = WithState(*v, KeyState::kCurrent);
      d.events.push_back(MakeEvent(KeyEvent::Type::kRotated, *d.current, now, std::string(reason)));
      d.live.push_back(d.current);
    } else if (v->state == KeyState::kCurrent) {
      Demote(keys, v, now, absl::StrCat("replaced by ", version), d);
    } else if (v->state == KeyState::kPending && older) {
      Supersede(*v, now, d);
    } else {
      d.live.push_back(v);
    }
  }
  NewCurrentFirst(d.events);
  return d;
}

absl::StatusOr<Decision> DecideQuarantine(const ProviderKeys& keys, absl::string_view version,
                                          absl::string_view reason, absl::string_view replacement,
                                          absl::Time now) {
  CB_ASSIGN_OR_RETURN(const KeyVersion* target, FindLive(keys, version));
  Decision d;
  auto quarantined = WithState(*target, KeyState::kQuarantined);
  d.events.push_back(
      MakeEvent(KeyEvent::Type::kQuarantined, *quarantined, now, std::string(reason)));
  d.gone.push_back(target);
  d.revoke_leases.emplace_back(std::string(version), "KEY_QUARANTINED");
  for (const auto& v : keys.versions) {
    if (v->version_id != version) d.live.push_back(v);
  }
  const bool was_current = keys.current != nullptr && keys.current->version_id == version;
  if (!was_current) {
    d.current = keys.current;
    return d;
  }
  // The list is oldest first: search from the newest.
  int pick = -1;
  const int n = static_cast<int>(d.live.size());
  for (int i = n - 1; i >= 0 && pick < 0; --i) {
    if (!replacement.empty() && d.live[i]->version_id == replacement) pick = i;
  }
  for (int i = n - 1; i >= 0 && pick < 0; --i) {
    if (d.live[i]->state != KeyState::kPending) pick = i;
  }
  if (pick < 0 && n > 0) pick = n - 1;
  if (pick >= 0) {
    d.live[pick] = WithState(*d.live[pick], KeyState::kCurrent);
    d.current = d.live[pick];
    d.events.push_back(MakeEvent(KeyEvent::Type::kRotated, *d.current, now,
                                 absl::StrCat("replaces quarantined ", version)));
    // As after a promotion, PENDING versions older than the new CURRENT will never be promoted:
    // superseded now, rather than left PENDING behind it (a restart would read such a version
    // as an older one and demote it to PREVIOUS; found by the randomized histories).
    std::vector<std::shared_ptr<const KeyVersion>> kept;
    for (int i = 0; i < n; ++i) {
      if (i < pick && d.live[i]->state == KeyState::kPending) {
        Supersede(*keys.Find(d.live[i]->version_id), now, d);
      } else {
        kept.push_back(d.live[i]);
      }
    }
    d.live = std::move(kept);
  }
  return d;
}

Decision DecideRetirement(const ProviderKeys& keys,
                          const absl::flat_hash_map<std::string, int64_t>& leases,
                          bool count_leases, absl::Time now) {
  Decision d;
  d.current = keys.current;
  for (const auto& v : keys.versions) {
    if (v->state != KeyState::kPrevious || v->retires_at > now) {
      d.live.push_back(v);
      continue;
    }
    std::string reason = "overlap ended";
    if (count_leases) {
      auto it = leases.find(v->version_id);
      const int64_t held = it == leases.end() ? 0 : it->second;
      const absl::Time deadline = v->retires_at + keys.spec->retire_grace;
      if (held > 0 && now < deadline) {
        d.waiting.push_back({v->version_id, held, deadline});
        d.live.push_back(v);
        continue;
      }
      if (held > 0) {
        d.revoke_leases.emplace_back(v->version_id, "KEY_RETIRED_AT_DEADLINE");
        reason = absl::StrCat("hard deadline: ", held, " leases revoked");
      } else {
        reason = "overlap ended and no lease holds it";
      }
    }
    auto retired = WithState(*v, KeyState::kRetired);
    d.events.push_back(MakeEvent(KeyEvent::Type::kRetired, *retired, now, reason));
    d.gone.push_back(v.get());
  }
  return d;
}

Decision DecideFollow(const ProviderKeys& keys, const std::vector<PersistedKeyVersion>& stored,
                      absl::Time now) {
  Decision d;
  for (const auto& v : keys.versions) {
    const PersistedKeyVersion* record = nullptr;
    for (const PersistedKeyVersion& r : stored) {
      if (r.provider == v->provider && r.version_id == v->version_id &&
          r.fingerprint == v->fingerprint) {
        record = &r;  // the newest of several wins (stored is in revision order)
      }
    }
    if (record == nullptr || (record->state == v->state && (record->state != KeyState::kPrevious ||
                                                            record->retires_at == v->retires_at))) {
      d.live.push_back(v);
      continue;
    }
    auto next = WithState(
        *v, record->state,
        record->state == KeyState::kPrevious ? record->retires_at : absl::InfiniteFuture());
    const std::string reason = "decided by the leader";
    switch (record->state) {
      case KeyState::kRetired:
        d.events.push_back(MakeEvent(KeyEvent::Type::kRetired, *next, now, reason));
        d.gone.push_back(v.get());
        continue;
      case KeyState::kQuarantined:
        d.events.push_back(MakeEvent(KeyEvent::Type::kQuarantined, *next, now, reason));
        d.gone.push_back(v.get());
        continue;
      case KeyState::kRevoked:
        d.events.push_back(MakeEvent(KeyEvent::Type::kRevoked, *next, now, reason));
        d.gone.push_back(v.get());
        continue;
      case KeyState::kCurrent:
        d.events.push_back(MakeEvent(KeyEvent::Type::kRotated, *next, now, reason));
        break;
      case KeyState::kPrevious:
        d.events.push_back(MakeEvent(KeyEvent::Type::kRetiring, *next, now, reason));
        break;
      case KeyState::kPending:
        break;
    }
    d.live.push_back(std::move(next));
  }
  for (auto it = d.live.rbegin(); it != d.live.rend() && d.current == nullptr; ++it) {
    if ((*it)->state == KeyState::kCurrent) d.current = *it;
  }
  NewCurrentFirst(d.events);
  return d;
}

}  // namespace credbroker::rotation
