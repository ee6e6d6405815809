#include "credbroker/backends/aws/aws_source.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "credbroker/backends/aws/aws_credentials.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::backends::aws {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::string_view kCurrent = "AWSCURRENT";
constexpr absl::string_view kPending = "AWSPENDING";
constexpr absl::string_view kPrevious = "AWSPREVIOUS";

const Value* Field(const Struct& s, absl::string_view key) {
  auto it = s.fields().find(std::string(key));
  return it == s.fields().end() ? nullptr : &it->second;
}

std::string StringField(const Struct& s, absl::string_view key) {
  const Value* v = Field(s, key);
  return v != nullptr && v->kind_case() == Value::kStringValue ? v->string_value() : "";
}

// The error code of an awsJson1_1 error answer (protocols.md §2.3, botocore's BaseJSONParser):
// `__type` (or the X-Amzn-ErrorType header), the part after the last '#', before the first ':'.
std::string ErrorCode(const http::HttpResponse& r, const Struct& body) {
  std::string code = StringField(body, "__type");
  if (code.empty()) code = r.Header("x-amzn-errortype");
  if (size_t hash = code.rfind('#'); hash != std::string::npos) code = code.substr(hash + 1);
  if (size_t colon = code.find(':'); colon != std::string::npos) code = code.substr(0, colon);
  return code;
}

std::string ErrorMessage(const Struct& body) {
  std::string m = StringField(body, "message");
  if (m.empty()) m = StringField(body, "Message");
  return m.substr(0, 300);
}

bool IsCredentialError(absl::string_view code) {
  return code == "UnrecognizedClientException" || code == "InvalidClientTokenId" ||
         code == "ExpiredTokenException" || code == "ExpiredToken" ||
         code == "InvalidSignatureException" || code == "IncompleteSignature";
}

bool IsRetryable(int status, absl::string_view code) {
  return code == "ThrottlingException" || code == "Throttling" || code == "RequestExpired" ||
         code == "InternalServiceError" || status >= 500;
}

absl::Status AwsStatus(int http_status, absl::string_view code, absl::string_view message,
                       absl::string_view what) {
  std::string msg = absl::StrCat(what, ": HTTP ", http_status, code.empty() ? "" : " ", code,
                                 message.empty() ? "" : ": ", message);
  if (code == "ResourceNotFoundException") {
    return core::WithReason(absl::NotFoundError(msg), "not_found");
  }
  if (code == "AccessDeniedException") {
    return core::WithReason(absl::PermissionDeniedError(msg), "permission_denied");
  }
  if (IsCredentialError(code)) {
    return core::WithReason(absl::PermissionDeniedError(msg), "auth_failed");
  }
  if (code == "ThrottlingException" || code == "Throttling") {
    return core::WithReason(absl::UnavailableError(msg), "throttled");
  }
  if (code == "InvalidRequestException") {
    return core::WithReason(absl::FailedPreconditionError(msg), "invalid_request");
  }
  if (code == "InvalidParameterException" || code == "ValidationException") {
    return core::WithReason(absl::InvalidArgumentError(msg), "bad_request");
  }
  if (code == "ResourceExistsException") {
    return core::WithReason(absl::AbortedError(msg), "exists");
  }
  if (code == "DecryptionFailure") {
    return core::WithReason(absl::UnavailableError(msg), "decryption_failure");
  }
  return core::WithReason(absl::UnavailableError(msg), "unavailable");
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

secrets::BackendStage StageOf(const std::vector<std::string>& labels) {
  auto has = [&labels](absl::string_view l) {
    return std::find(labels.begin(), labels.end(), l) != labels.end();
  };
  if (has(kCurrent)) return secrets::BackendStage::kCurrent;
  if (has(kPending)) return secrets::BackendStage::kPending;
  if (has(kPrevious)) return secrets::BackendStage::kPrevious;
  return secrets::BackendStage::kDeprecated;
}

std::vector<std::string> StringList(const Value* v) {
  std::vector<std::string> out;
  if (v == nullptr || v->kind_case() != Value::kListValue) return out;
  for (const Value& e : v->list_value().values()) {
    if (e.kind_case() == Value::kStringValue) out.push_back(e.string_value());
  }
  return out;
}

// A random version 4 UUID: PutSecretValue's ClientRequestToken (idempotency token).
absl::StatusOr<std::string> NewUuid() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof(b)) != 1) return absl::InternalError("RAND_bytes failed");
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  return absl::StrFormat("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                         b[12], b[13], b[14], b[15]);
}

