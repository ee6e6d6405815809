#include <algorithm>
#include <cmath>
#include <random>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "credbroker/http/http_client.h"

namespace credbroker::http {
namespace {

class RealSleeper final : public Sleeper {
 public:
  void Sleep(absl::Duration d) override { absl::SleepFor(d); }
};

double DefaultJitter() {
  static absl::Mutex mu(absl::kConstInit);
  static auto* rng = new std::mt19937_64(std::random_device{}());
  absl::MutexLock lock(&mu);
  return std::uniform_real_distribution<double>(0.0, 1.0)(*rng);
}

}  // namespace

Sleeper* Sleeper::Real() {
  static auto* const kSleeper = new RealSleeper();
  return kSleeper;
}

bool IsRetryable(const absl::StatusOr<HttpResponse>& result) {
  if (!result.ok()) {
    return result.status().code() == absl::StatusCode::kUnavailable ||
           result.status().code() == absl::StatusCode::kDeadlineExceeded;
  }
  switch (result->status) {
    case 412:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return true;
    default:
      return false;
  }
}

RetryingHttpClient::RetryingHttpClient(HttpClient* inner, RetryPolicy policy, Sleeper* sleeper,
                                       std::function<double()> jitter)
    : inner_(inner),
      policy_(policy),
      sleeper_(sleeper),
      jitter_(jitter ? std::move(jitter) : DefaultJitter) {}

absl::StatusOr<HttpResponse> RetryingHttpClient::Send(const HttpRequest& request) {
  absl::StatusOr<HttpResponse> result = inner_->Send(request);
  for (int attempt = 1; attempt < policy_.max_attempts && IsRetryable(result); ++attempt) {
    absl::Duration cap = std::min(
        policy_.max_backoff, policy_.initial_backoff * std::pow(policy_.multiplier, attempt - 1));
    sleeper_->Sleep(cap * jitter_());
    result = inner_->Send(request);
  }
  return result;
}

}  // namespace credbroker::http
