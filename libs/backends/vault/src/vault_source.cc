#include "credbroker/backends/vault/vault_source.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/scopes.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::backends::vault {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// The custom_metadata field that names a key's scopes ("read,write").
constexpr absl::string_view kScopesField = "scopes";

// The value at a dotted path of objects, or nullptr.
const Value* Find(const Struct& s, std::initializer_list<absl::string_view> path) {
  const Struct* cur = &s;
  const Value* v = nullptr;
  for (absl::string_view key : path) {
    if (cur == nullptr) return nullptr;
    auto it = cur->fields().find(std::string(key));
    if (it == cur->fields().end()) return nullptr;
    v = &it->second;
    cur = v->kind_case() == Value::kStructValue ? &v->struct_value() : nullptr;
  }
  return v;
}

std::string StringAt(const Struct& s, std::initializer_list<absl::string_view> path) {
  const Value* v = Find(s, path);
  return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : "";
}

double NumberAt(const Struct& s, std::initializer_list<absl::string_view> path) {
  const Value* v = Find(s, path);
  return v != nullptr && v->kind_case() == Value::kNumberValue ? v->number_value() : 0;
}

// A version number or count: a whole JSON number in [0, 2^53] (what a double holds exactly);
// nullopt for anything else, which would not even convert to an integer safely.
std::optional<int64_t> WholeNumberAt(const Struct& s,
                                     std::initializer_list<absl::string_view> path) {
  const Value* v = Find(s, path);
  if (v == nullptr || v->kind_case() != Value::kNumberValue) return std::nullopt;
  const double d = v->number_value();
  if (!(d >= 0 && d <= 9007199254740992.0) || d != std::floor(d)) return std::nullopt;
  return static_cast<int64_t>(d);
}

bool BoolAt(const Struct& s, std::initializer_list<absl::string_view> path) {
  const Value* v = Find(s, path);
  return v != nullptr && v->kind_case() == Value::kBoolValue && v->bool_value();
}

std::string ErrorsOf(const Struct& body) {
  const Value* errors = Find(body, {"errors"});
  if (errors == nullptr || errors->kind_case() != Value::kListValue) return "";
  std::vector<std::string> parts;
  for (const Value& e : errors->list_value().values()) {
    if (e.kind_case() == Value::kStringValue) {
      parts.push_back(std::string(absl::StripAsciiWhitespace(e.string_value())));
    }
  }
  return absl::StrJoin(parts, "; ");
}

absl::Time ParseVaultTime(const std::string& text) {
  absl::Time t;
  std::string err;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InfinitePast();
  }
  return t;
}

absl::StatusOr<std::string> ReadTrimmed(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::FailedPreconditionError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string out(absl::StripAsciiWhitespace(ss.str()));
  if (out.empty()) return absl::FailedPreconditionError(absl::StrCat(what, " ", path, " is empty"));
  return out;
}

std::vector<core::FieldError> ValidateVault(const v1::VaultSourceConfig& v) {
  std::vector<core::FieldError> errors;
  if (v.address().rfind("https://", 0) != 0 && v.address().rfind("http://", 0) != 0) {
    errors.push_back({"address", "required: https://HOST:PORT"});
  }
  static const std::regex* const kPath = new std::regex("[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*");
  if (!v.mount().empty() && !std::regex_match(v.mount(), *kPath)) {
    errors.push_back({"mount", "must be a Vault path such as \"secret\""});
  }
  if (!v.path_prefix().empty() && (!std::regex_match(v.path_prefix(), *kPath) ||
                                   v.path_prefix().find("..") != std::string::npos)) {
    errors.push_back({"path_prefix", "must be a Vault path such as \"credbroker/prod\""});
  }
  if (v.max_attempts() < 0 || v.max_attempts() > 10) {
    errors.push_back({"max_attempts", "must be between 1 and 10"});
  }
  const v1::VaultAuthConfig& a = v.auth();
  switch (a.method_case()) {
    case v1::VaultAuthConfig::kToken:
      if (a.token().token_file().empty() == a.token().token_env().empty()) {
        errors.push_back({"auth.token", "set exactly one of token_file, token_env"});
      }
      break;
    case v1::VaultAuthConfig::kKubernetes:
      if (a.kubernetes().role().empty()) errors.push_back({"auth.kubernetes.role", "required"});
      break;
    case v1::VaultAuthConfig::kApprole:
      if (a.approle().role_id().empty()) errors.push_back({"auth.approle.role_id", "required"});
      if (a.approle().secret_id_file().empty()) {
        errors.push_back({"auth.approle.secret_id_file", "required"});
      }
      break;
    default:
      errors.push_back({"auth", "one method must be set (token, kubernetes, approle)"});
  }
  return errors;
}

