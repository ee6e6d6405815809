#include "credbroker/providers/catalog.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/scopes.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/providers/auth_failure.h"

namespace credbroker::providers {
namespace {

// Providers whose documentation describes keys only as opaque tokens: accept printable ASCII
// without spaces, 8 to 512 characters.
constexpr char kOpaqueKeyFormat[] = R"([\x21-\x7e]{8,512})";

ProviderSpec Builtin(std::string name, std::string base_url, std::string key_format,
                     bool single_key, ProbeSpec probe, KeyHint hint = {}, ErrorShape errors = {},
                     std::vector<std::string> documented_scopes = {}) {
  ProviderSpec s;
  s.name = std::move(name);
  s.api = s.name;
  s.base_url = std::move(base_url);
  s.key_format = std::move(key_format);
  s.single_key = single_key;
  s.builtin = true;
  s.probe = std::move(probe);
  s.hint = hint;
  s.errors = std::move(errors);
  s.documented_scopes = std::move(documented_scopes);
  s.key_regex = *CompileKeyFormat(s.key_format);
  return s;
}

}  // namespace

absl::Status ApplyMintPreset(ProviderSpec& spec, v1::MintConfig& mint) {
  if (mint.preset() != "firemoon") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown preset \"", mint.preset(), "\" (known: firemoon)"));
  }
  if (spec.api != "firemoon") {
    return absl::InvalidArgumentError(absl::StrCat("the firemoon preset calls firemoon's key API; ",
                                                   spec.name, " is a line of ", spec.api));
  }
  // "Creating Keys via API": POST https://firemoon.studio/api/keys, Authorization: Bearer
  // <session token>, {"description": ..., "scope": "full_access"} (firemoon-auth, API Key
  // Management). The page shows no answer and no delete endpoint: the key is read from /key
  // (override with key_pointer), the dashboard names keys by description, and retired keys are
  // left for an operator to delete there (ListKeysToDelete).
  if (mint.scope().empty()) mint.set_scope("full_access");
  if (!core::IsScopeName(mint.scope())) {
    return absl::InvalidArgumentError(
        absl::StrCat("scope \"", mint.scope(), "\" is not a scope name"));
  }
  if (mint.description().empty()) mint.set_description("credbroker {provider} {timestamp}");
  if (mint.base_url().empty()) mint.set_base_url("https://firemoon.studio");
  v1::HttpRequestTemplate* create = mint.mutable_create();
  if (create->method().empty()) create->set_method("POST");
  if (create->path().empty()) create->set_path("/api/keys");
  if (create->body().empty()) {
    create->set_body(
        absl::StrCat(R"({"description":"{description}","scope":")", mint.scope(), R"("})"));
  }
  if (mint.key_pointer().empty()) mint.set_key_pointer("/key");
  if (spec.scopes.empty()) spec.scopes = {mint.scope()};
  return absl::OkStatus();
}

const std::vector<ProviderSpec>& BuiltinProviders() {
  static const std::vector<ProviderSpec>* const kBuiltins = new std::vector<ProviderSpec>{
      // Several keys per account (dev/staging/prod); 401 bad key, 403 "no access to the
      // requested provider" or "exceeded rate limits" (firemoon-auth, Troubleshooting).
      Builtin("firemoon", "https://firemoon.studio/api/v1", kOpaqueKeyFormat, false, {}, {},
              {"", {}, /*forbidden_is_ambiguous=*/true}),
      // Generic provider; keys carry read/write/admin/webhook permissions. Errors are
      // {"success":false,"error":{"code":...}} (example-ai-auth, Error Responses).
      Builtin("example-ai", "https://api.example.com/v1", kOpaqueKeyFormat, false, {}, {},
              {"/error/code",
               {{"INVALID_API_KEY", AuthFailureKind::kKeyRejected},
                {"EXPIRED_API_KEY", AuthFailureKind::kKeyExpired},
                {"MISSING_API_KEY", AuthFailureKind::kKeyMissing}},
               false},
              // "Each API key can have different permissions" (example-ai-auth, Key Permissions).
              {"admin", "read", "webhook", "write"}),
      // ONE key per account: regenerating invalidates the old key at once. The dashboard shows
      // "a masked prefix (for example, `flx_live_a3b4c...f8e9`)" (fluximage-auth, API key format).
      // Its one error answer, 401 {"error":"Unauthorized"}, covers a missing, malformed or
      // invalid key alike: a 401 (see auth_failure.h).
      Builtin("fluximage", "https://fluximage.app/api", "flx_live_[0-9a-fA-F]{40}", true,
              {"GET", "/usage", 200}, {14, 4}, {"/error", {}, false}),
      // OpenAI-compatible; several revocable keys.
      Builtin("lumenfall", "https://api.lumenfall.ai/openai/v1",
              R"(lmnfl_[A-Za-z0-9]+\.[A-Za-z0-9_\-]+)", false, {"GET", "/models", 200}),
      // Several named keys; revocation is immediate. The Developer Hub lists each key's "Last 4
      // Characters" (magichour-auth, Viewing API Keys).
      Builtin("magichour", "https://api.magichour.ai/v1", kOpaqueKeyFormat, false, {}, {0, 4}),
  };
  return *kBuiltins;
}

