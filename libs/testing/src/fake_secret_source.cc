#include "credbroker/testing/fake_secret_source.h"

#include "absl/strings/str_cat.h"

namespace credbroker::testing {

void FakeSecretSource::Put(const std::string& path, const std::string& version,
                           const std::string& material) {
  absl::MutexLock lock(&mu_);
  auto& entries = secrets_[path];
  for (Entry& e : entries) {
    if (e.version == version) {
      e.material = material;
      e.generation = ++generation_;
      return;
    }
  }
  entries.push_back({version, material, ++generation_});
}

void FakeSecretSource::SetScopes(const std::string& path, const std::string& version,
                                 std::vector<std::string> scopes) {
  absl::MutexLock lock(&mu_);
  for (Entry& e : secrets_[path]) {
    if (e.version == version) {
      e.scopes = std::move(scopes);
      e.generation = ++generation_;
      return;
    }
  }
}

absl::StatusOr<secrets::VersionInfo> FakeSecretSource::WriteVersion(
    absl::string_view path, const core::SecretBytes& material) {
  absl::MutexLock lock(&mu_);
  if (!write_failure_.ok()) return write_failure_;
  std::string version = absl::StrCat("w", ++writes_);
  Entry e{version, std::string(material.reveal()), ++generation_};
  if (staged_) e.stage = secrets::BackendStage::kPending;
  secrets_[std::string(path)].push_back(e);
  return InfoOf(e);
}

void FakeSecretSource::FailWrites(absl::Status status) {
  absl::MutexLock lock(&mu_);
  write_failure_ = std::move(status);
}

void FakeSecretSource::Remove(const std::string& path, const std::string& version) {
  absl::MutexLock lock(&mu_);
  std::erase_if(secrets_[path], [&](const Entry& e) { return e.version == version; });
}

void FakeSecretSource::FailListing(absl::Status status) {
  absl::MutexLock lock(&mu_);
  list_failure_ = std::move(status);
}

void FakeSecretSource::FailFetch(const std::string& version, absl::Status status) {
  absl::MutexLock lock(&mu_);
  fetch_failures_[version] = std::move(status);
}

secrets::VersionInfo FakeSecretSource::InfoOf(const Entry& e) {
  secrets::VersionInfo info;
  info.version_id = e.version;
  info.etag = absl::StrCat(e.generation);
  info.stage = e.stage;
  if (e.stage != secrets::BackendStage::kNone) {
    info.labels.emplace_back(secrets::BackendStageName(e.stage));
  }
  info.enabled = e.enabled;
  info.not_before = e.not_before;
  info.expires_at = e.expires_at;
  return info;
}

FakeSecretSource::Entry* FakeSecretSource::FindEntry(const std::string& path,
                                                     absl::string_view version) {
  for (Entry& e : secrets_[path]) {
    if (e.version == version) return &e;
  }
  return nullptr;
}

void FakeSecretSource::SetStage(const std::string& path, const std::string& version,
                                secrets::BackendStage stage) {
  absl::MutexLock lock(&mu_);
  if (Entry* e = FindEntry(path, version)) e->stage = stage;
}

void FakeSecretSource::SetValidity(const std::string& path, const std::string& version,
                                   bool enabled, absl::Time not_before, absl::Time expires_at) {
  absl::MutexLock lock(&mu_);
  if (Entry* e = FindEntry(path, version)) {
    e->enabled = enabled;
    e->not_before = not_before;
    e->expires_at = expires_at;
  }
}

void FakeSecretSource::SetStaged(bool staged) {
  absl::MutexLock lock(&mu_);
  staged_ = staged;
}

void FakeSecretSource::FailPromote(absl::Status status) {
  absl::MutexLock lock(&mu_);
  promote_failure_ = std::move(status);
}

int FakeSecretSource::promote_calls() const {
  absl::MutexLock lock(&mu_);
  return promote_calls_;
}

absl::Status FakeSecretSource::PromoteVersion(absl::string_view path,
                                              absl::string_view version_id) {
  absl::MutexLock lock(&mu_);
  ++promote_calls_;
  if (!promote_failure_.ok()) return promote_failure_;
  if (!staged_) return absl::OkStatus();
  Entry* target = FindEntry(std::string(path), version_id);
  if (target == nullptr) return absl::NotFoundError(absl::StrCat("no version ", version_id));
  if (target->stage == secrets::BackendStage::kCurrent) return absl::OkStatus();
  for (Entry& e : secrets_[std::string(path)]) {
    if (e.stage == secrets::BackendStage::kPrevious) e.stage = secrets::BackendStage::kDeprecated;
  }
  for (Entry& e : secrets_[std::string(path)]) {
    if (e.stage == secrets::BackendStage::kCurrent) e.stage = secrets::BackendStage::kPrevious;
  }
  target->stage = secrets::BackendStage::kCurrent;
  return absl::OkStatus();
}

int FakeSecretSource::list_calls() const {
  absl::MutexLock lock(&mu_);
  return list_calls_;
}

int FakeSecretSource::fetch_calls() const {
  absl::MutexLock lock(&mu_);
  return fetch_calls_;
}

absl::StatusOr<std::vector<secrets::VersionInfo>> FakeSecretSource::ListVersions(
    absl::string_view path) {
  absl::MutexLock lock(&mu_);
  ++list_calls_;
  if (!list_failure_.ok()) return list_failure_;
  auto it = secrets_.find(std::string(path));
  if (it == secrets_.end()) return absl::NotFoundError(absl::StrCat("no secret ", path));
  std::vector<secrets::VersionInfo> out;
  for (const Entry& e : it->second) {
    out.push_back(InfoOf(e));
  }
  return out;
}

absl::StatusOr<secrets::SecretVersion> FakeSecretSource::FetchVersion(
    absl::string_view path, absl::string_view version_id) {
  absl::MutexLock lock(&mu_);
  ++fetch_calls_;
  auto f = fetch_failures_.find(std::string(version_id));
  if (f != fetch_failures_.end() && !f->second.ok()) return f->second;
  auto it = secrets_.find(std::string(path));
  if (it == secrets_.end()) return absl::NotFoundError(absl::StrCat("no secret ", path));
  for (const Entry& e : it->second) {
    if (e.version == version_id) {
      secrets::SecretVersion v;
      v.info = InfoOf(e);
      v.material = core::SecretBytes(e.material);
      v.scopes = e.scopes;
      return v;
    }
  }
  return absl::NotFoundError(absl::StrCat("no version ", version_id));
}

}  // namespace credbroker::testing
