// LeaseClient: what a service holds instead of an API key in an environment variable.
//
//   auto connection = credbroker::client::MakeLeaseConnection(
//       {.address = "credbroker.credbroker.svc:7443",
//        .token = std::make_shared<credbroker::client::TokenFile>(
//            "/var/run/secrets/credbroker/token")});
//   credbroker::client::LeaseClient broker(*connection);
//   auto header = broker.AuthorizationHeader("lumenfall");   // {"Authorization", "Bearer ..."}
//   auto base_url = broker.BaseUrl("lumenfall");
//
// It keeps one lease per provider it was asked for: acquired on first use, renewed in the
// background once `renew_fraction` of its lifetime has passed (and moved to the new key before a
// retiring key's retire time), and following WatchKeys: ROTATED re-acquires (the new key), and
// RETIRED, QUARANTINED or REVOKED of the held key drop it at once (the next call acquires the
// current one). A renewal the broker refuses because it forgot the lease (a restart without
// persistent state) or because the key retired re-acquires. While the broker cannot be reached
// the held lease serves until it expires, never after: then the call fails with UNAVAILABLE.
// The key is in the header and the lease: never log either (use key_fingerprint).
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/client/lease_connection.h"

namespace credbroker::client {

struct LeaseClientOptions {
  // Requested lease lifetime; zero: the broker's default.
  absl::Duration ttl = absl::ZeroDuration();
  // For the audit log ("nightly-batch"); never used for decisions.
  std::string purpose;
  // Renew once this fraction of the lease's lifetime has passed.
  double renew_fraction = 2.0 / 3.0;
  // Move to the current key this long before a held (PREVIOUS) key retires.
  absl::Duration retire_margin = absl::Minutes(1);
  // Follow WatchKeys (off: renewals only, for tests of the caller's own code).
  bool watch = true;
  // Wait before reconnecting a broken WatchKeys stream, and between failed renewals.
  absl::Duration retry_interval = absl::Seconds(1);
};

class LeaseClient {
 public:
  struct Header {
    std::string name;   // "Authorization"
    std::string value;  // "Bearer <key>"
  };

  explicit LeaseClient(std::shared_ptr<LeaseConnection> connection,
                       LeaseClientOptions options = {});
  // Stops following the broker and releases the leases held (one attempt each).
  ~LeaseClient();
  LeaseClient(const LeaseClient&) = delete;
  LeaseClient& operator=(const LeaseClient&) = delete;

  // The header for a call to `provider` now.
  absl::StatusOr<Header> AuthorizationHeader(const std::string& provider) ABSL_LOCKS_EXCLUDED(mu_);
  // Where to send it (the provider's configured base URL).
  absl::StatusOr<std::string> BaseUrl(const std::string& provider) ABSL_LOCKS_EXCLUDED(mu_);
  // The lease held for `provider` (acquired first if none is usable). Holds the key.
  absl::StatusOr<v1::Lease> CurrentLease(const std::string& provider) ABSL_LOCKS_EXCLUDED(mu_);
  // Tells the broker the provider answered `http_status` (401, 403, 429) to the held key, with
  // its error code and body if any (never the key); moves to a newer key when the broker says
  // there is one. Returns the broker's classification of the answer.
  absl::StatusOr<std::string> ReportAuthFailure(const std::string& provider, int http_status,
                                                const std::string& error_code = "",
                                                const std::string& body = "")
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Held {
    v1::Lease lease;
    absl::Time expires_at;
    // When this client received the current grant (acquire or renewal), by its own clock.
    absl::Time received;
    // When the background thread renews (or re-acquires) it next.
    absl::Time due;
    // Re-acquire at the next chance (a newer key is CURRENT); the lease still serves meanwhile.
    bool stale = false;
    // The key was retired, quarantined or revoked: never served again; re-acquire.
    bool dropped = false;
    // A stale lease is re-acquired on use only from then on (an acquire just failed).
    absl::Time retry_after = absl::InfinitePast();
  };

  // A usable lease for `provider`, acquiring one if none is held, expired or dropped.
  absl::StatusOr<v1::Lease> Usable(const std::string& provider) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Lease> Acquire(const std::string& provider) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes `lease` as the held one for its provider; releases the one it replaces.
  void Hold(v1::Lease lease) ABSL_LOCKS_EXCLUDED(mu_);
  // When to renew `lease`, received at `received`.
  absl::Time DueFor(const v1::Lease& lease, absl::Time received) const;
  void Maintain(const std::string& provider, const Held& held) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `provider`'s held lease is no longer `lease_id` (a caller acquired meanwhile).
  bool Replaced(const std::string& provider, const std::string& lease_id) ABSL_LOCKS_EXCLUDED(mu_);
  void OnEvent(const v1::KeyEvent& event) ABSL_LOCKS_EXCLUDED(mu_);
  void RenewLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void WatchLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void ReleaseQuietly(const std::string& lease_id);
  // Marks the held lease of `provider` dropped (its key may not be used again).
  void Drop(Held& held) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<LeaseConnection> connection_;
  const LeaseClientOptions options_;

  absl::Mutex mu_;
  absl::CondVar changed_;
  absl::flat_hash_map<std::string, Held> held_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<KeyEventStream> stream_ ABSL_GUARDED_BY(mu_);
  // Leases replaced or dropped, for the background thread to release.
  std::vector<std::string> to_release_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread renewer_;
  std::thread watcher_;
};

}  // namespace credbroker::client
