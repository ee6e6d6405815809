#include "credbroker/backends/aws/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::backends::aws {
namespace {

constexpr absl::string_view kAlgorithm = "AWS4-HMAC-SHA256";

// botocore's SIGNED_HEADERS_BLACKLIST: hop-by-hop and proxy headers that intermediaries may
// rewrite, and headers a client library may change after signing. `authorization` is left out
// too, so that the canonical request of an already signed request is the one that was signed.
constexpr std::array<absl::string_view, 12> kUnsignedHeaders = {"authorization",
                                                                "connection",
                                                                "expect",
                                                                "keep-alive",
                                                                "proxy-authenticate",
                                                                "proxy-authorization",
                                                                "te",
                                                                "trailer",
                                                                "transfer-encoding",
                                                                "upgrade",
                                                                "user-agent",
                                                                "x-amzn-trace-id"};

bool IsSignedHeader(absl::string_view lowercase_name) {
  return std::find(kUnsignedHeaders.begin(), kUnsignedHeaders.end(), lowercase_name) ==
         kUnsignedHeaders.end();
}

// Values that end up inside a header must not be able to break it.
bool HasControlOrSpace(absl::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

// The parts of a URL that signing needs. Views point into the URL string.
struct ParsedUrl {
  std::string host_header;  // lowercase host, ":port" only when not the scheme's default
  absl::string_view path;   // as on the wire; may be empty
  absl::string_view query;  // without '?'; fragment removed
};

// Error messages never quote the URL: a caller may have put a credential in its query.
absl::StatusOr<ParsedUrl> ParseUrl(absl::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos || scheme_end == 0 ||
      !absl::ascii_isalpha(static_cast<unsigned char>(url[0]))) {
    return absl::InvalidArgumentError("AWS SigV4: the request URL has no scheme");
  }
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  for (char c : scheme) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return absl::InvalidArgumentError("AWS SigV4: the request URL has a malformed scheme");
    }
  }
  absl::string_view rest = url.substr(scheme_end + 3);
  const size_t authority_end = rest.find_first_of("/?#");
  absl::string_view authority = rest.substr(0, authority_end);
  absl::string_view tail =
      authority_end == absl::string_view::npos ? absl::string_view() : rest.substr(authority_end);
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority.remove_prefix(at + 1);
  }

  absl::string_view host = authority;
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {  // IPv6 literal
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("AWS SigV4: the request URL has a malformed host");
    }
    host = authority.substr(0, close + 1);
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') {
        return absl::InvalidArgumentError("AWS SigV4: the request URL has a malformed host");
      }
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || host == "[]") {
    return absl::InvalidArgumentError("AWS SigV4: the request URL has no host");
  }
  if (HasControlOrSpace(host)) {
    return absl::InvalidArgumentError("AWS SigV4: the request URL has a malformed host");
  }

  ParsedUrl parsed;
  parsed.host_header = absl::AsciiStrToLower(host);
  if (!port.empty()) {
    uint32_t number = 0;
    if (!std::all_of(port.begin(), port.end(),
                     [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
        !absl::SimpleAtoi(port, &number) || number > 65535) {
      return absl::InvalidArgumentError("AWS SigV4: the request URL has a malformed port");
    }
    const uint32_t default_port = scheme == "https" ? 443 : scheme == "http" ? 80 : 0;
    if (number != default_port) absl::StrAppend(&parsed.host_header, ":", number);
  }

  tail = tail.substr(0, tail.find('#'));
  const size_t query_start = tail.find('?');
  parsed.path = tail.substr(0, query_start);
  if (query_start != absl::string_view::npos) parsed.query = tail.substr(query_start + 1);
  return parsed;
}

bool IsUnreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

// RFC 3986 percent-encoding of every byte but the unreserved ones (and '/' when asked).
std::string UriEncode(absl::string_view in, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; a '%' not followed by two hex digits stays as it is. '+' is taken
// literally (callers encode a space as %20).
std::string PercentDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>((hi << 4) | lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

// RFC 3986 section 5.2.4 plus the removal of empty segments AWS asks for (botocore's
// remove_dot_segments): "/a//b/./c/.." becomes "/a/b/".
std::string NormalizePath(absl::string_view path) {
  if (path.empty()) return "/";
  std::vector<absl::string_view> segments;
  for (absl::string_view segment : absl::StrSplit(path, '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!segments.empty()) segments.pop_back();
      continue;
    }
    segments.push_back(segment);
  }
  std::string out = path.front() == '/' ? "/" : "";
  absl::StrAppend(&out, absl::StrJoin(segments, "/"));
  if (path.back() == '/' && !segments.empty()) out.push_back('/');
  return out;
}

std::string CanonicalUri(absl::string_view path, absl::string_view service) {
  // S3 signs the path as sent (object keys may legitimately contain "//" or "."); every other
  // service signs the normalized path encoded once more, so a "%2F" on the wire is "%252F" here.
  if (service == "s3") return path.empty() ? "/" : std::string(path);
  return UriEncode(NormalizePath(path), /*keep_slash=*/true);
}

std::string CanonicalQuery(absl::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (absl::string_view part : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = part.find('=');
    absl::string_view key = part.substr(0, eq);
    absl::string_view value = eq == absl::string_view::npos ? "" : part.substr(eq + 1);
    pairs.emplace_back(UriEncode(PercentDecode(key), false),
                       UriEncode(PercentDecode(value), false));
  }
  std::sort(pairs.begin(), pairs.end());
  return absl::StrJoin(pairs, "&", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, kv.first, "=", kv.second);
  });
}

// Trims the value and collapses each inner run of white space to one space.
std::string TrimAll(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : value) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string BuildCanonicalRequest(absl::string_view method, const ParsedUrl& url,
                                  const http::Headers& headers, absl::string_view body,
                                  absl::string_view service, std::string* signed_headers) {
  // Sorted by lowercase name; repeated headers keep their order, joined with ','.
  std::map<std::string, std::string> canonical;
  for (const auto& [name, value] : headers) {
    std::string lowercase = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
    if (!IsSignedHeader(lowercase)) continue;
    auto [it, inserted] = canonical.try_emplace(std::move(lowercase), TrimAll(value));
    if (!inserted) absl::StrAppend(&it->second, ",", TrimAll(value));
  }
  canonical.try_emplace("host", url.host_header);

  std::string header_block;
  std::vector<absl::string_view> names;
  names.reserve(canonical.size());
  for (const auto& [name, value] : canonical) {
    absl::StrAppend(&header_block, name, ":", value, "\n");
    names.emplace_back(name);
  }
  std::string names_joined = absl::StrJoin(names, ";");

  // AWS requires the signed payload hash to equal this header whenever it is sent (S3 uses it
  // for UNSIGNED-PAYLOAD); otherwise it is the hash of the exact body bytes.
  const auto content_sha = canonical.find("x-amz-content-sha256");
  const std::string payload_hash =
      content_sha != canonical.end() ? content_sha->second : core::Sha256Hex(body);

  std::string out = absl::StrCat(absl::AsciiStrToUpper(method), "\n",
                                 CanonicalUri(url.path, service), "\n", CanonicalQuery(url.query),
                                 "\n", header_block, "\n", names_joined, "\n", payload_hash);
  if (signed_headers != nullptr) *signed_headers = std::move(names_joined);
  return out;
}

std::string AmzDate(absl::Time now) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
}

