// SigV4 against the AWS Signature Version 4 test suite as botocore ships and runs it
// (testdata/aws4_testsuite/README.md says which files come from where), plus the behaviour the
// suite does not cover: URL errors, session tokens, ports, re-signing and secret hygiene.
#include "credbroker/backends/aws/sigv4.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/civil_time.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::backends::aws {
namespace {

using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// The suite's constants (botocore tests/unit/auth/test_sigv4.py).
constexpr char kAccessKeyId[] = "AKIDEXAMPLE";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

SigningScope SuiteScope() { return {.region = "us-east-1", .service = "service"}; }

absl::Time SuiteTime() {
  return absl::FromCivil(absl::CivilSecond(2015, 8, 30, 12, 36, 0), absl::UTCTimeZone());
}

AwsCredentials SuiteCredentials(std::string session_token = "") {
  AwsCredentials credentials;
  credentials.access_key_id = kAccessKeyId;
  credentials.secret_access_key = core::SecretBytes(kSecret);
  credentials.session_token = std::move(session_token);
  return credentials;
}

std::string ReadFileOrDie(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The values of every header called `name` (case-insensitive), in order.
std::vector<std::string> HeaderValues(const http::HttpRequest& request, absl::string_view name) {
  std::vector<std::string> values;
  for (const auto& [key, value] : request.headers) {
    if (absl::EqualsIgnoreCase(key, name)) values.push_back(value);
  }
  return values;
}

std::string OnlyHeader(const http::HttpRequest& request, absl::string_view name) {
  const std::vector<std::string> values = HeaderValues(request, name);
  EXPECT_EQ(values.size(), 1U) << "header " << name;
  return values.empty() ? "" : values.front();
}

// A suite .req: request line, header lines (a line that starts with white space continues the
// previous header), an optional blank line and the body.
struct RawRequest {
  std::string method;
  std::string target;
  http::Headers headers;
  std::string body;
};

RawRequest ParseReq(absl::string_view text) {
  RawRequest raw;
  const std::string normalized = absl::StrReplaceAll(text, {{"\r\n", "\n"}});
  absl::string_view rest = normalized;
  absl::string_view head = rest;
  if (const size_t blank = rest.find("\n\n"); blank != absl::string_view::npos) {
    head = rest.substr(0, blank);
    raw.body = std::string(rest.substr(blank + 2));
  }
  std::vector<absl::string_view> lines = absl::StrSplit(head, '\n');
  // "METHOD TARGET HTTP/1.1": the target is everything between the first and the last space.
  absl::string_view request_line = lines.front();
  const size_t first_space = request_line.find(' ');
  const size_t last_space = request_line.rfind(' ');
  raw.method = std::string(request_line.substr(0, first_space));
  raw.target = std::string(request_line.substr(first_space + 1, last_space - first_space - 1));
  for (size_t i = 1; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !raw.headers.empty()) {
      absl::StrAppend(&raw.headers.back().second, "\n", line);
      continue;
    }
    const size_t colon = line.find(':');
    raw.headers.emplace_back(std::string(line.substr(0, colon)),
                             std::string(line.substr(colon + 1)));
  }
  return raw;
}

// The cases botocore runs (all of its folder except the four test_sigv4.py ignores); the README
// next to the files lists the same names.
const std::vector<std::string>& SuiteCases() {
  static const auto* const kCases = new std::vector<std::string>{
      "get-header-key-duplicate",
      "get-header-value-order",
      "get-header-value-trim",
      "get-unreserved",
      "get-utf8",
      "get-vanilla",
      "get-vanilla-empty-query-key",
      "get-vanilla-query",
      "get-vanilla-query-unreserved",
      "get-vanilla-utf8-query",
      "normalize-path/get-relative",
      "normalize-path/get-relative-relative",
      "normalize-path/get-slash",
      "normalize-path/get-slash-dot-slash",
      "normalize-path/get-slash-pointless-dot",
      "normalize-path/get-slashes",
      "post-header-key-case",
      "post-header-key-sort",
      "post-header-value-case",
      "post-sts-token/post-sts-header-after",
      "post-sts-token/post-sts-header-before",
      "post-vanilla",
      "post-vanilla-empty-query-value",
      "post-vanilla-query",
      "post-x-www-form-urlencoded",
      "post-x-www-form-urlencoded-parameters",
  };
  return *kCases;
}

std::filesystem::path SuiteDir() { return CB_AWS4_TESTSUITE_DIR; }

class Aws4TestSuite : public ::testing::TestWithParam<std::string> {};

TEST_P(Aws4TestSuite, CanonicalRequestStringToSignAndAuthorizationMatch) {
  const std::string& name = GetParam();
  const std::filesystem::path base =
      SuiteDir() / name / std::filesystem::path(name).filename().string();
  auto read = [&](const char* extension) {
    // As botocore's test does: carriage returns in the expected files do not count.
    return absl::StrReplaceAll(ReadFileOrDie(base.string() + extension), {{"\r", ""}});
  };
  const std::string expected_creq = read(".creq");
  const std::string expected_sts = read(".sts");
  const std::string expected_authz = read(".authz");
  RawRequest raw = ParseReq(ReadFileOrDie(base.string() + ".req"));

  // Temporary credentials are those whose canonical request signs a token (botocore's rule).
  std::string token;
  for (absl::string_view line : absl::StrSplit(expected_creq, '\n')) {
    if (absl::ConsumePrefix(&line, "x-amz-security-token:")) token = std::string(line);
  }

  http::HttpRequest request;
  request.method = raw.method;
  std::string host;
  for (const auto& [key, value] : raw.headers) {
    if (absl::EqualsIgnoreCase(key, "host")) host = std::string(absl::StripAsciiWhitespace(value));
  }
  request.url = absl::StrCat("https://", host, raw.target);
  request.headers = std::move(raw.headers);
  request.body = std::move(raw.body);

  ASSERT_THAT(SignRequest(request, SuiteCredentials(token), SuiteScope(), SuiteTime()),
              credbroker::testing::IsOk());
  CB_ASSERT_OK_AND_ASSIGN(const std::string creq, CanonicalRequest(request, "service"));
  EXPECT_EQ(creq, expected_creq);
  EXPECT_EQ(StringToSign(creq, SuiteScope(), SuiteTime()), expected_sts);
  EXPECT_EQ(OnlyHeader(request, "Authorization"), expected_authz);
  EXPECT_EQ(OnlyHeader(request, "X-Amz-Date"), "20150830T123600Z");
}

INSTANTIATE_TEST_SUITE_P(Botocore, Aws4TestSuite, ::testing::ValuesIn(SuiteCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string test_name = info.param;
                           for (char& c : test_name) {
                             if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return test_name;
                         });

// Every case folder shipped is run: a case added to testdata without a name above fails here.
TEST(Aws4TestSuiteFiles, EveryShippedCaseRuns) {
  std::set<std::string> shipped;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(SuiteDir())) {
    if (entry.path().extension() == ".req") {
      shipped.insert(
          std::filesystem::relative(entry.path().parent_path(), SuiteDir()).generic_string());
    }
  }
  EXPECT_EQ(shipped, std::set<std::string>(SuiteCases().begin(), SuiteCases().end()));
}

http::HttpRequest Get(std::string url) {
  http::HttpRequest request;
  request.url = std::move(url);
  return request;
}

TEST(SignRequestTest, UnparseableUrlIsInvalidArgumentAndLeavesTheRequestAlone) {
  for (const char* url :
       {"example.amazonaws.com/", "://example.amazonaws.com/", "https:///path", "https://",
        "https://example.amazonaws.com:port/", "https://example.amazonaws.com:99999/",
        "https://[::1/", "https://exa mple.amazonaws.com/", "https://a\r\nX-Injected: 1/"}) {
    http::HttpRequest request = Get(url);
    request.headers = {{"X-Custom", "kept"}};
    EXPECT_THAT(SignRequest(request, SuiteCredentials(), SuiteScope(), SuiteTime()),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << url;
    EXPECT_EQ(request.headers, (http::Headers{{"X-Custom", "kept"}})) << url;
    EXPECT_THAT(CanonicalRequest(request, "service"), StatusIs(absl::StatusCode::kInvalidArgument))
        << url;
  }
}

TEST(SignRequestTest, MalformedCredentialsOrScopeAreInvalidArgument) {
  http::HttpRequest request = Get("https://example.amazonaws.com/");
  AwsCredentials no_key = SuiteCredentials();
  no_key.access_key_id.clear();
  EXPECT_THAT(SignRequest(request, no_key, SuiteScope(), SuiteTime()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  AwsCredentials no_secret = SuiteCredentials();
  no_secret.secret_access_key = core::SecretBytes();
  EXPECT_THAT(SignRequest(request, no_secret, SuiteScope(), SuiteTime()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      SignRequest(request, SuiteCredentials("token\r\nX-Injected: 1"), SuiteScope(), SuiteTime()),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      SignRequest(request, SuiteCredentials(), {.region = "", .service = "service"}, SuiteTime()),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(request.headers.empty());
}

// Expected value: awslabs/aws-c-auth tests/aws-signing-test-suite/v4/get-vanilla-with-session-token
// (context.json gives the token; header-signed-request.txt the Authorization), which botocore
// 1.43.11's SigV4Auth reproduces.
TEST(SignRequestTest, SessionTokenIsAddedAndSigned) {
  constexpr char kToken[] = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
  http::HttpRequest request = Get("https://example.amazonaws.com/");
  request.headers = {{"X-Amz-Security-Token", "stale-token"}};
  CB_ASSERT_OK(SignRequest(request, SuiteCredentials(kToken), SuiteScope(), SuiteTime()));
  EXPECT_EQ(OnlyHeader(request, "X-Amz-Security-Token"), kToken);
  EXPECT_EQ(OnlyHeader(request, "Host"), "example.amazonaws.com");
  EXPECT_EQ(OnlyHeader(request, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amz-security-token, "
            "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
  CB_ASSERT_OK_AND_ASSIGN(const std::string creq, CanonicalRequest(request, "service"));
  EXPECT_THAT(creq, HasSubstr(absl::StrCat("\nx-amz-security-token:", kToken, "\n")));
}

TEST(SignRequestTest, LongTermCredentialsAddNoToken) {
  http::HttpRequest request = Get("https://example.amazonaws.com/");
  CB_ASSERT_OK(SignRequest(request, SuiteCredentials(), SuiteScope(), SuiteTime()));
  EXPECT_TRUE(HeaderValues(request, "X-Amz-Security-Token").empty());
  // get-vanilla, with the Host header derived from the URL.
  EXPECT_THAT(
      OnlyHeader(request, "Authorization"),
      HasSubstr("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

// Expected signature computed with botocore 1.43.11 (SigV4Auth, same credentials, scope, time).
TEST(SignRequestTest, NonDefaultPortIsPartOfTheSignedHost) {
  http::HttpRequest request = Get("https://example.amazonaws.com:8443/");
  CB_ASSERT_OK(SignRequest(request, SuiteCredentials(), SuiteScope(), SuiteTime()));
  EXPECT_EQ(OnlyHeader(request, "Host"), "example.amazonaws.com:8443");
  CB_ASSERT_OK_AND_ASSIGN(const std::string creq, CanonicalRequest(request, "service"));
  EXPECT_THAT(creq, HasSubstr("\nhost:example.amazonaws.com:8443\n"));
  EXPECT_THAT(
      OnlyHeader(request, "Authorization"),
      HasSubstr("Signature=6c603abd17f7fbcfc7898db27fd6c82700a814be690b4fdeb418d9bf88d6df2c"));
}

TEST(SignRequestTest, DefaultPortIsLeftOutOfTheHost) {
  for (const char* url : {"https://example.amazonaws.com:443/", "https://EXAMPLE.amazonaws.com/"}) {
    http::HttpRequest request = Get(url);
    CB_ASSERT_OK(SignRequest(request, SuiteCredentials(), SuiteScope(), SuiteTime()));
    EXPECT_EQ(OnlyHeader(request, "Host"), "example.amazonaws.com") << url;
  }
  http::HttpRequest plain = Get("http://localhost:80/");
  CB_ASSERT_OK(SignRequest(plain, SuiteCredentials(), SuiteScope(), SuiteTime()));
  EXPECT_EQ(OnlyHeader(plain, "Host"), "localhost");
  http::HttpRequest other = Get("http://127.0.0.1:443/");
  CB_ASSERT_OK(SignRequest(other, SuiteCredentials(), SuiteScope(), SuiteTime()));
  EXPECT_EQ(OnlyHeader(other, "Host"), "127.0.0.1:443");
}

TEST(SignRequestTest, ResigningReplacesDateAndAuthorization) {
  http::HttpRequest request = Get("https://example.amazonaws.com/");
  request.headers = {{"x-amz-date", "19990101T000000Z"}};
  CB_ASSERT_OK(
      SignRequest(request, SuiteCredentials(), SuiteScope(), SuiteTime() - absl::Hours(1)));
  CB_ASSERT_OK(SignRequest(request, SuiteCredentials(), SuiteScope(), SuiteTime()));
  EXPECT_EQ(OnlyHeader(request, "X-Amz-Date"), "20150830T123600Z");
  EXPECT_EQ(OnlyHeader(request, "Host"), "example.amazonaws.com");
  EXPECT_EQ(OnlyHeader(request, "Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST(SignRequestTest, UnsignedHeadersStayOutOfTheSignature) {
  http::HttpRequest request = Get("https://example.amazonaws.com/");
  request.headers = {{"User-Agent", "credbroker"},
                     {"Connection", "keep-alive"},
                     {"Expect", "100-continue"},
                     {"X-Amzn-Trace-Id", "Root=1"},
                     {"Transfer-Encoding", "chunked"}};
  CB_ASSERT_OK(SignRequest(request, SuiteCredentials(), SuiteScope(), SuiteTime()));
  EXPECT_THAT(
      OnlyHeader(request, "Authorization"),
      HasSubstr("SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST(CanonicalRequestTest, NonS3PathsAreNormalizedAndEncodedAgainButS3PathsAreNot) {
  http::HttpRequest request = Get("https://example.amazonaws.com/a//b/./c/../d%2Fe f?x=1#frag");
  request.headers = {{"Host", "example.amazonaws.com"}};
  CB_ASSERT_OK_AND_ASSIGN(const std::string other, CanonicalRequest(request, "secretsmanager"));
  EXPECT_THAT(other, ::testing::StartsWith("GET\n/a/b/d%252Fe%20f\nx=1\n"));
  CB_ASSERT_OK_AND_ASSIGN(const std::string s3, CanonicalRequest(request, "s3"));
  EXPECT_THAT(s3, ::testing::StartsWith("GET\n/a//b/./c/../d%2Fe f\nx=1\n"));
}

TEST(CanonicalRequestTest, QueryIsDecodedReencodedAndSortedByKeyThenValue) {
  http::HttpRequest request = Get("https://example.amazonaws.com/?b=2&a=z&a=y&c&d=%7e%2a+&e=x=y");
  CB_ASSERT_OK_AND_ASSIGN(const std::string creq, CanonicalRequest(request, "service"));
  EXPECT_THAT(creq, ::testing::StartsWith("GET\n/\na=y&a=z&b=2&c=&d=~%2A%2B&e=x%3Dy\n"));
}

TEST(CanonicalRequestTest, PayloadHashIsOfTheExactBodyOrTheDeclaredContentSha) {
  http::HttpRequest request = Get("https://example.amazonaws.com/");
  request.method = "POST";
  request.body = "{\"SecretId\": \"a\"}\n";
  CB_ASSERT_OK_AND_ASSIGN(const std::string with_newline, CanonicalRequest(request, "service"));
  request.body.pop_back();
  CB_ASSERT_OK_AND_ASSIGN(const std::string without, CanonicalRequest(request, "service"));
  EXPECT_NE(with_newline.substr(with_newline.rfind('\n')), without.substr(without.rfind('\n')));
  request.headers = {{"X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"}};
  CB_ASSERT_OK_AND_ASSIGN(const std::string declared, CanonicalRequest(request, "s3"));
  EXPECT_THAT(declared, ::testing::EndsWith("\nUNSIGNED-PAYLOAD"));
}

TEST(SignRequestTest, SecretNeverAppearsInAnyOutput) {
  http::HttpRequest request = Get("https://example.amazonaws.com/?Action=ListSecrets");
  request.method = "POST";
  request.body = "{}";
  CB_ASSERT_OK(SignRequest(request, SuiteCredentials("session"), SuiteScope(), SuiteTime()));
  for (const auto& [name, value] : request.headers) {
    EXPECT_THAT(value, Not(HasSubstr(kSecret))) << name;
    EXPECT_THAT(value, Not(HasSubstr("K7MDENG"))) << name;
  }
  EXPECT_THAT(OnlyHeader(request, "Authorization"),
              MatchesRegex("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                           "aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}"));
  CB_ASSERT_OK_AND_ASSIGN(const std::string creq, CanonicalRequest(request, "service"));
  EXPECT_THAT(creq, Not(HasSubstr("K7MDENG")));
  EXPECT_THAT(StringToSign(creq, SuiteScope(), SuiteTime()), Not(HasSubstr("K7MDENG")));

  // Errors name the problem, never the secret (nor the URL, which may carry a credential).
  http::HttpRequest bad = Get("no-scheme/?X-Amz-Credential=x");
  const absl::Status status = SignRequest(bad, SuiteCredentials(), SuiteScope(), SuiteTime());
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("K7MDENG")));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("X-Amz-Credential")));
  std::ostringstream printed;
  printed << SuiteCredentials().secret_access_key;
  EXPECT_EQ(printed.str(), "<redacted>");
}

}  // namespace
}  // namespace credbroker::backends::aws
