// What a provider's refusal means, from what the caller saw (status, the provider's error code,
// optionally its answer's body), classified by the shapes each provider documents
// (reference/providers/*-auth.txt):
//  - example-ai answers {"success":false,"error":{"code":"INVALID_API_KEY" | "EXPIRED_API_KEY" |
//    "MISSING_API_KEY", ...}};
//  - fluximage answers 401 {"error":"Unauthorized"} for a missing, malformed or invalid key;
//  - firemoon's 403 means "no access to the requested provider" or "exceeded rate limits": it
//    says nothing about the key;
//  - 429 is a rate limit everywhere; lumenfall and magichour document only the status (401).
// Only kKeyRejected and kKeyExpired are evidence that the key itself stopped working (revocation
// detection); kKeyMissing is a bug in the client (it sent no key), never evidence.
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "credbroker/providers/catalog.h"

namespace credbroker::providers {

enum class AuthFailureKind {
  kKeyRejected,  // the provider refuses the key: invalid or revoked
  kKeyExpired,   // the provider says the key expired
  kKeyMissing,   // the request carried no key: a client bug
  kForbidden,    // the key is valid but may not do this (permissions)
  kAmbiguous,    // no access or rate limited: the provider does not say which
  kRateLimited,
};

absl::string_view AuthFailureKindName(AuthFailureKind kind);
// The inverse, for what the shared facts stored; false for an unknown name.
bool ParseAuthFailureKind(absl::string_view name, AuthFailureKind* kind);

// Whether reports of this kind say the key itself stopped working.
inline bool IsEvidenceAgainstTheKey(AuthFailureKind kind) {
  return kind == AuthFailureKind::kKeyRejected || kind == AuthFailureKind::kKeyExpired;
}

struct ProviderAnswer {
  int http_status = 0;     // 401, 403 or 429
  std::string error_code;  // as the caller read it, may be empty
  std::string body;        // the answer's body, may be empty (bounded by the caller)
};

// The error code the provider put in `body` (its documented place), or empty.
std::string ErrorCodeInBody(const ProviderSpec& spec, absl::string_view body);

AuthFailureKind ClassifyAuthFailure(const ProviderSpec& spec, const ProviderAnswer& answer);

}  // namespace credbroker::providers