std::string CredentialScope(const SigningScope& scope, absl::Time now) {
  return absl::StrCat(AmzDate(now).substr(0, 8), "/", scope.region, "/", scope.service,
                      "/aws4_request");
}

using Digest = std::array<unsigned char, SHA256_DIGEST_LENGTH>;

bool HmacSha256(absl::string_view key, absl::string_view data, Digest& out) {
  unsigned int length = 0;
  return HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
              &length) != nullptr &&
         length == out.size();
}

absl::string_view View(const Digest& digest) {
  return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

// kDate = HMAC("AWS4" + secret, date), kRegion, kService, kSigning, then the signature over the
// string to sign. Every intermediate key is wiped before returning.
absl::StatusOr<std::string> Signature(const core::SecretBytes& secret, const SigningScope& scope,
                                      absl::Time now, absl::string_view string_to_sign) {
  std::string secret_key = absl::StrCat("AWS4", secret.reveal());
  Digest k_date{};
  Digest k_region{};
  Digest k_service{};
  Digest k_signing{};
  Digest signature{};
  const bool ok = HmacSha256(secret_key, AmzDate(now).substr(0, 8), k_date) &&
                  HmacSha256(View(k_date), scope.region, k_region) &&
                  HmacSha256(View(k_region), scope.service, k_service) &&
                  HmacSha256(View(k_service), "aws4_request", k_signing) &&
                  HmacSha256(View(k_signing), string_to_sign, signature);
  OPENSSL_cleanse(secret_key.data(), secret_key.size());
  OPENSSL_cleanse(k_date.data(), k_date.size());
  OPENSSL_cleanse(k_region.data(), k_region.size());
  OPENSSL_cleanse(k_service.data(), k_service.size());
  OPENSSL_cleanse(k_signing.data(), k_signing.size());
  if (!ok) return absl::InternalError("AWS SigV4: HMAC-SHA256 failed");
  return absl::BytesToHexString(View(signature));
}

absl::Status ValidateInputs(const AwsCredentials& credentials, const SigningScope& scope,
                            absl::Time now) {
  if (credentials.access_key_id.empty() || HasControlOrSpace(credentials.access_key_id) ||
      absl::StrContains(credentials.access_key_id, '/') ||
      absl::StrContains(credentials.access_key_id, ',')) {
    return absl::InvalidArgumentError("AWS SigV4: the access key id is empty or malformed");
  }
  if (credentials.secret_access_key.empty()) {
    return absl::InvalidArgumentError("AWS SigV4: the secret access key is empty");
  }
  if (HasControlOrSpace(credentials.session_token)) {
    return absl::InvalidArgumentError("AWS SigV4: the session token is malformed");
  }
  if (scope.region.empty() || scope.service.empty() || HasControlOrSpace(scope.region) ||
      HasControlOrSpace(scope.service) || absl::StrContains(scope.region, '/') ||
      absl::StrContains(scope.service, '/')) {
    return absl::InvalidArgumentError(
        "AWS SigV4: the signing region or service is empty or malformed");
  }
  if (now == absl::InfiniteFuture() || now == absl::InfinitePast()) {
    return absl::InvalidArgumentError("AWS SigV4: the signing time is not finite");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> CanonicalRequest(const http::HttpRequest& request,
                                             absl::string_view service) {
  CB_ASSIGN_OR_RETURN(const ParsedUrl url, ParseUrl(request.url));
  return BuildCanonicalRequest(request.method, url, request.headers, request.body, service,
                               /*signed_headers=*/nullptr);
}

std::string StringToSign(absl::string_view canonical_request, const SigningScope& scope,
                         absl::Time now) {
  return absl::StrCat(kAlgorithm, "\n", AmzDate(now), "\n", CredentialScope(scope, now), "\n",
                      core::Sha256Hex(canonical_request));
}

absl::Status SignRequest(http::HttpRequest& request, const AwsCredentials& credentials,
                         const SigningScope& scope, absl::Time now) {
  CB_RETURN_IF_ERROR(ValidateInputs(credentials, scope, now));
  CB_ASSIGN_OR_RETURN(const ParsedUrl url, ParseUrl(request.url));

  // The new header list replaces the request's only once everything has succeeded.
  const bool has_token = !credentials.session_token.empty();
  http::Headers headers;
  headers.reserve(request.headers.size() + 4);
  bool has_host = false;
  for (const auto& header : request.headers) {
    const std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(header.first));
    if (name == "authorization" || name == "x-amz-date") continue;
    if (has_token && name == "x-amz-security-token") continue;
    has_host = has_host || name == "host";
    headers.push_back(header);
  }
  // Sent explicitly, so the Host that travels is the one that was signed.
  if (!has_host) headers.emplace_back("Host", url.host_header);
  headers.emplace_back("X-Amz-Date", AmzDate(now));
  if (has_token) headers.emplace_back("X-Amz-Security-Token", credentials.session_token);

  std::string signed_headers;
  const std::string canonical_request = BuildCanonicalRequest(
      request.method, url, headers, request.body, scope.service, &signed_headers);
  CB_ASSIGN_OR_RETURN(const std::string signature,
                      Signature(credentials.secret_access_key, scope, now,
                                StringToSign(canonical_request, scope, now)));
  headers.emplace_back("Authorization",
                       absl::StrCat(kAlgorithm, " Credential=", credentials.access_key_id, "/",
                                    CredentialScope(scope, now), ", SignedHeaders=", signed_headers,
                                    ", Signature=", signature));
  request.headers = std::move(headers);
  return absl::OkStatus();
}

}  // namespace credbroker::backends::aws
