// Makes signing keys and JWTs in tests (RS256, ES256, plus deliberately bad tokens), and the
// JWKS that publishes the public keys.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace credbroker::testing {

class JwtKey {
 public:
  static std::unique_ptr<JwtKey> NewRsa(std::string kid);  // 2048-bit
  static std::unique_ptr<JwtKey> NewEc(std::string kid);   // P-256
  ~JwtKey();

  const std::string& kid() const { return kid_; }
  // "RS256" or "ES256".
  const std::string& alg() const { return alg_; }
  // One JWK object (public part), e.g. {"kty":"RSA","kid":...,"n":...,"e":...}.
  std::string JwkJson() const;
  // The public key as PEM (SubjectPublicKeyInfo), for stand-ins that verify tokens with it.
  std::string PublicKeyPem() const;
  // Signs base64url(header) "." base64url(claims) with this key and appends the signature.
  std::string Sign(absl::string_view header_json, absl::string_view claims_json) const;
  // A token whose header claims alg HS256 and whose HMAC key is this key's public PEM — the
  // classic key-confusion attack.
  std::string SignHs256WithPublicKey(absl::string_view claims_json) const;

 private:
  JwtKey() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string kid_;
  std::string alg_;
};

std::string Base64Url(absl::string_view data);
// {"keys":[jwk, ...]}
std::string Jwks(std::initializer_list<const JwtKey*> keys);
// Standard Kubernetes service-account claims.
std::string K8sClaims(absl::string_view issuer, absl::string_view audience, absl::string_view ns,
                      absl::string_view sa, int64_t exp, int64_t nbf);

}  // namespace credbroker::testing
