// The `azure` SecretSource: Azure Key Vault secrets over the REST data plane (api-version 7.4),
// with a bearer token from azure_token.h.
//
// Each provider's key is one secret, <name_prefix><secret_path> (^[0-9a-zA-Z-]+$, checked before
// any request); its versions are the key versions. ListVersions reads GetSecretVersions
// (maxresults 25), following nextLink only while it stays on the vault's origin (the bearer token
// is never sent elsewhere), and maps attributes.enabled/nbf/exp/created into VersionInfo
// (missing nbf/exp: unbounded), oldest first. A version's content never changes but its
// attributes can, so its etag is "<version>@<updated>". FetchVersion reads GetSecret of the
// version; WriteVersion (minted keys) is SetSecret, a new latest version. Key Vault has no
// "current" marker: PromoteVersion is the default no-op.
//
// Retries: 429 (counted in SourceStats::Throttled) waits Retry-After seconds when given (at most
// 60s), else jittered exponential backoff; 5xx and network errors back off likewise. A 401 drops
// the cached token and retries once at once with a fresh one.
//
// Errors: NOT_FOUND (404), PERMISSION_DENIED (403 ForbiddenByRbac/ForbiddenByPolicy: reason
// permission_denied; 401 twice or no token: auth_failed), FAILED_PRECONDITION (403 SecretDisabled:
// reason disabled), INVALID_ARGUMENT (400, or a name Key Vault would refuse: bad_request),
// UNAVAILABLE (throttled, 5xx, network, token endpoint unreachable; retryable), DATA_LOSS (an
// answer that does not parse, or a nextLink off the vault: malformed_answer). Token errors are
// azure_token.h's (PERMISSION_DENIED auth_failed when refused). No message carries key material
// or a token. Thread-safety: safe for concurrent use.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "credbroker/backends/azure/azure_token.h"
#include "credbroker/core/clock.h"
#include "credbroker/http/http_client.h"
#include "credbroker/http/token_source.h"
#include "credbroker/secrets/secret_source.h"
#include "google/protobuf/struct.pb.h"

namespace credbroker::backends::azure {

// What the source needs besides its config block: the transport, the token, and the context's
// clock, sleeper and stats.
struct AzureSourceDeps {
  std::unique_ptr<http::HttpClient> transport;
  // Declared after `transport`, which the token source may use: destroyed first.
  std::unique_ptr<http::CachingTokenSource<AzureToken>> token;
  const core::Clock* clock = nullptr;
  http::Sleeper* sleeper = nullptr;
  secrets::SourceStats* stats = nullptr;
  // Returns values in [0, 1) for backoff jitter; null: random.
  std::function<double()> jitter;
};

class AzureSecretSource final : public secrets::SecretSource {
 public:
  // INVALID_ARGUMENT without a vault_url, transport, token or clock.
  static absl::StatusOr<std::unique_ptr<AzureSecretSource>> Create(std::string name,
                                                                   v1::AzureSourceConfig config,
                                                                   AzureSourceDeps deps);

  absl::string_view type() const override { return "azure"; }
  const std::string& name() const override { return name_; }
  absl::StatusOr<std::vector<secrets::VersionInfo>> ListVersions(absl::string_view path) override;
  absl::StatusOr<secrets::SecretVersion> FetchVersion(absl::string_view path,
                                                      absl::string_view version_id) override;
  absl::StatusOr<secrets::VersionInfo> WriteVersion(absl::string_view path,
                                                    const core::SecretBytes& material) override;

 private:
  AzureSecretSource(std::string name, v1::AzureSourceConfig config, AzureSourceDeps deps);
  absl::StatusOr<std::string> SecretName(absl::string_view path) const;
  // One Key Vault call to the absolute `url` (on the vault's origin): the parsed JSON answer of
  // a 200, else the error mapped as described above. `body` may hold key material.
  absl::StatusOr<google::protobuf::Struct> Call(absl::string_view method, const std::string& url,
                                                const std::string& body, absl::string_view what);

  const std::string name_;
  const v1::AzureSourceConfig config_;
  AzureSourceDeps deps_;
  const std::string vault_url_;  // without a trailing '/'
};

// True when `url` has the same scheme, host and port as `base` (default ports filled in, host
// compared case-insensitively).
bool SameOrigin(absl::string_view base, absl::string_view url);

// The factory registered as "azure"; it validates the `azure` block of a source.
std::unique_ptr<secrets::SourceFactory> MakeAzureSourceFactory();

}  // namespace credbroker::backends::azure
