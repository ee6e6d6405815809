// Key scopes: the permissions a provider attached to an API key ("read", "write", "admin"),
// written by operators in secret metadata, provider configuration and policy rules.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace credbroker::core {

inline constexpr size_t kMaxScopes = 16;

// A scope name: 1 to 64 of lowercase letters, digits, '_', '-', '.' and ':', starting with a
// letter or digit.
bool IsScopeName(absl::string_view name);

// Parses "read, write" or "read write" (commas and/or whitespace) into a sorted list without
// duplicates. INVALID_ARGUMENT naming the bad entry, or when there are more than kMaxScopes.
absl::StatusOr<std::vector<std::string>> ParseScopes(absl::string_view text);

// Sorted, without duplicates; INVALID_ARGUMENT as ParseScopes.
absl::StatusOr<std::vector<std::string>> NormalizeScopes(absl::Span<const std::string> scopes);

// Whether every scope in `sub` is in `super` (both sorted).
bool ScopesWithin(absl::Span<const std::string> sub, absl::Span<const std::string> super);

}  // namespace credbroker::core
