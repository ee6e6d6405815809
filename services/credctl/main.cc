// credctl: the operator CLI for credbroker. Human output by default, --json for scripts; exits
// non-zero on any error. Key material is printed only with --reveal-key.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "credbroker/client/caller_token.h"
#include "credbroker/client/lease_connection.h"
#include "credbroker/client/options.h"
#include "credbroker/config/config.h"
#include "credbroker/core/duration.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rpc/status.h"
#include "credbroker/v1/admin.grpc.pb.h"
#include "credbroker/v1/lease.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

namespace v1 = credbroker::v1;
namespace cbc = credbroker::client;

constexpr char kUsage[] =
    R"(usage: credctl [--addr HOST:PORT] [--token T | --token-file F] [--json]
               [--tls-ca FILE [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME]] COMMAND

commands:
  lease acquire PROVIDER [--scope SCOPE] [--ttl DURATION] [--purpose TEXT] [--reveal-key]
  lease renew LEASE_ID [--ttl DURATION] [--reveal-key]
  lease release LEASE_ID
  lease report LEASE_ID HTTP_STATUS [--reason ERROR_CODE]
                                     report a provider's 401/403/429 to the held key
  watch [PROVIDER ...] [--count N]   stream key events (stop after N events)
  providers                          list providers (admin)
  keys [PROVIDER]                    list key versions (admin)
  leases [--provider P] [--caller C] list active leases (admin)
  quarantine PROVIDER VERSION [--reason TEXT]
                                     take a key version out of service now (admin)
  rotate PROVIDER [--skip-probe]     rotate now: mint (minted) or probe and promote the staged
                                     PENDING version (staged) (admin)
  keys-to-delete [PROVIDER]          minted keys that left service at a provider without a
                                     key-deletion API (firemoon): delete them in its dashboard
                                     (admin)
  key-deleted PROVIDER VERSION       confirm you deleted that key in the dashboard (admin)
  check-config FILE                  validate a broker configuration file
  health [SERVICE]                   grpc.health.v1 Check ("" = the server, or "readiness",
                                     "liveness", a service name); exit 0 only when SERVING;
                                     needs no token

The address defaults to $CREDBROKER_ADDR or 127.0.0.1:7443, the token to $CREDBROKER_TOKEN;
--token-file (a projected service-account token) is read again for every call. Lease and watch
calls go through the C++ client library (libs/client) and are retried while the broker is
UNAVAILABLE.
With --tls-ca the connection is TLS, verified against that CA bundle (--tls-server-name when the
certificate names the broker differently from --addr); --tls-cert/--tls-key add a client
certificate (mTLS).
)";

struct Options {
  std::string addr;
  std::string token;
  // Read again for every call (a projected service-account token rotates under a long watch).
  std::string token_file;
  bool json = false;
  bool reveal_key = false;
  bool skip_probe = false;
  std::string ttl;
  std::string purpose;
  std::string scope;
  std::string reason;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  std::string provider_filter;
  std::string caller_filter;
  int count = 0;
  std::vector<std::string> args;
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "credctl: %s\n", message.c_str());
  return 1;
}

// The broker's answer as the C++ client returns it: code, message and the reason it attached.
int FailStatus(const absl::Status& s) {
  std::string msg = absl::StrCat(absl::StatusCodeToString(s.code()), ": ", s.message());
  const std::string reason = credbroker::core::ReasonOf(s);
  if (!reason.empty()) absl::StrAppend(&msg, " [", reason, "]");
  return Fail(msg);
}

