// TokenSource is the one seam through which a backend gets its own credential (a Vault token, AWS
// temporary keys from IRSA or Pod Identity, a GCP or Azure access token): Fetch() answers the
// credential to use now. CachingTokenSource is the one decorator that caches and refreshes it, so
// providers only know how to obtain a credential, never when.
//
// T is the credential type and has a member `absl::Time expires_at` (absl::InfiniteFuture() for
// one that never expires). Credentials are handed out as shared_ptr<const T>: a caller keeps
// using the one it got while a refresh replaces the cached one.
//
// CachingTokenSource:
//  - serves the cached credential until only min(refresh_margin, half its lifetime) of it is
//    left (lifetime = expires_at minus the time it was obtained); from that instant on, the next
//    call fetches a new one. A credential that never expires is never refreshed.
//  - is single-flight: callers that need a credential while a fetch is in progress wait for that
//    fetch and share its result (the credential or the error). While the cached credential is
//    still valid, callers are not held up by a refresh in progress: they get the cached one.
//  - when a refresh fails while the cached credential has not expired, keeps serving it (logging
//    a warning) and tries again on the next call; once it has expired, the error is returned.
//  - Invalidate(rejected) drops the cached credential if it is still `rejected` (the backend
//    answered 401/403 to it: revoked or expired early), so the next Fetch gets a new one.
//  - reports every fetch of the inner source to `on_fetch` ("ok" or "error"); backends pass
//    secrets::SourceStats::TokenRefresh.
//
// Errors: whatever the inner source returns (providers document theirs), annotated by nothing
// here. Fetch never puts the credential in a status or a log line.
// Thread-safety: CachingTokenSource is safe for concurrent use; TokenSource implementations wrapped
// by it are called by one thread at a time.
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/log.h"

namespace credbroker::http {

template <typename T>
class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // The credential to use now, or why there is none.
  virtual absl::StatusOr<std::shared_ptr<const T>> Fetch() = 0;
  // The backend refused `rejected` (401/403): a caching source stops serving it. Part of the
  // seam so that a backend holding any TokenSource can report it; plain providers ignore it.
  virtual void Invalidate(const T* rejected) {}
};

struct CachingTokenSourceOptions {
  // Refresh when this much (or half the credential's lifetime, if less) is left.
  absl::Duration refresh_margin = absl::Minutes(5);
  // Names the credential in log lines ("aws/prod web identity").
  std::string name;
  // Called after each fetch of the inner source with "ok" or "error"; unset: nothing reported.
  std::function<void(absl::string_view result)> on_fetch;
};

template <typename T>
class CachingTokenSource final : public TokenSource<T> {
 public:
  // `clock` must outlive this object.
  CachingTokenSource(std::unique_ptr<TokenSource<T>> inner, const core::Clock* clock,
                     CachingTokenSourceOptions options = {})
      : inner_(std::move(inner)), clock_(clock), options_(std::move(options)) {}

  absl::StatusOr<std::shared_ptr<const T>> Fetch() override;

  // Drops the cached credential if it is `rejected`. Pass the pointer of a credential this source
  // returned, while still holding it (so the address cannot have been reused).
  void Invalidate(const T* rejected) override {
    absl::MutexLock lock(&mu_);
    if (cached_ != nullptr && cached_.get() == rejected) cached_.reset();
  }

 private:
  // One fetch of the inner source, shared by every caller that waits for it.
  struct Flight {
    bool done = false;
    absl::StatusOr<std::shared_ptr<const T>> result;
  };

  // The instant from which `credential`, obtained at `obtained_at`, is refreshed.
  absl::Time RefreshAt(const T& credential, absl::Time obtained_at) const {
    if (credential.expires_at == absl::InfiniteFuture()) return absl::InfiniteFuture();
    const absl::Duration half_life = (credential.expires_at - obtained_at) / 2;
    return credential.expires_at - std::min(options_.refresh_margin, half_life);
  }

  // Stores the inner source's answer and decides what the flight's callers get.
  absl::StatusOr<std::shared_ptr<const T>> Complete(
      absl::StatusOr<std::shared_ptr<const T>> fetched) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::unique_ptr<TokenSource<T>> inner_;
  const core::Clock* const clock_;
  const CachingTokenSourceOptions options_;

  absl::Mutex mu_;
  std::shared_ptr<const T> cached_ ABSL_GUARDED_BY(mu_);
  absl::Time refresh_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::shared_ptr<Flight> flight_ ABSL_GUARDED_BY(mu_);
};

template <typename T>
absl::StatusOr<std::shared_ptr<const T>> CachingTokenSource<T>::Fetch() {
  std::shared_ptr<Flight> flight;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    if (cached_ != nullptr && now < refresh_at_) return cached_;
    if (flight_ != nullptr) {
      // A refresh is under way: a still-valid credential needs no waiting.
      if (cached_ != nullptr && now < cached_->expires_at) return cached_;
      flight = flight_;
      mu_.Await(absl::Condition(&flight->done));
      return flight->result;
    }
    flight = std::make_shared<Flight>();
    flight_ = flight;
  }
  absl::StatusOr<std::shared_ptr<const T>> fetched = inner_->Fetch();
  if (fetched.ok() && *fetched == nullptr) {
    fetched = absl::InternalError("token source answered no credential");
  }
  if (options_.on_fetch) options_.on_fetch(fetched.ok() ? "ok" : "error");
  absl::MutexLock lock(&mu_);
  flight->result = Complete(std::move(fetched));
  flight->done = true;
  flight_.reset();
  return flight->result;
}

template <typename T>
absl::StatusOr<std::shared_ptr<const T>> CachingTokenSource<T>::Complete(
    absl::StatusOr<std::shared_ptr<const T>> fetched) {
  const absl::Time now = clock_->Now();
  if (fetched.ok()) {
    cached_ = *fetched;
    refresh_at_ = RefreshAt(*cached_, now);
    return cached_;
  }
  if (cached_ != nullptr && now < cached_->expires_at) {
    core::LogWarning("credential refresh failed: serving the cached one until it expires",
                     {{"credential", options_.name},
                      {"expires_in", absl::FormatDuration(cached_->expires_at - now)},
                      {"error", fetched.status().ToString()}});
    return cached_;
  }
  return fetched.status();
}

}  // namespace credbroker::http
