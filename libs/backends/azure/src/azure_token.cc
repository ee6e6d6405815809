#include "credbroker/backends/azure/azure_token.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::backends::azure {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kAssertionType[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// Form and query encoding: every byte but RFC 3986's unreserved ones as %XX.
std::string Encode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(b) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    }
  }
  return out;
}

std::string StringField(const Struct& s, absl::string_view key) {
  auto it = s.fields().find(std::string(key));
  return it != s.fields().end() && it->second.kind_case() == Value::kStringValue
             ? it->second.string_value()
             : "";
}

// A number that IMDS sends as a string and Entra as a number.
std::optional<int64_t> NumberField(const Struct& s, absl::string_view key) {
  auto it = s.fields().find(std::string(key));
  if (it == s.fields().end()) return std::nullopt;
  if (it->second.kind_case() == Value::kNumberValue && std::isfinite(it->second.number_value())) {
    return static_cast<int64_t>(it->second.number_value());
  }
  int64_t v = 0;
  if (it->second.kind_case() == Value::kStringValue &&
      absl::SimpleAtoi(it->second.string_value(), &v)) {
    return v;
  }
  return std::nullopt;
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return core::WithReason(
        absl::FailedPreconditionError(absl::StrCat("cannot read the federated token file ", path,
                                                   ": ", std::strerror(errno))),
        "not_configured");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(ss.str()));
}

// Entra's or IMDS's answer: a token, or the error named by `error` and the first line of
// `error_description` (AADSTS code and text; Trace/Correlation ids stay out).
absl::StatusOr<std::shared_ptr<const AzureToken>> ParseTokenAnswer(
    const absl::StatusOr<http::HttpResponse>& resp, absl::string_view what, absl::Time now) {
  if (!resp.ok()) {
    return core::WithReason(core::Annotate(resp.status(), what), "unavailable");
  }
  Struct body;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  const bool parsed = google::protobuf::util::JsonStringToMessage(resp->body, &body, opts).ok();
  if (resp->status != 200) {
    std::string description = StringField(body, "error_description");
    if (size_t eol = description.find_first_of("\r\n"); eol != std::string::npos) {
      description.resize(eol);
    }
    if (description.size() > 300) description.resize(300);
    const std::string error = StringField(body, "error");
    const std::string msg =
        absl::StrCat(what, ": HTTP ", resp->status, error.empty() ? "" : " ", error.substr(0, 100),
                     description.empty() ? "" : ": ", description);
    if (resp->status >= 500 || resp->status == 429) {
      return core::WithReason(absl::UnavailableError(msg), "unavailable");
    }
    return core::WithReason(absl::PermissionDeniedError(msg), "auth_failed");
  }
  std::string token = StringField(body, "access_token");
  if (!parsed || token.empty()) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answer has no access_token")),
                            "malformed_answer");
  }
  auto out = std::make_shared<AzureToken>();
  out->access_token = core::SecretBytes(token);
  std::fill(token.begin(), token.end(), '\0');
  if (auto on = NumberField(body, "expires_on"); on.has_value()) {
    out->expires_at = absl::FromUnixSeconds(*on);
  } else if (auto in = NumberField(body, "expires_in"); in.has_value()) {
    out->expires_at = now + absl::Seconds(*in);
  } else {
    out->expires_at = now + absl::Minutes(5);  // unknown lifetime: refresh soon
  }
  return std::shared_ptr<const AzureToken>(std::move(out));
}

class WorkloadIdentityTokenSource final : public http::TokenSource<AzureToken> {
 public:
  WorkloadIdentityTokenSource(WorkloadIdentityOptions options, http::HttpClient* transport,
                              const core::Clock* clock)
      : options_(std::move(options)), transport_(transport), clock_(clock) {}

  absl::StatusOr<std::shared_ptr<const AzureToken>> Fetch() override {
    const std::string what = "azure workload identity token";
    CB_ASSIGN_OR_RETURN(std::string assertion, ReadTokenFile(options_.token_file));
    std::string host = options_.authority_host;
    if (!absl::EndsWith(host, "/")) host += "/";
    http::HttpRequest req;
    req.method = "POST";
    req.url = absl::StrCat(host, Encode(options_.tenant_id), "/oauth2/v2.0/token");
    req.timeout = options_.timeout;
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.body = absl::StrCat("client_id=", Encode(options_.client_id),
                            "&scope=", Encode(kVaultScope), "&grant_type=client_credentials",
                            "&client_assertion_type=", Encode(kAssertionType),
                            "&client_assertion=", Encode(assertion));
    std::fill(assertion.begin(), assertion.end(), '\0');
    const absl::Time now = clock_->Now();
    auto resp = transport_->Send(req);
    std::fill(req.body.begin(), req.body.end(), '\0');
    return ParseTokenAnswer(resp, what, now);
  }

 private:
  const WorkloadIdentityOptions options_;
  http::HttpClient* const transport_;
  const core::Clock* const clock_;
};

