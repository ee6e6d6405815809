#include "credbroker/backends/aws/aws_credentials.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::backends::aws {
namespace {

// Environment variables, as the AWS SDKs name them (protocols.md 2.5).
constexpr char kAccessKeyId[] = "AWS_ACCESS_KEY_ID";
constexpr char kSecretAccessKey[] = "AWS_SECRET_ACCESS_KEY";
constexpr char kSessionToken[] = "AWS_SESSION_TOKEN";
constexpr char kRoleArn[] = "AWS_ROLE_ARN";
constexpr char kWebIdentityTokenFile[] = "AWS_WEB_IDENTITY_TOKEN_FILE";
constexpr char kRoleSessionName[] = "AWS_ROLE_SESSION_NAME";
constexpr char kRegion[] = "AWS_REGION";
constexpr char kDefaultRegion[] = "AWS_DEFAULT_REGION";
constexpr char kContainerFullUri[] = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
constexpr char kContainerTokenFile[] = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
constexpr char kContainerToken[] = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
constexpr char kHostname[] = "HOSTNAME";

// Credentials answers are a few hundred bytes; a larger one is not what we asked for.
constexpr size_t kMaxAnswerBytes = size_t{64} * 1024;
// How much of an error text from STS or the agent goes into a status message.
constexpr size_t kMaxDetail = 300;

absl::Status Reason(absl::Status s, absl::string_view reason) {
  return core::WithReason(std::move(s), reason);
}

// A variable's value; unset and empty are the same (as for the SDKs).
std::optional<std::string> EnvValue(const secrets::SourceContext& ctx, absl::string_view name) {
  std::optional<std::string> v = ctx.Env(name);
  if (!v.has_value() || v->empty()) return std::nullopt;
  return v;
}

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view variable) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Reason(absl::FailedPreconditionError(absl::StrCat("cannot read ", variable, " file ",
                                                             path, ": ", std::strerror(errno))),
                  "not_configured");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Form encoding for the query protocol: every byte but RFC 3986's unreserved ones as %XX.
std::string FormEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    }
  }
  return out;
}

// Text from a server for a status message: one line, bounded, without `redact`.
std::string Detail(absl::string_view text, absl::string_view redact) {
  std::string out(absl::StripAsciiWhitespace(text));
  if (!redact.empty()) absl::StrReplaceAll({{redact, "<redacted>"}}, &out);
  const size_t eol = out.find_first_of("\r\n");
  if (eol != std::string::npos) out.resize(eol);
  if (out.size() > kMaxDetail) out = absl::StrCat(out.substr(0, kMaxDetail), "...");
  return out;
}

// A transport failure (http_client.h): the code is kept, the reason says whether retrying helps.
absl::Status TransportError(const absl::Status& s, absl::string_view context) {
  const bool transient =
      s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded;
  return Reason(core::Annotate(s, context), transient ? "unavailable" : "transport");
}

bool ParseAwsTime(absl::string_view text, absl::Time* out) {
  std::string err;
  return absl::ParseTime(absl::RFC3339_full, text, out, &err);
}

// --- The strict XML extractor ---------------------------------------------------------------

absl::Status Malformed(absl::string_view what) {
  return Reason(absl::DataLossError(absl::StrCat("malformed STS answer: ", what)),
                "malformed_answer");
}

// The raw content of the one <name>...</name> in `xml` (children included). An element with
// attributes, self-closing, absent or repeated is refused: STS writes none of those here.
absl::StatusOr<absl::string_view> XmlElement(absl::string_view xml, absl::string_view name) {
  const std::string open = absl::StrCat("<", name);
  std::optional<size_t> start;
  for (size_t pos = xml.find(open); pos != absl::string_view::npos; pos = xml.find(open, pos + 1)) {
    const size_t after = pos + open.size();
    if (after >= xml.size()) break;
    const char c = xml[after];
    if (c == '>') {
      if (start.has_value()) return Malformed(absl::StrCat("more than one <", name, ">"));
      start = after + 1;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/') {
      return Malformed(absl::StrCat("<", name, "> with attributes or self-closing"));
    }  // else a longer name that starts the same way
  }
  if (!start.has_value()) return Malformed(absl::StrCat("no <", name, ">"));
  const size_t end = xml.find(absl::StrCat("</", name, ">"), *start);
  if (end == absl::string_view::npos) return Malformed(absl::StrCat("unclosed <", name, ">"));
  return xml.substr(*start, end - *start);
}

