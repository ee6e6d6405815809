// SecretSource is the seam between the broker and a secret manager (a mounted Kubernetes Secret,
// Vault, AWS/GCP/Azure secret managers). A source lists the versions of one secret and fetches
// a version's material; sources that support the staged/minted rotation modes can also write a
// new version.
//
// Errors: NOT_FOUND (secret or version absent), UNAVAILABLE (backend unreachable; retryable),
// PERMISSION_DENIED (backend refused our credentials), DATA_LOSS (unreadable content).
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/secret_bytes.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::secrets {

struct VersionInfo {
  std::string version_id;
  // Changes whenever the version's content may have changed (for immutable backends: empty).
  std::string etag;
  absl::Time created_at = absl::InfinitePast();
};

struct SecretVersion {
  VersionInfo info;
  core::SecretBytes material;
  // The key's permissions at the provider, from the secret's metadata (core::ParseScopes);
  // empty when the backend names none. A backend whose metadata does not parse fails the fetch
  // with DATA_LOSS: a key is never served with permissions misread.
  std::vector<std::string> scopes;
};

class SecretSource {
 public:
  virtual ~SecretSource() = default;

  // The backend type ("file", "vault", ...) and the configured source name.
  virtual absl::string_view type() const = 0;
  virtual const std::string& name() const = 0;

  // Versions of the secret at `path`, oldest first (the last is the newest).
  virtual absl::StatusOr<std::vector<VersionInfo>> ListVersions(absl::string_view path) = 0;

  virtual absl::StatusOr<SecretVersion> FetchVersion(absl::string_view path,
                                                     absl::string_view version_id) = 0;

  // Writes a new version (staged/minted rotation). Default: UNIMPLEMENTED.
  virtual absl::StatusOr<VersionInfo> WriteVersion(absl::string_view path,
                                                   const core::SecretBytes& material) {
    return absl::UnimplementedError(std::string(type()) + " source cannot write versions");
  }

  // A file descriptor that becomes readable when the backend may have changed, for sources that
  // get change notifications (the file source uses inotify); -1 means "poll". After it fires,
  // call DrainChanges().
  virtual int change_fd() const { return -1; }
  virtual void DrainChanges() {}
};

// What a factory may hand to the source it builds. No globals: everything comes from here.
struct SourceContext {
  const core::Clock* clock = nullptr;
};

class SourceFactory {
 public:
  virtual ~SourceFactory() = default;
  // The SourceConfig oneof member this factory handles ("file").
  virtual absl::string_view type() const = 0;
  virtual absl::StatusOr<std::unique_ptr<SecretSource>> Create(const v1::SourceConfig& config,
                                                               const SourceContext& context) = 0;
};

// Backend factories by type. Registration is explicit (RegisterBuiltinBackends), never static.
class SourceRegistry {
 public:
  void Register(std::unique_ptr<SourceFactory> factory);
  // Builds the source for `config`; NOT_FOUND when no factory handles its backend.
  absl::StatusOr<std::unique_ptr<SecretSource>> Create(const v1::SourceConfig& config,
                                                       const SourceContext& context) const;
  std::vector<std::string> types() const;

 private:
  std::vector<std::unique_ptr<SourceFactory>> factories_;
};

// The config oneof member name of `config`'s backend ("file"), or "" when unset.
std::string BackendType(const v1::SourceConfig& config);

}  // namespace credbroker::secrets
