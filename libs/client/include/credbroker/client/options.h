// What a service tells the client library: where the broker is, how to reach it (plaintext on
// loopback or in a mesh, TLS, mutual TLS), who it is (a bearer token, usually the projected
// service-account token file, re-read when the kubelet rotates it), and how patient to be.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "credbroker/client/caller_token.h"

namespace credbroker::client {

struct TlsOptions {
  // PEM bundle the broker's certificate must chain to; empty: the system roots.
  std::string ca_file;
  // Client certificate and key (mutual TLS); both or neither.
  std::string cert_file;
  std::string key_file;
  // The name the broker's certificate must carry when it differs from the address's host.
  std::string server_name;
};

struct RetryPolicy {
  // Attempts per call when the broker is UNAVAILABLE (restarting, a replica going away).
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(2);
};

struct ClientOptions {
  // HOST:PORT of the broker ("credbroker.credbroker.svc:7443").
  std::string address;
  // Absent: plaintext (loopback, or a mesh that encrypts).
  std::optional<TlsOptions> tls;
  // The caller's bearer token; null when the client certificate is the identity.
  std::shared_ptr<CallerToken> token;
  // Deadline of each call.
  absl::Duration rpc_timeout = absl::Seconds(5);
  // Longest wait between attempts to reconnect to a broker that went away (gRPC's own default,
  // 120 s, would outlast short leases across a broker restart).
  absl::Duration max_reconnect_backoff = absl::Seconds(1);
  RetryPolicy retry;
};

}  // namespace credbroker::client