// Character data with the five predefined entities replaced; any other '&' is refused.
absl::StatusOr<std::string> XmlUnescape(absl::string_view text, absl::string_view name) {
  static constexpr std::pair<absl::string_view, char> kEntities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '&') {
      out.push_back(text[i++]);
      continue;
    }
    bool known = false;
    for (const auto& [entity, c] : kEntities) {
      if (absl::StartsWith(text.substr(i), entity)) {
        out.push_back(c);
        i += entity.size();
        known = true;
        break;
      }
    }
    if (!known) return Malformed(absl::StrCat("unsupported entity in <", name, ">"));
  }
  return out;
}

// The unescaped text of the one <name> in `xml`, which must hold no markup.
absl::StatusOr<std::string> XmlText(absl::string_view xml, absl::string_view name) {
  CB_ASSIGN_OR_RETURN(absl::string_view raw, XmlElement(xml, name));
  if (raw.find('<') != absl::string_view::npos) {
    return Malformed(absl::StrCat("<", name, "> holds markup"));
  }
  return XmlUnescape(raw, name);
}

// --- Providers -------------------------------------------------------------------------------

// Keys from the environment, read once: they do not change while the process runs.
class EnvironmentKeys final : public AwsCredentialSource {
 public:
  explicit EnvironmentKeys(std::shared_ptr<const AwsCredentials> credentials)
      : credentials_(std::move(credentials)) {}
  absl::StatusOr<std::shared_ptr<const AwsCredentials>> Fetch() override { return credentials_; }

 private:
  const std::shared_ptr<const AwsCredentials> credentials_;
};

// IRSA: the projected service-account token exchanged with STS (protocols.md 2.5).
class WebIdentity final : public AwsCredentialSource {
 public:
  WebIdentity(std::string role_arn, std::string token_file, std::string session_name,
              std::string sts_url, std::shared_ptr<http::HttpClient> http,
              secrets::SourceStats* stats, std::string source_name)
      : role_arn_(std::move(role_arn)),
        token_file_(std::move(token_file)),
        session_name_(std::move(session_name)),
        sts_url_(std::move(sts_url)),
        http_(std::move(http)),
        stats_(stats),
        source_name_(std::move(source_name)) {}

  absl::StatusOr<std::shared_ptr<const AwsCredentials>> Fetch() override {
    const std::string context =
        absl::StrCat("aws sts AssumeRoleWithWebIdentity (role ", role_arn_, ")");
    CB_ASSIGN_OR_RETURN(std::string read, ReadFile(token_file_, kWebIdentityTokenFile));
    const core::SecretBytes file(std::move(read));
    const core::SecretBytes token{std::string(absl::StripAsciiWhitespace(file.reveal()))};
    if (token.empty()) {
      return Reason(absl::FailedPreconditionError(
                        absl::StrCat(kWebIdentityTokenFile, " file ", token_file_, " is empty")),
                    "not_configured");
    }
    http::HttpRequest req;
    req.method = "POST";
    req.url = sts_url_;
    req.max_response_bytes = kMaxAnswerBytes;
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
    req.headers.emplace_back("Accept", "text/xml");
    req.body = absl::StrCat("Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=",
                            FormEncode(role_arn_), "&RoleSessionName=", FormEncode(session_name_),
                            "&WebIdentityToken=", FormEncode(token.reveal()));
    absl::StatusOr<http::HttpResponse> resp = http_->Send(req);
    const core::SecretBytes wipe_request(std::move(req.body));
    if (!resp.ok()) return TransportError(resp.status(), context);
    // The answer holds the secret key: keep it where it is wiped.
    const core::SecretBytes body(std::move(resp->body));
    if (resp->status != 200) {
      absl::Status s = StsErrorStatus(resp->status, body.reveal(), context, token.reveal());
      if (core::ReasonOf(s) == "rate_limited" && stats_ != nullptr) stats_->Throttled(source_name_);
      return s;
    }
    absl::StatusOr<AwsCredentials> creds = ParseAssumeRoleWithWebIdentityResponse(body.reveal());
    if (!creds.ok()) return core::Annotate(creds.status(), context);
    core::LogInfo("aws credentials obtained",
                  {{"source", source_name_},
                   {"provider", "web_identity"},
                   {"role_arn", role_arn_},
                   {"session_name", session_name_},
                   {"expires_at",
                    absl::FormatTime(absl::RFC3339_sec, creds->expires_at, absl::UTCTimeZone())}});
    return std::make_shared<const AwsCredentials>(*std::move(creds));
  }

