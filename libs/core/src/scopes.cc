#include "credbroker/core/scopes.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace credbroker::core {

bool IsScopeName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) {
    return lower_or_digit(c) || c == '_' || c == '-' || c == '.' || c == ':';
  });
}

absl::StatusOr<std::vector<std::string>> NormalizeScopes(absl::Span<const std::string> scopes) {
  std::vector<std::string> out;
  for (const std::string& s : scopes) {
    if (!IsScopeName(s)) {
      return absl::InvalidArgumentError(
          absl::StrCat("scope \"", absl::CHexEscape(s.substr(0, 64)),
                       "\" is not a scope name (lowercase letters, digits, '_', '-', '.', ':')"));
    }
    out.push_back(s);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.size() > kMaxScopes) {
    return absl::InvalidArgumentError(
        absl::StrCat(out.size(), " scopes, at most ", kMaxScopes, " are allowed"));
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseScopes(absl::string_view text) {
  std::vector<std::string> parts =
      absl::StrSplit(text, absl::ByAnyChar(", \t\r\n"), absl::SkipEmpty());
  return NormalizeScopes(parts);
}

bool ScopesWithin(absl::Span<const std::string> sub, absl::Span<const std::string> super) {
  return std::includes(super.begin(), super.end(), sub.begin(), sub.end());
}

}  // namespace credbroker::core