class VaultSourceFactory final : public secrets::SourceFactory {
 public:
  absl::string_view type() const override { return "vault"; }
  absl::StatusOr<std::unique_ptr<secrets::SecretSource>> Create(
      const v1::SourceConfig& config, const secrets::SourceContext& context) override {
    const v1::VaultSourceConfig& v = config.vault();
    auto transport = context.MakeHttpClient(
        http::TlsOptions{v.ca_file(), v.client_cert_file(), v.client_key_file()});
    if (!transport.ok()) {
      return core::Annotate(transport.status(), absl::StrCat("source ", config.name()));
    }
    auto source = VaultSecretSource::Create(config.name(), v, std::move(*transport), context.clock,
                                            context.SleeperOrReal());
    if (!source.ok()) return source.status();
    return std::unique_ptr<secrets::SecretSource>(std::move(*source));
  }
  std::vector<core::FieldError> Validate(const v1::SourceConfig& config) const override {
    return ValidateVault(config.vault());
  }
};

}  // namespace

absl::Status VaultStatus(int http_status, const Struct& body, absl::string_view what) {
  std::string detail = ErrorsOf(body);
  std::string msg = absl::StrCat(what, ": HTTP ", http_status, detail.empty() ? "" : " ", detail);
  switch (http_status) {
    case 400:
      if (absl::StrContains(detail, "check-and-set")) {
        return core::WithReason(absl::AbortedError(msg), "cas_mismatch");
      }
      return core::WithReason(absl::InvalidArgumentError(msg), "bad_request");
    case 401:
    case 403:
      return core::WithReason(absl::PermissionDeniedError(msg), "permission_denied");
    case 404:
      return core::WithReason(absl::NotFoundError(msg), "not_found");
    case 307:  // a standby's redirect that could not be followed (see VaultClient::Send)
    case 412:
      return core::WithReason(absl::UnavailableError(msg), "standby");
    case 429:
      return core::WithReason(absl::UnavailableError(msg), "rate_limited");
    case 503:
      return core::WithReason(absl::UnavailableError(msg), "sealed");
    default:
      return core::WithReason(absl::UnavailableError(msg), "unavailable");
  }
}

VaultClient::VaultClient(v1::VaultSourceConfig config, std::unique_ptr<http::HttpClient> transport,
                         const core::Clock* clock, http::Sleeper* sleeper)
    : config_(std::move(config)),
      transport_(std::move(transport)),
      retrying_(transport_.get(),
                http::RetryPolicy{config_.max_attempts() > 0 ? config_.max_attempts() : 4,
                                  absl::Milliseconds(200), absl::Seconds(5), 2.0},
                sleeper),
      clock_(clock) {}

void VaultClient::InvalidateToken() {
  absl::MutexLock lock(&mu_);
  token_.reset();
}

