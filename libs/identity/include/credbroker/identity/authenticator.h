// Caller authentication. An Authenticator turns what a request carries (its `authorization`
// metadata today; peer certificates and Kubernetes service-account JWTs later) into an Identity.
//
// Errors: UNAUTHENTICATED with a reason — MISSING_CREDENTIALS, MALFORMED_CREDENTIALS,
// INVALID_CREDENTIALS. Messages never echo the presented token.
// Thread-safety: implementations are immutable after construction and safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

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
  // From a verified client certificate (mTLS): its SPIFFE ID (gRPC sets one only when the
  // certificate has exactly one URI SAN and it is a SPIFFE ID), every URI SAN, and DNS SANs.
  std::vector<std::string> peer_spiffe_ids;
  std::vector<std::string> peer_uris;
  std::vector<std::string> peer_dns_names;
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

// Identity from a verified client certificate: spiffe://<trust_domain>/ns/<ns>/sa/<sa> becomes
// "ns/sa"; another SPIFFE path of the trust domain stays the full ID; a certificate with only DNS
// SANs becomes "dns:<first DNS SAN>". SPIFFE IDs of other trust domains are refused
// (UNTRUSTED_DOMAIN).
class MtlsAuthenticator final : public Authenticator {
 public:
  explicit MtlsAuthenticator(std::string trust_domain) : trust_domain_(std::move(trust_domain)) {}
  absl::StatusOr<Identity> Authenticate(const RequestCredentials& creds) const override;

 private:
  const std::string trust_domain_;
};

// The broker's authenticator: a bearer token that looks like a JWT goes to the JWT verifier
// (when configured), any other bearer token to the static tokens; without a bearer token, a
// verified client certificate (when mTLS identities are configured) decides.
class ChainAuthenticator final : public Authenticator {
 public:
  ChainAuthenticator(std::unique_ptr<Authenticator> static_tokens,
                     std::unique_ptr<Authenticator> jwt, std::unique_ptr<Authenticator> mtls)
      : static_tokens_(std::move(static_tokens)), jwt_(std::move(jwt)), mtls_(std::move(mtls)) {}
  absl::StatusOr<Identity> Authenticate(const RequestCredentials& creds) const override;

 private:
  std::unique_ptr<Authenticator> static_tokens_;
  std::unique_ptr<Authenticator> jwt_;
  std::unique_ptr<Authenticator> mtls_;
};

// The metric label for an authentication failure reason (MISSING_CREDENTIALS -> "missing", ...).
std::string AuthFailureLabel(absl::string_view reason);

}  // namespace credbroker::identity