 private:
  const std::string role_arn_;
  const std::string token_file_;
  const std::string session_name_;
  const std::string sts_url_;
  const std::shared_ptr<http::HttpClient> http_;
  secrets::SourceStats* const stats_;
  const std::string source_name_;
};

// The value of string field `name` of `s`, moved out (so a secret is not left behind), or "".
std::string TakeString(google::protobuf::Struct& s, const std::string& name) {
  auto it = s.mutable_fields()->find(name);
  if (it == s.mutable_fields()->end() ||
      it->second.kind_case() != google::protobuf::Value::kStringValue) {
    return "";
  }
  return std::move(*it->second.mutable_string_value());
}

// EKS Pod Identity agent / container credentials endpoint (protocols.md 2.5).
class ContainerCredentials final : public AwsCredentialSource {
 public:
  // Exactly one of `token_file` and `token` may be set; neither: no Authorization header.
  ContainerCredentials(std::string url, std::string token_file, core::SecretBytes token,
                       std::shared_ptr<http::HttpClient> http, std::string source_name)
      : url_(std::move(url)),
        token_file_(std::move(token_file)),
        token_(std::move(token)),
        http_(std::move(http)),
        source_name_(std::move(source_name)) {}

  absl::StatusOr<std::shared_ptr<const AwsCredentials>> Fetch() override {
    const std::string context = absl::StrCat("aws container credentials (", url_, ")");
    core::SecretBytes token = token_.Clone();
    if (!token_file_.empty()) {
      CB_ASSIGN_OR_RETURN(std::string file, ReadFile(token_file_, kContainerTokenFile));
      token = core::SecretBytes(std::move(file));
      // Sent as it is, like botocore does: a line break would split the header.
      if (token.reveal().find_first_of("\r\n") != absl::string_view::npos) {
        return Reason(absl::FailedPreconditionError(absl::StrCat(
                          kContainerTokenFile, " file ", token_file_, " contains CR or LF")),
                      "not_configured");
      }
      if (token.empty()) {
        return Reason(absl::FailedPreconditionError(
                          absl::StrCat(kContainerTokenFile, " file ", token_file_, " is empty")),
                      "not_configured");
      }
    }
    http::HttpRequest req;
    req.method = "GET";
    req.url = url_;
    req.max_response_bytes = kMaxAnswerBytes;
    req.headers.emplace_back("Accept", "application/json");
    if (!token.empty()) req.headers.emplace_back("Authorization", std::string(token.reveal()));
    absl::StatusOr<http::HttpResponse> resp = http_->Send(req);
    for (auto& [name, value] : req.headers) {
      if (name == "Authorization") core::SecretBytes wipe(std::move(value));
    }
    if (!resp.ok()) return TransportError(resp.status(), context);
    const core::SecretBytes body(std::move(resp->body));
    if (resp->status != 200) {
      const std::string msg = absl::StrCat(context, ": HTTP ", resp->status, ": ",
                                           Detail(body.reveal(), token.reveal()));
      if (resp->status == 400 || resp->status == 401 || resp->status == 403) {
        return Reason(absl::PermissionDeniedError(msg), "auth_failed");
      }
      return Reason(absl::UnavailableError(msg),
                    resp->status == 429 ? "rate_limited" : "unavailable");
    }
    google::protobuf::Struct json;
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(std::string(body.reveal()), &json, opts)
             .ok()) {
      return Reason(absl::DataLossError(absl::StrCat(context, ": the answer is not JSON")),
                    "malformed_answer");
    }
    auto creds = std::make_shared<AwsCredentials>();
    creds->access_key_id = TakeString(json, "AccessKeyId");
    creds->secret_access_key = core::SecretBytes(TakeString(json, "SecretAccessKey"));
    creds->session_token = TakeString(json, "Token");
    const std::string expiration = TakeString(json, "Expiration");
    std::vector<absl::string_view> missing;
    if (creds->access_key_id.empty()) missing.emplace_back("AccessKeyId");
    if (creds->secret_access_key.empty()) missing.emplace_back("SecretAccessKey");
    if (creds->session_token.empty()) missing.emplace_back("Token");
    if (!ParseAwsTime(expiration, &creds->expires_at)) missing.emplace_back("Expiration");
    if (!missing.empty()) {
      return Reason(absl::DataLossError(absl::StrCat(context, ": the answer has no valid ",
                                                     absl::StrJoin(missing, ", "))),
                    "malformed_answer");
    }
    core::LogInfo("aws credentials obtained",
                  {{"source", source_name_},
                   {"provider", "container"},
                   {"url", url_},
                   {"expires_at",
                    absl::FormatTime(absl::RFC3339_sec, creds->expires_at, absl::UTCTimeZone())}});
    return std::shared_ptr<const AwsCredentials>(std::move(creds));
  }

 private:
  const std::string url_;
  const std::string token_file_;
  const core::SecretBytes token_;
  const std::shared_ptr<http::HttpClient> http_;
  const std::string source_name_;
};

