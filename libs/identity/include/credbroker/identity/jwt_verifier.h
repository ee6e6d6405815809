// Offline verification of Kubernetes projected service-account tokens (JWTs).
//
// Accepts only RS256 and ES256 (so "none" and HS256 key-confusion tokens fail), finds the key by
// `kid` in a JWKS (from a file or the cluster's /openid/v1/jwks), checks `iss`, that the
// configured audience is in `aud`, and `exp`/`nbf` with a small leeway, and derives the
// identity "<namespace>/<serviceaccount>". The keys are re-read periodically and when a token
// names an unknown `kid` (at most every 10 s), always on the verifier's own thread, one fetch at a
// time: tokens signed with known keys keep verifying meanwhile, and a token with an unknown kid
// waits up to 2 s for the fetch. Verified tokens are cached until they expire so the hot path
// does not redo RSA/ECDSA.
//
// Errors: UNAUTHENTICATED with a reason — MALFORMED_CREDENTIALS, UNSUPPORTED_ALG, UNKNOWN_KID,
// BAD_SIGNATURE, TOKEN_EXPIRED, NOT_YET_VALID, WRONG_AUDIENCE, UNKNOWN_ISSUER. Messages never
// contain the token.
// Thread-safety: safe for concurrent use.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/core/clock.h"
#include "credbroker/identity/authenticator.h"

namespace credbroker::identity {

// Where the JWKS document comes from (file, URL); returns its JSON text.
using JwksFetcher = std::function<absl::StatusOr<std::string>()>;

struct JwtVerifierOptions {
  std::string issuer;
  std::string audience;
  absl::Duration leeway = absl::Seconds(30);
  absl::Duration refresh_interval = absl::Hours(1);
  size_t max_cached_tokens = 10000;
};

struct VerifiedToken {
  Identity identity;
  absl::Time expires_at;
};

class JwtVerifier {
 public:
  // Fetches the keys once; fails (UNAVAILABLE / INVALID_ARGUMENT) when they cannot be loaded.
  static absl::StatusOr<std::unique_ptr<JwtVerifier>> Create(JwtVerifierOptions options,
                                                             JwksFetcher fetcher,
                                                             const core::Clock* clock);
  ~JwtVerifier();

  absl::StatusOr<VerifiedToken> Verify(absl::string_view token);

  // Signature checks performed (cache misses that got as far as the key): for tests and metrics.
  int64_t signature_checks() const { return signature_checks_.load(); }
  size_t key_count() const;

 private:
  struct Keys;
  JwtVerifier(JwtVerifierOptions options, JwksFetcher fetcher, const core::Clock* clock);
  // Fetches and installs the keys (takes keys_mu_ only to install them).
  absl::Status Reload() ABSL_LOCKS_EXCLUDED(keys_mu_);
  absl::StatusOr<VerifiedToken> VerifyUncached(absl::string_view token);
  // The fetch thread: one Reload per request, however many requests arrived meanwhile.
  void RunFetches();
  // Asks the fetch thread for a fetch; returns the number of the fetch that will serve it.
  uint64_t RequestFetch() ABSL_LOCKS_EXCLUDED(fetch_mu_);
  // Waits (up to 2 s) for that fetch to finish; false when it did not in time.
  bool AwaitFetch(uint64_t fetch) ABSL_LOCKS_EXCLUDED(fetch_mu_);

  const JwtVerifierOptions options_;
  JwksFetcher fetcher_;
  const core::Clock* const clock_;
  mutable absl::Mutex keys_mu_;
  std::shared_ptr<const Keys> keys_ ABSL_GUARDED_BY(keys_mu_);
  absl::Time last_fetch_ ABSL_GUARDED_BY(keys_mu_) = absl::InfinitePast();
  absl::Time last_kid_refresh_ ABSL_GUARDED_BY(keys_mu_) = absl::InfinitePast();
  absl::Mutex fetch_mu_;
  bool fetch_requested_ ABSL_GUARDED_BY(fetch_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(fetch_mu_) = false;
  uint64_t fetches_started_ ABSL_GUARDED_BY(fetch_mu_) = 0;
  uint64_t fetches_done_ ABSL_GUARDED_BY(fetch_mu_) = 0;
  std::thread fetch_thread_;  // started by Create once the first keys are in
  absl::Mutex cache_mu_;
  absl::flat_hash_map<std::string, VerifiedToken> cache_ ABSL_GUARDED_BY(cache_mu_);
  std::atomic<int64_t> signature_checks_{0};
};

// Parses a JWKS document; returns how many usable signing keys it holds (RSA ≥ 2048 bits,
// EC P-256). For config checks and tests.
absl::StatusOr<size_t> CountJwksKeys(absl::string_view jwks_json);

// Authenticates bearer tokens that look like JWTs with the verifier.
class KubernetesJwtAuthenticator final : public Authenticator {
 public:
  explicit KubernetesJwtAuthenticator(std::unique_ptr<JwtVerifier> verifier)
      : verifier_(std::move(verifier)) {}
  absl::StatusOr<Identity> Authenticate(const RequestCredentials& creds) const override;
  JwtVerifier& verifier() const { return *verifier_; }

 private:
  std::unique_ptr<JwtVerifier> verifier_;
};

}  // namespace credbroker::identity
