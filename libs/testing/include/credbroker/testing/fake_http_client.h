// An HttpClient that answers from a handler function and records every request, for tests of
// code that talks to providers and key APIs.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "credbroker/http/http_client.h"

namespace credbroker::testing {

class FakeHttpClient final : public http::HttpClient {
 public:
  using Handler = std::function<absl::StatusOr<http::HttpResponse>(const http::HttpRequest&)>;
  explicit FakeHttpClient(Handler handler) : handler_(std::move(handler)) {}

  absl::StatusOr<http::HttpResponse> Send(const http::HttpRequest& request) override {
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
    }
    return handler_(request);
  }
  std::vector<http::HttpRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  static http::HttpResponse Answer(int status, std::string body = "") {
    http::HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }

 private:
  Handler handler_;
  mutable absl::Mutex mu_;
  std::vector<http::HttpRequest> requests_ ABSL_GUARDED_BY(mu_);
};

// The value of `name` in `request`'s headers, or "".
inline std::string HeaderOf(const http::HttpRequest& request, absl::string_view name) {
  for (const auto& [k, v] : request.headers) {
    if (k == name) return v;
  }
  return "";
}

}  // namespace credbroker::testing
