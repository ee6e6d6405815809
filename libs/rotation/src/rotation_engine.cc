#include "credbroker/rotation/rotation_engine.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::rotation {
namespace {

std::string VersionKey(absl::string_view provider, absl::string_view version) {
  return absl::StrCat(provider, "\x1f", version);
}

// The newest PENDING version (the list is oldest first), or null.
// The PENDING version to probe next: the one the backend marks current (it is what the backend
// serves: probed first), else the newest.
std::shared_ptr<const KeyVersion> NewestPending(const ProviderKeys& keys) {
  std::shared_ptr<const KeyVersion> newest;
  for (size_t i = keys.versions.size(); i-- > 0;) {
    const auto& v = keys.versions[i];
    if (v->state != KeyState::kPending) continue;
    if (v->backend_stage == secrets::BackendStage::kCurrent) return v;
    if (newest == nullptr) newest = v;
  }
  return newest;
}

}  // namespace

RotationEngine::RotationEngine(KeyRing* ring, const providers::ProviderCatalog* catalog,
                               absl::flat_hash_map<std::string, secrets::SecretSource*> sources,
                               ProviderProbe* probe, KeyMinter* minter, KeyStateStore* key_ids,
                               const core::Clock* clock, RotationStats* metrics,
                               RotationEngineOptions options, core::Wakeup* wakeup)
    : ring_(ring),
      catalog_(catalog),
      sources_(std::move(sources)),
      probe_(probe),
      minter_(minter),
      key_ids_(key_ids),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      wakeup_(wakeup) {
  {
    absl::MutexLock lock(&queue_mu_);
    for (const providers::ProviderSpec& spec : catalog_->providers()) {
      if (!spec.probe.enabled()) continue;
      calibration_[spec.name] = Calibration::kUnknown;
      if (metrics_) metrics_->ProbeCalibrated(spec.name, false);
    }
  }
  ring_->Subscribe([this](const std::vector<KeyEvent>& events) { OnKeyEvents(events); },
                   &listener_id_);
}

RotationEngine::~RotationEngine() { ring_->Unsubscribe(listener_id_); }

absl::flat_hash_set<std::string> RotationEngine::GatedProviders() const {
  absl::flat_hash_set<std::string> out;
  for (const providers::ProviderSpec& spec : catalog_->providers()) {
    if (spec.probe.enabled()) out.insert(spec.name);
  }
  return out;
}

Calibration RotationEngine::CalibrationOf(absl::string_view provider) const {
  absl::MutexLock lock(&queue_mu_);
  auto it = calibration_.find(provider);
  return it == calibration_.end() ? Calibration::kUnknown : it->second;
}

void RotationEngine::OnKeyEvents(const std::vector<KeyEvent>& events) {
  bool wake = false;
  absl::MutexLock lock(&queue_mu_);
  for (const KeyEvent& e : events) {
    if (e.type == KeyEvent::Type::kAdded && e.state == KeyState::kPending) wake = true;
    const bool gone = e.type == KeyEvent::Type::kRetired || e.type == KeyEvent::Type::kQuarantined;
    if (!gone || e.fingerprint.empty()) continue;
    const providers::ProviderSpec* spec = catalog_->Find(e.provider);
    if (spec == nullptr || spec->mint == nullptr || !spec->mint->has_revoke()) continue;
    // A key the broker minted is revoked at the provider once nothing may use it any more.
    revokes_.push_back({e.provider, e.version_id, e.fingerprint, absl::InfinitePast()});
    wake = true;
  }
  if (wake) Wake();
}

void RotationEngine::SuspectRevoked(absl::string_view provider, absl::string_view version) {
  if (metrics_) metrics_->RevocationSuspected(provider);
  core::LogWarning("suspected revocation at the provider: checking the key",
                   {{"provider", provider}, {"key_version", version}});
  {
    absl::MutexLock lock(&queue_mu_);
    suspects_.emplace_back(std::string(provider), std::string(version));
  }
  Wake();
}

