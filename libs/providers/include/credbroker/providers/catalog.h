// The provider catalog: what credbroker knows about each AI provider (where its API lives, which
// header carries the key, what a well-formed key looks like, whether several keys may be live at
// once). Five providers are built in; configuration overrides their fields or adds new ones, so a
// new provider needs no code.
// Thread-safety: ProviderSpec and ProviderCatalog are immutable after construction.
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::providers {

struct ProbeSpec {
  std::string method;  // empty: no probe (unknown or disabled)
  std::string path;    // appended to base_url
  int expected_status = 200;
  absl::Duration timeout = absl::Seconds(10);
  bool enabled() const { return !method.empty(); }
};

// Which characters of a key identify it in the provider's dashboard: the first `prefix` and the
// last `suffix` (both 0: nothing but the version name).
struct KeyHint {
  int prefix = 0;
  int suffix = 0;
  // At most this much of a key for providers that are not built in.
  static constexpr int kMaxPrefix = 16;
  static constexpr int kMaxSuffix = 4;
};

enum class AuthFailureKind;

// A provider error code with a documented meaning.
struct ErrorCode {
  std::string code;
  AuthFailureKind kind;
};

// How a provider says why it refused a request (see auth_failure.h).
struct ErrorShape {
  // Where its answers carry the error code (RFC 6901), or empty: status codes only.
  std::string code_pointer;
  std::vector<ErrorCode> codes;
  // Its 403 means either "no access" or "rate limited" (firemoon).
  bool forbidden_is_ambiguous = false;
};

struct ProviderSpec {
  std::string name;
  std::string base_url;
  std::string header_name = "Authorization";
  std::string header_prefix = "Bearer ";
  std::string key_format;
  bool single_key = false;
  bool builtin = false;
  std::string source;
  std::string secret_path;
  absl::Duration rotation_period = absl::Hours(24 * 90);
  absl::Duration overlap = absl::Hours(24 * 7);
  // After the overlap, how long retirement waits for leases to end before revoking them.
  absl::Duration retire_grace = absl::Hours(24);
  ProbeSpec probe;
  // Minted rotation through the provider's key API (mint.base_url defaulted to base_url);
  // absent: staged rotation.
  std::shared_ptr<const v1::MintConfig> mint;
  std::shared_ptr<const std::regex> key_regex;
  KeyHint hint;
  ErrorShape errors;
  // The provider API this entry is a key line of (its own name unless configured): lines of one
  // api are one provider to callers, who choose among them by scope.
  std::string api;
  // Whether other lines share `api`, or this line's api is not its name: AcquireLease must then
  // choose the line (LeaseBroker), else the requested name is the line.
  bool shares_api = false;
  // The permissions of this line's keys when a version's metadata names none (sorted).
  std::vector<std::string> scopes;
  // Every permission the provider documents (sorted), or empty when it documents no fixed set;
  // scopes outside it are refused.
  std::vector<std::string> documented_scopes;

  // OK when `key` can be served: matches key_format, no whitespace or control characters (it
  // goes into an HTTP header), at most kMaxKeyBytes. Errors are INVALID_ARGUMENT with a reason
  // ("format", "whitespace", "empty", "too_long") and never contain the key.
  absl::Status ValidateKey(absl::string_view key) const;

  std::string HeaderValue(absl::string_view key) const;

  // OK when `scopes` (sorted) are permissions the provider documents; INVALID_ARGUMENT with
  // reason "scopes" naming the first that is not.
  absl::Status ValidateScopes(const std::vector<std::string>& scopes) const;

  // The dashboard hint of `key` ("flx_live_a3b4c...f8e9", "...f8e9"), or empty when the provider
  // shows none. Never half of the key or more: a short key gets no hint.
  std::string HintOf(absl::string_view key) const;
};

inline constexpr size_t kMaxKeyBytes = 4096;

// Fills `mint` (and the line's scopes) from the provider's documented key API named by
// mint.preset ("firemoon"); fields already set win. INVALID_ARGUMENT for an unknown preset or one
// that is not the line's api.
absl::Status ApplyMintPreset(ProviderSpec& spec, v1::MintConfig& mint);

// The built-in entries, before any configuration.
const std::vector<ProviderSpec>& BuiltinProviders();

// Compiles `pattern` as an anchored ECMAScript regex; INVALID_ARGUMENT when it does not compile.
absl::StatusOr<std::shared_ptr<const std::regex>> CompileKeyFormat(const std::string& pattern);

class ProviderCatalog {
 public:
  // Merges the configured providers over the built-in catalog. Only providers listed in the
  // configuration are served. Errors name the field: "providers[1].key_format: ...".
  static absl::StatusOr<ProviderCatalog> FromConfig(const v1::BrokerConfig& config);

  const ProviderSpec* Find(absl::string_view name) const;
  const std::vector<ProviderSpec>& providers() const { return providers_; }

 private:
  std::vector<ProviderSpec> providers_;
};

}  // namespace credbroker::providers