absl::StatusOr<VaultResponse> VaultClient::Send(absl::string_view method, absl::string_view path,
                                                const std::string& body, const std::string& token) {
  http::HttpRequest req;
  req.method = std::string(method);
  req.url = absl::StrCat(config_.address(), "/v1/", path);
  req.body = body;
  req.timeout = config_.has_request_timeout() ? core::FromProtoDuration(config_.request_timeout())
                                              : absl::Seconds(10);
  req.headers.emplace_back("X-Vault-Request", "true");
  if (!token.empty()) req.headers.emplace_back("X-Vault-Token", token);
  if (!config_.namespace_().empty())
    req.headers.emplace_back("X-Vault-Namespace", config_.namespace_());
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  absl::StatusOr<http::HttpResponse> resp = retrying_.Send(req);
  if (resp.ok() && resp->status == 307) {
    // A standby that cannot forward redirects to the active node ("Client redirection" in Vault's
    // HA docs). Like Vault's own client, follow one redirect, and only over the same scheme: a
    // token meant for https is never sent in plaintext.
    const std::string location = resp->Header("location");
    const absl::string_view scheme =
        absl::StartsWith(config_.address(), "https://") ? "https://" : "http://";
    if (absl::StartsWith(location, scheme)) {
      req.url = location;
      resp = retrying_.Send(req);
    }
  }
  if (!resp.ok()) {
    absl::Status s = core::Annotate(resp.status(), absl::StrCat("vault ", method, " ", path));
    return core::WithReason(s, "unavailable");
  }
  VaultResponse out;
  out.status = resp->status;
  if (!resp->body.empty()) {
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(resp->body, &out.body, opts).ok()) {
      // Proxies answer HTML on 502/504: keep the status, drop the body.
      out.body.Clear();
    }
  }
  return out;
}

absl::StatusOr<VaultClient::Token> VaultClient::Login() {
  const v1::VaultAuthConfig& auth = config_.auth();
  std::string path;
  std::string body;
  std::string who;
  if (auth.has_kubernetes()) {
    CB_ASSIGN_OR_RETURN(std::string jwt,
                        ReadTrimmed(auth.kubernetes().jwt_file(), "service-account token"));
    path = absl::StrCat("auth/", auth.kubernetes().mount(), "/login");
    body = absl::StrCat("{\"role\":", core::JsonQuote(auth.kubernetes().role()),
                        ",\"jwt\":", core::JsonQuote(jwt), "}");
    who = absl::StrCat("kubernetes role ", auth.kubernetes().role());
  } else if (auth.has_approle()) {
    CB_ASSIGN_OR_RETURN(std::string secret_id,
                        ReadTrimmed(auth.approle().secret_id_file(), "AppRole secret_id"));
    path = absl::StrCat("auth/", auth.approle().mount(), "/login");
    body = absl::StrCat("{\"role_id\":", core::JsonQuote(auth.approle().role_id()),
                        ",\"secret_id\":", core::JsonQuote(secret_id), "}");
    who = "approle";
  } else {
    return LoadStaticToken();
  }
  CB_ASSIGN_OR_RETURN(VaultResponse r, Send("POST", path, body, ""));
  if (r.status != 200) {
    absl::Status s = VaultStatus(r.status, r.body, absl::StrCat("vault login (", who, ")"));
    if (s.code() == absl::StatusCode::kInvalidArgument ||
        s.code() == absl::StatusCode::kPermissionDenied) {
      s = core::WithReason(absl::PermissionDeniedError(s.message()), "auth_failed");
    }
    return s;
  }
  Token t;
  t.value = StringAt(r.body, {"auth", "client_token"});
  if (t.value.empty()) {
    return core::WithReason(absl::UnavailableError("vault login answered without a client_token"),
                            "auth_failed");
  }
  t.obtained_at = clock_->Now();
  t.ttl = absl::Seconds(NumberAt(r.body, {"auth", "lease_duration"}));
  t.renewable = BoolAt(r.body, {"auth", "renewable"});
  core::LogInfo(
      "vault login",
      {{"address", config_.address()}, {"method", who}, {"ttl", absl::FormatDuration(t.ttl)}});
  return t;
}

