#include "credbroker/backends/azure/azure_source.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::backends::azure {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kApiVersion[] = "api-version=7.4";
constexpr absl::Duration kMaxRetryAfter = absl::Seconds(60);
constexpr int kMaxPages = 100;

const Value* Field(const Struct& s, absl::string_view key) {
  auto it = s.fields().find(std::string(key));
  return it == s.fields().end() ? nullptr : &it->second;
}

const Struct* StructField(const Struct& s, absl::string_view key) {
  const Value* v = Field(s, key);
  return v != nullptr && v->kind_case() == Value::kStructValue ? &v->struct_value() : nullptr;
}

std::string StringField(const Struct& s, absl::string_view key) {
  const Value* v = Field(s, key);
  return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : "";
}

// An IntDate (unix seconds), or nullopt when absent or not a number.
std::optional<int64_t> IntDate(const Struct& s, absl::string_view key) {
  const Value* v = Field(s, key);
  if (v == nullptr || v->kind_case() != Value::kNumberValue || !std::isfinite(v->number_value())) {
    return std::nullopt;
  }
  return static_cast<int64_t>(v->number_value());
}

bool IsKeyVaultName(absl::string_view s) {
  return !s.empty() && s.size() <= 127 && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-';
  });
}

absl::StatusOr<Struct> ParseJson(const std::string& text, absl::string_view what) {
  Struct out;
  if (text.empty()) return out;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(text, &out, opts).ok()) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answer is not JSON")),
                            "malformed_answer");
  }
  return out;
}

// The last path segment of a Key Vault identifier (…/secrets/<name>/<version>), query cut off.
std::string LastSegment(absl::string_view id) {
  id = id.substr(0, id.find('?'));
  id = absl::StripSuffix(id, "/");
  const size_t slash = id.rfind('/');
  return std::string(slash == absl::string_view::npos ? id : id.substr(slash + 1));
}

// A KeyVaultError answer mapped to a status (protocols.md §4).
absl::Status KeyVaultStatus(int http_status, const Struct& body, absl::string_view what) {
  std::string code;
  std::string message;
  std::string inner;
  if (const Struct* error = StructField(body, "error"); error != nullptr) {
    code = StringField(*error, "code");
    message = StringField(*error, "message").substr(0, 300);
    if (const Struct* ie = StructField(*error, "innererror"); ie != nullptr) {
      inner = StringField(*ie, "code");
    }
  }
  const std::string msg =
      absl::StrCat(what, ": HTTP ", http_status, code.empty() ? "" : " ", code,
                   inner.empty() ? "" : "/", inner, message.empty() ? "" : ": ", message);
  switch (http_status) {
    case 400:
      return core::WithReason(absl::InvalidArgumentError(msg), "bad_request");
    case 401:
      return core::WithReason(absl::PermissionDeniedError(msg), "auth_failed");
    case 403:
      if (inner == "SecretDisabled") {
        return core::WithReason(absl::FailedPreconditionError(msg), "disabled");
      }
      return core::WithReason(absl::PermissionDeniedError(msg), "permission_denied");
    case 404:
      return core::WithReason(absl::NotFoundError(msg), "not_found");
    case 409:
      return core::WithReason(absl::FailedPreconditionError(msg), "conflict");
    case 429:
      return core::WithReason(absl::UnavailableError(msg), "throttled");
    default:
      return core::WithReason(absl::UnavailableError(msg), "unavailable");
  }
}

// scheme, lowercased host, port (default filled in).
struct Origin {
  std::string scheme;
  std::string host;
  std::string port;
  bool operator==(const Origin&) const = default;
};

