// The one HTTP client used by backends and probes: a small interface (so tests use fakes), a
// libcurl implementation with TLS options and timeouts, and a retrying decorator with jittered
// exponential backoff.
//
// Errors from Send are transport errors only — an HTTP error status is a successful Send whose
// response carries the status: UNAVAILABLE (connection refused/reset, DNS), DEADLINE_EXCEEDED
// (timeout), FAILED_PRECONDITION (TLS verification failed: retrying will not help),
// INVALID_ARGUMENT (malformed URL), RESOURCE_EXHAUSTED (the response body is larger than the
// request allows: a misbehaving or hostile server cannot make the broker buffer without bound).
// Request headers may carry credentials: nothing here logs requests.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace credbroker::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;
  absl::Duration timeout = absl::Seconds(10);
  // The largest response body accepted. Secrets, JWKS documents and probe answers are a few KiB.
  size_t max_response_bytes = 1 << 20;
};

struct HttpResponse {
  int status = 0;
  std::string body;
  Headers headers;  // names lowercased
  // The first header with this (case-insensitive) name, or "".
  std::string Header(absl::string_view name) const;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;
};

struct TlsOptions {
  // PEM bundle of CAs to trust instead of the system store; empty = system store.
  std::string ca_file;
  // Optional client certificate and key (PEM) for mutual TLS.
  std::string client_cert_file;
  std::string client_key_file;
};

class CurlHttpClient final : public HttpClient {
 public:
  // INVALID_ARGUMENT when a configured TLS file is not readable.
  static absl::StatusOr<std::unique_ptr<CurlHttpClient>> Create(
      TlsOptions tls, absl::Duration connect_timeout = absl::Seconds(5));
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;

 private:
  CurlHttpClient(TlsOptions tls, absl::Duration connect_timeout)
      : tls_(std::move(tls)), connect_timeout_(connect_timeout) {}
  const TlsOptions tls_;
  const absl::Duration connect_timeout_;
};

// Sleeps for retries; tests substitute one that records the sequence.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual void Sleep(absl::Duration d) = 0;
  static Sleeper* Real();
};

struct RetryPolicy {
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
  double multiplier = 2.0;
};

// True for answers worth retrying: transport errors (UNAVAILABLE, DEADLINE_EXCEEDED) and HTTP
// 412, 429, 500, 502, 503, 504. Never 4xx auth or request errors.
bool IsRetryable(const absl::StatusOr<HttpResponse>& result);

// Retries retryable answers with exponential backoff and full jitter: the n-th wait is
// uniform in [0, min(max_backoff, initial * multiplier^n)]. `jitter` returns values in [0, 1).
class RetryingHttpClient final : public HttpClient {
 public:
  RetryingHttpClient(HttpClient* inner, RetryPolicy policy, Sleeper* sleeper,
                     std::function<double()> jitter = nullptr);
  // Returns the last answer when every attempt was retryable.
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;

 private:
  HttpClient* const inner_;
  const RetryPolicy policy_;
  Sleeper* const sleeper_;
  std::function<double()> jitter_;
};

}  // namespace credbroker::http
