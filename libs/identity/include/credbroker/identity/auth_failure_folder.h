// AuthFailureFolder keeps a flood of failed authentications from one peer (a misconfigured client
// retrying, or someone guessing tokens) from flooding the audit log: the first failure from a
// peer in each window is audited, the others are only counted (AuditStats::AuditLinesFolded and
// the answer to the next audited one). Every failure still counts in the caller-auth-failure
// metric and is refused the same way; only its audit line is folded.
//
// Bounded: at most `max_peers` peers are remembered; when that many are in an open window, a
// failure from yet another peer is audited (not folded) rather than evicting one.
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/identity/audit_log.h"

namespace credbroker::identity {

struct AuthFailureFolderOptions {
  absl::Duration window = absl::Minutes(1);
  size_t max_peers = 4096;
};

class AuthFailureFolder {
 public:
  // `stats` may be null.
  AuthFailureFolder(AuthFailureFolderOptions options, const core::Clock* clock, AuditStats* stats)
      : options_(options), clock_(clock), stats_(stats) {}

  // A failed authentication from `peer`: nullopt when its audit line is folded; otherwise it is
  // audited, and the value is how many failures from that peer were folded since the last one
  // audited.
  std::optional<uint64_t> Admit(absl::string_view peer) ABSL_LOCKS_EXCLUDED(mu_);

  // The peer of a gRPC call ("ipv4:10.0.0.7:51234") without its port: a client reconnecting
  // stays one peer.
  static std::string PeerAddress(absl::string_view grpc_peer);

 private:
  struct Window {
    absl::Time ends;
    uint64_t folded = 0;
  };
  const AuthFailureFolderOptions options_;
  const core::Clock* const clock_;
  AuditStats* const stats_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Window> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::identity
