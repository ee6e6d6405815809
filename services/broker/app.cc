#include "app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <filesystem>
#include <fstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/backends/file/file_source.h"
#include "credbroker/backends/vault/vault_source.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/leases/lease_store.h"
#include "credbroker/leases/lease_table.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/key_refresher.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/secrets/secret_source.h"
#include "grpc_services.h"
#include "lease_broker.h"
#include "prometheus/exposer.h"

namespace credbroker::broker {
namespace {

void RegisterBuiltinBackends(secrets::SourceRegistry& registry) {
  registry.Register(backends::file::MakeFileSourceFactory());
  registry.Register(backends::vault::MakeVaultSourceFactory());
}

absl::Status WritePortFile(const std::string& path, int grpc_port, int metrics_port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "grpc=" << grpc_port << "\nmetrics=" << metrics_port << "\n";
    if (!out) return absl::FailedPreconditionError("cannot write port file " + path);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::FailedPreconditionError("cannot write port file " + path);
  return absl::OkStatus();
}

}  // namespace

struct App::Components {
  v1::BrokerConfig config;
  AppOptions options;
  const core::Clock* clock = core::SystemClock::Get();
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<metrics::BrokerMetrics> metrics;
  providers::ProviderCatalog catalog;
  std::vector<std::unique_ptr<secrets::SecretSource>> sources;
  std::unique_ptr<rotation::KeyRing> ring;
  std::vector<std::unique_ptr<rotation::KeyRefresher>> refreshers;
  std::unique_ptr<leases::LeaseStore> store;
  std::unique_ptr<leases::LeaseTable> table;
  std::unique_ptr<identity::Authenticator> auth;
  std::unique_ptr<LeaseBroker> broker;
  std::unique_ptr<LeaseServiceImpl> lease_service;
  std::unique_ptr<AdminServiceImpl> admin_service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<prometheus::Exposer> exposer;
  int grpc_port = 0;
  int metrics_port = 0;
  absl::Notification stop_sweeper;
  std::thread sweeper;
  bool started = false;
  bool shut_down = false;
};

App::App(std::unique_ptr<Components> c) : c_(std::move(c)) {}

App::~App() { Shutdown(); }

absl::StatusOr<std::unique_ptr<App>> App::Create(const v1::BrokerConfig& config,
                                                 const AppOptions& options) {
  auto c = std::make_unique<Components>();
  c->config = config;
  c->options = options;
  core::LogLevel level = core::LogLevel::kInfo;
  core::ParseLogLevel(config.logging().level(), &level);
  core::SetLogLevel(level);

  c->registry = std::make_shared<prometheus::Registry>();
  c->metrics = std::make_unique<metrics::BrokerMetrics>(c->registry);
  CB_ASSIGN_OR_RETURN(c->catalog, providers::ProviderCatalog::FromConfig(config));

  secrets::SourceRegistry registry;
  RegisterBuiltinBackends(registry);
  secrets::SourceContext context{c->clock};
  absl::flat_hash_map<std::string, absl::Duration> staleness;
  for (const v1::SourceConfig& sc : config.sources()) {
    CB_ASSIGN_OR_RETURN(auto source, registry.Create(sc, context));
    c->sources.push_back(std::move(source));
  }
  for (const providers::ProviderSpec& spec : c->catalog.providers()) {
    for (const v1::SourceConfig& sc : config.sources()) {
      if (sc.name() == spec.source)
        staleness[spec.name] = core::FromProtoDuration(sc.max_staleness());
    }
  }
  c->ring = std::make_unique<rotation::KeyRing>(&c->catalog, c->clock, c->metrics.get(),
                                                std::move(staleness));
  for (size_t i = 0; i < c->sources.size(); ++i) {
    const v1::SourceConfig& sc = config.sources(static_cast<int>(i));
    std::vector<std::string> names;
    for (const providers::ProviderSpec& spec : c->catalog.providers()) {
      if (spec.source == sc.name()) names.push_back(spec.name);
    }
    c->refreshers.push_back(std::make_unique<rotation::KeyRefresher>(
        c->ring.get(), c->sources[i].get(), std::move(names),
        core::FromProtoDuration(sc.refresh_interval())));
  }

  CB_ASSIGN_OR_RETURN(c->store, leases::MakeLeaseStore(config.lease_store()));
  c->table = std::make_unique<leases::LeaseTable>(c->store.get(), c->clock);
  CB_ASSIGN_OR_RETURN(auto auth, identity::StaticTokenAuthenticator::Create(config.identity()));
  if (auth->size() == 0) {
    core::LogWarning("no caller identities are configured: every request will be rejected");
  }
  c->auth = std::move(auth);
  TtlPolicy ttl{core::FromProtoDuration(config.leases().default_ttl()),
                core::FromProtoDuration(config.leases().min_ttl()),
                core::FromProtoDuration(config.leases().max_ttl())};
  c->broker =
      std::make_unique<LeaseBroker>(c->ring.get(), c->table.get(), c->metrics.get(), c->clock, ttl);
  c->lease_service =
      std::make_unique<LeaseServiceImpl>(c->broker.get(), c->auth.get(), c->metrics.get());
  c->admin_service = std::make_unique<AdminServiceImpl>(c->broker.get(), c->auth.get(),
                                                        c->metrics.get(), &c->catalog);
  return std::unique_ptr<App>(new App(std::move(c)));
}

absl::Status App::Start() {
  Components& c = *c_;
  // Keys first, so the first request is served from a loaded ring.
  for (auto& r : c.refreshers) r->Start();
  absl::StatusOr<std::vector<leases::LeaseRecord>> loaded = c.table->LoadFromStore();
  if (!loaded.ok()) return core::Annotate(loaded.status(), "loading leases");
  c.broker->RestoreLoaded(*loaded);
  core::LogInfo("leases restored", {{"count", absl::StrCat(loaded->size())},
                                    {"store", c.config.lease_store().sqlite().path()}});

  try {
    c.exposer = std::make_unique<prometheus::Exposer>(c.config.server().metrics_listen());
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot serve metrics on ", c.config.server().metrics_listen(), ": ", e.what()));
  }
  c.exposer->RegisterCollectable(c.registry);
  std::vector<int> ports = c.exposer->GetListeningPorts();
  c.metrics_port = ports.empty() ? 0 : ports.front();

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which lets a second broker bind the same port and
  // silently share its traffic. One port, one broker.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(c.config.server().listen(), grpc::InsecureServerCredentials(),
                           &c.grpc_port);
  builder.RegisterService(c.lease_service.get());
  builder.RegisterService(c.admin_service.get());
  c.server = builder.BuildAndStart();
  if (c.server == nullptr || c.grpc_port == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen for gRPC on ", c.config.server().listen()));
  }
  grpc::HealthCheckServiceInterface* health = c.server->GetHealthCheckService();
  for (const char* service :
       {"", "liveness", "readiness", "credbroker.v1.LeaseService", "credbroker.v1.AdminService"}) {
    health->SetServingStatus(service, true);
  }