// --- Choosing --------------------------------------------------------------------------------

absl::Status NotConfigured(absl::string_view message) {
  return Reason(absl::FailedPreconditionError(message), "not_configured");
}

absl::Status BadValue(absl::string_view message) {
  return Reason(absl::InvalidArgumentError(message), "bad_request");
}

bool IsSessionNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '+' || c == '=' ||
         c == ',' || c == '.' || c == '@' || c == '-';
}

// STS's RoleSessionName: 2 to 64 of [\w+=,.@-].
bool ValidSessionName(absl::string_view s) {
  return s.size() >= 2 && s.size() <= 64 && absl::c_all_of(s, IsSessionNameChar);
}

absl::StatusOr<std::string> SessionName(const secrets::SourceContext& ctx,
                                        const AwsCredentialOptions& options) {
  std::string name = options.role_session_name;
  absl::string_view from = "session name";
  if (name.empty()) {
    name = EnvValue(ctx, kRoleSessionName).value_or("");
    from = kRoleSessionName;
  }
  if (!name.empty()) {
    if (!ValidSessionName(name)) {
      return BadValue(
          absl::StrCat(from, " \"", name, "\" must be 2 to 64 characters of [A-Za-z0-9_+=,.@-]"));
    }
    return name;
  }
  // Stable across restarts of the same pod, and tells replicas apart in CloudTrail.
  std::string suffix = EnvValue(ctx, kHostname).value_or(options.source_name);
  for (char& c : suffix) {
    if (!IsSessionNameChar(c)) c = '-';
  }
  if (suffix.empty()) {
    name = "credbroker";
  } else {
    name = absl::StartsWith(suffix, "credbroker") ? suffix : absl::StrCat("credbroker-", suffix);
  }
  if (name.size() > 64) name.resize(64);
  return name;
}

