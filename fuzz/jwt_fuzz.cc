// Fuzzes JWT verification, the first thing a Kubernetes caller's bearer token meets, against a
// real JWKS (one RSA and one EC key). The first byte picks the mode: even, the rest is the token
// as sent (structure, base64url, header and signature parsing); odd, the rest is a header and a
// claims document (separated by "%%\n") that the target signs with the EC key, so the claims
// parser and the issuer/audience/time checks see arbitrary JSON behind a valid signature. Nothing
// may crash, and a token that verifies must yield an identity.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "credbroker/core/clock.h"
#include "credbroker/identity/jwt_verifier.h"
#include "credbroker/testing/jwt_signer.h"
#include "fuzz_input.h"

namespace {

using namespace credbroker;

struct Verifier {
  Verifier() {
    rsa = testing::JwtKey::NewRsa("rsa-1");
    ec = testing::JwtKey::NewEc("ec-1");
    std::string jwks = testing::Jwks({rsa.get(), ec.get()});
    identity::JwtVerifierOptions options;
    options.issuer = "https://kubernetes.default.svc";
    options.audience = "credbroker";
    auto v = identity::JwtVerifier::Create(
        options, [jwks]() -> absl::StatusOr<std::string> { return jwks; }, &clock);
    if (!v.ok()) std::abort();
    verifier = std::move(*v);
  }
  // Fixed time: the unknown-kid refetch happens once, so later inputs never wait for it.
  core::FakeClock clock;
  std::unique_ptr<testing::JwtKey> rsa;
  std::unique_ptr<testing::JwtKey> ec;
  std::unique_ptr<identity::JwtVerifier> verifier;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* const v = new Verifier();
  if (size == 0) return 0;
  std::string token;
  if (data[0] % 2 == 0) {
    token.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
  } else {
    std::vector<std::string> parts = fuzz::SplitParts(data + 1, size - 1, 2);
    token = v->ec->Sign(parts[0], parts[1]);
  }
  absl::StatusOr<identity::VerifiedToken> verified = v->verifier->Verify(token);
  if (verified.ok() && verified->identity.name.empty()) std::abort();
  return 0;
}