ProbeResult RotationEngine::RunProbe(const providers::ProviderSpec& spec, absl::string_view key,
                                     absl::string_view purpose) {
  ProbeResult r = probe_->Probe(spec, key);
  if (metrics_) metrics_->ProbeResult(spec.name, purpose, ProbeVerdictName(r.verdict));
  return r;
}

void RotationEngine::Calibrate(const providers::ProviderSpec& spec, const ProviderKeys& keys) {
  const absl::Time now = clock_->Now();
  Attempt& attempt = calibrate_attempts_[spec.name];
  if (attempt.next > now) return;
  std::string like;
  if (keys.current != nullptr) like = std::string(keys.current->material->reveal());
  std::string invalid = CalibrationKey(like);
  ProbeResult r = RunProbe(spec, invalid, "calibration");
  Calibration result = Calibration::kUnknown;
  if (r.verdict == ProbeVerdict::kRejected) {
    result = Calibration::kTrusted;
    core::LogInfo("probe calibrated: it rejects an invalid key",
                  {{"provider", spec.name}, {"http_status", absl::StrCat(r.http_status)}});
  } else if (r.verdict == ProbeVerdict::kAccepted) {
    result = Calibration::kLying;
    core::LogError(
        "probe accepts a deliberately invalid key: its answers cannot be trusted, so new "
        "versions are not promoted on its word (fix the probe, or promote with credctl rotate "
        "--skip-probe)",
        {{"provider", spec.name}, {"probe", r.detail}});
  } else {
    attempt.next = now + options_.probe_retry_interval;
    ++attempt.failures;
    core::LogWarning("probe could not be calibrated: provider did not answer conclusively",
                     {{"provider", spec.name}, {"probe", r.detail}});
  }
  if (metrics_) metrics_->ProbeCalibrated(spec.name, result == Calibration::kTrusted);
  absl::MutexLock lock(&queue_mu_);
  calibration_[spec.name] = result;
}