std::optional<Origin> OriginOf(absl::string_view url) {
  const size_t sep = url.find("://");
  if (sep == absl::string_view::npos) return std::nullopt;
  Origin o;
  o.scheme = absl::AsciiStrToLower(url.substr(0, sep));
  absl::string_view authority = url.substr(sep + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (authority.empty() || absl::StrContains(authority, '@')) return std::nullopt;
  const size_t colon = authority.rfind(':');
  if (colon != absl::string_view::npos && authority.find(']', colon) == absl::string_view::npos) {
    o.host = absl::AsciiStrToLower(authority.substr(0, colon));
    o.port = std::string(authority.substr(colon + 1));
  } else {
    o.host = absl::AsciiStrToLower(authority);
  }
  if (o.port.empty()) o.port = o.scheme == "https" ? "443" : o.scheme == "http" ? "80" : "";
  return o;
}

std::vector<core::FieldError> ValidateAzure(const v1::AzureSourceConfig& a) {
  std::vector<core::FieldError> errors;
  if (a.vault_url().empty()) {
    errors.push_back({"vault_url", "is required (https://<vault>.vault.azure.net)"});
  } else if ((!absl::StartsWith(a.vault_url(), "https://") &&
              !absl::StartsWith(a.vault_url(), "http://")) ||
             !OriginOf(a.vault_url()).has_value()) {
    errors.push_back({"vault_url", "must be an https:// URL"});
  }
  if (!a.name_prefix().empty() &&
      !std::all_of(a.name_prefix().begin(), a.name_prefix().end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-';
      })) {
    errors.push_back({"name_prefix", "may hold only letters, digits and '-'"});
  }
  if (a.auth().has_workload_identity()) {
    const std::string& host = a.auth().workload_identity().authority_host();
    if (!host.empty() && !absl::StartsWith(host, "https://") &&
        !absl::StartsWith(host, "http://")) {
      errors.push_back({"auth.workload_identity.authority_host", "must be an https:// URL"});
    }
  } else if (a.auth().has_managed_identity()) {
    const std::string& endpoint = a.auth().managed_identity().endpoint();
    if (!endpoint.empty() && !absl::StartsWith(endpoint, "http://") &&
        !absl::StartsWith(endpoint, "https://")) {
      errors.push_back({"auth.managed_identity.endpoint", "must be an http:// URL"});
    }
  } else {
    errors.push_back({"auth", "needs workload_identity or managed_identity"});
  }
  if (a.max_attempts() < 0 || a.max_attempts() > 10) {
    errors.push_back({"max_attempts", "must be between 1 and 10"});
  }
  if (a.has_request_timeout() &&
      core::FromProtoDuration(a.request_timeout()) <= absl::ZeroDuration()) {
    errors.push_back({"request_timeout", "must be positive"});
  }
  return errors;
}

class AzureSourceFactory final : public secrets::SourceFactory {
 public:
  absl::string_view type() const override { return "azure"; }
  std::vector<core::FieldError> Validate(const v1::SourceConfig& config) const override {
    return ValidateAzure(config.azure());
  }
  absl::StatusOr<std::unique_ptr<secrets::SecretSource>> Create(
      const v1::SourceConfig& config, const secrets::SourceContext& context) override {
    const v1::AzureSourceConfig& azure = config.azure();
    const std::string what = absl::StrCat("source ", config.name());
    if (std::vector<core::FieldError> errors = ValidateAzure(azure); !errors.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": azure.", errors[0].field, " ", errors[0].message));
    }
    AzureSourceDeps deps;
    auto transport = context.MakeHttpClient(http::TlsOptions{azure.ca_file(), "", ""});
    if (!transport.ok()) return core::Annotate(transport.status(), what);
    deps.transport = *std::move(transport);
    auto token = AzureTokenFromConfig(azure, context, deps.transport.get(), config.name());
    if (!token.ok()) return core::Annotate(token.status(), what);
    deps.token = *std::move(token);
    deps.clock = context.clock;
    deps.sleeper = context.SleeperOrReal();
    deps.stats = context.stats;
    auto source = AzureSecretSource::Create(config.name(), azure, std::move(deps));
    if (!source.ok()) return source.status();
    return std::unique_ptr<secrets::SecretSource>(*std::move(source));
  }
};

}  // namespace

bool SameOrigin(absl::string_view base, absl::string_view url) {
  std::optional<Origin> a = OriginOf(base);
  std::optional<Origin> b = OriginOf(url);
  return a.has_value() && b.has_value() && *a == *b;
}