int FailRpc(const grpc::Status& s) {
  std::string msg =
      absl::StrCat(credbroker::rpc::GrpcCodeName(s.error_code()), ": ", s.error_message());
  const std::string reason = credbroker::rpc::ErrorReason(s);
  if (!reason.empty()) absl::StrAppend(&msg, " [", reason, "]");
  return Fail(msg);
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  return out;
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

std::string StateName(v1::KeyState s) {
  std::string n = v1::KeyState_Name(s);
  return n.rfind("KEY_STATE_", 0) == 0 ? n.substr(10) : n;
}

// The caller's bearer token, from --token-file (read now), --token or $CREDBROKER_TOKEN; null
// when there is none (health, or a client certificate as the identity).
std::shared_ptr<cbc::CallerToken> TokenOf(const Options& o) {
  if (!o.token_file.empty()) return std::make_shared<cbc::TokenFile>(o.token_file);
  if (!o.token.empty()) return cbc::StaticToken(o.token);
  return nullptr;
}

// Deadline and bearer token of an admin call.
absl::Status SetContext(grpc::ClientContext* ctx, const Options& o) {
  if (std::shared_ptr<cbc::CallerToken> token = TokenOf(o); token != nullptr) {
    absl::StatusOr<std::string> value = token->Token();
    if (!value.ok()) return value.status();
    ctx->AddMetadata("authorization", "Bearer " + *value);
  }
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return absl::OkStatus();
}

bool ParseTtl(const Options& o, google::protobuf::Duration* out, std::string* error) {
  if (o.ttl.empty()) return true;
  auto d = credbroker::core::ParseDuration(o.ttl);
  if (!d.ok()) {
    *error = absl::StrCat("--ttl: ", d.status().message());
    return false;
  }
  out->set_seconds(absl::ToInt64Seconds(*d));
  return true;
}

int PrintLease(v1::Lease lease, const Options& o) {
  if (!o.reveal_key) {
    lease.clear_api_key();
    lease.clear_header_value();
  }
  if (o.json) {
    std::puts(Json(lease).c_str());
    return 0;
  }
  std::printf("lease_id:     %s\n", lease.lease_id().c_str());
  std::printf("provider:     %s\n", lease.provider().c_str());
  std::printf("key_version:  %s (%s)\n", lease.key_version().c_str(),
              StateName(lease.key_state()).c_str());
  std::printf("fingerprint:  %s\n", lease.key_fingerprint().c_str());
  if (!lease.scopes().empty()) {
    std::printf("scopes:       %s\n", absl::StrJoin(lease.scopes(), ", ").c_str());
  }
  std::printf("expires_at:   %s\n", Time(lease.expires_at()).c_str());
  if (lease.has_key_retires_at()) {
    std::printf("key_retires:  %s\n", Time(lease.key_retires_at()).c_str());
  }
  std::printf("base_url:     %s\n", lease.base_url().c_str());
  std::printf("renew_count:  %lld\n", static_cast<long long>(lease.renew_count()));
  if (o.reveal_key) {
    std::printf("api_key:      %s\n", lease.api_key().c_str());
    std::printf("header:       %s: %s\n", lease.header_name().c_str(),
                lease.header_value().c_str());
  }
  return 0;
}

// Lease calls go through libs/client's LeaseConnection, as a service's would: the same
// deadline, retries while the broker is UNAVAILABLE, and token handling.
int Lease(cbc::LeaseConnection& conn, const Options& o) {
  if (o.args.size() < 3)
    return Fail(std::string("lease needs a subcommand and an argument\n") + kUsage);
  const std::string& sub = o.args[1];
  std::string error;
  if (sub == "acquire") {
    v1::AcquireLeaseRequest req;
    req.set_provider(o.args[2]);
    req.set_purpose(o.purpose);
    req.set_scope(o.scope);
    if (!ParseTtl(o, req.mutable_ttl(), &error)) return Fail(error);
    absl::StatusOr<v1::Lease> lease = conn.AcquireLease(req);
    if (!lease.ok()) return FailStatus(lease.status());
    return PrintLease(*std::move(lease), o);
  }
  if (sub == "renew") {
    v1::RenewLeaseRequest req;
    req.set_lease_id(o.args[2]);
    if (!ParseTtl(o, req.mutable_ttl(), &error)) return Fail(error);
    absl::StatusOr<v1::Lease> lease = conn.RenewLease(req);
    if (!lease.ok()) return FailStatus(lease.status());
    return PrintLease(*std::move(lease), o);
  }
  if (sub == "release") {
    v1::ReleaseLeaseRequest req;
    req.set_lease_id(o.args[2]);
    if (absl::Status s = conn.ReleaseLease(req); !s.ok()) return FailStatus(s);
    if (o.json) {
      std::printf("{\"released\":\"%s\"}\n", o.args[2].c_str());
    } else {
      std::printf("released %s\n", o.args[2].c_str());
    }
    return 0;
  }
  if (sub == "report") {
    // lease report LEASE_ID HTTP_STATUS [--reason ERROR_CODE]: what a service's client sends
    // after a provider's 401/403/429 (for trying out alerting and quarantine).
    int http_status = 0;
    if (o.args.size() < 4 || !absl::SimpleAtoi(o.args[3], &http_status)) {
      return Fail("lease report needs LEASE_ID HTTP_STATUS");
    }
    v1::ReportAuthFailureRequest req;
    req.set_lease_id(o.args[2]);
    req.set_http_status(http_status);
    req.set_error_code(o.reason);
    absl::StatusOr<v1::ReportAuthFailureResponse> resp = conn.ReportAuthFailure(req);
    if (!resp.ok()) return FailStatus(resp.status());
    if (o.json) {
      std::puts(Json(*resp).c_str());
    } else {
      std::printf("classification: %s\n", resp->classification().c_str());
      std::printf("newer key:      %s\n", resp->newer_key_available() ? "yes" : "no");
    }
    return 0;
  }
  return Fail("unknown lease subcommand \"" + sub + "\" (acquire, renew, release, report)");
}

int Watch(cbc::LeaseConnection& conn, const Options& o) {
  v1::WatchKeysRequest req;
  for (size_t i = 1; i < o.args.size(); ++i) req.add_providers(o.args[i]);
  std::unique_ptr<cbc::KeyEventStream> stream = conn.WatchKeys(req);
  int seen = 0;
  while (true) {
    absl::StatusOr<std::optional<v1::KeyEvent>> next = stream->Next();
    if (!next.ok()) return FailStatus(next.status());
    if (!next->has_value()) return 0;
    const v1::KeyEvent& e = **next;
    if (o.json) {
      std::puts(Json(e).c_str());
    } else if (e.type() == v1::KeyEvent::SYNCED) {
      std::puts("-- synced: changes follow --");
    } else {
      std::printf("%s %-9s %-12s %-10s %-12s %-21s %-11s%s%s\n", Time(e.at()).c_str(),
                  v1::KeyEvent::Type_Name(e.type()).c_str(), e.provider().c_str(),
                  e.key_version().c_str(), e.key_fingerprint().c_str(),
                  e.key_hint().empty() ? "-" : e.key_hint().c_str(), StateName(e.state()).c_str(),
                  e.reason().empty() ? "" : " ", e.reason().c_str());
    }
    std::fflush(stdout);
    if (o.count > 0 && ++seen >= o.count) {
      stream->Cancel();
      return 0;
    }
  }
}

int Providers(const std::shared_ptr<grpc::Channel>& ch, const Options& o) {
  auto stub = v1::AdminService::NewStub(ch);
  grpc::ClientContext ctx;
  if (absl::Status s = SetContext(&ctx, o); !s.ok()) return FailStatus(s);
  v1::ListProvidersResponse resp;
  grpc::Status s = stub->ListProviders(&ctx, v1::ListProvidersRequest(), &resp);
  if (!s.ok()) return FailRpc(s);
  if (o.json) {
    std::puts(Json(resp).c_str());
    return 0;
  }
  std::printf("%-12s %-8s %-10s %-10s %-7s %-13s %-40s %s\n", "PROVIDER", "BUILTIN", "SINGLEKEY",
              "CURRENT", "MODE", "PROBE", "BASE_URL", "STATUS");
  for (const auto& p : resp.providers()) {
    std::printf("%-12s %-8s %-10s %-10s %-7s %-13s %-40s %s\n", p.name().c_str(),
                p.builtin() ? "yes" : "no", p.single_key() ? "yes" : "no",
                p.current_key_version().empty() ? "-" : p.current_key_version().c_str(),
                p.rotation_mode().c_str(), p.probe_status().c_str(), p.base_url().c_str(),
                p.last_error().empty() ? "ok" : p.last_error().c_str());
  }
  return 0;
}

// A listing from a replica whose state store watch is down: said on stderr (the table on stdout
// stays parseable), since when.
void WarnIfStale(const google::protobuf::Timestamp& stale_since, bool has) {
  if (!has) return;
  std::fprintf(stderr,
               "warning: this broker replica's view may be behind since %s (its state store watch "
               "is down): the list is what it last knew\n",
               Time(stale_since).c_str());
}

int Keys(const std::shared_ptr<grpc::Channel>& ch, const Options& o) {
  auto stub = v1::AdminService::NewStub(ch);
  grpc::ClientContext ctx;
  if (absl::Status s = SetContext(&ctx, o); !s.ok()) return FailStatus(s);
  v1::ListKeyVersionsRequest req;
  if (o.args.size() > 1) req.set_provider(o.args[1]);
  v1::ListKeyVersionsResponse resp;
  grpc::Status s = stub->ListKeyVersions(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  WarnIfStale(resp.stale_since(), resp.has_stale_since());
  if (o.json) {
    std::puts(Json(resp).c_str());
    return 0;
  }
  // HINT: what the provider's dashboard shows of the key, to find it there.
  std::printf("%-16s %-10s %-12s %-21s %-10s %-20s %-20s %-20s %-6s %s\n", "PROVIDER", "VERSION",
              "FINGERPRINT", "HINT", "STATE", "SEEN", "RETIRES", "DUE", "LEASES", "SCOPES");
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  for (const auto& v : resp.versions()) {
    std::string due = Time(v.due_at());
    if (v.has_due_at() && v.due_at().seconds() <= now) due += " OVERDUE";
    const std::string scopes = v.scopes().empty() ? "-" : absl::StrJoin(v.scopes(), ",");
    std::printf("%-16s %-10s %-12s %-21s %-10s %-20s %-20s %-20s %-6lld %s\n", v.provider().c_str(),
                v.key_version().c_str(), v.key_fingerprint().c_str(),
                v.key_hint().empty() ? "-" : v.key_hint().c_str(), StateName(v.state()).c_str(),
                Time(v.created_at()).c_str(), Time(v.retires_at()).c_str(), due.c_str(),
                static_cast<long long>(v.active_leases()), scopes.c_str());
  }
  return 0;
}

int Leases(const std::shared_ptr<grpc::Channel>& ch, const Options& o) {
  auto stub = v1::AdminService::NewStub(ch);
  grpc::ClientContext ctx;
  if (absl::Status s = SetContext(&ctx, o); !s.ok()) return FailStatus(s);
  v1::ListLeasesRequest req;
  req.set_provider(o.provider_filter);
  req.set_caller(o.caller_filter);
  v1::ListLeasesResponse resp;
  grpc::Status s = stub->ListLeases(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  WarnIfStale(resp.stale_since(), resp.has_stale_since());
  if (o.json) {
    std::puts(Json(resp).c_str());
    return 0;
  }
  std::printf("%-22s %-16s %-12s %-10s %-20s %s\n", "LEASE", "CALLER", "PROVIDER", "VERSION",
              "EXPIRES", "RENEWS");
  for (const auto& l : resp.leases()) {
    std::printf("%-22s %-16s %-12s %-10s %-20s %lld\n", l.lease_id().c_str(), l.caller().c_str(),
                l.provider().c_str(), l.key_version().c_str(), Time(l.expires_at()).c_str(),
                static_cast<long long>(l.renew_count()));
  }
  return 0;
}

int Quarantine(const std::shared_ptr<grpc::Channel>& ch, const Options& o) {
  if (o.args.size() != 3) return Fail("quarantine needs PROVIDER VERSION");
  auto stub = v1::AdminService::NewStub(ch);
  grpc::ClientContext ctx;
  if (absl::Status s = SetContext(&ctx, o); !s.ok()) return FailStatus(s);
  v1::QuarantineKeyVersionRequest req;
  req.set_provider(o.args[1]);
  req.set_key_version(o.args[2]);
  req.set_reason(o.reason);
  v1::QuarantineKeyVersionResponse resp;
  grpc::Status s = stub->QuarantineKeyVersion(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (o.json) {
    std::printf("{\"quarantined\":\"%s/%s\"}\n", o.args[1].c_str(), o.args[2].c_str());
  } else {
    std::printf("quarantined %s %s\n", o.args[1].c_str(), o.args[2].c_str());
  }
  return 0;
}

int KeysToDelete(const std::shared_ptr<grpc::Channel>& ch, const Options& o) {
  auto stub = v1::AdminService::NewStub(ch);
  grpc::ClientContext ctx;
  if (absl::Status s = SetContext(&ctx, o); !s.ok()) return FailStatus(s);
  v1::ListKeysToDeleteRequest req;
  if (o.args.size() > 1) req.set_provider(o.args[1]);
  v1::ListKeysToDeleteResponse resp;
  grpc::Status s = stub->ListKeysToDelete(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (o.json) {
    std::puts(Json(resp).c_str());
    return 0;
  }
  if (resp.keys().empty()) {
    std::puts("no keys to delete at any provider");
    return 0;
  }
  // NAME IN DASHBOARD: the key's description (firemoon) or the id its key API returned.
  std::printf("%-16s %-10s %-12s %-21s %-12s %-20s %s\n", "PROVIDER", "VERSION", "FINGERPRINT",
              "HINT", "STATE", "CREATED", "NAME IN DASHBOARD");
  for (const auto& k : resp.keys()) {
    std::printf("%-16s %-10s %-12s %-21s %-12s %-20s %s\n", k.provider().c_str(),
                k.key_version().c_str(), k.key_fingerprint().c_str(),
                k.key_hint().empty() ? "-" : k.key_hint().c_str(), StateName(k.state()).c_str(),
                Time(k.created_at()).c_str(), k.provider_key().c_str());
  }
  std::puts(
      "\nDelete each in the provider's dashboard, then: credctl key-deleted PROVIDER VERSION");
  return 0;
}

int KeyDeleted(const std::shared_ptr<grpc::Channel>& ch, const Options& o) {
  if (o.args.size() != 3) return Fail("key-deleted needs PROVIDER VERSION");
  auto stub = v1::AdminService::NewStub(ch);
  grpc::ClientContext ctx;
  if (absl::Status s = SetContext(&ctx, o); !s.ok()) return FailStatus(s);
  v1::ConfirmKeyDeletedRequest req;
  req.set_provider(o.args[1]);
  req.set_key_version(o.args[2]);
  v1::ConfirmKeyDeletedResponse resp;
  grpc::Status s = stub->ConfirmKeyDeleted(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (o.json) {
    std::printf("{\"deleted\":\"%s/%s\"}\n", o.args[1].c_str(), o.args[2].c_str());
  } else {
    std::printf("recorded %s %s as deleted at the provider\n", o.args[1].c_str(),
                o.args[2].c_str());
  }
  return 0;
}

int Rotate(const std::shared_ptr<grpc::Channel>& ch, const Options& o) {
  if (o.args.size() != 2) return Fail("rotate needs PROVIDER");
  auto stub = v1::AdminService::NewStub(ch);
  grpc::ClientContext ctx;
  if (absl::Status s = SetContext(&ctx, o); !s.ok()) return FailStatus(s);
  v1::RotateKeyRequest req;
  req.set_provider(o.args[1]);
  req.set_skip_probe(o.skip_probe);
  v1::RotateKeyResponse resp;
  grpc::Status s = stub->RotateKey(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  if (o.json) {
    std::puts(Json(resp).c_str());
  } else {
    std::printf("rotated %s: %s (fingerprint %s) is CURRENT\n", o.args[1].c_str(),
                resp.new_current().key_version().c_str(),
                resp.new_current().key_fingerprint().c_str());
  }
  return 0;
}

int CheckConfig(const Options& o) {
  if (o.args.size() != 2) return Fail("check-config needs exactly one FILE");
  auto config = credbroker::config::LoadConfigFile(o.args[1]);
  if (!config.ok()) {
    if (o.json) {
      std::string escaped;
      for (char c : config.status().message()) {
        if (c == '"' || c == '\\') escaped.push_back('\\');
        if (c == '\n') {
          escaped += "\\n";
          continue;
        }
        escaped.push_back(c);
      }
      std::printf("{\"valid\":false,\"errors\":\"%s\"}\n", escaped.c_str());
    }
    return Fail("invalid configuration:\n" + std::string(config.status().message()));
  }
  if (o.json) {
    std::printf("{\"valid\":true,\"providers\":%d,\"sources\":%d}\n", config->providers_size(),
                config->sources_size());
  } else {
    std::printf("%s: configuration is valid (%d providers, %d sources)\n", o.args[1].c_str(),
                config->providers_size(), config->sources_size());
  }
  return 0;
}

int Health(const std::shared_ptr<grpc::Channel>& ch, const Options& o) {
  if (o.args.size() > 2) return Fail(std::string("health takes at most one service\n") + kUsage);
  grpc::health::v1::HealthCheckRequest req;
  if (o.args.size() == 2) req.set_service(o.args[1]);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status s = grpc::health::v1::Health::NewStub(ch)->Check(&ctx, req, &resp);
  if (!s.ok()) return FailRpc(s);
  const std::string status =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
  if (o.json) {
    std::puts(Json(resp).c_str());
  } else {
    std::printf("%s\n", status.c_str());
  }
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

// The client library's options from the flags: plaintext unless --tls-ca is given; a client
// certificate needs both halves.
absl::StatusOr<cbc::ClientOptions> ClientOptionsOf(const Options& o) {
  cbc::ClientOptions options;
  options.address = o.addr;
  options.token = TokenOf(o);
  // A person waits for an answer: fail within about ten seconds, as the admin calls do.
  options.rpc_timeout = absl::Seconds(10);
  options.retry.max_attempts = 2;
  if (o.tls_ca.empty()) {
    if (!o.tls_cert.empty() || !o.tls_key.empty() || !o.tls_server_name.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert, --tls-key and --tls-server-name need --tls-ca");
    }
    return options;
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  options.tls = cbc::TlsOptions{.ca_file = o.tls_ca,
                                .cert_file = o.tls_cert,
                                .key_file = o.tls_key,
                                .server_name = o.tls_server_name};
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const char* a = std::getenv("CREDBROKER_ADDR")) o.addr = a;
  if (const char* t = std::getenv("CREDBROKER_TOKEN")) o.token = t;
  if (o.addr.empty()) o.addr = "127.0.0.1:7443";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    bool ok = true;
    if (arg == "--addr")
      ok = value(&o.addr);
    else if (arg == "--token")
      ok = value(&o.token);
    else if (arg == "--token-file")
      ok = value(&o.token_file);
    else if (arg == "--json")
      o.json = true;
    else if (arg == "--reveal-key")
      o.reveal_key = true;
    else if (arg == "--skip-probe")
      o.skip_probe = true;
    else if (arg == "--ttl")
      ok = value(&o.ttl);
    else if (arg == "--purpose")
      ok = value(&o.purpose);
    else if (arg == "--scope")
      ok = value(&o.scope);
    else if (arg == "--reason")
      ok = value(&o.reason);
    else if (arg == "--tls-ca")
      ok = value(&o.tls_ca);
    else if (arg == "--tls-cert")
      ok = value(&o.tls_cert);
    else if (arg == "--tls-key")
      ok = value(&o.tls_key);
    else if (arg == "--tls-server-name")
      ok = value(&o.tls_server_name);
    else if (arg == "--provider")
      ok = value(&o.provider_filter);
    else if (arg == "--caller")
      ok = value(&o.caller_filter);
    else if (arg == "--count") {
      std::string n;
      ok = value(&n) && absl::SimpleAtoi(n, &o.count) && o.count > 0;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg.rfind("--", 0) == 0) {
      return Fail("unknown flag " + arg + "\n" + kUsage);
    } else {
      o.args.push_back(arg);
    }
    if (!ok) return Fail(arg + " needs a valid value");
  }
  if (o.args.empty()) return Fail(std::string("no command\n") + kUsage);
  const std::string& cmd = o.args[0];
  if (cmd == "check-config") return CheckConfig(o);
  absl::StatusOr<cbc::ClientOptions> options = ClientOptionsOf(o);
  if (!options.ok()) return Fail(std::string(options.status().message()));
  absl::StatusOr<std::shared_ptr<grpc::Channel>> made = cbc::MakeChannel(*options);
  if (!made.ok()) return Fail(std::string(made.status().message()));
  const std::shared_ptr<grpc::Channel>& channel = *made;
  if (cmd == "health") return Health(channel, o);
  if (cmd == "lease" || cmd == "watch") {
    std::shared_ptr<cbc::LeaseConnection> conn = cbc::MakeLeaseConnection(channel, *options);
    return cmd == "lease" ? Lease(*conn, o) : Watch(*conn, o);
  }
  if (cmd == "providers") return Providers(channel, o);
  if (cmd == "keys") return Keys(channel, o);
  if (cmd == "leases") return Leases(channel, o);
  if (cmd == "quarantine") return Quarantine(channel, o);
  if (cmd == "rotate") return Rotate(channel, o);
  if (cmd == "keys-to-delete") return KeysToDelete(channel, o);
  if (cmd == "key-deleted") return KeyDeleted(channel, o);
  return Fail("unknown command \"" + cmd + "\"\n" + kUsage);
}