absl::StatusOr<std::shared_ptr<const KeyVersion>> RotationEngine::TryPromote(
    const providers::ProviderSpec& spec, bool forced, bool skip_probe) {
  const absl::Time now = clock_->Now();
  std::shared_ptr<const KeySnapshot> snap = ring_->Snapshot();
  const ProviderKeys* keys = snap->Find(spec.name);
  std::shared_ptr<const KeyVersion> pending = keys ? NewestPending(*keys) : nullptr;
  if (pending == nullptr) {
    if (metrics_ && spec.probe.enabled()) metrics_->ProbeFailing(spec.name, false);
    return core::WithReason(
        absl::FailedPreconditionError(absl::StrCat(
            "no PENDING version of ", spec.name,
            ": stage a new version in the secret source first (providers without a probe "
            "promote new versions as soon as they are seen)")),
        "NO_PENDING_VERSION");
  }
  const std::string id = VersionKey(spec.name, pending->version_id);
  Attempt& attempt = promote_attempts_[id];
  if (!forced && attempt.next > now) {
    return absl::UnavailableError("waiting to probe again");
  }
  if (skip_probe || !spec.probe.enabled()) {
    std::string reason = skip_probe ? "promoted by an operator without a probe"
                                    : "promoted without a probe (none configured)";
    core::LogWarning(reason, {{"provider", spec.name},
                              {"key_version", pending->version_id},
                              {"fingerprint", pending->fingerprint}});
    promote_attempts_.erase(id);
    if (metrics_ && spec.probe.enabled()) metrics_->ProbeFailing(spec.name, false);
    return PromoteEverywhere(spec, *pending, reason);
  }
  if (CalibrationOf(spec.name) == Calibration::kUnknown) Calibrate(spec, *keys);
  const Calibration cal = CalibrationOf(spec.name);
  auto fail = [&](absl::Status status, absl::string_view message, const ProbeResult* r) {
    attempt.next = now + options_.probe_retry_interval;
    ++attempt.failures;
    if (metrics_) metrics_->ProbeFailing(spec.name, true);
    core::LogError(message, {{"provider", spec.name},
                             {"key_version", pending->version_id},
                             {"fingerprint", pending->fingerprint},
                             {"current", keys->current ? keys->current->version_id : "none"},
                             {"probe", r ? r->detail : "not sent"},
                             {"attempts", absl::StrCat(attempt.failures)},
                             {"next_attempt", absl::FormatTime(attempt.next)}});
    return core::WithReason(std::move(status), "PROBE_FAILED");
  };
  // A single-key provider invalidated the old key when the new one was made: holding on to the
  // old one only helps if the provider positively refuses the new one.
  auto promote_unverified = [&](absl::string_view why) {
    core::LogWarning(
        "single-key provider: promoting the new version without a conclusive probe, "
        "since the provider has already invalidated the old key",
        {{"provider", spec.name},
         {"key_version", pending->version_id},
         {"fingerprint", pending->fingerprint},
         {"probe", why}});
    promote_attempts_.erase(id);
    if (metrics_) metrics_->ProbeFailing(spec.name, false);
    return PromoteEverywhere(spec, *pending,
                             absl::StrCat("single-key provider, probe inconclusive (", why, ")"));
  };
  if (cal != Calibration::kTrusted) {
    if (spec.single_key) {
      return promote_unverified(cal == Calibration::kLying ? "probe untrusted"
                                                           : "probe not calibrated");
    }
    return fail(absl::FailedPreconditionError(absl::StrCat(
                    "the ", spec.name,
                    " probe is not calibrated (it accepted an invalid key, or the provider did "
                    "not answer): promote with skip_probe if the new key is known to work")),
                "new key version not promoted: the probe cannot be trusted; keeping the current "
                "key",
                nullptr);
  }
  ProbeResult r = RunProbe(spec, pending->material->reveal(), "promotion");
  if (r.verdict == ProbeVerdict::kInconclusive && spec.single_key) {
    return promote_unverified(r.detail);
  }
  if (r.verdict != ProbeVerdict::kAccepted) {
    absl::Status s = r.verdict == ProbeVerdict::kRejected
                         ? absl::FailedPreconditionError(absl::StrCat(
                               "the provider refused the new ", spec.name, " key version ",
                               pending->version_id, " (", r.detail, ")"))
                         : absl::UnavailableError(
                               absl::StrCat("could not probe the new ", spec.name, " key version ",
                                            pending->version_id, ": ", r.detail));
    return fail(std::move(s), "new key version failed its probe: keeping the current key", &r);
  }
  promote_attempts_.erase(id);
  if (metrics_) metrics_->ProbeFailing(spec.name, false);
  absl::StatusOr<std::shared_ptr<const KeyVersion>> promoted = PromoteEverywhere(
      spec, *pending,
      absl::StrCat(forced ? "forced rotation: " : "", "probe accepted (HTTP ", r.http_status, ")"));
  if (!promoted.ok() && core::ReasonOf(promoted.status()) == "BACKEND_PROMOTE_FAILED") {
    // The probe passed; only the backend's marker is missing: try again after the interval.
    promote_attempts_[id].next = now + options_.probe_retry_interval;
  }
  return promoted;
}

absl::StatusOr<std::shared_ptr<const KeyVersion>> RotationEngine::PromoteEverywhere(
    const providers::ProviderSpec& spec, const KeyVersion& version, absl::string_view reason) {
  // The backend's marker first: if it cannot move, the broker does not promote either, so the two
  // never disagree about which key is current.
  if (absl::Status s = MoveBackendMarker(spec, version); !s.ok()) return s;
  return ring_->Promote(spec.name, version.version_id, reason);
}

