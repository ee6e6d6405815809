// The two ways the gcp backend gets its access token (protocols.md §3): the metadata server and
// workload identity federation (STS token exchange of a projected service-account token).
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "credbroker/backends/gcp/gcp_source.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::backends::gcp {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::string_view kScope = "https://www.googleapis.com/auth/cloud-platform";

std::string StringField(const Struct& s, absl::string_view key) {
  auto it = s.fields().find(std::string(key));
  return it != s.fields().end() && it->second.kind_case() == Value::kStringValue
             ? it->second.string_value()
             : "";
}

// Form encoding: every byte but RFC 3986's unreserved ones as %XX.
std::string FormEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
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

// The token of a 200 answer {"access_token","expires_in",...}. The body is wiped by the caller.
absl::StatusOr<std::shared_ptr<const GcpToken>> ParseTokenAnswer(const std::string& body,
                                                                 absl::Time now,
                                                                 absl::string_view what) {
  Struct parsed;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(body, &parsed, opts).ok()) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answer is not JSON")),
                            "malformed_answer");
  }
  auto token = std::make_shared<GcpToken>();
  auto it = parsed.mutable_fields()->find("access_token");
  if (it == parsed.mutable_fields()->end() || it->second.kind_case() != Value::kStringValue ||
      it->second.string_value().empty()) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": answer has no access_token")),
                            "malformed_answer");
  }
  token->access_token = core::SecretBytes(it->second.string_value());
  std::string* raw = it->second.mutable_string_value();
  std::fill(raw->begin(), raw->end(), '\0');
  token->expires_at = absl::InfiniteFuture();
  if (auto e = parsed.fields().find("expires_in");
      e != parsed.fields().end() && e->second.kind_case() == Value::kNumberValue) {
    token->expires_at = now + absl::Seconds(e->second.number_value());
  }
  return std::shared_ptr<const GcpToken>(std::move(token));
}

class MetadataTokenSource final : public http::TokenSource<GcpToken> {
 public:
  MetadataTokenSource(std::unique_ptr<http::HttpClient> transport, std::string host,
                      const core::Clock* clock)
      : transport_(std::move(transport)), host_(std::move(host)), clock_(clock) {}

  absl::StatusOr<std::shared_ptr<const GcpToken>> Fetch() override {
    const std::string what = absl::StrCat("gcp metadata server ", host_, ": token");
    http::HttpRequest req;
    req.url = absl::StrCat("http://", host_,
                           "/computeMetadata/v1/instance/service-accounts/default/token");
    req.headers.emplace_back("Metadata-Flavor", "Google");
    req.timeout = absl::Seconds(5);
    const absl::Time now = clock_->Now();
    absl::StatusOr<http::HttpResponse> resp = transport_->Send(req);
    if (!resp.ok()) return core::WithReason(core::Annotate(resp.status(), what), "unavailable");
    std::string body = std::move(resp->body);
    absl::StatusOr<std::shared_ptr<const GcpToken>> out;
    if (resp->status == 200) {
      out = ParseTokenAnswer(body, now, what);
    } else if (resp->status == 429 || resp->status >= 500) {
      out = core::WithReason(absl::UnavailableError(absl::StrCat(what, ": HTTP ", resp->status)),
                             "unavailable");
    } else {
      out = core::WithReason(
          absl::PermissionDeniedError(absl::StrCat(what, ": HTTP ", resp->status,
                                                   " (no service account for this workload?)")),
          "auth_failed");
    }
    std::fill(body.begin(), body.end(), '\0');
    return out;
  }

 private:
  const std::unique_ptr<http::HttpClient> transport_;
  const std::string host_;
  const core::Clock* const clock_;
};

class StsTokenSource final : public http::TokenSource<GcpToken> {
 public:
  StsTokenSource(std::unique_ptr<http::HttpClient> transport, std::string sts_endpoint,
                 std::string audience, std::string token_file, const core::Clock* clock)
      : transport_(std::move(transport)),
        sts_endpoint_(std::move(sts_endpoint)),
        audience_(std::move(audience)),
        token_file_(std::move(token_file)),
        clock_(clock) {}

