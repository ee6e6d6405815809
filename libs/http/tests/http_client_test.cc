#include "credbroker/http/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::http {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ScriptedClient final : public HttpClient {
 public:
  void Then(absl::StatusOr<HttpResponse> r) { script_.push_back(std::move(r)); }
  void ThenStatus(int status) {
    HttpResponse r;
    r.status = status;
    Then(r);
  }
  absl::StatusOr<HttpResponse> Send(const HttpRequest&) override {
    ++calls;
    auto r = script_.front();
    script_.pop_front();
    return r;
  }
  int calls = 0;

 private:
  std::deque<absl::StatusOr<HttpResponse>> script_;
};

class RecordingSleeper final : public Sleeper {
 public:
  void Sleep(absl::Duration d) override { slept.push_back(d); }
  std::vector<absl::Duration> slept;
};

TEST(RetryingHttpClientTest, RetriesTransientAnswersWithExactBackoffSequence) {
  ScriptedClient inner;
  inner.ThenStatus(503);
  inner.Then(absl::UnavailableError("connection refused"));
  inner.ThenStatus(429);
  inner.ThenStatus(200);
  RecordingSleeper sleeper;
  RetryPolicy policy{/*max_attempts=*/5, absl::Milliseconds(100), absl::Milliseconds(300), 2.0};
  RetryingHttpClient client(&inner, policy, &sleeper, [] { return 0.5; });
  auto r = client.Send(HttpRequest{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(inner.calls, 4);
  // Caps 100ms, 200ms, 300ms (max) with jitter 0.5.
  EXPECT_THAT(sleeper.slept, ElementsAre(absl::Milliseconds(50), absl::Milliseconds(100),
                                         absl::Milliseconds(150)));
}

TEST(RetryingHttpClientTest, NeverRetriesAuthOrRequestErrors) {
  for (int status : {400, 401, 403, 404, 405}) {
    ScriptedClient inner;
    inner.ThenStatus(status);
    RecordingSleeper sleeper;
    RetryingHttpClient client(&inner, RetryPolicy{}, &sleeper, [] { return 0.5; });
    auto r = client.Send(HttpRequest{});
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->status, status);
    EXPECT_EQ(inner.calls, 1) << status;
    EXPECT_TRUE(sleeper.slept.empty());
  }
}

TEST(RetryingHttpClientTest, GivesUpAfterMaxAttemptsWithTheLastAnswer) {
  ScriptedClient inner;
  for (int i = 0; i < 3; ++i) inner.ThenStatus(503);
  RecordingSleeper sleeper;
  RetryingHttpClient client(&inner, RetryPolicy{3, absl::Seconds(1), absl::Seconds(10), 3.0},
                            &sleeper, [] { return 1.0; });
  auto r = client.Send(HttpRequest{});
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(inner.calls, 3);
  EXPECT_THAT(sleeper.slept, ElementsAre(absl::Seconds(1), absl::Seconds(3)));
}

TEST(IsRetryableTest, Classification) {
  EXPECT_TRUE(IsRetryable(absl::DeadlineExceededError("t")));
  EXPECT_FALSE(IsRetryable(absl::FailedPreconditionError("tls")));
  HttpResponse r;
  r.status = 412;
  EXPECT_TRUE(IsRetryable(r));
  r.status = 501;
  EXPECT_FALSE(IsRetryable(r));
}

// A one-connection HTTP server on 127.0.0.1:0 that records the request and answers `reply`.
class OneShotServer {
 public:
  explicit OneShotServer(std::string reply, bool answer = true) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::listen(fd_, 1);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (answer) {
      thread_ = std::thread([this] {
        int c = ::accept(fd_, nullptr, nullptr);
        char buf[8192];
        ssize_t n;
        while ((n = ::read(c, buf, sizeof(buf))) > 0) {
          request_.append(buf, static_cast<size_t>(n));
          size_t end = request_.find("\r\n\r\n");
          if (end == std::string::npos) continue;
          size_t cl = request_.find("Content-Length: ");
          size_t want = cl == std::string::npos ? 0 : std::stoul(request_.substr(cl + 16));
          if (request_.size() >= end + 4 + want) break;
        }
        (void)!::write(c, reply_.data(), reply_.size());
        ::close(c);
      });
    }
  }
  ~OneShotServer() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  std::string reply_;
  int fd_;
  int port_;
  std::thread thread_;
  std::string request_;
};

TEST(CurlHttpClientTest, SendsMethodHeadersBodyAndReadsTheAnswer) {
  OneShotServer server(
      "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Thing: a b\r\n"
      "Content-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}");
  auto client = CurlHttpClient::Create(TlsOptions{});
  ASSERT_THAT(client, IsOk());
  HttpRequest req;
  req.method = "POST";
  req.url = server.url("/v1/secret/data/x");
  req.headers = {{"X-Vault-Token", "t0k"}, {"Content-Type", "application/json"}};
  req.body = R"({"data":{}})";
  auto r = (*client)->Send(req);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->body, "{\"ok\":true}");
  EXPECT_EQ(r->Header("x-thing"), "a b");
  EXPECT_EQ(r->Header("Content-Type"), "application/json");
  std::string seen = server.request();
  EXPECT_THAT(seen, HasSubstr("POST /v1/secret/data/x HTTP/1.1"));
  EXPECT_THAT(seen, HasSubstr("X-Vault-Token: t0k"));
  EXPECT_THAT(seen, HasSubstr(R"({"data":{}})"));
  EXPECT_THAT(seen, ::testing::Not(HasSubstr("Expect:")));
}

TEST(CurlHttpClientTest, ABodyOverTheLimitIsRefused) {
  auto client = CurlHttpClient::Create(TlsOptions{});
  ASSERT_THAT(client, IsOk());
  const std::string body(2000, 'a');
  // Announced (Content-Length) and unannounced (read until close) bodies alike.
  for (const std::string& length : {std::string("Content-Length: 2000\r\n"), std::string()}) {
    OneShotServer server(
        absl::StrCat("HTTP/1.1 200 OK\r\n", length, "Connection: close\r\n\r\n", body));
    HttpRequest req;
    req.url = server.url("/jwks");
    req.max_response_bytes = 1000;
    EXPECT_THAT((*client)->Send(req),
                StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("larger than 1000 bytes")))
        << length;
  }
  OneShotServer exact("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body);
  HttpRequest req;
  req.url = exact.url("/jwks");
  req.max_response_bytes = 2000;
  auto r = (*client)->Send(req);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->body.size(), 2000u);
}

TEST(CurlHttpClientTest, ConnectionRefusedIsUnavailable) {
  int port;
  {
    OneShotServer closed("", /*answer=*/false);
    port = std::stoi(closed.url("").substr(17));
  }
  auto client = CurlHttpClient::Create(TlsOptions{});
  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  EXPECT_THAT((*client)->Send(req), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(CurlHttpClientTest, SilentServerTimesOut) {
  OneShotServer silent("", /*answer=*/false);  // accepts into the backlog, never answers
  auto client = CurlHttpClient::Create(TlsOptions{});
  HttpRequest req;
  req.url = silent.url("/");
  req.timeout = absl::Milliseconds(300);
  EXPECT_THAT((*client)->Send(req), StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(CurlHttpClientTest, UnreadableTlsFilesAreConfigErrors) {
  EXPECT_THAT(CurlHttpClient::Create(TlsOptions{"/nonexistent/ca.pem", "", ""}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/nonexistent/ca.pem")));
  EXPECT_THAT(CurlHttpClient::Create(TlsOptions{"", "/etc/hostname", ""}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace credbroker::http