absl::Status RotationEngine::MoveBackendMarker(const providers::ProviderSpec& spec,
                                               const KeyVersion& version) {
  auto source = sources_.find(spec.name);
  if (source == sources_.end() || version.backend_stage == secrets::BackendStage::kNone ||
      version.backend_stage == secrets::BackendStage::kCurrent) {
    return absl::OkStatus();  // no marker, or already there
  }
  absl::Status s = source->second->PromoteVersion(spec.secret_path, version.version_id);
  if (metrics_) metrics_->BackendPromoteFailing(spec.name, !s.ok());
  if (!s.ok()) {
    core::LogError(
        "cannot move the backend's current marker to the version being promoted: "
        "not promoting; retried later",
        {{"provider", spec.name},
         {"key_version", version.version_id},
         {"fingerprint", version.fingerprint},
         {"source", source->second->name()},
         {"error", s.ToString()}});
    return core::WithReason(absl::UnavailableError(absl::StrCat(
                                "source ", source->second->name(), ": cannot make ",
                                version.version_id, " current in the backend: ", s.message())),
                            "BACKEND_PROMOTE_FAILED");
  }
  core::LogInfo("backend's current marker moved", {{"provider", spec.name},
                                                   {"key_version", version.version_id},
                                                   {"source", source->second->name()}});
  return absl::OkStatus();
}

void RotationEngine::SyncBackendMarker(const providers::ProviderSpec& spec,
                                       const ProviderKeys& keys) {
  // The backend marks as current a version that is no longer live here (the broker quarantined or
  // rejected it, and promoted another): move the marker to the broker's CURRENT. A live version
  // the backend marks current is one being probed: that is the broker's move to make.
  if (keys.current == nullptr || keys.current->backend_stage == secrets::BackendStage::kNone ||
      keys.current->backend_stage == secrets::BackendStage::kCurrent) {
    return;
  }
  for (const auto& v : keys.versions) {
    if (v->backend_stage == secrets::BackendStage::kCurrent) return;
  }
  (void)MoveBackendMarker(spec, *keys.current);
}

absl::StatusOr<std::string> RotationEngine::KeyApiCredential(const providers::ProviderSpec& spec) {
  if (!spec.mint->admin_key_file().empty()) {
    std::ifstream in(spec.mint->admin_key_file());
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read mint.admin_key_file ", spec.mint->admin_key_file()));
    }
    return std::string(absl::StripAsciiWhitespace(buf.str()));
  }
  std::shared_ptr<const KeySnapshot> snap = ring_->Snapshot();
  const ProviderKeys* keys = snap->Find(spec.name);
  if (keys == nullptr || keys->current == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(spec.name, " has no CURRENT key to call its key API with"));
  }
  return std::string(keys->current->material->reveal());
}

absl::Status RotationEngine::Mint(const providers::ProviderSpec& spec) {
  auto failed = [&](absl::string_view operation, const absl::Status& s) {
    if (metrics_) metrics_->MintFailure(spec.name, operation);
    core::LogError("minted rotation failed",
                   {{"provider", spec.name}, {"step", operation}, {"error", s.ToString()}});
    return s;
  };
  if (minter_ == nullptr) return absl::FailedPreconditionError("no key minter");
  auto source = sources_.find(spec.name);
  if (source == sources_.end()) return absl::FailedPreconditionError("provider has no source");
  absl::StatusOr<std::string> credential = KeyApiCredential(spec);
  if (!credential.ok()) return failed("create", credential.status());
  absl::StatusOr<MintedKey> minted = minter_->Create(spec, *credential);
  if (!minted.ok()) return failed("create", minted.status());
  const std::string fingerprint = core::Fingerprint(minted->material.reveal());
  // Undo at the provider when the key cannot be used, so no orphan key stays live there.
  auto cleanup = [&] {
    if (minted->key_id.empty() || !spec.mint->has_revoke()) return;
    if (absl::Status s = minter_->Revoke(spec, minted->key_id, *credential); !s.ok()) {
      (void)failed("revoke", s);
    }
  };
  if (absl::Status valid = spec.ValidateKey(minted->material.reveal()); !valid.ok()) {
    cleanup();
    return failed("create",
                  core::WithReason(absl::DataLossError(absl::StrCat(
                                       "the key API returned a key that fails the ", spec.name,
                                       " key format (fingerprint ", fingerprint, ")")),
                                   "KEY_API_ERROR"));
  }
  if (key_ids_ != nullptr && !minted->key_id.empty()) {
    if (absl::Status s = key_ids_->SaveMintedKeyId(spec.name, fingerprint, minted->key_id);
        !s.ok()) {
      cleanup();
      return failed("store", s);
    }
  }
  absl::StatusOr<secrets::VersionInfo> written =
      source->second->WriteVersion(spec.secret_path, minted->material);
  if (!written.ok()) {
    cleanup();
    return failed(
        "store", core::Annotate(written.status(), absl::StrCat("source ", source->second->name())));
  }
  core::LogInfo("minted a new key at the provider", {{"provider", spec.name},
                                                     {"key_version", written->version_id},
                                                     {"fingerprint", fingerprint},
                                                     {"provider_key_id", minted->key_id}});
  return ring_->RefreshProvider(spec.name, *source->second);
}

