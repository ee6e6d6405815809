#include "credbroker/state/etcd/client.h"

#include <arpa/inet.h>

#include <cmath>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::state::etcd {
namespace {

std::chrono::system_clock::time_point ToChrono(absl::Time t) { return absl::ToChronoTime(t); }

// etcd's answer when a token expired or the server restarted and forgot it (rpctypes
// ErrGRPCInvalidAuthToken).
bool IsInvalidToken(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
         absl::StrContains(s.error_message(), "invalid auth token");
}

// Failures of the member rather than of the request: another member may do better.
bool TryElsewhere(const grpc::Status& s) { return s.error_code() == grpc::StatusCode::UNAVAILABLE; }

// Failures after which a write is certainly not applied, so it may go to another member: gRPC
// could not connect (the call never left this process), or the member has no leader (etcd
// proposes nothing then: rpctypes.ErrGRPCNoLeader).
bool NeverApplied(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE &&
         (absl::StrContains(s.error_message(), "failed to connect to all addresses") ||
          absl::StrContains(s.error_message(), "etcdserver: no leader"));
}

// The gRPC target of an endpoint: an IP literal needs no resolver (and no re-resolution delay).
std::string Target(const std::string& address) {
  const size_t colon = address.rfind(':');
  const std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  in6_addr v6{};
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return absl::StrCat("ipv4:", address);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']' &&
      ::inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6) == 1) {
    return absl::StrCat("ipv6:", address);
  }
  return absl::StrCat("dns:///", address);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(const EtcdClientOptions& options) {
  if (options.endpoints.empty()) return absl::InvalidArgumentError("etcd: no endpoints");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("etcd: a client certificate needs its key and vice versa");
  }
  if (!options.tls_cert.empty() && options.tls_ca.empty()) {
    return absl::InvalidArgumentError("etcd: a client certificate needs tls.ca");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.tls_ca.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca;
    ssl.pem_cert_chain = options.tls_cert;
    ssl.pem_private_key = options.tls_key;
    creds = grpc::SslCredentials(ssl);
  }
  std::unique_ptr<EtcdClient> client(new EtcdClient(options));
  for (const std::string& address : options.endpoints) {
    grpc::ChannelArguments args;
    // One connection per endpoint of our own: the gRPC subchannel pool is shared process-wide,
    // and a test's brokers must not share a connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // etcd's --grpc-keepalive-min-time (5 s by default) refuses more frequent pings.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                static_cast<int>(absl::ToInt64Milliseconds(options.dial_timeout)));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // A name is resolved again at most every second after a failure (gRPC's default is 30 s,
    // which would keep a broker away from a restarted member that long).
    args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 1000);
    client->endpoints_.push_back(
        {address, grpc::CreateCustomChannel(Target(address), creds, args)});
  }
  return client;
}