  absl::Duration sweep = core::FromProtoDuration(c.config.leases().sweep_interval());
  c.sweeper = std::thread([&c, sweep] {
    while (!c.stop_sweeper.WaitForNotificationWithTimeout(sweep)) {
      size_t n = c.broker->SweepExpired();
      if (n > 0) core::LogDebug("expired leases swept", {{"count", absl::StrCat(n)}});
    }
  });
  c.started = true;

  std::vector<std::string> names;
  for (const auto& p : c.catalog.providers()) names.push_back(p.name);
  core::LogInfo("credbroker serving",
                {{"grpc", absl::StrCat(c.config.server().listen().substr(
                                           0, c.config.server().listen().rfind(':')),
                                       ":", c.grpc_port)},
                 {"metrics", absl::StrCat(c.config.server().metrics_listen().substr(
                                              0, c.config.server().metrics_listen().rfind(':')),
                                          ":", c.metrics_port, "/metrics")},
                 {"providers", absl::StrJoin(names, ",")}});
  if (!c.options.port_file.empty()) {
    CB_RETURN_IF_ERROR(WritePortFile(c.options.port_file, c.grpc_port, c.metrics_port));
  }
  return absl::OkStatus();
}

void App::Shutdown() {
  Components& c = *c_;
  if (c.shut_down) return;
  c.shut_down = true;
  if (c.server) {
    c.server->GetHealthCheckService()->Shutdown();
    c.lease_service->CloseWatchers();
    c.server->Shutdown(
        std::chrono::system_clock::now() +
        absl::ToChronoSeconds(core::FromProtoDuration(c.config.server().shutdown_grace())));
    core::LogDebug("grpc server shut down");
    c.server->Wait();
  }
  core::LogDebug("grpc server stopped");
  if (c.sweeper.joinable()) {
    c.stop_sweeper.Notify();
    c.sweeper.join();
  }
  for (auto& r : c.refreshers) r->Stop();
  core::LogDebug("refreshers stopped");
  c.exposer.reset();
  if (c.started) core::LogInfo("credbroker stopped");
}

int App::grpc_port() const { return c_->grpc_port; }
int App::metrics_port() const { return c_->metrics_port; }

}  // namespace credbroker::broker