absl::StatusOr<std::string> StsUrl(const secrets::SourceContext& ctx,
                                   const AwsCredentialOptions& options) {
  if (!options.sts_endpoint.empty()) {
    absl::string_view e = options.sts_endpoint;
    if (!absl::StartsWith(e, "https://") && !absl::StartsWith(e, "http://")) {
      return BadValue(absl::StrCat("STS endpoint \"", e, "\" must be an http(s):// URL"));
    }
    while (absl::ConsumeSuffix(&e, "/")) {
    }
    return absl::StrCat(e, "/");
  }
  std::string region = options.region;
  if (region.empty()) region = EnvValue(ctx, kRegion).value_or("");
  if (region.empty()) region = EnvValue(ctx, kDefaultRegion).value_or("");
  if (region.empty()) return std::string("https://sts.amazonaws.com/");
  const bool valid = absl::c_all_of(region, [](char c) {
    return absl::ascii_islower(static_cast<unsigned char>(c)) ||
           absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-';
  });
  if (!valid) return BadValue(absl::StrCat("AWS region \"", region, "\" is not a region name"));
  return absl::StrCat("https://sts.", region, ".amazonaws.com/");
}

absl::StatusOr<std::shared_ptr<http::HttpClient>> Transport(const secrets::SourceContext& ctx,
                                                            const AwsCredentialOptions& options) {
  if (options.http_client != nullptr) return options.http_client;
  CB_ASSIGN_OR_RETURN(std::unique_ptr<http::HttpClient> client,
                      ctx.MakeHttpClient(http::TlsOptions{options.ca_file, "", ""}));
  return std::shared_ptr<http::HttpClient>(std::move(client));
}

// The provider the environment configures, and its name for the logs.
absl::StatusOr<std::pair<std::unique_ptr<AwsCredentialSource>, absl::string_view>> Choose(
    const secrets::SourceContext& ctx, const AwsCredentialOptions& options) {
  // 1. Static keys.
  std::optional<std::string> key_id = EnvValue(ctx, kAccessKeyId);
  std::optional<std::string> secret = EnvValue(ctx, kSecretAccessKey);
  if (key_id.has_value() || secret.has_value()) {
    if (!key_id.has_value() || !secret.has_value()) {
      return NotConfigured(
          absl::StrCat(key_id.has_value() ? kAccessKeyId : kSecretAccessKey, " is set but ",
                       key_id.has_value() ? kSecretAccessKey : kAccessKeyId, " is not"));
    }
    auto creds = std::make_shared<AwsCredentials>();
    creds->access_key_id = *std::move(key_id);
    creds->secret_access_key = core::SecretBytes(*std::move(secret));
    creds->session_token = EnvValue(ctx, kSessionToken).value_or("");
    return std::make_pair(std::make_unique<EnvironmentKeys>(std::move(creds)), "environment");
  }
  // 2. Web identity (IRSA).
  if (std::optional<std::string> token_file = EnvValue(ctx, kWebIdentityTokenFile)) {
    std::optional<std::string> role_arn = EnvValue(ctx, kRoleArn);
    if (!role_arn.has_value()) {
      return NotConfigured(
          absl::StrCat(kWebIdentityTokenFile, " is set but ", kRoleArn, " is not"));
    }
    CB_ASSIGN_OR_RETURN(std::string session, SessionName(ctx, options));
    CB_ASSIGN_OR_RETURN(std::string url, StsUrl(ctx, options));
    CB_ASSIGN_OR_RETURN(std::shared_ptr<http::HttpClient> http, Transport(ctx, options));
    return std::make_pair(std::make_unique<WebIdentity>(
                              *std::move(role_arn), *std::move(token_file), std::move(session),
                              std::move(url), std::move(http), ctx.stats, options.source_name),
                          "web_identity");
  }
  // 3. Container credentials (EKS Pod Identity).
  if (std::optional<std::string> url = EnvValue(ctx, kContainerFullUri)) {
    absl::Status allowed = CheckContainerCredentialsUrl(*url);
    if (!allowed.ok()) return core::Annotate(allowed, kContainerFullUri);
    std::string token_file = EnvValue(ctx, kContainerTokenFile).value_or("");
    core::SecretBytes token;
    if (token_file.empty()) {
      token = core::SecretBytes(EnvValue(ctx, kContainerToken).value_or(""));
      if (token.reveal().find_first_of("\r\n") != absl::string_view::npos) {
        return NotConfigured(absl::StrCat(kContainerToken, " contains CR or LF"));
      }
    }
    CB_ASSIGN_OR_RETURN(std::shared_ptr<http::HttpClient> http, Transport(ctx, options));
    return std::make_pair(std::make_unique<ContainerCredentials>(
                              *std::move(url), std::move(token_file), std::move(token),
                              std::move(http), options.source_name),
                          "container");
  }
  return NotConfigured(absl::StrCat(
      "no AWS credentials in the environment: set ", kAccessKeyId, " and ", kSecretAccessKey,
      " (static keys), or ", kRoleArn, " and ", kWebIdentityTokenFile, " (IRSA), or ",
      kContainerFullUri, " with ", kContainerTokenFile, " (EKS Pod Identity)"));
}

}  // namespace