absl::StatusOr<VaultClient::Token> VaultClient::LoadStaticToken() {
  const v1::VaultTokenAuth& cfg = config_.auth().token();
  Token t;
  if (!cfg.token_file().empty()) {
    CB_ASSIGN_OR_RETURN(t.value, ReadTrimmed(cfg.token_file(), "Vault token file"));
  } else {
    const char* v = std::getenv(cfg.token_env().c_str());
    if (v == nullptr || *v == '\0') {
      return absl::FailedPreconditionError(absl::StrCat(cfg.token_env(), " is not set"));
    }
    t.value = std::string(absl::StripAsciiWhitespace(v));
  }
  // Learn whether the token expires and can be renewed.
  CB_ASSIGN_OR_RETURN(VaultResponse r, Send("GET", "auth/token/lookup-self", "", t.value));
  if (r.status != 200) return VaultStatus(r.status, r.body, "vault token lookup-self");
  t.obtained_at = clock_->Now();
  t.ttl = absl::Seconds(NumberAt(r.body, {"data", "ttl"}));
  t.renewable = BoolAt(r.body, {"data", "renewable"});
  return t;
}

absl::Status VaultClient::Renew(Token& token) {
  std::string body = absl::StrCat("{\"increment\":\"", absl::ToInt64Seconds(token.ttl), "s\"}");
  CB_ASSIGN_OR_RETURN(VaultResponse r, Send("POST", "auth/token/renew-self", body, token.value));
  if (r.status != 200) return VaultStatus(r.status, r.body, "vault token renew-self");
  // The granted duration may be shorter than asked (max TTL): always re-read it.
  token.obtained_at = clock_->Now();
  token.ttl = absl::Seconds(NumberAt(r.body, {"auth", "lease_duration"}));
  token.renewable = BoolAt(r.body, {"auth", "renewable"});
  core::LogDebug("vault token renewed", {{"ttl", absl::FormatDuration(token.ttl)}});
  return absl::OkStatus();
}

absl::StatusOr<std::string> VaultClient::CurrentToken() {
  const absl::Time now = clock_->Now();
  if (token_ && token_->ttl > absl::ZeroDuration()) {
    const absl::Time expires = token_->obtained_at + token_->ttl;
    if (token_->renewable && now >= token_->obtained_at + token_->ttl / 2 && now < expires) {
      absl::Status renewed = Renew(*token_);
      if (!renewed.ok()) {
        core::LogWarning("vault token renewal refused: logging in again",
                         {{"address", config_.address()}, {"error", renewed.ToString()}});
        token_.reset();
      }
    } else if (now >= expires) {
      token_.reset();
    }
  }
  if (!token_) {
    CB_ASSIGN_OR_RETURN(Token t, Login());
    token_ = std::move(t);
  }
  return token_->value;
}

absl::StatusOr<VaultResponse> VaultClient::Call(absl::string_view method, absl::string_view path,
                                                const std::string& body) {
  std::string token;
  {
    absl::MutexLock lock(&mu_);
    CB_ASSIGN_OR_RETURN(token, CurrentToken());
  }
  CB_ASSIGN_OR_RETURN(VaultResponse r, Send(method, path, body, token));
  if (r.status != 403) return r;
  // The token may have been revoked or expired early: get a fresh one and try once more.
  {
    absl::MutexLock lock(&mu_);
    if (token_ && token_->value == token) token_.reset();
    CB_ASSIGN_OR_RETURN(token, CurrentToken());
  }
  return Send(method, path, body, token);
}

VaultSecretSource::VaultSecretSource(std::string name, const v1::VaultSourceConfig& config,
                                     std::unique_ptr<http::HttpClient> transport,
                                     const core::Clock* clock, http::Sleeper* sleeper)
    : name_(std::move(name)),
      config_(config),
      clock_(clock),
      client_(config, std::move(transport), clock, sleeper) {}