class ManagedIdentityTokenSource final : public http::TokenSource<AzureToken> {
 public:
  ManagedIdentityTokenSource(ManagedIdentityOptions options, http::HttpClient* transport,
                             const core::Clock* clock)
      : options_(std::move(options)), transport_(transport), clock_(clock) {}

  absl::StatusOr<std::shared_ptr<const AzureToken>> Fetch() override {
    http::HttpRequest req;
    req.url = absl::StrCat(options_.endpoint, absl::StrContains(options_.endpoint, "?") ? "&" : "?",
                           "api-version=2018-02-01&resource=", Encode(kVaultResource));
    if (!options_.client_id.empty()) {
      absl::StrAppend(&req.url, "&client_id=", Encode(options_.client_id));
    }
    req.timeout = options_.timeout;
    req.headers.emplace_back("Metadata", "true");
    const absl::Time now = clock_->Now();
    return ParseTokenAnswer(transport_->Send(req), "azure managed identity token", now);
  }

 private:
  const ManagedIdentityOptions options_;
  http::HttpClient* const transport_;
  const core::Clock* const clock_;
};

std::string FirstSet(const std::string& configured, const secrets::SourceContext& ctx,
                     absl::string_view variable) {
  if (!configured.empty()) return configured;
  return ctx.Env(variable).value_or("");
}

}  // namespace

absl::StatusOr<std::unique_ptr<http::TokenSource<AzureToken>>> MakeWorkloadIdentityTokenSource(
    WorkloadIdentityOptions options, http::HttpClient* transport, const core::Clock* clock) {
  for (const auto& [value, name] :
       {std::pair<const std::string*, const char*>{&options.tenant_id,
                                                   "tenant_id (AZURE_TENANT_ID)"},
        {&options.client_id, "client_id (AZURE_CLIENT_ID)"},
        {&options.token_file, "token_file (AZURE_FEDERATED_TOKEN_FILE)"}}) {
    if (value->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("azure workload identity: no ", name));
    }
  }
  if (options.authority_host.empty()) options.authority_host = kDefaultAuthorityHost;
  return std::unique_ptr<http::TokenSource<AzureToken>>(
      new WorkloadIdentityTokenSource(std::move(options), transport, clock));
}

std::unique_ptr<http::TokenSource<AzureToken>> MakeManagedIdentityTokenSource(
    ManagedIdentityOptions options, http::HttpClient* transport, const core::Clock* clock) {
  if (options.endpoint.empty()) options.endpoint = kDefaultImdsEndpoint;
  return std::make_unique<ManagedIdentityTokenSource>(std::move(options), transport, clock);
}

absl::StatusOr<std::unique_ptr<http::CachingTokenSource<AzureToken>>> AzureTokenFromConfig(
    const v1::AzureSourceConfig& config, const secrets::SourceContext& ctx,
    http::HttpClient* transport, const std::string& source_name) {
  const absl::Duration timeout = config.has_request_timeout()
                                     ? core::FromProtoDuration(config.request_timeout())
                                     : absl::Seconds(10);
  std::unique_ptr<http::TokenSource<AzureToken>> inner;
  std::string kind;
  if (config.auth().has_workload_identity()) {
    const v1::AzureWorkloadIdentity& w = config.auth().workload_identity();
    WorkloadIdentityOptions o;
    o.tenant_id = FirstSet(w.tenant_id(), ctx, "AZURE_TENANT_ID");
    o.client_id = FirstSet(w.client_id(), ctx, "AZURE_CLIENT_ID");
    o.token_file = FirstSet(w.token_file(), ctx, "AZURE_FEDERATED_TOKEN_FILE");
    o.authority_host = FirstSet(w.authority_host(), ctx, "AZURE_AUTHORITY_HOST");
    o.timeout = timeout;
    CB_ASSIGN_OR_RETURN(inner, MakeWorkloadIdentityTokenSource(std::move(o), transport, ctx.clock));
    kind = "workload identity";
  } else if (config.auth().has_managed_identity()) {
    const v1::AzureManagedIdentity& m = config.auth().managed_identity();
    ManagedIdentityOptions o;
    o.client_id = m.client_id();
    o.endpoint = m.endpoint();
    o.timeout = timeout;
    inner = MakeManagedIdentityTokenSource(std::move(o), transport, ctx.clock);
    kind = "managed identity";
  } else {
    return absl::InvalidArgumentError(
        "azure: no auth method (workload_identity or "
        "managed_identity)");
  }
  http::CachingTokenSourceOptions options;
  options.name = absl::StrCat("azure/", source_name, " ", kind);
  if (ctx.stats != nullptr) {
    secrets::SourceStats* stats = ctx.stats;
    options.on_fetch = [stats, source_name](absl::string_view result) {
      stats->TokenRefresh(source_name, result);
    };
  }
  return std::make_unique<http::CachingTokenSource<AzureToken>>(std::move(inner), ctx.clock,
                                                                std::move(options));
}

}  // namespace credbroker::backends::azure