absl::StatusOr<std::unique_ptr<AzureSecretSource>> AzureSecretSource::Create(
    std::string name, v1::AzureSourceConfig config, AzureSourceDeps deps) {
  if (config.vault_url().empty() || !OriginOf(config.vault_url()).has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("source ", name, ": azure.vault_url must be an https:// URL"));
  }
  if (deps.transport == nullptr || deps.token == nullptr || deps.clock == nullptr) {
    return absl::InvalidArgumentError("AzureSecretSource needs a transport, a token and a clock");
  }
  if (deps.sleeper == nullptr) deps.sleeper = http::Sleeper::Real();
  return std::unique_ptr<AzureSecretSource>(
      new AzureSecretSource(std::move(name), std::move(config), std::move(deps)));
}

AzureSecretSource::AzureSecretSource(std::string name, v1::AzureSourceConfig config,
                                     AzureSourceDeps deps)
    : name_(std::move(name)),
      config_(std::move(config)),
      deps_(std::move(deps)),
      vault_url_(std::string(absl::StripSuffix(config_.vault_url(), "/"))) {
  if (!deps_.jitter) {
    deps_.jitter = [] {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    };
  }
}

absl::StatusOr<std::string> AzureSecretSource::SecretName(absl::string_view path) const {
  std::string name = absl::StrCat(config_.name_prefix(), path);
  if (!IsKeyVaultName(name)) {
    return core::WithReason(
        absl::InvalidArgumentError(
            absl::StrCat("azure: secret name \"", name, "\" is not 1-127 letters, digits and '-'")),
        "bad_request");
  }
  return name;
}

absl::StatusOr<Struct> AzureSecretSource::Call(absl::string_view method, const std::string& url,
                                               const std::string& body, absl::string_view what) {
  if (!SameOrigin(vault_url_, url)) {
    // Never hand the bearer token to another host (a nextLink could point anywhere).
    return core::WithReason(absl::UnavailableError(absl::StrCat(
                                what, ": refusing a URL outside the vault ", vault_url_)),
                            "malformed_answer");
  }
  const int attempts = config_.max_attempts() > 0 ? config_.max_attempts() : 4;
  bool refreshed_token = false;
  absl::Duration backoff_cap = absl::Milliseconds(200);
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<std::shared_ptr<const AzureToken>> token = deps_.token->Fetch();
    if (!token.ok()) {
      absl::Status s = core::Annotate(token.status(), absl::StrCat(what, ": token"));
      if (!absl::IsUnavailable(s) && !absl::IsDeadlineExceeded(s)) {
        return core::WithReason(s, "auth_failed");
      }
      // The token endpoint is down (IMDS restarting, Entra 5xx): back off like Key Vault.
      if (attempt >= attempts) return s;
      deps_.sleeper->Sleep(backoff_cap * deps_.jitter());
      backoff_cap = std::min(backoff_cap * 2, absl::Seconds(5));
      continue;
    }
    http::HttpRequest req;
    req.method = std::string(method);
    req.url = url;
    req.body = body;
    req.timeout = config_.has_request_timeout() ? core::FromProtoDuration(config_.request_timeout())
                                                : absl::Seconds(10);
    req.headers.emplace_back("Authorization",
                             absl::StrCat("Bearer ", (*token)->access_token.reveal()));
    if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
    absl::StatusOr<http::HttpResponse> resp = deps_.transport->Send(req);
    std::fill(req.body.begin(), req.body.end(), '\0');
    std::fill(req.headers[0].second.begin(), req.headers[0].second.end(), '\0');

    absl::Status failure;
    bool retryable = false;
    absl::Duration wait = absl::ZeroDuration();
    if (!resp.ok()) {
      failure = core::WithReason(core::Annotate(resp.status(), what), "unavailable");
      retryable = absl::IsUnavailable(resp.status()) || absl::IsDeadlineExceeded(resp.status());
    } else {
      absl::StatusOr<Struct> parsed = ParseJson(resp->body, what);
      if (resp->status >= 200 && resp->status < 300) return parsed;
      const Struct error_body = parsed.ok() ? *parsed : Struct();
      failure = KeyVaultStatus(resp->status, error_body, what);
      if (resp->status == 401 && !refreshed_token) {
        // The challenge: the token expired early or was revoked. Fetch a fresh one, once.
        refreshed_token = true;
        deps_.token->Invalidate(token->get());
        --attempt;
        continue;
      }
      if (resp->status == 429) {
        if (deps_.stats != nullptr) deps_.stats->Throttled(name_);
        int64_t seconds = 0;
        if (absl::SimpleAtoi(resp->Header("retry-after"), &seconds) && seconds >= 0) {
          wait = std::min(absl::Seconds(seconds), kMaxRetryAfter);
        }
      }
      retryable = resp->status == 429 || resp->status >= 500;
    }
    if (!retryable || attempt >= attempts) return failure;
    if (wait == absl::ZeroDuration()) {
      // Full jitter over an exponentially growing cap.
      wait = backoff_cap * deps_.jitter();
      backoff_cap = std::min(backoff_cap * 2, absl::Seconds(5));
    }
    deps_.sleeper->Sleep(wait);
  }
}

