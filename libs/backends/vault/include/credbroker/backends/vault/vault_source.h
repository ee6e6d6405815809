// The `vault` SecretSource: HashiCorp Vault (or OpenBao) KV v2 over libcurl.
//
// Each provider's key is one KV v2 secret, <mount>/<path_prefix>/<secret_path>, field `field`;
// the secret's Vault versions are the key versions. Deleted (deletion_time in the past) and
// destroyed versions are never listed or served. WriteVersion adds a version with check-and-set
// on the current version, for the staged and minted rotation modes. The secret's
// custom_metadata field `scopes` ("read,write") names the key's permissions at the provider; it
// is key-level in Vault, so it applies to every version of the secret.
//
// Authentication: a static token (file or env), Kubernetes auth (projected service-account JWT,
// re-read at every login) or AppRole. Tokens are renewed (auth/token/renew-self) once half their
// TTL has passed; when renewal is refused, or Vault answers 403 to a request, the source logs in
// again (login methods) or re-reads the token (static tokens) and retries once.
// Retryable answers (network errors, 412, 429, 5xx including sealed 503) are retried with
// jittered exponential backoff; 4xx auth and request errors never are. A standby that cannot
// forward answers 307 with the active node's address: the request follows it once, over the same
// scheme only; a redirect it cannot follow is UNAVAILABLE (standby).
//
// Errors: PERMISSION_DENIED (403, refused login), NOT_FOUND (404: absent, deleted or destroyed),
// ABORTED (400 check-and-set mismatch), INVALID_ARGUMENT (other 400), UNAVAILABLE (sealed,
// standby, rate limited, 5xx, network; retryable), DATA_LOSS (secret lacks the field). Each
// carries a lowercase reason (sealed, standby, rate_limited, permission_denied, not_found,
// cas_mismatch, auth_failed, unavailable) for credbroker_backend_errors_total.
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "credbroker/core/clock.h"
#include "credbroker/http/http_client.h"
#include "credbroker/secrets/secret_source.h"
#include "google/protobuf/struct.pb.h"

namespace credbroker::backends::vault {

// One Vault answer: HTTP status and parsed JSON body (empty for 204).
struct VaultResponse {
  int status = 0;
  google::protobuf::Struct body;
};

// Authenticated calls to Vault's HTTP API, with login, renewal and retries.
class VaultClient {
 public:
  VaultClient(v1::VaultSourceConfig config, std::unique_ptr<http::HttpClient> transport,
              const core::Clock* clock, http::Sleeper* sleeper);

  // `path` is relative to /v1/ ("secret/data/x?version=2"). Returns the answer for any HTTP
  // status; only transport and authentication failures are errors.
  absl::StatusOr<VaultResponse> Call(absl::string_view method, absl::string_view path,
                                     const std::string& body = "");

  // Drops the cached token (tests; also used after a 403).
  void InvalidateToken();

 private:
  struct Token {
    std::string value;
    absl::Time obtained_at;
    absl::Duration ttl = absl::ZeroDuration();  // zero: does not expire
    bool renewable = false;
  };
  absl::StatusOr<std::string> CurrentToken() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Token> Login();
  absl::StatusOr<Token> LoadStaticToken();
  absl::Status Renew(Token& token);
  absl::StatusOr<VaultResponse> Send(absl::string_view method, absl::string_view path,
                                     const std::string& body, const std::string& token);

  const v1::VaultSourceConfig config_;
  std::unique_ptr<http::HttpClient> transport_;
  http::RetryingHttpClient retrying_;
  const core::Clock* const clock_;
  absl::Mutex mu_;
  std::optional<Token> token_ ABSL_GUARDED_BY(mu_);
};

class VaultSecretSource final : public secrets::SecretSource {
 public:
  // `transport` is the raw HTTP client (libcurl in production); retries are added here.
  static absl::StatusOr<std::unique_ptr<VaultSecretSource>> Create(
      std::string name, const v1::VaultSourceConfig& config,
      std::unique_ptr<http::HttpClient> transport, const core::Clock* clock,
      http::Sleeper* sleeper);

  absl::string_view type() const override { return "vault"; }
  const std::string& name() const override { return name_; }
  absl::StatusOr<std::vector<secrets::VersionInfo>> ListVersions(absl::string_view path) override;
  absl::StatusOr<secrets::SecretVersion> FetchVersion(absl::string_view path,
                                                      absl::string_view version_id) override;
  absl::StatusOr<secrets::VersionInfo> WriteVersion(absl::string_view path,
                                                    const core::SecretBytes& material) override;

  VaultClient& client() { return client_; }

 private:
  VaultSecretSource(std::string name, const v1::VaultSourceConfig& config,
                    std::unique_ptr<http::HttpClient> transport, const core::Clock* clock,
                    http::Sleeper* sleeper);
  absl::StatusOr<std::string> SecretPath(absl::string_view path) const;
  absl::Status Error(const VaultResponse& r, absl::string_view what) const;

  const std::string name_;
  const v1::VaultSourceConfig config_;
  const core::Clock* const clock_;
  VaultClient client_;
};

// Maps a Vault error answer to a status (with a reason for metrics); `what` names the call.
absl::Status VaultStatus(int http_status, const google::protobuf::Struct& body,
                         absl::string_view what);

std::unique_ptr<secrets::SourceFactory> MakeVaultSourceFactory();

}  // namespace credbroker::backends::vault
