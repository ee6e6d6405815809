// Caller authentication. An Authenticator turns what a request carries (its `authorization`
// metadata today; peer certificates and Kubernetes service-account JWTs later) into an Identity.
//
// Errors: UNAUTHENTICATED with a reason — MISSING_CREDENTIALS, MALFORMED_CREDENTIALS,
// INVALID_CREDENTIALS. Messages never echo the presented token.
// Thread-safety: implementations are immutable after construction and safe for concurrent use.
#pragma once

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::identity {

struct Identity {
  // The service name used in policy, metrics (`caller` label) and audit.
  std::string name;
  bool admin = false;
};

struct RequestCredentials {
  // Value of the `authorization` metadata, empty when absent.
  absl::string_view authorization;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  virtual absl::StatusOr<Identity> Authenticate(const RequestCredentials& creds) const = 0;
};

// Static bearer tokens from the configuration, for local development and the embedded default.
// Only SHA-256 digests of the tokens are kept in memory.
class StaticTokenAuthenticator final : public Authenticator {
 public:
  // Reads token, token_file or token_env for each entry. INVALID_ARGUMENT (naming the entry,
  // never the token) when a token cannot be read, is empty, or is configured twice.
  static absl::StatusOr<std::unique_ptr<StaticTokenAuthenticator>> Create(
      const v1::IdentityConfig& config);

  absl::StatusOr<Identity> Authenticate(const RequestCredentials& creds) const override;
  size_t size() const { return by_digest_.size(); }

 private:
  StaticTokenAuthenticator() = default;
  absl::flat_hash_map<std::string, Identity> by_digest_;
};

}  // namespace credbroker::identity
