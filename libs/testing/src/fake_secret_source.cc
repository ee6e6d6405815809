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
  secrets_[std::string(path)].push_back({version, std::string(material.reveal()), ++generation_});
  secrets::VersionInfo info;
  info.version_id = version;
  info.etag = absl::StrCat(generation_);
  return info;
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
    out.push_back({e.version, absl::StrCat(e.generation), absl::InfinitePast()});
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
      v.info = {e.version, absl::StrCat(e.generation), absl::InfinitePast()};
      v.material = core::SecretBytes(e.material);
      v.scopes = e.scopes;
      return v;
    }
  }
  return absl::NotFoundError(absl::StrCat("no version ", version_id));
}

}  // namespace credbroker::testing
