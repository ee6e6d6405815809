#include "credbroker/backends/gcp/gcp_source.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::backends::gcp {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::string_view kDefaultEndpoint = "https://secretmanager.googleapis.com";
constexpr absl::string_view kDefaultStsEndpoint = "https://sts.googleapis.com";
constexpr absl::string_view kDefaultMetadataHost = "metadata.google.internal";

const Value* Field(const Struct& s, absl::string_view key) {
  auto it = s.fields().find(std::string(key));
  return it == s.fields().end() ? nullptr : &it->second;
}

std::string StringField(const Struct& s, absl::string_view key) {
  const Value* v = Field(s, key);
  return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : "";
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

// Query-component encoding: every byte but RFC 3986's unreserved ones as %XX.
std::string QueryEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

// The Google API error model: {"error":{"code","message","status"}} (protocols.md §3). Keyed on
// the HTTP status and `status`, never on the message text.
absl::Status GcpStatus(int http_status, const Struct& body, absl::string_view what) {
  std::string status;
  std::string message;
  if (const Value* e = Field(body, "error");
      e != nullptr && e->kind_case() == Value::kStructValue) {
    status = StringField(e->struct_value(), "status");
    message = StringField(e->struct_value(), "message").substr(0, 300);
  }
  const std::string msg = absl::StrCat(what, ": HTTP ", http_status, status.empty() ? "" : " ",
                                       status, message.empty() ? "" : ": ", message);
  switch (http_status) {
    case 404:
      return core::WithReason(absl::NotFoundError(msg), "not_found");
    case 403:
      return core::WithReason(absl::PermissionDeniedError(msg), "permission_denied");
    case 401:
      return core::WithReason(absl::PermissionDeniedError(msg), "auth_failed");
    case 429:
      return core::WithReason(absl::UnavailableError(msg), "throttled");
    case 400:
    case 409:
    case 412:
      if (status == "FAILED_PRECONDITION") {
        return core::WithReason(absl::FailedPreconditionError(msg), "failed_precondition");
      }
      return core::WithReason(absl::InvalidArgumentError(msg), "bad_request");
    default:
      return core::WithReason(absl::UnavailableError(msg), "unavailable");
  }
}

// The trailing number of a SecretVersion name ("projects/1/secrets/s/versions/4" → "4").
std::string VersionIdOf(absl::string_view name) {
  const size_t slash = name.rfind('/');
  absl::string_view id = slash == absl::string_view::npos ? name : name.substr(slash + 1);
  uint64_t n = 0;
  return absl::SimpleAtoi(id, &n) ? std::string(id) : "";
}

absl::Time ParseRfc3339(const std::string& text) {
  absl::Time t;
  std::string err;
  if (text.empty() || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return absl::InfinitePast();
  }
  return t;
}

bool IsUrl(const std::string& s) {
  return absl::StartsWith(s, "https://") || absl::StartsWith(s, "http://");
}

// A project id (6 to 30 lowercase letters, digits and hyphens, starting with a letter, not ending
// with a hyphen) or a project number.
bool IsProject(absl::string_view p) {
  if (p.empty()) return false;
  if (std::all_of(p.begin(), p.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return p.size() <= 20;
  }
  if (p.size() < 6 || p.size() > 30 || !absl::ascii_islower(p.front()) || p.back() == '-') {
    return false;
  }
  return std::all_of(p.begin(), p.end(), [](char c) {
    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-';
  });
}

// //iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<p>
bool IsWifAudience(absl::string_view a) {
  absl::string_view rest = a;
  if (!absl::ConsumePrefix(&rest, "//iam.googleapis.com/")) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(rest, '/');
  if (parts.size() != 8 || parts[0] != "projects" || parts[2] != "locations" ||
      parts[4] != "workloadIdentityPools" || parts[6] != "providers") {
    return false;
  }
  uint64_t number = 0;
  return absl::SimpleAtoi(parts[1], &number) && !parts[3].empty() && !parts[5].empty() &&
         !parts[7].empty();
}

std::vector<core::FieldError> ValidateGcp(const v1::GcpSourceConfig& g) {
  std::vector<core::FieldError> errors;
  if (g.project().empty()) {
    errors.push_back({"project", "is required"});
  } else if (!IsProject(g.project())) {
    errors.push_back({"project", "must be a project id such as \"my-project\" or a number"});
  }
  if (!g.endpoint().empty() && !IsUrl(g.endpoint())) {
    errors.push_back({"endpoint", "must be an https:// URL"});
  }
  switch (g.auth().method_case()) {
    case v1::GcpAuthConfig::kMetadataServer: {
      const std::string& host = g.auth().metadata_server().host();
      if (absl::StrContains(host, "/")) {
        errors.push_back({"auth.metadata_server.host", "must be host[:port], not a URL"});
      }
      break;
    }
    case v1::GcpAuthConfig::kWorkloadIdentityFederation: {
      const auto& wif = g.auth().workload_identity_federation();
      if (!IsWifAudience(wif.audience())) {
        errors.push_back({"auth.workload_identity_federation.audience",
                          "must be //iam.googleapis.com/projects/<number>/locations/global/"
                          "workloadIdentityPools/<pool>/providers/<provider>"});
      }
      if (wif.token_file().empty()) {
        errors.push_back({"auth.workload_identity_federation.token_file", "is required"});
      }
      if (!wif.sts_endpoint().empty() && !IsUrl(wif.sts_endpoint())) {
        errors.push_back(
            {"auth.workload_identity_federation.sts_endpoint", "must be an https:// URL"});
      }
      break;
    }
    case v1::GcpAuthConfig::METHOD_NOT_SET:
      errors.push_back({"auth", "set one of metadata_server or workload_identity_federation"});
      break;
  }
  if (g.max_attempts() < 0 || g.max_attempts() > 10) {
    errors.push_back({"max_attempts", "must be between 1 and 10"});
  }
  if (g.has_request_timeout() &&
      core::FromProtoDuration(g.request_timeout()) <= absl::ZeroDuration()) {
    errors.push_back({"request_timeout", "must be positive"});
  }
  return errors;
}

class GcpSourceFactory final : public secrets::SourceFactory {
 public:
  absl::string_view type() const override { return "gcp"; }
  std::vector<core::FieldError> Validate(const v1::SourceConfig& config) const override {
    return ValidateGcp(config.gcp());
  }
  absl::StatusOr<std::unique_ptr<secrets::SecretSource>> Create(
      const v1::SourceConfig& config, const secrets::SourceContext& context) override {
    const v1::GcpSourceConfig& gcp = config.gcp();
    const std::string what = absl::StrCat("source ", config.name());
    if (std::vector<core::FieldError> errors = ValidateGcp(gcp); !errors.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": gcp.", errors.front().field, " ", errors.front().message));
    }
    GcpSourceDeps deps;
    auto transport = context.MakeHttpClient(http::TlsOptions{gcp.ca_file(), "", ""});
    if (!transport.ok()) return core::Annotate(transport.status(), what);
    deps.transport = *std::move(transport);
    const core::Clock* clock = context.clock;
    std::unique_ptr<http::TokenSource<GcpToken>> inner;
    if (gcp.auth().has_metadata_server()) {
      std::string host = gcp.auth().metadata_server().host();
      if (host.empty()) host = context.Env("GCE_METADATA_HOST").value_or("");
      if (host.empty()) host = std::string(kDefaultMetadataHost);
      auto md = context.MakeHttpClient(http::TlsOptions{});
      if (!md.ok()) return core::Annotate(md.status(), what);
      inner = MakeMetadataTokenSource(*std::move(md), std::move(host), clock);
    } else {
      const auto& wif = gcp.auth().workload_identity_federation();
      auto sts = context.MakeHttpClient(http::TlsOptions{gcp.ca_file(), "", ""});
      if (!sts.ok()) return core::Annotate(sts.status(), what);
      inner = MakeStsTokenSource(
          *std::move(sts),
          wif.sts_endpoint().empty() ? std::string(kDefaultStsEndpoint) : wif.sts_endpoint(),
          wif.audience(), wif.token_file(), clock);
    }
    http::CachingTokenSourceOptions options;
    options.name = absl::StrCat("gcp/", config.name(), " access token");
    if (secrets::SourceStats* stats = context.stats; stats != nullptr) {
      options.on_fetch = [stats, source = config.name()](absl::string_view result) {
        stats->TokenRefresh(source, result);
      };
    }
    deps.token = std::make_unique<http::CachingTokenSource<GcpToken>>(std::move(inner), clock,
                                                                      std::move(options));
    deps.clock = clock;
    deps.sleeper = context.SleeperOrReal();
    deps.stats = context.stats;
    auto source = GcpSecretSource::Create(config.name(), gcp, std::move(deps));
    if (!source.ok()) return source.status();
    return std::unique_ptr<secrets::SecretSource>(*std::move(source));
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<GcpSecretSource>> GcpSecretSource::Create(std::string name,
                                                                         v1::GcpSourceConfig config,
                                                                         GcpSourceDeps deps) {
  if (config.project().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("source ", name, ": gcp.project is required"));
  }
  if (deps.transport == nullptr || deps.token == nullptr || deps.clock == nullptr) {
    return absl::InvalidArgumentError("GcpSecretSource needs a transport, a token and a clock");
  }
  if (deps.sleeper == nullptr) deps.sleeper = http::Sleeper::Real();
  return std::unique_ptr<GcpSecretSource>(
      new GcpSecretSource(std::move(name), std::move(config), std::move(deps)));
}

GcpSecretSource::GcpSecretSource(std::string name, v1::GcpSourceConfig config, GcpSourceDeps deps)
    : name_(std::move(name)),
      config_(std::move(config)),
      deps_(std::move(deps)),
      endpoint_(config_.endpoint().empty()
                    ? std::string(kDefaultEndpoint)
                    : std::string(absl::StripSuffix(config_.endpoint(), "/"))) {
  if (!deps_.jitter) {
    deps_.jitter = [] {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    };
  }
}

std::string GcpSecretSource::SecretPath(absl::string_view path) const {
  return absl::StrCat("/v1/projects/", config_.project(), "/secrets/", config_.name_prefix(), path);
}

absl::StatusOr<Struct> GcpSecretSource::Call(absl::string_view method, absl::string_view url_path,
                                             const std::string& body) {
  // The path names the secret, never material: fine in messages.
  const std::string what = absl::StrCat("gcp ", method, " ", url_path);
  const int attempts = config_.max_attempts() > 0 ? config_.max_attempts() : 4;
  bool refreshed_token = false;
  absl::Duration backoff_cap = absl::Milliseconds(200);
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<std::shared_ptr<const GcpToken>> token = deps_.token->Fetch();
    if (!token.ok()) {
      return core::WithReason(core::Annotate(token.status(), absl::StrCat(what, ": access token")),
                              "auth_failed");
    }
    http::HttpRequest req;
    req.method = std::string(method);
    req.url = absl::StrCat(endpoint_, url_path);
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
    if (!resp.ok()) {
      failure = core::WithReason(core::Annotate(resp.status(), what), "unavailable");
      retryable = absl::IsUnavailable(resp.status()) || absl::IsDeadlineExceeded(resp.status());
    } else {
      if (resp->status == 200) {
        absl::StatusOr<Struct> parsed = ParseJson(resp->body, what);
        std::fill(resp->body.begin(), resp->body.end(), '\0');
        return parsed;
      }
      absl::StatusOr<Struct> parsed = ParseJson(resp->body, what);
      failure = GcpStatus(resp->status, parsed.ok() ? *parsed : Struct(), what);
      if (resp->status == 401 && !refreshed_token) {
        // Expired or revoked early: drop it, fetch a fresh one and try once more at once.
        refreshed_token = true;
        deps_.token->Invalidate(token->get());
        --attempt;
        continue;
      }
      if (resp->status == 429 && deps_.stats != nullptr) deps_.stats->Throttled(name_);
      retryable = resp->status == 429 || resp->status >= 500;
    }
    if (!retryable || attempt >= attempts) return failure;
    // Full jitter over an exponentially growing cap.
    deps_.sleeper->Sleep(backoff_cap * deps_.jitter());
    backoff_cap = std::min(backoff_cap * 2, absl::Seconds(5));
  }
}

