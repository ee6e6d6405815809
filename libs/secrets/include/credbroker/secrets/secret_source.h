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
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/field_error.h"
#include "credbroker/core/secret_bytes.h"
#include "credbroker/http/http_client.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::secrets {

// A version's place in a backend that stages versions itself (AWS Secrets Manager's staging
// labels). The key ring honours it: a kPending version is held PENDING (never made CURRENT by a
// listing, only by the broker's own promotion, which moves the backend's marker too); a kCurrent
// version is the one to serve, probed first when the broker has not promoted it yet; a
// kDeprecated one is kept only while the broker already serves it (never newly adopted).
enum class BackendStage {
  kNone,        // the backend has no stages (file, vault, gcp, azure)
  kCurrent,     // AWSCURRENT
  kPrevious,    // AWSPREVIOUS
  kPending,     // AWSPENDING
  kDeprecated,  // a staged backend's version without one of the three
};
absl::string_view BackendStageName(BackendStage stage);

struct VersionInfo {
  std::string version_id;
  // Changes whenever the version's content may have changed (for immutable backends: empty).
  std::string etag;
  absl::Time created_at = absl::InfinitePast();
  BackendStage stage = BackendStage::kNone;
  // The backend's own labels, verbatim (AWS VersionStages), for operators.
  std::vector<std::string> labels;
  // Disabled (GCP DISABLED, Azure attributes.enabled=false) or outside its validity window
  // (Azure nbf/exp): never served.
  bool enabled = true;
  absl::Time not_before = absl::InfinitePast();
  absl::Time expires_at = absl::InfiniteFuture();

  bool ServableAt(absl::Time now) const { return enabled && not_before <= now && now < expires_at; }
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

  // Moves the backend's "current" marker to `version_id` when the broker promotes it, so the
  // backend and the broker never disagree about which key is current (AWS: AWSCURRENT moves from
  // the version that holds it, which gets AWSPREVIOUS). Succeeds when `version_id` already holds
  // the marker. Default: the backend has no marker, nothing to move.
  virtual absl::Status PromoteVersion(absl::string_view path, absl::string_view version_id) {
    return absl::OkStatus();
  }

  // A file descriptor that becomes readable when the backend may have changed, for sources that
  // get change notifications (the file source uses inotify); -1 means "poll". After it fires,
  // call DrainChanges().
  virtual int change_fd() const { return -1; }
  virtual void DrainChanges() {}
};

// What a backend counts about its own credentials and its backend's answers (metrics::BrokerMetrics
// implements it over Prometheus). Labels are source names (configured, bounded).
class SourceStats {
 public:
  virtual ~SourceStats() = default;
  // A credential for the backend was obtained or refreshed (result: ok, error).
  virtual void TokenRefresh(absl::string_view source, absl::string_view result) = 0;
  // The backend asked us to slow down (AWS ThrottlingException, HTTP 429).
  virtual void Throttled(absl::string_view source) = 0;
};

// What a factory may hand to the source it builds. No globals: everything comes from here.
struct SourceContext {
  const core::Clock* clock = nullptr;
  // Waits between retries; tests pass one that records the sequence.
  http::Sleeper* sleeper = nullptr;
  // Builds the HTTP transport to the backend (tests may hand a fake). Unset: libcurl.
  std::function<absl::StatusOr<std::unique_ptr<http::HttpClient>>(const http::TlsOptions&)>
      http_client;
  // Unset: nothing counted.
  SourceStats* stats = nullptr;
  // The process environment (AWS_*, AZURE_*, GCE_METADATA_HOST); tests substitute a map.
  // Unset: getenv.
  std::function<std::optional<std::string>(absl::string_view)> env;

  // The fields above, with the real implementation where one is unset.
  absl::StatusOr<std::unique_ptr<http::HttpClient>> MakeHttpClient(
      const http::TlsOptions& tls) const;
  http::Sleeper* SleeperOrReal() const;
  std::optional<std::string> Env(absl::string_view name) const;
};

class SourceFactory {
 public:
  virtual ~SourceFactory() = default;
  // The SourceConfig oneof member this factory handles ("file").
  virtual absl::string_view type() const = 0;
  virtual absl::StatusOr<std::unique_ptr<SecretSource>> Create(const v1::SourceConfig& config,
                                                               const SourceContext& context) = 0;
  // The errors in this backend's own block of `config`, with field paths relative to the block
  // ("auth.token"). Run by `credbroker --check-config` and at start, before Create.
  virtual std::vector<core::FieldError> Validate(const v1::SourceConfig& config) const {
    return {};
  }
};

// Backend factories by type. Registration is explicit (RegisterBuiltinBackends), never static.
class SourceRegistry {
 public:
  void Register(std::unique_ptr<SourceFactory> factory);
  // Builds the source for `config`; NOT_FOUND when no factory handles its backend.
  absl::StatusOr<std::unique_ptr<SecretSource>> Create(const v1::SourceConfig& config,
                                                       const SourceContext& context) const;
  std::vector<std::string> types() const;
  // Every source's backend block checked by its factory, with paths from the config's root
  // ("sources[1].vault.address"); a backend with no factory here is an error of its own.
  std::vector<core::FieldError> Validate(const v1::BrokerConfig& config) const;

 private:
  std::vector<std::unique_ptr<SourceFactory>> factories_;
};

// The config oneof member name of `config`'s backend ("file"), or "" when unset.
std::string BackendType(const v1::SourceConfig& config);

}  // namespace credbroker::secrets