absl::StatusOr<std::unique_ptr<VaultSecretSource>> VaultSecretSource::Create(
    std::string name, const v1::VaultSourceConfig& config,
    std::unique_ptr<http::HttpClient> transport, const core::Clock* clock, http::Sleeper* sleeper) {
  if (config.address().empty()) return absl::InvalidArgumentError("vault: address is required");
  if (config.auth().method_case() == v1::VaultAuthConfig::METHOD_NOT_SET) {
    return absl::InvalidArgumentError("vault: an auth method is required");
  }
  v1::VaultSourceConfig c = config;
  while (!c.address().empty() && c.address().back() == '/') c.mutable_address()->pop_back();
  if (c.mount().empty()) c.set_mount("secret");
  if (c.field().empty()) c.set_field("api_key");
  return std::unique_ptr<VaultSecretSource>(
      new VaultSecretSource(std::move(name), c, std::move(transport), clock, sleeper));
}

absl::StatusOr<std::string> VaultSecretSource::SecretPath(absl::string_view path) const {
  if (path.empty() || absl::StrContains(path, "..") || path[0] == '/' ||
      path.find_first_of("?#% ") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("vault source ", name_, ": bad secret path \"", path, "\""));
  }
  return config_.path_prefix().empty() ? std::string(path)
                                       : absl::StrCat(config_.path_prefix(), "/", path);
}

absl::Status VaultSecretSource::Error(const VaultResponse& r, absl::string_view what) const {
  return VaultStatus(r.status, r.body, absl::StrCat("vault source ", name_, ": ", what));
}