  absl::StatusOr<std::shared_ptr<const GcpToken>> Fetch() override {
    const std::string what = absl::StrCat("gcp sts token exchange (", audience_, ")");
    // The kubelet rotates the projected token: read it for every exchange.
    std::string subject;
    {
      std::ifstream in(token_file_, std::ios::binary);
      if (!in) {
        return core::WithReason(
            absl::FailedPreconditionError(absl::StrCat(what, ": cannot read token file ",
                                                       token_file_, ": ", std::strerror(errno))),
            "not_configured");
      }
      std::stringstream ss;
      ss << in.rdbuf();
      subject = ss.str();
    }
    core::SecretBytes token(std::string(absl::StripAsciiWhitespace(subject)));
    std::fill(subject.begin(), subject.end(), '\0');
    if (token.reveal().empty()) {
      return core::WithReason(absl::FailedPreconditionError(
                                  absl::StrCat(what, ": token file ", token_file_, " is empty")),
                              "not_configured");
    }
    http::HttpRequest req;
    req.method = "POST";
    req.url = absl::StrCat(sts_endpoint_, "/v1/token");
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.timeout = absl::Seconds(10);
    req.body = absl::StrCat(
        "grant_type=", FormEncode("urn:ietf:params:oauth:grant-type:token-exchange"),
        "&audience=", FormEncode(audience_), "&scope=", FormEncode(kScope),
        "&requested_token_type=", FormEncode("urn:ietf:params:oauth:token-type:access_token"),
        "&subject_token_type=", FormEncode("urn:ietf:params:oauth:token-type:jwt"),
        "&subject_token=", FormEncode(token.reveal()));
    const absl::Time now = clock_->Now();
    absl::StatusOr<http::HttpResponse> resp = transport_->Send(req);
    std::fill(req.body.begin(), req.body.end(), '\0');
    if (!resp.ok()) return core::WithReason(core::Annotate(resp.status(), what), "unavailable");
    std::string body = std::move(resp->body);
    absl::StatusOr<std::shared_ptr<const GcpToken>> out;
    if (resp->status == 200) {
      out = ParseTokenAnswer(body, now, what);
    } else if (resp->status == 429 || resp->status >= 500) {
      out = core::WithReason(absl::UnavailableError(absl::StrCat(what, ": HTTP ", resp->status)),
                             "unavailable");
    } else {
      // RFC 6749 §5.2: {"error","error_description"}; the description names no token.
      Struct parsed;
      google::protobuf::util::JsonParseOptions opts;
      opts.ignore_unknown_fields = true;
      (void)google::protobuf::util::JsonStringToMessage(body, &parsed, opts).ok();
      const std::string error = StringField(parsed, "error");
      const std::string msg =
          absl::StrCat(what, ": HTTP ", resp->status, error.empty() ? "" : " ", error, ": ",
                       StringField(parsed, "error_description").substr(0, 300));
      if (error == "invalid_grant" || error == "invalid_target" || resp->status == 401 ||
          resp->status == 403) {
        out = core::WithReason(absl::PermissionDeniedError(msg), "auth_failed");
      } else {
        out = core::WithReason(absl::InvalidArgumentError(msg), "bad_request");
      }
    }
    std::fill(body.begin(), body.end(), '\0');
    return out;
  }

 private:
  const std::unique_ptr<http::HttpClient> transport_;
  const std::string sts_endpoint_;
  const std::string audience_;
  const std::string token_file_;
  const core::Clock* const clock_;
};

}  // namespace

std::unique_ptr<http::TokenSource<GcpToken>> MakeMetadataTokenSource(
    std::unique_ptr<http::HttpClient> transport, std::string host, const core::Clock* clock) {
  return std::make_unique<MetadataTokenSource>(std::move(transport), std::move(host), clock);
}

std::unique_ptr<http::TokenSource<GcpToken>> MakeStsTokenSource(
    std::unique_ptr<http::HttpClient> transport, std::string sts_endpoint, std::string audience,
    std::string token_file, const core::Clock* clock) {
  while (absl::EndsWith(sts_endpoint, "/")) sts_endpoint.pop_back();
  return std::make_unique<StsTokenSource>(std::move(transport), std::move(sts_endpoint),
                                          std::move(audience), std::move(token_file), clock);
}

}  // namespace credbroker::backends::gcp
