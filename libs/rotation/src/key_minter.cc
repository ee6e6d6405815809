#include "credbroker/rotation/key_minter.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "credbroker/core/json_pointer.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::rotation {
namespace {

using google::protobuf::Value;

// Percent-encodes everything but RFC 3986 unreserved characters (for ids in URL paths).
std::string PathEscape(absl::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string JsonEscape(absl::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string Expand(absl::string_view tmpl, const providers::ProviderSpec& spec,
                   absl::string_view key_id, absl::Time now, bool for_path,
                   absl::string_view description = "") {
  auto esc = [for_path](absl::string_view v) { return for_path ? PathEscape(v) : JsonEscape(v); };
  return absl::StrReplaceAll(tmpl, {{"{provider}", esc(spec.name)},
                                    {"{key_id}", esc(key_id)},
                                    {"{description}", esc(description)},
                                    {"{timestamp}", absl::StrCat(absl::ToUnixSeconds(now))}});
}

// mint.description with its placeholders filled (plain text).
std::string Describe(const v1::MintConfig& m, const providers::ProviderSpec& spec, absl::Time now) {
  return absl::StrReplaceAll(
      m.description(),
      {{"{provider}", spec.name}, {"{timestamp}", absl::StrCat(absl::ToUnixSeconds(now))}});
}

absl::Status StatusForAnswer(absl::string_view what, int status) {
  std::string msg = absl::StrCat(what, " answered HTTP ", status);
  if (status == 401 || status == 403) {
    return core::WithReason(absl::PermissionDeniedError(msg), "KEY_API_DENIED");
  }
  if (status == 429 || status >= 500) {
    return core::WithReason(absl::UnavailableError(msg), "KEY_API_UNAVAILABLE");
  }
  return core::WithReason(absl::FailedPreconditionError(msg), "KEY_API_ERROR");
}

}  // namespace

absl::StatusOr<MintedKey> HttpKeyMinter::Create(const providers::ProviderSpec& spec,
                                                absl::string_view credential) {
  if (spec.mint == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(spec.name, " has no mint configuration"));
  }
  const v1::MintConfig& m = *spec.mint;
  const absl::Time now = clock_->Now();
  const std::string description = Describe(m, spec, now);
  http::HttpRequest req;
  req.method = m.create().method().empty() ? "POST" : m.create().method();
  req.url = absl::StrCat(m.base_url(), Expand(m.create().path(), spec, "", now, true));
  req.headers.emplace_back(spec.header_name, spec.HeaderValue(credential));
  if (!m.create().body().empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = Expand(m.create().body(), spec, "", now, false, description);
  }
  req.timeout = m.has_timeout() ? core::FromProtoDuration(m.timeout()) : absl::Seconds(30);
  const std::string what = absl::StrCat("key API ", req.method, " ", req.url);
  absl::StatusOr<http::HttpResponse> resp = client_->Send(req);
  if (!resp.ok()) return core::Annotate(resp.status(), what);
  const int expected = m.create().expected_status();
  const bool ok =
      expected != 0 ? resp->status == expected : (resp->status == 200 || resp->status == 201);
  if (!ok) return StatusForAnswer(what, resp->status);
  absl::StatusOr<std::string> key = core::JsonPointerString(resp->body, m.key_pointer());
  if (!key.ok()) {
    return core::WithReason(absl::DataLossError(absl::StrCat(what, ": ", key.status().message())),
                            "KEY_API_ERROR");
  }
  if (key->empty()) {
    return core::WithReason(
        absl::DataLossError(absl::StrCat(what, ": the answer's ", m.key_pointer(), " is empty")),
        "KEY_API_ERROR");
  }
  MintedKey out;
  out.material = core::SecretBytes(std::move(*key));
  if (!m.key_id_pointer().empty()) {
    absl::StatusOr<std::string> id = core::JsonPointerString(resp->body, m.key_id_pointer());
    if (!id.ok()) {
      return core::WithReason(absl::DataLossError(absl::StrCat(what, ": ", id.status().message())),
                              "KEY_API_ERROR");
    }
    out.key_id = std::move(*id);
  } else {
    // No id in the answer: the dashboard knows the key by its description.
    out.key_id = description;
  }
  return out;
}

absl::Status HttpKeyMinter::Revoke(const providers::ProviderSpec& spec, absl::string_view key_id,
                                   absl::string_view credential) {
  if (spec.mint == nullptr || !spec.mint->has_revoke()) {
    return absl::FailedPreconditionError(absl::StrCat(spec.name, " has no mint.revoke"));
  }
  const v1::MintConfig& m = *spec.mint;
  const absl::Time now = clock_->Now();
  http::HttpRequest req;
  req.method = m.revoke().method().empty() ? "DELETE" : m.revoke().method();
  req.url = absl::StrCat(m.base_url(), Expand(m.revoke().path(), spec, key_id, now, true));
  req.headers.emplace_back(spec.header_name, spec.HeaderValue(credential));
  if (!m.revoke().body().empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = Expand(m.revoke().body(), spec, key_id, now, false);
  }
  req.timeout = m.has_timeout() ? core::FromProtoDuration(m.timeout()) : absl::Seconds(30);
  const std::string what = absl::StrCat("key API ", req.method, " ", req.url);
  absl::StatusOr<http::HttpResponse> resp = client_->Send(req);
  if (!resp.ok()) return core::Annotate(resp.status(), what);
  const int expected = m.revoke().expected_status();
  if (resp->status == 404) return absl::OkStatus();
  const bool ok =
      expected != 0 ? resp->status == expected : (resp->status == 200 || resp->status == 204);
  return ok ? absl::OkStatus() : StatusForAnswer(what, resp->status);
}

}  // namespace credbroker::rotation