void RotationEngine::CheckSuspect(const std::string& provider, const std::string& version) {
  const providers::ProviderSpec* spec = catalog_->Find(provider);
  std::shared_ptr<const KeySnapshot> snap = ring_->Snapshot();
  const ProviderKeys* keys = snap->Find(provider);
  if (spec == nullptr || keys == nullptr) return;
  const KeyVersion* suspect = keys->Find(version);
  if (suspect == nullptr) return;  // already out of service
  if (!spec->probe.enabled()) {
    core::LogError(
        "suspected revocation cannot be confirmed: the provider has no probe; if the provider "
        "revoked the key, run credctl quarantine",
        {{"provider", provider}, {"key_version", version}, {"fingerprint", suspect->fingerprint}});
    return;
  }
  ProbeResult r = RunProbe(*spec, suspect->material->reveal(), "revocation_check");
  if (r.verdict != ProbeVerdict::kRejected) {
    core::LogWarning(
        r.verdict == ProbeVerdict::kAccepted
            ? (CalibrationOf(provider) == Calibration::kTrusted
                   ? "suspected revocation not confirmed: the provider accepts the key"
                   : "suspected revocation not confirmed: the probe accepts the key, but it is "
                     "not calibrated")
            : "suspected revocation not confirmed: the probe got no conclusive answer",
        {{"provider", provider},
         {"key_version", version},
         {"fingerprint", suspect->fingerprint},
         {"probe", r.detail}});
    return;
  }
  std::string replacement;
  const bool is_current = keys->current != nullptr && keys->current->version_id == version;
  if (is_current && CalibrationOf(provider) == Calibration::kTrusted) {
    // Promote the newest version the provider still accepts.
    for (size_t i = keys->versions.size(); i-- > 0;) {
      const KeyVersion* v = keys->versions[i].get();
      if (v->version_id == version) continue;
      ProbeResult c = RunProbe(*spec, v->material->reveal(), "revocation_check");
      if (c.verdict == ProbeVerdict::kAccepted) {
        replacement = v->version_id;
        break;
      }
    }
  }
  absl::Status s = ring_->Quarantine(
      provider, version,
      absl::StrCat("revoked at the provider: callers reported 401 and the probe was refused (",
                   r.detail, ")"),
      replacement, kQuarantinedRevokedAtProvider);
}

