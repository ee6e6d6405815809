// LeaseConnection: one broker's lease API as plain calls (google-cloud-cpp's *Connection): each
// call gets the options' deadline and bearer token, is retried with backoff while the broker is
// UNAVAILABLE (a restart, a replica going away), and returns absl::Status with the broker's
// reason attached (core::ReasonOf: NO_RULE, KEY_RETIRED, ...). LeaseClient is built on it;
// services mock it (mock_lease_connection.h) to test their own code without a broker.
// Thread-safety: safe for concurrent use.
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "credbroker/client/options.h"
#include "credbroker/v1/lease.pb.h"

namespace credbroker::client {

// The WatchKeys stream.
class KeyEventStream {
 public:
  virtual ~KeyEventStream() = default;
  // The next event; nullopt once the broker ended the stream; an error when it broke.
  virtual absl::StatusOr<std::optional<v1::KeyEvent>> Next() = 0;
  // Ends a Next() blocked on another thread (it returns CANCELLED). Safe from any thread.
  virtual void Cancel() = 0;
};

class LeaseConnection {
 public:
  virtual ~LeaseConnection() = default;
  virtual absl::StatusOr<v1::Lease> AcquireLease(const v1::AcquireLeaseRequest& request) = 0;
  virtual absl::StatusOr<v1::Lease> RenewLease(const v1::RenewLeaseRequest& request) = 0;
  virtual absl::Status ReleaseLease(const v1::ReleaseLeaseRequest& request) = 0;
  virtual absl::StatusOr<v1::ReportAuthFailureResponse> ReportAuthFailure(
      const v1::ReportAuthFailureRequest& request) = 0;
  // A stream with no deadline (cancel it to end it). Never null.
  virtual std::unique_ptr<KeyEventStream> WatchKeys(const v1::WatchKeysRequest& request) = 0;
};

// The channel MakeLeaseConnection(options) uses: plaintext, or TLS/mTLS per options.tls, with
// the bounded reconnect backoff. INVALID_ARGUMENT for a TLS file that cannot be read or half a
// client certificate. For the caller's other stubs on the same broker (credctl's admin calls).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ClientOptions& options);

// A connection to options.address. INVALID_ARGUMENT for an empty address, a TLS file that
// cannot be read, or half a client certificate.
absl::StatusOr<std::shared_ptr<LeaseConnection>> MakeLeaseConnection(const ClientOptions& options);

// The same over a channel of the caller's (address and tls in `options` are not used).
std::shared_ptr<LeaseConnection> MakeLeaseConnection(std::shared_ptr<grpc::Channel> channel,
                                                     const ClientOptions& options);

}  // namespace credbroker::client
