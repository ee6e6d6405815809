// EtcdClient: the one connection of a broker to an etcd cluster, over etcd's v3 gRPC API (the
// KV, Lease, Watch and Auth services of etcdserverpb). It knows the cluster's endpoints and moves
// to the next one when the current one is unreachable, bounds every call by the request timeout,
// speaks TLS (with a client certificate) when configured, and logs in with a user name and
// password when configured (the token is sent as etcd's `token` metadata and renewed when etcd
// says it is no longer valid).
//
// Reads (Range) move on to the next endpoint within their deadline. Writes (Txn) move on only when
// they were certainly not applied (gRPC could not connect, or the member had no leader): a write
// whose outcome is unknown (the call failed after it was sent) is reported UNAVAILABLE and not
// repeated, since repeating a compare-and-swap could make the first attempt look like a conflict;
// the next call goes to the next endpoint.
//
// Errors: UNAVAILABLE with reason STATE_UNAVAILABLE (etcd unreachable, no leader, timed out),
// OUT_OF_RANGE (a revision that etcd compacted), PERMISSION_DENIED / UNAUTHENTICATED (etcd's
// authentication refused the user), INVALID_ARGUMENT (etcd refused the request), INTERNAL.
// Thread-safety: safe for concurrent use.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/state/state_stats.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace credbroker::state::etcd {

struct EtcdClientOptions {
  // host:port of each member's client URL.
  std::vector<std::string> endpoints;
  // How long connecting to one endpoint may take.
  absl::Duration dial_timeout = absl::Seconds(5);
  // The bound on every call (a write, a read, a lease grant).
  absl::Duration request_timeout = absl::Seconds(2);
  // PEM contents; all empty: plaintext. `ca` alone: TLS; with `cert` and `key`: mutual TLS.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // etcd's own authentication (`etcdctl user add`); empty user name: none.
  std::string username;
  std::string password;
  // Where calls are counted and timed; null: nowhere. Must outlive the client.
  StateStats* stats = nullptr;
};

class EtcdClient {
 public:
  // Connects lazily: Create fails only on bad options, never because etcd is down.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(const EtcdClientOptions& options);
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;
  ~EtcdClient() = default;

  // Each call ends by the request timeout, or by `deadline` when that comes first.
  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& request,
                                                    absl::Time deadline = absl::InfiniteFuture());
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& request,
                                                absl::Time deadline = absl::InfiniteFuture());
  // A new etcd lease of `ttl` (rounded up to whole seconds); returns its id.
  absl::StatusOr<int64_t> GrantLease(absl::Duration ttl,
                                     absl::Time deadline = absl::InfiniteFuture());
  // Renews the lease once; returns its remaining TTL. NOT_FOUND when it has expired.
  absl::StatusOr<absl::Duration> KeepAliveOnce(int64_t lease_id,
                                               absl::Time deadline = absl::InfiniteFuture());
  // Revokes the lease, deleting every key bound to it. NOT_FOUND when it has already expired.
  absl::Status RevokeLease(int64_t lease_id);

  // What a watch needs to open its own stream: the current endpoint's Watch stub, and the
  // context to use (deadline-free, with the auth token). Advance() after the stream failed.
  struct WatchChannel {
    std::unique_ptr<etcdserverpb::Watch::Stub> stub;
    std::string endpoint;
  };
  WatchChannel WatchStub();
  absl::Status PrepareContext(grpc::ClientContext& context);
  // Tells the client that `endpoint` failed: the next call goes to the next endpoint.
  void EndpointFailed(const std::string& endpoint);

  absl::Duration request_timeout() const { return options_.request_timeout; }
  StateStats& stats() const { return *stats_; }
  const std::vector<std::string>& endpoints() const { return options_.endpoints; }

  // gRPC status from etcd → absl::Status with the endpoint and `what` as context.
  static absl::Status FromGrpc(const grpc::Status& status, const std::string& endpoint,
                               const std::string& what);

 private:
  struct Endpoint {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
  };
  explicit EtcdClient(EtcdClientOptions options)
      : options_(std::move(options)),
        stats_(options_.stats != nullptr ? options_.stats : NoStateStats::Get()) {}
  // The endpoint calls should go to now.
  size_t Current() const { return current_.load(std::memory_order_relaxed); }
  // Sets a deadline and the auth token on `context`.
  absl::Status Prepare(grpc::ClientContext& context, absl::Time deadline);
  absl::Status Authenticate(const Endpoint& endpoint, absl::Time deadline)
      ABSL_LOCKS_EXCLUDED(auth_mu_);
  // Runs `call` against endpoints from the current one on, until one answers or `deadline`;
  // `retry_elsewhere` says whether a failed call may be repeated on another endpoint.
  template <typename Call>
  absl::Status RunOnce(const std::string& what, bool retry_elsewhere, absl::Time deadline,
                       Call call);
  template <typename Call>
  absl::Status Run(StateStats::Op op, const std::string& what, bool retry_elsewhere,
                   absl::Time until, Call call);

  const EtcdClientOptions options_;
  StateStats* const stats_;
  std::vector<Endpoint> endpoints_;
  std::atomic<size_t> current_{0};
  absl::Mutex auth_mu_;
  std::string token_ ABSL_GUARDED_BY(auth_mu_);
};

}  // namespace credbroker::state::etcd