absl::StatusOr<std::vector<secrets::VersionInfo>> GcpSecretSource::ListVersions(
    absl::string_view path) {
  std::vector<secrets::VersionInfo> out;
  std::string next;
  const std::string base = absl::StrCat(SecretPath(path), "/versions?pageSize=100");
  for (int page = 0; page < 100; ++page) {
    std::string url = base;
    if (!next.empty()) absl::StrAppend(&url, "&pageToken=", QueryEncode(next));
    CB_ASSIGN_OR_RETURN(Struct answer, Call("GET", url, ""));
    if (const Value* versions = Field(answer, "versions");
        versions != nullptr && versions->kind_case() == Value::kListValue) {
      for (const Value& v : versions->list_value().values()) {
        if (v.kind_case() != Value::kStructValue) continue;
        const Struct& s = v.struct_value();
        secrets::VersionInfo info;
        info.version_id = VersionIdOf(StringField(s, "name"));
        if (info.version_id.empty()) continue;
        info.etag = StringField(s, "etag");
        if (info.etag.empty()) info.etag = info.version_id;  // versions are immutable
        const std::string state = StringField(s, "state");
        info.labels.push_back(state);
        info.enabled = state == "ENABLED";
        info.created_at = ParseRfc3339(StringField(s, "createTime"));
        out.push_back(std::move(info));
      }
    } else if (Field(answer, "versions") != nullptr) {
      return core::WithReason(absl::DataLossError("gcp list versions: `versions` is not a list"),
                              "malformed_answer");
    }
    next = StringField(answer, "nextPageToken");
    if (next.empty()) break;
  }
  // Oldest first (the API answers newest first); ties by version number.
  std::sort(out.begin(), out.end(),
            [](const secrets::VersionInfo& a, const secrets::VersionInfo& b) {
              if (a.created_at != b.created_at) return a.created_at < b.created_at;
              uint64_t x = 0;
              uint64_t y = 0;
              (void)absl::SimpleAtoi(a.version_id, &x);
              (void)absl::SimpleAtoi(b.version_id, &y);
              return x < y;
            });
  return out;
}

