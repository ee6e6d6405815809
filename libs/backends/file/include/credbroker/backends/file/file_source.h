// The `file` SecretSource: a root directory with one folder per secret, each laid out like a
// mounted Kubernetes Secret. Every visible file in a folder is one key version (file name =
// version id); versions are ordered by natural sort of their names ("v2" < "v10"), the last
// being the newest. Names starting with "." (the kubelet's `..data` and timestamped folders) are
// skipped. A file "<version>.scopes" next to a version names the key's permissions at the
// provider ("read, write"); such files are metadata, never versions. Changes are noticed through
// inotify on the folders — the atomic `..data` rename shows up as IN_MOVED_TO — with the caller's
// periodic refresh as a fallback.
//
// Errors: UNAVAILABLE (root missing or unreadable, e.g. the volume is not mounted), NOT_FOUND
// (folder or version absent), INVALID_ARGUMENT (path escapes the root), DATA_LOSS (file too large
// or unreadable).
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/secrets/secret_source.h"

namespace credbroker::backends::file {

class FileSecretSource final : public secrets::SecretSource {
 public:
  static absl::StatusOr<std::unique_ptr<FileSecretSource>> Create(std::string name,
                                                                  std::string root);
  ~FileSecretSource() override;

  absl::string_view type() const override { return "file"; }
  const std::string& name() const override { return name_; }
  absl::StatusOr<std::vector<secrets::VersionInfo>> ListVersions(absl::string_view path) override;
  absl::StatusOr<secrets::SecretVersion> FetchVersion(absl::string_view path,
                                                      absl::string_view version_id) override;
  // Writes the material as the next version: the newest version id with its trailing number
  // incremented ("v2" → "v3"; "v1" when there is none), created 0600 and published atomically.
  // FAILED_PRECONDITION for a folder managed by the kubelet (it has `..data`: a mounted Secret is
  // read-only and would be overwritten); ABORTED when the name was taken concurrently.
  absl::StatusOr<secrets::VersionInfo> WriteVersion(absl::string_view path,
                                                    const core::SecretBytes& material) override;
  int change_fd() const override { return inotify_fd_; }
  void DrainChanges() override;

 private:
  FileSecretSource(std::string name, std::string root, int inotify_fd)
      : name_(std::move(name)), root_(std::move(root)), inotify_fd_(inotify_fd) {}
  absl::StatusOr<std::string> FolderFor(absl::string_view path) const;
  void WatchFolder(const std::string& folder) const;

  const std::string name_;
  const std::string root_;
  const int inotify_fd_;
};

// Natural ("v2" < "v10") ordering of version ids.
bool NaturalLess(absl::string_view a, absl::string_view b);

std::unique_ptr<secrets::SourceFactory> MakeFileSourceFactory();

}  // namespace credbroker::backends::file