bool RotationEngine::RevokeAtProvider(const RevokeJob& job) {
  const providers::ProviderSpec* spec = catalog_->Find(job.provider);
  if (spec == nullptr || minter_ == nullptr || key_ids_ == nullptr) return true;
  absl::StatusOr<std::string> key_id = key_ids_->MintedKeyId(job.provider, job.fingerprint);
  if (!key_id.ok()) {
    if (!absl::IsNotFound(key_id.status())) return false;
    core::LogWarning("retired key was not minted by the broker: revoke it at the provider by hand",
                     {{"provider", job.provider},
                      {"key_version", job.version},
                      {"fingerprint", job.fingerprint}});
    return true;
  }
  absl::StatusOr<std::string> credential = KeyApiCredential(*spec);
  absl::Status s =
      credential.ok() ? minter_->Revoke(*spec, *key_id, *credential) : credential.status();
  if (!s.ok()) {
    if (metrics_) metrics_->MintFailure(job.provider, "revoke");
    core::LogError("could not revoke a retired key at the provider: will retry",
                   {{"provider", job.provider},
                    {"key_version", job.version},
                    {"fingerprint", job.fingerprint},
                    {"provider_key_id", *key_id},
                    {"error", s.ToString()}});
    return false;
  }
  ring_->RecordRevokedAtProvider(job.provider, job.version, job.fingerprint,
                                 "revoked at the provider after leaving service");
  return true;
}

void RotationEngine::RunOnce() {
  absl::MutexLock work(&work_mu_);
  const absl::Time now = clock_->Now();
  for (const providers::ProviderSpec& spec : catalog_->providers()) {
    std::shared_ptr<const KeySnapshot> snap = ring_->Snapshot();
    const ProviderKeys* keys = snap->Find(spec.name);
    if (keys == nullptr) continue;
    if (spec.probe.enabled() && CalibrationOf(spec.name) == Calibration::kUnknown) {
      Calibrate(spec, *keys);
    }
    if (spec.probe.enabled()) (void)TryPromote(spec, /*forced=*/false, /*skip_probe=*/false);
    snap = ring_->Snapshot();
    keys = snap->Find(spec.name);
    SyncBackendMarker(spec, *keys);
    if (spec.mint == nullptr) continue;
    snap = ring_->Snapshot();
    keys = snap->Find(spec.name);
    if (NewestPending(*keys) != nullptr) continue;
    // Due: the rotation period ran out, or there is no valid key at all (the CURRENT one was
    // quarantined with nothing to fall back on): the key API can replace it now.
    if (keys->current != nullptr && now < keys->current->created_at + spec.rotation_period) {
      continue;
    }
    Attempt& attempt = mint_attempts_[spec.name];
    if (attempt.next > now) continue;
    if (keys->current == nullptr && attempt.failures == 0) {
      core::LogWarning("no valid key: minting a replacement now", {{"provider", spec.name}});
    }
    if (absl::Status s = Mint(spec); !s.ok()) {
      attempt.next = now + options_.probe_retry_interval;
      ++attempt.failures;
      continue;
    }
    mint_attempts_.erase(spec.name);
    if (spec.probe.enabled()) (void)TryPromote(spec, /*forced=*/false, /*skip_probe=*/false);
  }

  std::deque<std::pair<std::string, std::string>> suspects;
  std::deque<RevokeJob> revokes;
  {
    absl::MutexLock lock(&queue_mu_);
    suspects.swap(suspects_);
    revokes.swap(revokes_);
  }
  for (const auto& [provider, version] : suspects) CheckSuspect(provider, version);
  std::deque<RevokeJob> retry;
  for (RevokeJob& job : revokes) {
    if (job.next > now || !RevokeAtProvider(job)) {
      if (job.next <= now) job.next = now + options_.probe_retry_interval;
      retry.push_back(std::move(job));
    }
  }
  if (!retry.empty()) {
    absl::MutexLock lock(&queue_mu_);
    for (RevokeJob& job : retry) revokes_.push_back(std::move(job));
  }
  ReportKeysToDelete();
}

namespace {
// Minted by a key API the broker cannot delete keys through (firemoon documents none).
bool LeftForTheOperator(const providers::ProviderSpec* spec) {
  return spec != nullptr && spec->mint != nullptr && !spec->mint->has_revoke();
}
}  // namespace

