#include "credbroker/providers/auth_failure.h"

#include "credbroker/core/json_pointer.h"

namespace credbroker::providers {

absl::string_view AuthFailureKindName(AuthFailureKind kind) {
  switch (kind) {
    case AuthFailureKind::kKeyRejected:
      return "key_rejected";
    case AuthFailureKind::kKeyExpired:
      return "key_expired";
    case AuthFailureKind::kKeyMissing:
      return "key_missing";
    case AuthFailureKind::kForbidden:
      return "forbidden";
    case AuthFailureKind::kAmbiguous:
      return "ambiguous";
    case AuthFailureKind::kRateLimited:
      return "rate_limited";
  }
  return "key_rejected";
}

bool ParseAuthFailureKind(absl::string_view name, AuthFailureKind* kind) {
  for (AuthFailureKind k :
       {AuthFailureKind::kKeyRejected, AuthFailureKind::kKeyExpired, AuthFailureKind::kKeyMissing,
        AuthFailureKind::kForbidden, AuthFailureKind::kAmbiguous, AuthFailureKind::kRateLimited}) {
    if (AuthFailureKindName(k) == name) {
      *kind = k;
      return true;
    }
  }
  return false;
}

std::string ErrorCodeInBody(const ProviderSpec& spec, absl::string_view body) {
  if (spec.errors.code_pointer.empty() || body.empty()) return "";
  absl::StatusOr<std::string> code = core::JsonPointerString(body, spec.errors.code_pointer);
  return code.ok() ? *code : "";
}

AuthFailureKind ClassifyAuthFailure(const ProviderSpec& spec, const ProviderAnswer& answer) {
  // What the caller read wins over what the body says (it may have sent only one of them).
  const std::string code =
      answer.error_code.empty() ? ErrorCodeInBody(spec, answer.body) : answer.error_code;
  for (const ErrorCode& known : spec.errors.codes) {
    if (code == known.code) return known.kind;
  }
  switch (answer.http_status) {
    case 401:
      return AuthFailureKind::kKeyRejected;
    case 403:
      return spec.errors.forbidden_is_ambiguous ? AuthFailureKind::kAmbiguous
                                                : AuthFailureKind::kForbidden;
    default:
      return AuthFailureKind::kRateLimited;  // 429, the only other status a report may carry
  }
}

}  // namespace credbroker::providers