absl::Status EtcdClient::FromGrpc(const grpc::Status& status, const std::string& endpoint,
                                  const std::string& what) {
  const std::string message =
      absl::StrCat("etcd ", endpoint, ": ", what, ": ", status.error_message());
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return absl::OkStatus();
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::CANCELLED:
      return core::WithReason(absl::UnavailableError(message), "STATE_UNAVAILABLE");
    case grpc::StatusCode::OUT_OF_RANGE:
      return absl::OutOfRangeError(message);
    case grpc::StatusCode::PERMISSION_DENIED:
      return absl::PermissionDeniedError(message);
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::UnauthenticatedError(message);
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(message);
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return absl::InvalidArgumentError(message);
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status EtcdClient::Authenticate(const Endpoint& endpoint, absl::Time deadline) {
  auto stub = etcdserverpb::Auth::NewStub(endpoint.channel);
  grpc::ClientContext context;
  context.set_deadline(ToChrono(deadline));
  etcdserverpb::AuthenticateRequest request;
  request.set_name(options_.username);
  request.set_password(options_.password);
  etcdserverpb::AuthenticateResponse response;
  grpc::Status s = stub->Authenticate(&context, request, &response);
  if (!s.ok()) {
    return FromGrpc(s, endpoint.address, absl::StrCat("log in as ", options_.username));
  }
  absl::MutexLock lock(&auth_mu_);
  token_ = response.token();
  return absl::OkStatus();
}

absl::Status EtcdClient::Prepare(grpc::ClientContext& context, absl::Time deadline) {
  if (deadline != absl::InfiniteFuture()) context.set_deadline(ToChrono(deadline));
  if (options_.username.empty()) return absl::OkStatus();
  std::string token;
  {
    absl::MutexLock lock(&auth_mu_);
    token = token_;
  }
  if (token.empty()) {
    const absl::Time login_deadline =
        deadline == absl::InfiniteFuture() ? absl::Now() + options_.request_timeout : deadline;
    CB_RETURN_IF_ERROR(Authenticate(endpoints_[Current()], login_deadline));
    absl::MutexLock lock(&auth_mu_);
    token = token_;
  }
  context.AddMetadata("token", token);
  return absl::OkStatus();
}

absl::Status EtcdClient::PrepareContext(grpc::ClientContext& context) {
  return Prepare(context, absl::InfiniteFuture());
}

void EtcdClient::EndpointFailed(const std::string& endpoint) {
  const size_t at = Current();
  if (endpoints_[at].address != endpoint) return;  // someone moved on already
  size_t expected = at;
  current_.compare_exchange_strong(expected, (at + 1) % endpoints_.size());
}

EtcdClient::WatchChannel EtcdClient::WatchStub() {
  const Endpoint& e = endpoints_[Current()];
  return {etcdserverpb::Watch::NewStub(e.channel), e.address};
}

template <typename Call>
absl::Status EtcdClient::Run(StateStats::Op op, const std::string& what, bool retry_elsewhere,
                             absl::Time until, Call call) {
  const absl::Time start = absl::Now();
  absl::Status status =
      RunOnce(what, retry_elsewhere, std::min(until, start + options_.request_timeout), call);
  stats_->Call(op, status.ok(), absl::Now() - start);
  return status;
}

template <typename Call>
absl::Status EtcdClient::RunOnce(const std::string& what, bool retry_elsewhere, absl::Time deadline,
                                 Call call) {
  absl::Status last;
  bool relogged = false;
  for (size_t tries = 0; tries < endpoints_.size() * 2; ++tries) {
    const size_t at = Current();
    const Endpoint& endpoint = endpoints_[at];
    grpc::ClientContext context;
    absl::Status prepared = Prepare(context, deadline);
    if (!prepared.ok()) {
      if (!absl::IsUnavailable(prepared)) return prepared;
      last = prepared;
      EndpointFailed(endpoint.address);
      if (absl::Now() >= deadline) break;
      continue;
    }
    grpc::Status s = call(endpoint, context);
    if (s.ok()) return absl::OkStatus();
    if (IsInvalidToken(s) && !relogged) {
      relogged = true;
      {
        absl::MutexLock lock(&auth_mu_);
        token_.clear();
      }
      continue;  // the request was refused before it was applied
    }
    last = FromGrpc(s, endpoint.address, what);
    if (!TryElsewhere(s)) return last;
    EndpointFailed(endpoint.address);
    if ((!retry_elsewhere && !NeverApplied(s)) || absl::Now() >= deadline) break;
  }
  return last;
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdClient::Range(
    const etcdserverpb::RangeRequest& request, absl::Time deadline) {
  etcdserverpb::RangeResponse response;
  CB_RETURN_IF_ERROR(Run(StateStats::Op::kRead, "read", /*retry_elsewhere=*/true, deadline,
                         [&](const Endpoint& e, grpc::ClientContext& context) {
                           response.Clear();
                           return etcdserverpb::KV::NewStub(e.channel)->Range(&context, request,
                                                                              &response);
                         }));
  return response;
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::Txn(const etcdserverpb::TxnRequest& request,
                                                          absl::Time deadline) {
  etcdserverpb::TxnResponse response;
  CB_RETURN_IF_ERROR(Run(StateStats::Op::kWrite, "write", /*retry_elsewhere=*/false, deadline,
                         [&](const Endpoint& e, grpc::ClientContext& context) {
                           response.Clear();
                           return etcdserverpb::KV::NewStub(e.channel)->Txn(&context, request,
                                                                            &response);
                         }));
  return response;
}

absl::StatusOr<int64_t> EtcdClient::GrantLease(absl::Duration ttl, absl::Time deadline) {
  etcdserverpb::LeaseGrantRequest request;
  request.set_ttl(
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(absl::ToDoubleSeconds(ttl)))));
  etcdserverpb::LeaseGrantResponse response;
  CB_RETURN_IF_ERROR(Run(StateStats::Op::kGrantLease, "grant a lease", /*retry_elsewhere=*/false,
                         deadline, [&](const Endpoint& e, grpc::ClientContext& context) {
                           response.Clear();
                           return etcdserverpb::Lease::NewStub(e.channel)->LeaseGrant(
                               &context, request, &response);
                         }));
  if (!response.error().empty()) {
    return absl::InternalError(absl::StrCat("etcd: grant a lease: ", response.error()));
  }
  return response.id();
}

absl::StatusOr<absl::Duration> EtcdClient::KeepAliveOnce(int64_t lease_id, absl::Time deadline) {
  etcdserverpb::LeaseKeepAliveResponse response;
  CB_RETURN_IF_ERROR(Run(StateStats::Op::kKeepAlive, "keep a lease alive", /*retry_elsewhere=*/true,
                         deadline, [&](const Endpoint& e, grpc::ClientContext& context) {
                           response.Clear();
                           auto stub = etcdserverpb::Lease::NewStub(e.channel);
                           auto stream = stub->LeaseKeepAlive(&context);
                           etcdserverpb::LeaseKeepAliveRequest request;
                           request.set_id(lease_id);
                           if (stream->Write(request)) stream->Read(&response);
                           stream->WritesDone();
                           return stream->Finish();
                         }));
  if (response.ttl() <= 0) {
    return absl::NotFoundError(absl::StrCat("etcd lease ", lease_id, " has expired"));
  }
  return absl::Seconds(response.ttl());
}

absl::Status EtcdClient::RevokeLease(int64_t lease_id) {
  etcdserverpb::LeaseRevokeRequest request;
  request.set_id(lease_id);
  etcdserverpb::LeaseRevokeResponse response;
  return Run(StateStats::Op::kRevokeLease, "revoke a lease", /*retry_elsewhere=*/true,
             absl::InfiniteFuture(), [&](const Endpoint& e, grpc::ClientContext& context) {
               return etcdserverpb::Lease::NewStub(e.channel)->LeaseRevoke(&context, request,
                                                                           &response);
             });
}

}  // namespace credbroker::state::etcd
