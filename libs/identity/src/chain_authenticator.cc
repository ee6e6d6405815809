#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/identity/authenticator.h"

namespace credbroker::identity {
namespace {

absl::Status Unauth(absl::string_view msg, absl::string_view reason) {
  return core::WithReason(absl::UnauthenticatedError(msg), reason);
}

bool LooksLikeJwt(absl::string_view authorization) {
  if (!absl::StartsWithIgnoreCase(authorization, "bearer ")) return false;
  absl::string_view token = authorization.substr(7);
  return absl::StartsWith(token, "eyJ") && std::count(token.begin(), token.end(), '.') == 2;
}

}  // namespace

absl::StatusOr<Identity> MtlsAuthenticator::Authenticate(const RequestCredentials& creds) const {
  // A certificate that names URIs is judged by its SPIFFE ID alone: with several URI SANs (no
  // single SPIFFE ID) or a URI that is not one, it never falls back to a DNS SAN, which would
  // escape the trust-domain check.
  if (creds.peer_uris.size() > 1 || creds.peer_spiffe_ids.size() > 1) {
    return Unauth(absl::StrCat("client certificate has ",
                               std::max(creds.peer_uris.size(), creds.peer_spiffe_ids.size()),
                               " URI SANs; exactly one SPIFFE ID is accepted"),
                  "AMBIGUOUS_IDENTITY");
  }
  if (!creds.peer_uris.empty() && creds.peer_spiffe_ids.empty()) {
    return Unauth("client certificate's URI SAN is not a SPIFFE ID", "UNTRUSTED_DOMAIN");
  }
  for (const std::string& id : creds.peer_spiffe_ids) {
    const std::string prefix = absl::StrCat("spiffe://", trust_domain_, "/");
    if (!absl::StartsWith(id, prefix)) continue;
    absl::string_view path = absl::string_view(id).substr(prefix.size());
    std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
    Identity who;
    if (parts.size() == 4 && parts[0] == "ns" && parts[2] == "sa" && !parts[1].empty() &&
        !parts[3].empty()) {
      who.name = absl::StrCat(parts[1], "/", parts[3]);
    } else {
      who.name = id;
    }
    return who;
  }
  if (!creds.peer_spiffe_ids.empty()) {
    return Unauth(
        absl::StrCat("client certificate's SPIFFE ID is not in trust domain ", trust_domain_),
        "UNTRUSTED_DOMAIN");
  }
  if (!creds.peer_dns_names.empty()) return Identity{"dns:" + creds.peer_dns_names.front(), false};
  return Unauth("no client certificate identity", "MISSING_CREDENTIALS");
}

absl::StatusOr<Identity> ChainAuthenticator::Authenticate(const RequestCredentials& creds) const {
  if (!creds.authorization.empty()) {
    if (jwt_ && LooksLikeJwt(creds.authorization)) return jwt_->Authenticate(creds);
    return static_tokens_->Authenticate(creds);
  }
  if (mtls_ && (!creds.peer_spiffe_ids.empty() || !creds.peer_uris.empty() ||
                !creds.peer_dns_names.empty())) {
    return mtls_->Authenticate(creds);
  }
  return static_tokens_->Authenticate(creds);  // reports MISSING_CREDENTIALS
}

std::string AuthFailureLabel(absl::string_view reason) {
  if (reason == "MISSING_CREDENTIALS") return "missing";
  if (reason == "MALFORMED_CREDENTIALS") return "malformed";
  if (reason == "INVALID_CREDENTIALS") return "invalid_token";
  if (reason == "BAD_SIGNATURE") return "bad_signature";
  if (reason == "TOKEN_EXPIRED") return "expired";
  if (reason == "NOT_YET_VALID") return "not_yet_valid";
  if (reason == "WRONG_AUDIENCE") return "wrong_audience";
  if (reason == "UNKNOWN_ISSUER") return "unknown_issuer";
  if (reason == "UNKNOWN_KID") return "unknown_kid";
  if (reason == "UNSUPPORTED_ALG") return "unsupported_alg";
  if (reason == "UNTRUSTED_DOMAIN") return "untrusted_domain";
  if (reason == "AMBIGUOUS_IDENTITY") return "ambiguous_identity";
  return "other";
}

}  // namespace credbroker::identity