absl::StatusOr<std::vector<secrets::VersionInfo>> AzureSecretSource::ListVersions(
    absl::string_view path) {
  CB_ASSIGN_OR_RETURN(const std::string name, SecretName(path));
  const std::string what = absl::StrCat("azure list versions of ", name);
  std::vector<secrets::VersionInfo> out;
  std::string url =
      absl::StrCat(vault_url_, "/secrets/", name, "/versions?", kApiVersion, "&maxresults=25");
  for (int page = 0;; ++page) {
    if (page >= kMaxPages) {
      return core::WithReason(
          absl::DataLossError(absl::StrCat(what, ": more than ", kMaxPages, " pages")),
          "malformed_answer");
    }
    CB_ASSIGN_OR_RETURN(Struct answer, Call("GET", url, "", what));
    const Value* items = Field(answer, "value");
    if (items == nullptr || items->kind_case() != Value::kListValue) {
      return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answer has no value list")),
                              "malformed_answer");
    }
    for (const Value& v : items->list_value().values()) {
      if (v.kind_case() != Value::kStructValue) continue;
      secrets::VersionInfo info;
      info.version_id = LastSegment(StringField(v.struct_value(), "id"));
      if (info.version_id.empty()) continue;
      std::string updated;
      if (const Struct* attrs = StructField(v.struct_value(), "attributes"); attrs != nullptr) {
        if (const Value* e = Field(*attrs, "enabled");
            e != nullptr && e->kind_case() == Value::kBoolValue) {
          info.enabled = e->bool_value();
        }
        if (auto nbf = IntDate(*attrs, "nbf")) info.not_before = absl::FromUnixSeconds(*nbf);
        if (auto exp = IntDate(*attrs, "exp")) info.expires_at = absl::FromUnixSeconds(*exp);
        if (auto created = IntDate(*attrs, "created")) {
          info.created_at = absl::FromUnixSeconds(*created);
        }
        if (auto u = IntDate(*attrs, "updated")) updated = absl::StrCat(*u);
      }
      // The content never changes, the attributes (enabled, nbf, exp) can.
      info.etag = absl::StrCat(info.version_id, "@", updated);
      out.push_back(std::move(info));
    }
    const std::string next = StringField(answer, "nextLink");
    if (next.empty()) break;
    if (!SameOrigin(vault_url_, next)) {
      return core::WithReason(absl::DataLossError(absl::StrCat(
                                  what, ": nextLink leaves the vault (token not sent there)")),
                              "malformed_answer");
    }
    url = next;
  }
  // Oldest first, as the seam promises (ties keep the answer's order).
  std::stable_sort(out.begin(), out.end(),
                   [](const secrets::VersionInfo& a, const secrets::VersionInfo& b) {
                     return a.created_at < b.created_at;
                   });
  return out;
}

