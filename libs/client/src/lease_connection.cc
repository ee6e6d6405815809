#include "credbroker/client/lease_connection.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "credbroker/rpc/status.h"
#include "lease_stub.h"

namespace credbroker::client {
namespace {

using internal::LeaseStub;

class GrpcKeyEventStream final : public KeyEventStream {
 public:
  GrpcKeyEventStream(std::unique_ptr<grpc::ClientContext> ctx,
                     absl::StatusOr<std::unique_ptr<LeaseStub::Reader>> reader)
      : ctx_(std::move(ctx)), reader_(std::move(reader)) {}

  absl::StatusOr<std::optional<v1::KeyEvent>> Next() override {
    if (!reader_.ok()) return reader_.status();
    if (done_) return std::optional<v1::KeyEvent>();
    v1::KeyEvent event;
    if ((*reader_)->Read(&event)) return std::optional<v1::KeyEvent>(std::move(event));
    done_ = true;
    absl::Status status = rpc::FromGrpcStatus((*reader_)->Finish());
    if (!status.ok()) return status;
    return std::optional<v1::KeyEvent>();
  }
  void Cancel() override { ctx_->TryCancel(); }

 private:
  std::unique_ptr<grpc::ClientContext> ctx_;
  absl::StatusOr<std::unique_ptr<LeaseStub::Reader>> reader_;
  bool done_ = false;
};

class LeaseConnectionImpl final : public LeaseConnection {
 public:
  LeaseConnectionImpl(std::shared_ptr<LeaseStub> stub, ClientOptions options)
      : stub_(std::move(stub)), options_(std::move(options)) {}

  absl::StatusOr<v1::Lease> AcquireLease(const v1::AcquireLeaseRequest& request) override {
    return Call<v1::Lease>([&](grpc::ClientContext& ctx, v1::Lease* out) {
      return stub_->AcquireLease(ctx, request, out);
    });
  }
  absl::StatusOr<v1::Lease> RenewLease(const v1::RenewLeaseRequest& request) override {
    return Call<v1::Lease>([&](grpc::ClientContext& ctx, v1::Lease* out) {
      return stub_->RenewLease(ctx, request, out);
    });
  }
  absl::Status ReleaseLease(const v1::ReleaseLeaseRequest& request) override {
    return Call<v1::ReleaseLeaseResponse>(
               [&](grpc::ClientContext& ctx, v1::ReleaseLeaseResponse* out) {
                 return stub_->ReleaseLease(ctx, request, out);
               })
        .status();
  }
  absl::StatusOr<v1::ReportAuthFailureResponse> ReportAuthFailure(
      const v1::ReportAuthFailureRequest& request) override {
    return Call<v1::ReportAuthFailureResponse>(
        [&](grpc::ClientContext& ctx, v1::ReportAuthFailureResponse* out) {
          return stub_->ReportAuthFailure(ctx, request, out);
        });
  }
  std::unique_ptr<KeyEventStream> WatchKeys(const v1::WatchKeysRequest& request) override {
    auto ctx = std::make_unique<grpc::ClientContext>();
    auto reader = stub_->WatchKeys(*ctx, request);
    return std::make_unique<GrpcKeyEventStream>(std::move(ctx), std::move(reader));
  }

 private:
  // One call with the options' deadline, tried again with exponential backoff (and jitter)
  // while the broker is UNAVAILABLE. A lease call that reached the broker is never repeated
  // after another outcome.
  template <typename Response, typename Fn>
  absl::StatusOr<Response> Call(Fn&& fn) {
    absl::Duration backoff = options_.retry.initial_backoff;
    const int attempts = std::max(1, options_.retry.max_attempts);
    for (int attempt = 1;; ++attempt) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.rpc_timeout));
      Response out;
      grpc::Status s = fn(ctx, &out);
      if (s.ok()) return out;
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE || attempt >= attempts) {
        return rpc::FromGrpcStatus(s);
      }
      // Full jitter: a fleet of clients does not come back in step after a broker restart.
      thread_local absl::BitGen gen;
      absl::SleepFor(backoff * absl::Uniform(gen, 0.5, 1.0));
      backoff = std::min(backoff * 2, options_.retry.max_backoff);
    }
  }

  std::shared_ptr<LeaseStub> stub_;
  const ClientOptions options_;
};

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  if (!in || contents.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, " ", path));
  }
  return contents.str();
}

}  // namespace

std::shared_ptr<LeaseConnection> MakeLeaseConnection(std::shared_ptr<grpc::Channel> channel,
                                                     const ClientOptions& options) {
  std::shared_ptr<LeaseStub> stub = internal::MakeGrpcLeaseStub(std::move(channel));
  if (options.token != nullptr) stub = internal::MakeAuthLeaseStub(std::move(stub), options.token);
  return std::make_shared<LeaseConnectionImpl>(std::move(stub), options);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ClientOptions& options) {
  if (options.address.empty()) return absl::InvalidArgumentError("no broker address");
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args;
  const int backoff_ms = static_cast<int>(absl::ToInt64Milliseconds(options.max_reconnect_backoff));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, backoff_ms);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(backoff_ms, 100));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(backoff_ms, 100));
  if (options.tls.has_value()) {
    const TlsOptions& tls = *options.tls;
    grpc::SslCredentialsOptions ssl;
    if (!tls.ca_file.empty()) {
      absl::StatusOr<std::string> ca = ReadPem(tls.ca_file, "the CA bundle");
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *ca;
    }
    if (tls.cert_file.empty() != tls.key_file.empty()) {
      return absl::InvalidArgumentError("a client certificate needs both cert_file and key_file");
    }
    if (!tls.cert_file.empty()) {
      absl::StatusOr<std::string> cert = ReadPem(tls.cert_file, "the client certificate");
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key = ReadPem(tls.key_file, "the client key");
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    creds = grpc::SslCredentials(ssl);
    if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  }
  return grpc::CreateCustomChannel(options.address, creds, args);
}

absl::StatusOr<std::shared_ptr<LeaseConnection>> MakeLeaseConnection(const ClientOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return MakeLeaseConnection(*std::move(channel), options);
}

}  // namespace credbroker::client