absl::StatusOr<secrets::SecretVersion> GcpSecretSource::FetchVersion(absl::string_view path,
                                                                     absl::string_view version_id) {
  CB_ASSIGN_OR_RETURN(
      Struct answer,
      Call("GET", absl::StrCat(SecretPath(path), "/versions/", version_id, ":access"), ""));
  const std::string what =
      absl::StrCat("gcp secret ", config_.name_prefix(), path, " version ", version_id);
  secrets::SecretVersion out;
  out.info.version_id = VersionIdOf(StringField(answer, "name"));
  if (out.info.version_id != version_id) {
    return core::WithReason(
        absl::DataLossError(absl::StrCat(what, ": the answer names another version")),
        "malformed_answer");
  }
  out.info.etag = out.info.version_id;
  const Value* payload = Field(answer, "payload");
  if (payload == nullptr || payload->kind_case() != Value::kStructValue) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answer has no payload")),
                            "malformed_answer");
  }
  std::string data;
  if (!absl::Base64Unescape(StringField(payload->struct_value(), "data"), &data)) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": payload is not base64")),
                            "malformed_answer");
  }
  // dataCrc32c is an int64: a JSON string (proto3 JSON), though a number is accepted too.
  const Value* crc = Field(payload->struct_value(), "dataCrc32c");
  int64_t expected = -1;
  bool have_crc = false;
  if (crc != nullptr && crc->kind_case() == Value::kStringValue) {
    have_crc = absl::SimpleAtoi(crc->string_value(), &expected);
  } else if (crc != nullptr && crc->kind_case() == Value::kNumberValue &&
             std::isfinite(crc->number_value())) {
    have_crc = true;
    expected = static_cast<int64_t>(crc->number_value());
  }
  const bool matches = have_crc && expected == static_cast<int64_t>(Crc32c(data));
  if (!matches) {
    std::fill(data.begin(), data.end(), '\0');
    return core::WithReason(
        absl::DataLossError(absl::StrCat(what, have_crc ? ": payload does not match its dataCrc32c"
                                                        : ": payload has no dataCrc32c")),
        "checksum_mismatch");
  }
  out.material = core::SecretBytes(data);
  std::fill(data.begin(), data.end(), '\0');
  return out;
}