absl::StatusOr<std::vector<KeyToDelete>> RotationEngine::KeysToDelete(
    absl::string_view provider) const {
  std::vector<KeyToDelete> out;
  if (key_ids_ == nullptr) return out;
  CB_ASSIGN_OR_RETURN(std::vector<PersistedKeyVersion> all, key_ids_->LoadAll());
  std::shared_ptr<const KeySnapshot> snap = ring_->Snapshot();
  for (const PersistedKeyVersion& r : all) {
    if (!provider.empty() && r.provider != provider) continue;
    if (r.state != KeyState::kRetired && r.state != KeyState::kQuarantined) continue;
    if (!LeftForTheOperator(catalog_->Find(r.provider))) continue;
    absl::StatusOr<std::string> key = key_ids_->MintedKeyId(r.provider, r.fingerprint);
    if (absl::IsNotFound(key.status())) continue;  // not minted by the broker
    if (!key.ok()) return key.status();
    KeyToDelete k{r.provider, r.version_id, r.fingerprint, *key, "", r.state, r.created_at};
    if (const ProviderKeys* keys = snap->Find(r.provider)) {
      if (const KeyVersion* v = keys->Find(r.version_id); v && v->fingerprint == r.fingerprint) {
        k.hint = v->hint;
      }
    }
    out.push_back(std::move(k));
  }
  std::sort(out.begin(), out.end(), [](const KeyToDelete& a, const KeyToDelete& b) {
    return std::tie(a.provider, a.created_at, a.version) <
           std::tie(b.provider, b.created_at, b.version);
  });
  return out;
}

absl::Status RotationEngine::ConfirmDeleted(absl::string_view provider, absl::string_view version,
                                            absl::string_view who) {
  CB_ASSIGN_OR_RETURN(std::vector<KeyToDelete> keys, KeysToDelete(provider));
  for (const KeyToDelete& k : keys) {
    if (k.version != version) continue;
    core::LogInfo("operator confirmed the key was deleted at the provider",
                  {{"provider", k.provider},
                   {"key_version", k.version},
                   {"fingerprint", k.fingerprint},
                   {"provider_key", k.provider_key},
                   {"by", who}});
    ring_->RecordRevokedAtProvider(k.provider, k.version, k.fingerprint,
                                   absl::StrCat("deleted at the provider by ", who));
    ReportKeysToDelete();
    return absl::OkStatus();
  }
  return core::WithReason(
      absl::NotFoundError(absl::StrCat("version ", version, " of ", provider,
                                       " is not a minted key waiting to be deleted at the provider "
                                       "(credctl keys to-delete lists them)")),
      "NOT_TO_DELETE");
}

void RotationEngine::ReportKeysToDelete() {
  bool any = false;
  for (const providers::ProviderSpec& spec : catalog_->providers()) {
    any = any || LeftForTheOperator(&spec);
  }
  if (!any || key_ids_ == nullptr) return;
  absl::StatusOr<std::vector<KeyToDelete>> keys = KeysToDelete("");
  if (!keys.ok()) {
    core::LogWarning("could not list minted keys to delete at the provider",
                     {{"error", keys.status().ToString()}});
    return;
  }
  absl::flat_hash_map<std::string, int64_t> counts;
  for (const providers::ProviderSpec& spec : catalog_->providers()) {
    if (LeftForTheOperator(&spec)) counts[spec.name] = 0;
  }
  absl::MutexLock lock(&delete_mu_);
  absl::flat_hash_set<std::string> waiting;
  for (const KeyToDelete& k : *keys) {
    ++counts[k.provider];
    std::string id = absl::StrCat(k.provider, "\x1f", k.fingerprint);
    if (!told_to_delete_.contains(id)) {
      core::LogError(
          "a minted key left service and the provider has no API to delete it: delete it in the "
          "provider's dashboard, then run credctl keys deleted",
          {{"provider", k.provider},
           {"key_version", k.version},
           {"fingerprint", k.fingerprint},
           {"provider_key", k.provider_key},
           {"key_hint", k.hint}});
    }
    waiting.insert(std::move(id));
  }
  told_to_delete_ = std::move(waiting);
  if (metrics_) {
    for (const auto& [provider, n] : counts) metrics_->KeysToDelete(provider, n);
  }
}