absl::StatusOr<std::vector<secrets::VersionInfo>> VaultSecretSource::ListVersions(
    absl::string_view path) {
  CB_ASSIGN_OR_RETURN(std::string secret, SecretPath(path));
  std::string api = absl::StrCat(config_.mount(), "/metadata/", secret);
  CB_ASSIGN_OR_RETURN(VaultResponse r, client_.Call("GET", api));
  if (r.status != 200) return Error(r, absl::StrCat("read metadata ", api));
  const Value* versions = Find(r.body, {"data", "versions"});
  // custom_metadata is key-level: a change of the scopes there changes every version's etag, so
  // the ring fetches them again.
  const std::string scopes = StringAt(r.body, {"data", "custom_metadata", kScopesField});
  std::vector<std::pair<int64_t, secrets::VersionInfo>> out;
  const absl::Time now = clock_->Now();
  if (versions != nullptr && versions->kind_case() == Value::kStructValue) {
    for (const auto& [id, meta] : versions->struct_value().fields()) {
      // Versions are positive integers; anything else is not a version this source could fetch.
      int64_t n = 0;
      if (!absl::SimpleAtoi(id, &n) || n <= 0 || absl::StrCat(n) != id ||
          meta.kind_case() != Value::kStructValue) {
        continue;
      }
      const Struct& m = meta.struct_value();
      if (BoolAt(m, {"destroyed"})) continue;
      // A deletion_time in the future (delete_version_after) does not hide the data yet.
      absl::Time deleted = ParseVaultTime(StringAt(m, {"deletion_time"}));
      if (deleted != absl::InfinitePast() && deleted <= now) continue;
      secrets::VersionInfo info;
      info.version_id = id;
      // KV v2 versions are immutable; their scopes are not.
      info.etag = scopes.empty() ? id : absl::StrCat(id, "|", scopes);
      info.created_at = ParseVaultTime(StringAt(m, {"created_time"}));
      out.emplace_back(n, std::move(info));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<secrets::VersionInfo> result;
  for (auto& [n, info] : out) result.push_back(std::move(info));
  return result;
}

absl::StatusOr<secrets::SecretVersion> VaultSecretSource::FetchVersion(
    absl::string_view path, absl::string_view version_id) {
  CB_ASSIGN_OR_RETURN(std::string secret, SecretPath(path));
  int64_t n = 0;
  if (!absl::SimpleAtoi(version_id, &n) || n <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("vault version must be a positive number, got \"", version_id, "\""));
  }
  std::string api = absl::StrCat(config_.mount(), "/data/", secret, "?version=", n);
  CB_ASSIGN_OR_RETURN(VaultResponse r, client_.Call("GET", api));
  if (r.status == 404 && Find(r.body, {"data", "metadata"}) != nullptr) {
    bool destroyed = BoolAt(r.body, {"data", "metadata", "destroyed"});
    return core::WithReason(
        absl::NotFoundError(absl::StrCat("vault source ", name_, ": ", secret, " version ", n,
                                         destroyed ? " is destroyed" : " is deleted")),
        "not_found");
  }
  if (r.status != 200) return Error(r, absl::StrCat("read ", secret, " version ", n));
  const Value* field = Find(r.body, {"data", "data", config_.field()});
  if (field == nullptr || field->kind_case() != Value::kStringValue) {
    return core::WithReason(
        absl::DataLossError(absl::StrCat("vault source ", name_, ": ", secret, " version ", n,
                                         " has no string field \"", config_.field(), "\"")),
        "missing_field");
  }
  secrets::SecretVersion v;
  const std::string scopes =
      StringAt(r.body, {"data", "metadata", "custom_metadata", kScopesField});
  absl::StatusOr<std::vector<std::string>> parsed = core::ParseScopes(scopes);
  if (!parsed.ok()) {
    return core::WithReason(
        absl::DataLossError(absl::StrCat("vault source ", name_, ": ", secret, " custom_metadata.",
                                         kScopesField, ": ", parsed.status().message())),
        "bad_scopes");
  }
  v.scopes = *std::move(parsed);
  v.info.version_id = absl::StrCat(n);
  v.info.etag = scopes.empty() ? v.info.version_id : absl::StrCat(v.info.version_id, "|", scopes);
  v.info.created_at = ParseVaultTime(StringAt(r.body, {"data", "metadata", "created_time"}));
  v.material = core::SecretBytes(field->string_value());
  return v;
}

absl::StatusOr<secrets::VersionInfo> VaultSecretSource::WriteVersion(
    absl::string_view path, const core::SecretBytes& material) {
  CB_ASSIGN_OR_RETURN(std::string secret, SecretPath(path));
  std::string meta_api = absl::StrCat(config_.mount(), "/metadata/", secret);
  CB_ASSIGN_OR_RETURN(VaultResponse meta, client_.Call("GET", meta_api));
  int64_t current = 0;
  if (meta.status == 200) {
    std::optional<int64_t> n = WholeNumberAt(meta.body, {"data", "current_version"});
    if (!n) {
      return core::WithReason(
          absl::DataLossError(
              absl::StrCat("vault source ", name_, ": ", meta_api, " has no current_version")),
          "malformed_answer");
    }
    current = *n;
  } else if (meta.status != 404) {
    return Error(meta, absl::StrCat("read metadata ", meta_api));
  }
  std::string body =
      absl::StrCat("{\"options\":{\"cas\":", current, "},\"data\":{",
                   core::JsonQuote(config_.field()), ":", core::JsonQuote(material.reveal()), "}}");
  std::string api = absl::StrCat(config_.mount(), "/data/", secret);
  CB_ASSIGN_OR_RETURN(VaultResponse r, client_.Call("POST", api, body));
  if (r.status != 200 && r.status != 204) return Error(r, absl::StrCat("write ", secret));
  std::optional<int64_t> written = WholeNumberAt(r.body, {"data", "version"});
  if (!written || *written <= 0) {
    return core::WithReason(
        absl::DataLossError(absl::StrCat("vault source ", name_, ": write ", secret,
                                         ": the answer has no version")),
        "malformed_answer");
  }
  secrets::VersionInfo info;
  info.version_id = absl::StrCat(*written);
  info.etag = info.version_id;
  info.created_at = ParseVaultTime(StringAt(r.body, {"data", "created_time"}));
  return info;
}

std::unique_ptr<secrets::SourceFactory> MakeVaultSourceFactory() {
  return std::make_unique<VaultSourceFactory>();
}

}  // namespace credbroker::backends::vault