absl::StatusOr<secrets::VersionInfo> GcpSecretSource::WriteVersion(
    absl::string_view path, const core::SecretBytes& material) {
  std::string encoded = absl::Base64Escape(material.reveal());
  std::string body = absl::StrCat(R"({"payload":{"data":")", encoded, R"(","dataCrc32c":")",
                                  Crc32c(material.reveal()), R"("}})");
  std::fill(encoded.begin(), encoded.end(), '\0');
  absl::StatusOr<Struct> answer = Call("POST", absl::StrCat(SecretPath(path), ":addVersion"), body);
  std::fill(body.begin(), body.end(), '\0');
  if (!answer.ok()) return answer.status();
  secrets::VersionInfo info;
  info.version_id = VersionIdOf(StringField(*answer, "name"));
  if (info.version_id.empty()) {
    return core::WithReason(absl::DataLossError("gcp addVersion: the answer names no version"),
                            "malformed_answer");
  }
  info.etag = StringField(*answer, "etag");
  if (info.etag.empty()) info.etag = info.version_id;
  const std::string state = StringField(*answer, "state");
  info.labels.push_back(state);
  info.enabled = state.empty() || state == "ENABLED";
  info.created_at = ParseRfc3339(StringField(*answer, "createTime"));
  return info;
}

std::unique_ptr<secrets::SourceFactory> MakeGcpSourceFactory() {
  return std::make_unique<GcpSourceFactory>();
}

}  // namespace credbroker::backends::gcp