absl::StatusOr<std::shared_ptr<const KeyVersion>> RotationEngine::RotateNow(
    absl::string_view provider, bool skip_probe) {
  absl::MutexLock work(&work_mu_);
  const providers::ProviderSpec* spec = catalog_->Find(provider);
  if (spec == nullptr) {
    return core::WithReason(absl::NotFoundError(absl::StrCat("unknown provider ", provider)),
                            "UNKNOWN_PROVIDER");
  }
  core::LogInfo("forced rotation requested",
                {{"provider", provider}, {"skip_probe", skip_probe ? "true" : "false"}});
  auto current = [&]() -> std::shared_ptr<const KeyVersion> {
    std::shared_ptr<const KeySnapshot> snap = ring_->Snapshot();
    const ProviderKeys* keys = snap->Find(spec->name);
    return keys != nullptr ? keys->current : nullptr;
  };
  const std::shared_ptr<const KeyVersion> before = current();
  auto source = sources_.find(spec->name);
  if (spec->mint != nullptr) {
    CB_RETURN_IF_ERROR(Mint(*spec));
  } else if (source != sources_.end()) {
    CB_RETURN_IF_ERROR(ring_->RefreshProvider(spec->name, *source->second));
  }
  // Without a probe the ring promotes a new version as soon as it sees it: done already.
  if (!spec->probe.enabled()) {
    std::shared_ptr<const KeyVersion> after = current();
    if (after != nullptr && (before == nullptr || after->version_id != before->version_id ||
                             after->fingerprint != before->fingerprint)) {
      return after;
    }
  }
  return TryPromote(*spec, /*forced=*/true, skip_probe);
}

void RotationEngine::ResumeRevocations() {
  if (key_ids_ == nullptr || minter_ == nullptr) return;
  // No pass runs meanwhile, so every revocation this process still owes is in `revokes_` (a
  // pass puts back what it could not finish): those are not queued twice.
  absl::MutexLock work(&work_mu_);
  absl::StatusOr<std::vector<PersistedKeyVersion>> all = key_ids_->LoadAll();
  if (!all.ok()) {
    core::LogError("cannot read key states to resume revocations",
                   {{"error", all.status().ToString()}});
    return;
  }
  std::vector<RevokeJob> jobs;
  for (const PersistedKeyVersion& r : *all) {
    if (r.state != KeyState::kRetired && r.state != KeyState::kQuarantined) continue;
    const providers::ProviderSpec* spec = catalog_->Find(r.provider);
    if (spec == nullptr || spec->mint == nullptr || !spec->mint->has_revoke()) continue;
    // Revoked keys are saved as REVOKED: a RETIRED or QUARANTINED one the broker minted is
    // still live at the provider.
    if (!key_ids_->MintedKeyId(r.provider, r.fingerprint).ok()) continue;
    core::LogInfo(
        "resuming revocation of a retired minted key",
        {{"provider", r.provider}, {"key_version", r.version_id}, {"fingerprint", r.fingerprint}});
    jobs.push_back({r.provider, r.version_id, r.fingerprint, absl::InfinitePast()});
  }
  bool queued = false;
  {
    absl::MutexLock lock(&queue_mu_);
    for (RevokeJob& job : jobs) {
      const bool owed = std::any_of(revokes_.begin(), revokes_.end(), [&](const RevokeJob& q) {
        return q.provider == job.provider && q.fingerprint == job.fingerprint;
      });
      if (owed) continue;
      revokes_.push_back(std::move(job));
      queued = true;
    }
  }
  if (queued) Wake();
}

void RotationEngine::Wake() {
  if (wakeup_ != nullptr) wakeup_->Notify();
}

}  // namespace credbroker::rotation