absl::StatusOr<AwsCredentials> ParseAssumeRoleWithWebIdentityResponse(absl::string_view xml) {
  CB_ASSIGN_OR_RETURN(absl::string_view result, XmlElement(xml, "AssumeRoleWithWebIdentityResult"));
  CB_ASSIGN_OR_RETURN(absl::string_view credentials, XmlElement(result, "Credentials"));
  AwsCredentials out;
  CB_ASSIGN_OR_RETURN(out.access_key_id, XmlText(credentials, "AccessKeyId"));
  CB_ASSIGN_OR_RETURN(std::string secret, XmlText(credentials, "SecretAccessKey"));
  out.secret_access_key = core::SecretBytes(std::move(secret));
  CB_ASSIGN_OR_RETURN(out.session_token, XmlText(credentials, "SessionToken"));
  CB_ASSIGN_OR_RETURN(std::string expiration, XmlText(credentials, "Expiration"));
  if (out.access_key_id.empty() || out.secret_access_key.empty() || out.session_token.empty()) {
    return Malformed("an empty credential element");
  }
  if (!ParseAwsTime(expiration, &out.expires_at)) {
    return Malformed(absl::StrCat("<Expiration> \"", Detail(expiration, ""), "\" is not RFC 3339"));
  }
  return out;
}

absl::Status StsErrorStatus(int http_status, absl::string_view body, absl::string_view context,
                            absl::string_view redact) {
  std::string code;
  std::string message;
  if (absl::StatusOr<absl::string_view> error = XmlElement(body, "Error"); error.ok()) {
    code = XmlText(*error, "Code").value_or("");
    message = XmlText(*error, "Message").value_or("");
  }
  std::string msg = absl::StrCat(context, ": HTTP ", http_status);
  if (!code.empty()) absl::StrAppend(&msg, " ", Detail(code, redact));
  if (!message.empty()) absl::StrAppend(&msg, ": ", Detail(message, redact));
  // The identity was refused (STS API reference, AssumeRoleWithWebIdentity errors).
  if (code == "InvalidIdentityToken" || code == "AccessDenied" || code == "IDPRejectedClaim") {
    return Reason(absl::PermissionDeniedError(msg), "auth_failed");
  }
  if (code == "ExpiredTokenException") {
    return Reason(absl::PermissionDeniedError(msg), "token_expired");
  }
  if (code == "IDPCommunicationError" || code == "ServiceUnavailable" ||
      code == "InternalFailure") {
    return Reason(absl::UnavailableError(msg), "unavailable");
  }
  if (code == "Throttling" || code == "ThrottlingException" || code == "RequestLimitExceeded") {
    return Reason(absl::UnavailableError(msg), "rate_limited");
  }
  if (code == "ValidationError" || code == "InvalidAction" || code == "InvalidParameterValue" ||
      code == "MalformedPolicyDocument" || code == "PackedPolicyTooLarge") {
    return Reason(absl::InvalidArgumentError(msg), "bad_request");
  }
  if (code == "RegionDisabledException") {
    return Reason(absl::FailedPreconditionError(msg), "region_disabled");
  }
  // A code this does not know (or no error document): go by the HTTP status.
  if (http_status == 429) return Reason(absl::UnavailableError(msg), "rate_limited");
  if (http_status >= 500) return Reason(absl::UnavailableError(msg), "unavailable");
  if (http_status == 401 || http_status == 403) {
    return Reason(absl::PermissionDeniedError(msg), "auth_failed");
  }
  if (http_status >= 400) return Reason(absl::InvalidArgumentError(msg), "bad_request");
  return Reason(absl::UnavailableError(msg), "unavailable");
}