absl::StatusOr<std::shared_ptr<const std::regex>> CompileKeyFormat(const std::string& pattern) {
  if (pattern.empty()) return absl::InvalidArgumentError("key_format is empty");
  try {
    return std::make_shared<const std::regex>(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("key_format \"", pattern, "\" is not a valid regular expression: ", e.what()));
  }
}

absl::Status ProviderSpec::ValidateKey(absl::string_view key) const {
  if (key.empty()) return core::WithReason(absl::InvalidArgumentError("key is empty"), "empty");
  if (key.size() > kMaxKeyBytes) {
    return core::WithReason(
        absl::InvalidArgumentError(absl::StrCat("key is longer than ", kMaxKeyBytes, " bytes")),
        "too_long");
  }
  for (unsigned char c : key) {
    if (c <= 0x20 || c == 0x7f) {
      return core::WithReason(
          absl::InvalidArgumentError("key contains whitespace or control characters"),
          "whitespace");
    }
  }
  if (key_regex && !std::regex_match(key.begin(), key.end(), *key_regex)) {
    return core::WithReason(absl::InvalidArgumentError(absl::StrCat("key does not match the ", name,
                                                                    " key format ", key_format)),
                            "format");
  }
  return absl::OkStatus();
}

std::string ProviderSpec::HeaderValue(absl::string_view key) const {
  return absl::StrCat(header_prefix, key);
}

absl::Status ProviderSpec::ValidateScopes(const std::vector<std::string>& scopes) const {
  if (documented_scopes.empty()) return absl::OkStatus();
  for (const std::string& s : scopes) {
    if (!std::binary_search(documented_scopes.begin(), documented_scopes.end(), s)) {
      return core::WithReason(absl::InvalidArgumentError(absl::StrCat(
                                  "scope \"", s, "\" is not a permission ", api, " documents (",
                                  absl::StrJoin(documented_scopes, ", "), ")")),
                              "scopes");
    }
  }
  return absl::OkStatus();
}

std::string ProviderSpec::HintOf(absl::string_view key) const {
  const auto prefix = static_cast<size_t>(hint.prefix);
  const auto suffix = static_cast<size_t>(hint.suffix);
  if (prefix + suffix == 0 || 2 * (prefix + suffix) >= key.size()) return "";
  return absl::StrCat(key.substr(0, prefix), "...", key.substr(key.size() - suffix));
}