absl::StatusOr<secrets::SecretVersion> AzureSecretSource::FetchVersion(
    absl::string_view path, absl::string_view version_id) {
  CB_ASSIGN_OR_RETURN(const std::string name, SecretName(path));
  if (!IsKeyVaultName(version_id)) {
    return core::WithReason(
        absl::NotFoundError(absl::StrCat("azure secret ", name, ": no version ", version_id)),
        "not_found");
  }
  const std::string what = absl::StrCat("azure get ", name, "/", version_id);
  CB_ASSIGN_OR_RETURN(
      Struct answer,
      Call("GET", absl::StrCat(vault_url_, "/secrets/", name, "/", version_id, "?", kApiVersion),
           "", what));
  secrets::SecretVersion out;
  out.info.version_id = LastSegment(StringField(answer, "id"));
  if (!absl::EqualsIgnoreCase(out.info.version_id, version_id)) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answered another version")),
                            "malformed_answer");
  }
  std::string updated;
  if (const Struct* attrs = StructField(answer, "attributes"); attrs != nullptr) {
    if (const Value* e = Field(*attrs, "enabled");
        e != nullptr && e->kind_case() == Value::kBoolValue) {
      out.info.enabled = e->bool_value();
    }
    if (auto nbf = IntDate(*attrs, "nbf")) out.info.not_before = absl::FromUnixSeconds(*nbf);
    if (auto exp = IntDate(*attrs, "exp")) out.info.expires_at = absl::FromUnixSeconds(*exp);
    if (auto created = IntDate(*attrs, "created")) {
      out.info.created_at = absl::FromUnixSeconds(*created);
    }
    if (auto u = IntDate(*attrs, "updated")) updated = absl::StrCat(*u);
  }
  out.info.etag = absl::StrCat(out.info.version_id, "@", updated);
  const Value* value = Field(answer, "value");
  if (value == nullptr || value->kind_case() != Value::kStringValue) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answer has no value")),
                            "malformed_answer");
  }
  out.material = core::SecretBytes(value->string_value());
  // The parsed answer holds the key too: wipe it before it is freed.
  std::string* held = answer.mutable_fields()->at("value").mutable_string_value();
  std::fill(held->begin(), held->end(), '\0');
  return out;
}

absl::StatusOr<secrets::VersionInfo> AzureSecretSource::WriteVersion(
    absl::string_view path, const core::SecretBytes& material) {
  CB_ASSIGN_OR_RETURN(const std::string name, SecretName(path));
  const std::string what = absl::StrCat("azure set ", name);
  std::string body = absl::StrCat("{\"value\":", core::JsonQuote(material.reveal()),
                                  ",\"contentType\":\"text/plain\"}");
  absl::StatusOr<Struct> answer =
      Call("PUT", absl::StrCat(vault_url_, "/secrets/", name, "?", kApiVersion), body, what);
  std::fill(body.begin(), body.end(), '\0');
  if (!answer.ok()) return answer.status();
  if (auto it = answer->mutable_fields()->find("value");
      it != answer->mutable_fields()->end() && it->second.kind_case() == Value::kStringValue) {
    std::string* held = it->second.mutable_string_value();
    std::fill(held->begin(), held->end(), '\0');
  }
  secrets::VersionInfo info;
  info.version_id = LastSegment(StringField(*answer, "id"));
  if (info.version_id.empty()) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answer has no id")),
                            "malformed_answer");
  }
  std::string updated;
  if (const Struct* attrs = StructField(*answer, "attributes"); attrs != nullptr) {
    if (auto created = IntDate(*attrs, "created")) {
      info.created_at = absl::FromUnixSeconds(*created);
    }
    if (auto u = IntDate(*attrs, "updated")) updated = absl::StrCat(*u);
  }
  info.etag = absl::StrCat(info.version_id, "@", updated);
  return info;
}

std::unique_ptr<secrets::SourceFactory> MakeAzureSourceFactory() {
  return std::make_unique<AzureSourceFactory>();
}

}  // namespace credbroker::backends::azure