absl::Status CheckContainerCredentialsUrl(absl::string_view url) {
  absl::string_view rest = url;
  bool https = false;
  if (absl::StartsWithIgnoreCase(rest, "https://")) {
    https = true;
    rest.remove_prefix(8);
  } else if (absl::StartsWithIgnoreCase(rest, "http://")) {
    rest.remove_prefix(7);
  } else {
    return BadValue(absl::StrCat("\"", url, "\" is not an http:// or https:// URL"));
  }
  const absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (absl::StrContains(authority, '@')) {
    return BadValue(absl::StrCat("\"", url, "\": user info in the URL is not allowed"));
  }
  absl::string_view host;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return BadValue(absl::StrCat("\"", url, "\": unclosed [ in the host"));
    }
    host = authority.substr(1, close - 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  if (host.empty()) return BadValue(absl::StrCat("\"", url, "\" has no host"));
  if (https) return absl::OkStatus();
  // botocore's ContainerMetadataFetcher: loopback, the ECS and EKS agent addresses, localhost.
  const std::string h(host);
  if (absl::EqualsIgnoreCase(h, "localhost")) return absl::OkStatus();
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    const uint32_t a = ntohl(v4.s_addr);
    if ((a >> 24) == 127 || a == 0xA9FEAA02u /* 169.254.170.2 */ ||
        a == 0xA9FEAA17u /* 169.254.170.23 */) {
      return absl::OkStatus();
    }
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    in6_addr eks{};
    inet_pton(AF_INET6, "fd00:ec2::23", &eks);
    if (IN6_IS_ADDR_LOOPBACK(&v6) || std::memcmp(&v6, &eks, sizeof(v6)) == 0) {
      return absl::OkStatus();
    }
  }
  return BadValue(absl::StrCat(
      "plain http to ", host,
      " is not allowed for container credentials (only loopback, 169.254.170.2, 169.254.170.23 "
      "and fd00:ec2::23, as the AWS SDKs allow); use https"));
}

absl::StatusOr<std::unique_ptr<http::CachingTokenSource<AwsCredentials>>>
AwsCredentialsFromEnvironment(const secrets::SourceContext& ctx,
                              const AwsCredentialOptions& options) {
  CB_ASSIGN_OR_RETURN(auto chosen, Choose(ctx, options));
  core::LogInfo("aws credential provider",
                {{"source", options.source_name}, {"provider", chosen.second}});
  http::CachingTokenSourceOptions cache;
  cache.refresh_margin = options.refresh_margin;
  cache.name = absl::StrCat("aws/", options.source_name, " ", chosen.second);
  if (ctx.stats != nullptr) {
    cache.on_fetch = [stats = ctx.stats, source = options.source_name](absl::string_view result) {
      stats->TokenRefresh(source, result);
    };
  }
  const core::Clock* clock = ctx.clock != nullptr ? ctx.clock : core::SystemClock::Get();
  return std::make_unique<http::CachingTokenSource<AwsCredentials>>(std::move(chosen.first), clock,
                                                                    std::move(cache));
}

}  // namespace credbroker::backends::aws