absl::StatusOr<ProviderCatalog> ProviderCatalog::FromConfig(const v1::BrokerConfig& config) {
  ProviderCatalog catalog;
  for (int i = 0; i < config.providers_size(); ++i) {
    const v1::ProviderConfig& pc = config.providers(i);
    std::string field = absl::StrCat("providers[", i, "]");
    ProviderSpec spec;
    bool found = false;
    const std::string& api = pc.api().empty() ? pc.name() : pc.api();
    for (const ProviderSpec& b : BuiltinProviders()) {
      if (b.name == api) {
        spec = b;
        found = true;
      }
    }
    spec.name = pc.name();
    spec.api = api;
    if (pc.scopes_size() > 0) {
      auto scopes =
          core::NormalizeScopes(std::vector<std::string>(pc.scopes().begin(), pc.scopes().end()));
      if (!scopes.ok()) return core::Annotate(scopes.status(), field + ".scopes");
      if (absl::Status ok = spec.ValidateScopes(*scopes); !ok.ok()) {
        return core::Annotate(ok, field + ".scopes");
      }
      spec.scopes = *std::move(scopes);
    }
    if (!pc.base_url().empty()) spec.base_url = pc.base_url();
    if (!pc.header_name().empty()) spec.header_name = pc.header_name();
    if (pc.has_header_prefix()) spec.header_prefix = pc.header_prefix();
    if (pc.has_single_key()) spec.single_key = pc.single_key();
    if (!pc.key_format().empty()) {
      auto re = CompileKeyFormat(pc.key_format());
      if (!re.ok()) return core::Annotate(re.status(), field + ".key_format");
      spec.key_format = pc.key_format();
      spec.key_regex = *re;
    }
    if (!found && spec.base_url.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".base_url: required for provider \"",
                                                     pc.name(), "\", which is not built in"));
    }
    if (!found && spec.key_format.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".key_format: required for provider \"",
                                                     pc.name(), "\", which is not built in"));
    }
    spec.source = pc.source();
    if (spec.source.empty() && config.sources_size() == 1) spec.source = config.sources(0).name();
    spec.secret_path = pc.secret_path().empty() ? pc.name() : pc.secret_path();
    if (pc.has_rotation_period())
      spec.rotation_period = core::FromProtoDuration(pc.rotation_period());
    if (pc.has_overlap()) spec.overlap = core::FromProtoDuration(pc.overlap());
    if (pc.has_retire_grace()) spec.retire_grace = core::FromProtoDuration(pc.retire_grace());
    if (pc.has_probe()) {
      spec.probe.method = pc.probe().method().empty() ? "GET" : pc.probe().method();
      spec.probe.path = pc.probe().path();
      spec.probe.expected_status =
          pc.probe().expected_status() == 0 ? 200 : pc.probe().expected_status();
      if (pc.probe().has_timeout())
        spec.probe.timeout = core::FromProtoDuration(pc.probe().timeout());
      if (pc.probe().disabled()) spec.probe = ProbeSpec{};
    }
    if (pc.has_key_hint()) {
      const KeyHint wanted{static_cast<int>(std::min<uint32_t>(pc.key_hint().prefix(), 1024)),
                           static_cast<int>(std::min<uint32_t>(pc.key_hint().suffix(), 1024))};
      const KeyHint most = found ? spec.hint : KeyHint{KeyHint::kMaxPrefix, KeyHint::kMaxSuffix};
      if (wanted.prefix > most.prefix || wanted.suffix > most.suffix) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".key_hint: ", pc.name(), found ? " itself shows" : " may show",
                         " at most the first ", most.prefix, " and the last ", most.suffix,
                         " characters of a key, got prefix ", pc.key_hint().prefix(),
                         " and suffix ", pc.key_hint().suffix()));
      }
      spec.hint = wanted;
    }
    if (pc.has_mint()) {
      auto mint = std::make_shared<v1::MintConfig>(pc.mint());
      if (!mint->preset().empty()) {
        CB_RETURN_IF_ERROR(core::Annotate(ApplyMintPreset(spec, *mint), field + ".mint.preset"));
      }
      if (mint->base_url().empty()) mint->set_base_url(spec.base_url);
      spec.mint = std::move(mint);
    }
    catalog.providers_.push_back(std::move(spec));
  }
  for (ProviderSpec& spec : catalog.providers_) {
    spec.shares_api = spec.api != spec.name ||
                      std::count_if(catalog.providers_.begin(), catalog.providers_.end(),
                                    [&](const ProviderSpec& o) { return o.api == spec.api; }) > 1;
  }
  return catalog;
}

const ProviderSpec* ProviderCatalog::Find(absl::string_view name) const {
  for (const ProviderSpec& p : providers_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace credbroker::providers