std::vector<core::FieldError> ValidateAws(const v1::AwsSourceConfig& a) {
  std::vector<core::FieldError> errors;
  static const auto* const kRegion = new std::string("abcdefghijklmnopqrstuvwxyz0123456789-");
  if (!a.region().empty() && a.region().find_first_not_of(*kRegion) != std::string::npos) {
    errors.push_back({"region", "must be an AWS region such as \"us-east-1\""});
  }
  for (const auto& [field, value] :
       {std::pair<const char*, const std::string*>{"endpoint", &a.endpoint()},
        {"sts_endpoint", &a.sts_endpoint()}}) {
    if (!value->empty() && !absl::StartsWith(*value, "https://") &&
        !absl::StartsWith(*value, "http://")) {
      errors.push_back({field, "must be an https:// URL"});
    }
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

class AwsSourceFactory final : public secrets::SourceFactory {
 public:
  absl::string_view type() const override { return "aws"; }
  std::vector<core::FieldError> Validate(const v1::SourceConfig& config) const override {
    return ValidateAws(config.aws());
  }
  absl::StatusOr<std::unique_ptr<secrets::SecretSource>> Create(
      const v1::SourceConfig& config, const secrets::SourceContext& context) override {
    v1::AwsSourceConfig aws = config.aws();
    if (aws.region().empty()) aws.set_region(context.Env("AWS_REGION").value_or(""));
    if (aws.region().empty()) aws.set_region(context.Env("AWS_DEFAULT_REGION").value_or(""));
    const std::string what = absl::StrCat("source ", config.name());
    AwsSourceDeps deps;
    auto transport = context.MakeHttpClient(http::TlsOptions{aws.ca_file(), "", ""});
    if (!transport.ok()) return core::Annotate(transport.status(), what);
    deps.transport = *std::move(transport);
    AwsCredentialOptions options;
    options.region = aws.region();
    options.sts_endpoint = aws.sts_endpoint();
    options.role_session_name = aws.role_session_name();
    options.ca_file = aws.ca_file();
    options.source_name = config.name();
    auto credentials = AwsCredentialsFromEnvironment(context, options);
    if (!credentials.ok()) return core::Annotate(credentials.status(), what);
    deps.credentials = *std::move(credentials);
    deps.clock = context.clock;
    deps.sleeper = context.SleeperOrReal();
    deps.stats = context.stats;
    auto source = AwsSecretSource::Create(config.name(), std::move(aws), std::move(deps));
    if (!source.ok()) return source.status();
    return std::unique_ptr<secrets::SecretSource>(*std::move(source));
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<AwsSecretSource>> AwsSecretSource::Create(std::string name,
                                                                         v1::AwsSourceConfig config,
                                                                         AwsSourceDeps deps) {
  if (config.region().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "source ", name, ": no AWS region (set aws.region or the AWS_REGION variable)"));
  }
  if (deps.transport == nullptr || deps.credentials == nullptr || deps.clock == nullptr) {
    return absl::InvalidArgumentError("AwsSecretSource needs a transport, credentials and a clock");
  }
  if (deps.sleeper == nullptr) deps.sleeper = http::Sleeper::Real();
  return std::unique_ptr<AwsSecretSource>(
      new AwsSecretSource(std::move(name), std::move(config), std::move(deps)));
}

AwsSecretSource::AwsSecretSource(std::string name, v1::AwsSourceConfig config, AwsSourceDeps deps)
    : name_(std::move(name)),
      config_(std::move(config)),
      deps_(std::move(deps)),
      endpoint_(config_.endpoint().empty()
                    ? absl::StrCat("https://secretsmanager.", config_.region(), ".amazonaws.com")
                    : std::string(absl::StripSuffix(config_.endpoint(), "/"))) {
  if (!deps_.jitter) {
    deps_.jitter = [] {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    };
  }
}

std::string AwsSecretSource::SecretId(absl::string_view path) const {
  return absl::StrCat(config_.name_prefix(), path);
}

absl::StatusOr<http::HttpResponse> AwsSecretSource::SendSigned(absl::string_view operation,
                                                               const std::string& body,
                                                               const AwsCredentials& credentials) {
  http::HttpRequest req;
  req.method = "POST";
  req.url = absl::StrCat(endpoint_, "/");
  req.body = body;
  req.timeout = config_.has_request_timeout() ? core::FromProtoDuration(config_.request_timeout())
                                              : absl::Seconds(10);
  req.headers.emplace_back("Content-Type", "application/x-amz-json-1.1");
  req.headers.emplace_back("X-Amz-Target", absl::StrCat("secretsmanager.", operation));
  CB_RETURN_IF_ERROR(SignRequest(req, credentials, SigningScope{config_.region(), "secretsmanager"},
                                 deps_.clock->Now()));
  return deps_.transport->Send(req);
}

absl::StatusOr<Struct> AwsSecretSource::Call(absl::string_view operation, const std::string& body) {
  const std::string what = absl::StrCat("aws ", operation);
  const int attempts = config_.max_attempts() > 0 ? config_.max_attempts() : 4;
  bool refreshed_credentials = false;
  absl::Duration backoff_cap = absl::Milliseconds(200);
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<std::shared_ptr<const AwsCredentials>> credentials = deps_.credentials->Fetch();
    if (!credentials.ok()) {
      return core::WithReason(
          core::Annotate(credentials.status(), absl::StrCat(what, ": credentials")), "auth_failed");
    }
    absl::StatusOr<http::HttpResponse> resp = SendSigned(operation, body, **credentials);
    absl::Status failure;
    bool retryable = false;
    if (!resp.ok()) {
      failure = core::WithReason(core::Annotate(resp.status(), what), "unavailable");
      retryable = absl::IsUnavailable(resp.status()) || absl::IsDeadlineExceeded(resp.status());
    } else {
      absl::StatusOr<Struct> parsed = ParseJson(resp->body, what);
      if (resp->status == 200) return parsed;
      const Struct body_json = parsed.ok() ? *parsed : Struct();
      const std::string code = ErrorCode(*resp, body_json);
      failure = AwsStatus(resp->status, code, ErrorMessage(body_json), what);
      if (IsCredentialError(code) && !refreshed_credentials) {
        // Rotated or expired credentials: fetch fresh ones and try once more at once.
        refreshed_credentials = true;
        deps_.credentials->Invalidate(credentials->get());
        --attempt;
        continue;
      }
      if ((code == "ThrottlingException" || code == "Throttling") && deps_.stats != nullptr) {
        deps_.stats->Throttled(name_);
      }
      retryable = IsRetryable(resp->status, code);
    }
    if (!retryable || attempt >= attempts) return failure;
    // Full jitter over an exponentially growing cap.
    deps_.sleeper->Sleep(backoff_cap * deps_.jitter());
    backoff_cap = std::min(backoff_cap * 2, absl::Seconds(5));
  }
}

absl::StatusOr<std::vector<secrets::VersionInfo>> AwsSecretSource::ListVersions(
    absl::string_view path) {
  std::vector<secrets::VersionInfo> out;
  std::string next;
  for (int page = 0; page < 100; ++page) {
    std::string body = absl::StrCat("{\"SecretId\":", core::JsonQuote(SecretId(path)),
                                    ",\"IncludeDeprecated\":true,\"MaxResults\":100");
    if (!next.empty()) absl::StrAppend(&body, ",\"NextToken\":", core::JsonQuote(next));
    body += "}";
    CB_ASSIGN_OR_RETURN(Struct answer, Call("ListSecretVersionIds", body));
    const Value* versions = Field(answer, "Versions");
    if (versions == nullptr || versions->kind_case() != Value::kListValue) {
      return core::WithReason(
          absl::DataLossError("aws ListSecretVersionIds: answer has no Versions list"),
          "malformed_answer");
    }
    for (const Value& v : versions->list_value().values()) {
      if (v.kind_case() != Value::kStructValue) continue;
      secrets::VersionInfo info;
      info.version_id = StringField(v.struct_value(), "VersionId");
      if (info.version_id.empty()) continue;
      info.etag = info.version_id;  // a version's content never changes
      info.labels = StringList(Field(v.struct_value(), "VersionStages"));
      info.stage = StageOf(info.labels);
      const Value* created = Field(v.struct_value(), "CreatedDate");
      if (created != nullptr && created->kind_case() == Value::kNumberValue &&
          std::isfinite(created->number_value())) {
        info.created_at = absl::FromUnixMillis(
            static_cast<int64_t>(std::llround(created->number_value() * 1000)));
      }
      out.push_back(std::move(info));
    }
    next = StringField(answer, "NextToken");
    if (next.empty()) break;
  }
  // Oldest first, as the seam promises (ties keep the answer's order).
  std::stable_sort(out.begin(), out.end(),
                   [](const secrets::VersionInfo& a, const secrets::VersionInfo& b) {
                     return a.created_at < b.created_at;
                   });
  return out;
}

absl::StatusOr<secrets::SecretVersion> AwsSecretSource::FetchVersion(absl::string_view path,
                                                                     absl::string_view version_id) {
  CB_ASSIGN_OR_RETURN(
      Struct answer,
      Call("GetSecretValue", absl::StrCat("{\"SecretId\":", core::JsonQuote(SecretId(path)),
                                          ",\"VersionId\":", core::JsonQuote(version_id), "}")));
  secrets::SecretVersion out;
  out.info.version_id = StringField(answer, "VersionId");
  if (out.info.version_id != version_id) {
    return core::WithReason(absl::DataLossError(absl::StrCat(
                                "aws GetSecretValue answered another version than ", version_id)),
                            "malformed_answer");
  }
  out.info.etag = out.info.version_id;
  out.info.labels = StringList(Field(answer, "VersionStages"));
  out.info.stage = StageOf(out.info.labels);
  std::string value;
  if (const Value* s = Field(answer, "SecretString");
      s != nullptr && s->kind_case() == Value::kStringValue) {
    value = s->string_value();
  } else if (const Value* b = Field(answer, "SecretBinary");
             b != nullptr && b->kind_case() == Value::kStringValue) {
    if (!absl::Base64Unescape(b->string_value(), &value)) {
      return core::WithReason(absl::DataLossError(absl::StrCat("aws version ", version_id,
                                                               ": SecretBinary is not "
                                                               "base64")),
                              "malformed_answer");
    }
  } else {
    return core::WithReason(
        absl::DataLossError(
            absl::StrCat("aws version ", version_id, ": neither SecretString nor SecretBinary")),
        "malformed_answer");
  }
  if (!config_.field().empty()) {
    absl::StatusOr<Struct> object = ParseJson(value, "SecretString");
    std::fill(value.begin(), value.end(), '\0');
    if (!object.ok()) {
      return core::WithReason(
          absl::DataLossError(absl::StrCat("aws version ", version_id,
                                           ": SecretString is not a JSON object (field ",
                                           config_.field(), " expected)")),
          "malformed_secret");
    }
    const Value* f = Field(*object, config_.field());
    if (f == nullptr || f->kind_case() != Value::kStringValue) {
      return core::WithReason(absl::DataLossError(absl::StrCat("aws version ", version_id,
                                                               ": SecretString has no string "
                                                               "field ",
                                                               config_.field())),
                              "malformed_secret");
    }
    out.material = core::SecretBytes(f->string_value());
    return out;
  }
  out.material = core::SecretBytes(value);
  std::fill(value.begin(), value.end(), '\0');
  return out;
}

absl::StatusOr<secrets::VersionInfo> AwsSecretSource::WriteVersion(
    absl::string_view path, const core::SecretBytes& material) {
  CB_ASSIGN_OR_RETURN(std::string token, NewUuid());
  std::string secret_string = config_.field().empty()
                                  ? std::string(material.reveal())
                                  : absl::StrCat("{", core::JsonQuote(config_.field()), ":",
                                                 core::JsonQuote(material.reveal()), "}");
  std::string body = absl::StrCat("{\"SecretId\":", core::JsonQuote(SecretId(path)),
                                  ",\"ClientRequestToken\":", core::JsonQuote(token),
                                  ",\"SecretString\":", core::JsonQuote(secret_string),
                                  ",\"VersionStages\":[\"", kPending, "\"]}");
  std::fill(secret_string.begin(), secret_string.end(), '\0');
  absl::StatusOr<Struct> answer = Call("PutSecretValue", body);
  std::fill(body.begin(), body.end(), '\0');
  if (!answer.ok()) return answer.status();
  secrets::VersionInfo info;
  info.version_id = StringField(*answer, "VersionId");
  if (info.version_id.empty()) info.version_id = token;
  info.etag = info.version_id;
  info.labels = StringList(Field(*answer, "VersionStages"));
  info.stage = StageOf(info.labels);
  return info;
}

absl::Status AwsSecretSource::PromoteVersion(absl::string_view path, absl::string_view version_id) {
  const std::string id = SecretId(path);
  CB_ASSIGN_OR_RETURN(
      Struct described,
      Call("DescribeSecret", absl::StrCat("{\"SecretId\":", core::JsonQuote(id), "}")));
  std::string holder;
  bool pending_on_target = false;
  if (const Value* stages = Field(described, "VersionIdsToStages");
      stages != nullptr && stages->kind_case() == Value::kStructValue) {
    for (const auto& [version, labels] : stages->struct_value().fields()) {
      for (const std::string& l : StringList(&labels)) {
        if (l == kCurrent) holder = version;
        if (l == kPending && version == version_id) pending_on_target = true;
      }
    }
  }
  if (holder != version_id) {
    std::string body =
        absl::StrCat("{\"SecretId\":", core::JsonQuote(id), ",\"VersionStage\":\"", kCurrent,
                     "\",\"MoveToVersionId\":", core::JsonQuote(version_id));
    if (!holder.empty())
      absl::StrAppend(&body, ",\"RemoveFromVersionId\":", core::JsonQuote(holder));
    body += "}";
    CB_RETURN_IF_ERROR(Call("UpdateSecretVersionStage", body).status());
  }
  if (pending_on_target) {
    // Promoted: no longer pending (as a rotation's finishSecret leaves it).
    CB_RETURN_IF_ERROR(
        Call("UpdateSecretVersionStage",
             absl::StrCat("{\"SecretId\":", core::JsonQuote(id), ",\"VersionStage\":\"", kPending,
                          "\",\"RemoveFromVersionId\":", core::JsonQuote(version_id), "}"))
            .status());
  }
  return absl::OkStatus();
}

std::unique_ptr<secrets::SourceFactory> MakeAwsSourceFactory() {
  return std::make_unique<AwsSourceFactory>();
}

}  // namespace credbroker::backends::aws
