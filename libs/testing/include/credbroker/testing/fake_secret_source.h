// An in-memory SecretSource with programmable failures and call counts, for tests of everything
// above the backends.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "credbroker/secrets/secret_source.h"

namespace credbroker::testing {

class FakeSecretSource final : public secrets::SecretSource {
 public:
  explicit FakeSecretSource(std::string name = "fake") : name_(std::move(name)) {}

  absl::string_view type() const override { return "fake"; }
  const std::string& name() const override { return name_; }

  // Adds or replaces a version (versions list in insertion order, oldest first).
  void Put(const std::string& path, const std::string& version, const std::string& material);
  void Remove(const std::string& path, const std::string& version);
  // Sets the scopes the version's metadata names (a new etag, as a real backend's would be).
  void SetScopes(const std::string& path, const std::string& version,
                 std::vector<std::string> scopes);
  // Every ListVersions fails with `status` until cleared with OkStatus().
  void FailListing(absl::Status status);
  // FetchVersion of this version fails with `status`.
  void FailFetch(const std::string& version, absl::Status status);

  // The backend's own view of a version (VersionInfo's stage, enabled flag, validity window).
  void SetStage(const std::string& path, const std::string& version, secrets::BackendStage stage);
  void SetValidity(const std::string& path, const std::string& version, bool enabled,
                   absl::Time not_before, absl::Time expires_at);
  // Staged like AWS: a new WriteVersion is kPending, and PromoteVersion moves kCurrent (its old
  // holder becomes kPrevious, the old kPrevious kDeprecated). Off: no stages, PromoteVersion
  // succeeds doing nothing.
  void SetStaged(bool staged);
  // Every PromoteVersion fails with `status` until cleared with OkStatus().
  void FailPromote(absl::Status status);

  int list_calls() const;
  int fetch_calls() const;
  int promote_calls() const;

  absl::StatusOr<std::vector<secrets::VersionInfo>> ListVersions(absl::string_view path) override;
  absl::StatusOr<secrets::SecretVersion> FetchVersion(absl::string_view path,
                                                      absl::string_view version_id) override;
  // Appends "w<N>" (N counts writes to any path; natural order keeps it newest). Fails with
  // the status given to FailWrites, if any.
  absl::StatusOr<secrets::VersionInfo> WriteVersion(absl::string_view path,
                                                    const core::SecretBytes& material) override;
  void FailWrites(absl::Status status);
  absl::Status PromoteVersion(absl::string_view path, absl::string_view version_id) override;

 private:
  struct Entry {
    std::string version;
    std::string material;
    int generation;
    std::vector<std::string> scopes = {};
    secrets::BackendStage stage = secrets::BackendStage::kNone;
    bool enabled = true;
    absl::Time not_before = absl::InfinitePast();
    absl::Time expires_at = absl::InfiniteFuture();
  };
  static secrets::VersionInfo InfoOf(const Entry& e);
  Entry* FindEntry(const std::string& path, absl::string_view version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::string name_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<Entry>> secrets_ ABSL_GUARDED_BY(mu_);
  absl::Status list_failure_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> fetch_failures_ ABSL_GUARDED_BY(mu_);
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  int writes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status write_failure_ ABSL_GUARDED_BY(mu_);
  int list_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int fetch_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int promote_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool staged_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status promote_failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::testing
