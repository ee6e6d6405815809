#include "credbroker/providers/catalog.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/providers/auth_failure.h"

namespace credbroker::providers {
namespace {

// Providers whose documentation describes keys only as opaque tokens: accept printable ASCII
// without spaces, 8 to 512 characters.
constexpr char kOpaqueKeyFormat[] = R"([\x21-\x7e]{8,512})";

ProviderSpec Builtin(std::string name, std::string base_url, std::string key_format,
                     bool single_key, ProbeSpec probe, KeyHint hint = {}, ErrorShape errors = {}) {
  ProviderSpec s;
  s.name = std::move(name);
  s.base_url = std::move(base_url);
  s.key_format = std::move(key_format);
  s.single_key = single_key;
  s.builtin = true;
  s.probe = std::move(probe);
  s.hint = hint;
  s.errors = std::move(errors);
  s.key_regex = *CompileKeyFormat(s.key_format);
  return s;
}

}  // namespace

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
               false}),
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
    for (const ProviderSpec& b : BuiltinProviders()) {
      if (b.name == pc.name()) {
        spec = b;
        found = true;
      }
    }
    spec.name = pc.name();
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
      if (mint->base_url().empty()) mint->set_base_url(spec.base_url);
      spec.mint = std::move(mint);
    }
    catalog.providers_.push_back(std::move(spec));
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
