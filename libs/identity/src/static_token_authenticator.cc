#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/identity/authenticator.h"

namespace credbroker::identity {
namespace {

absl::Status Unauthenticated(absl::string_view message, absl::string_view reason) {
  return core::WithReason(absl::UnauthenticatedError(message), reason);
}

absl::StatusOr<std::string> ReadToken(const v1::StaticTokenConfig& t, int index) {
  std::string where = absl::StrCat("identity.static_tokens[", index, "] (", t.service(), ")");
  std::string token;
  if (!t.token().empty()) {
    token = t.token();
  } else if (!t.token_file().empty()) {
    std::ifstream in(t.token_file(), std::ios::binary);
    if (!in)
      return absl::InvalidArgumentError(where + ": cannot read token_file " + t.token_file());
    std::stringstream ss;
    ss << in.rdbuf();
    token = ss.str();
  } else if (!t.token_env().empty()) {
    const char* v = std::getenv(t.token_env().c_str());
    if (v == nullptr)
      return absl::InvalidArgumentError(where + ": " + t.token_env() + " is not set");
    token = v;
  }
  token = std::string(absl::StripAsciiWhitespace(token));
  if (token.empty()) return absl::InvalidArgumentError(where + ": token is empty");
  return token;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StaticTokenAuthenticator>> StaticTokenAuthenticator::Create(
    const v1::IdentityConfig& config) {
  auto auth = std::unique_ptr<StaticTokenAuthenticator>(new StaticTokenAuthenticator());
  for (int i = 0; i < config.static_tokens_size(); ++i) {
    const v1::StaticTokenConfig& t = config.static_tokens(i);
    CB_ASSIGN_OR_RETURN(std::string token, ReadToken(t, i));
    Identity id{t.service(), t.admin()};
    if (!auth->by_digest_.emplace(core::Sha256Hex(token), std::move(id)).second) {
      return absl::InvalidArgumentError(absl::StrCat("identity.static_tokens[", i, "] (",
                                                     t.service(),
                                                     "): the same token is configured twice"));
    }
  }
  return auth;
}

absl::StatusOr<Identity> StaticTokenAuthenticator::Authenticate(
    const RequestCredentials& creds) const {
  if (creds.authorization.empty()) {
    return Unauthenticated("missing authorization metadata (expected \"Bearer <token>\")",
                           "MISSING_CREDENTIALS");
  }
  constexpr absl::string_view kBearer = "bearer ";
  if (creds.authorization.size() <= kBearer.size() ||
      !absl::StartsWithIgnoreCase(creds.authorization, kBearer)) {
    return Unauthenticated("authorization metadata must be \"Bearer <token>\"",
                           "MALFORMED_CREDENTIALS");
  }
  absl::string_view token = absl::StripAsciiWhitespace(creds.authorization.substr(kBearer.size()));
  // Looking up the digest keeps the comparison independent of how much of a token matches.
  auto it = by_digest_.find(core::Sha256Hex(token));
  if (it == by_digest_.end()) return Unauthenticated("invalid token", "INVALID_CREDENTIALS");
  return it->second;
}

}  // namespace credbroker::identity
