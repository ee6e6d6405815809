#include "app.h"

#include <grpcpp/ext/health_check_service_server_builder_option.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "admin_service.h"
#include "credbroker/anomaly/anomaly_detector.h"
#include "credbroker/anomaly/baseline_keeper.h"
#include "credbroker/anomaly/baseline_store.h"
#include "credbroker/anomaly/suspension_feed.h"
#include "credbroker/backends/aws/aws_source.h"
#include "credbroker/backends/azure/azure_source.h"
#include "credbroker/backends/file/file_source.h"
#include "credbroker/backends/gcp/gcp_source.h"
#include "credbroker/backends/vault/vault_source.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/http/http_client.h"
#include "credbroker/identity/audit_log.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/identity/authenticator_factory.h"
#include "credbroker/identity/jwt_verifier.h"
#include "credbroker/identity/policy.h"
#include "credbroker/leasing/lease_broker.h"
#include "credbroker/leasing/lease_counts.h"
#include "credbroker/leasing/lease_table.h"
#include "credbroker/leasing/revocation_feed.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/metrics/state_metrics.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/key_event_subscribers.h"
#include "credbroker/rotation/key_minter.h"
#include "credbroker/rotation/key_refresher.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/rotation/key_sources.h"
#include "credbroker/rotation/probe.h"
#include "credbroker/rotation/revocation_detector.h"
#include "credbroker/rotation/rotation_engine.h"
#include "credbroker/rotation/rotation_scheduler.h"
#include "credbroker/secrets/secret_source.h"
#include "credbroker/state/open_stores.h"
#include "event_responses.h"
#include "health_service.h"
#include "lease_service.h"
#include "prometheus/exposer.h"
#include "state_freshness.h"

namespace credbroker::broker {

secrets::SourceRegistry BuiltinSourceRegistry() {
  secrets::SourceRegistry registry;
  registry.Register(backends::file::MakeFileSourceFactory());
  registry.Register(backends::vault::MakeVaultSourceFactory());
  registry.Register(backends::aws::MakeAwsSourceFactory());
  registry.Register(backends::azure::MakeAzureSourceFactory());
  registry.Register(backends::gcp::MakeGcpSourceFactory());
  return registry;
}

namespace {

// Checks the PEM files now, so a typo fails the start instead of every handshake later.
absl::Status CheckTlsFiles(const v1::ServerTlsConfig& tls) {
  auto parse = [](const std::string& path, bool key) -> absl::Status {
    BIO* bio = BIO_new_file(path.c_str(), "r");
    if (bio == nullptr) return absl::FailedPreconditionError("cannot read " + path);
    bool ok;
    if (key) {
      EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
      ok = pkey != nullptr;
      EVP_PKEY_free(pkey);
    } else {
      X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      ok = cert != nullptr;
      X509_free(cert);
    }
    BIO_free(bio);
    if (!ok) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " is not a PEM ", key ? "private key" : "certificate"));
    }
    return absl::OkStatus();
  };
  CB_RETURN_IF_ERROR(parse(tls.cert_file(), false));
  CB_RETURN_IF_ERROR(parse(tls.key_file(), true));
  if (!tls.client_ca_file().empty()) CB_RETURN_IF_ERROR(parse(tls.client_ca_file(), false));
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const v1::ServerTlsConfig& tls) {
  auto interval = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(core::FromProtoDuration(tls.reload_interval()))));
  // The file watcher re-reads the files every interval: cert-manager renewals need no restart.
  std::shared_ptr<grpc::experimental::CertificateProviderInterface> provider;
  if (tls.client_ca_file().empty()) {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file(), tls.cert_file(), interval);
  } else {
    provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
        tls.key_file(), tls.cert_file(), tls.client_ca_file(), interval);
  }
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (tls.client_ca_file().empty()) {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  } else {
    options.watch_root_certs();
    options.set_cert_request_type(tls.require_client_cert()
                                      ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

// Where the Kubernetes JWKS comes from: a file, or the API server's /openid/v1/jwks.
absl::Status WritePortFile(const std::string& path, int grpc_port, int metrics_port,
                           int health_port) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "grpc=" << grpc_port << "\nmetrics=" << metrics_port << "\n";
    if (health_port != 0) out << "health=" << health_port << "\n";
    if (!out) return absl::FailedPreconditionError("cannot write port file " + path);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::FailedPreconditionError("cannot write port file " + path);
  return absl::OkStatus();
}

// The name gRPC's server reflection plugin registers itself under.
constexpr char kReflectionPlugin[] = "proto_server_reflection";

// Takes a plugin off the server being built.
class WithoutPlugin final : public grpc::ServerBuilderOption {
 public:
  explicit WithoutPlugin(std::string name) : name_(std::move(name)) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    std::erase_if(*plugins, [this](const auto& p) { return p->name() == name_; });
  }

 private:
  const std::string name_;
};

// Limits on what a caller may send (README, "Running the broker").
constexpr int kMaxRequestBytes = 64 * 1024;
constexpr int kMaxMetadataBytes = 16 * 1024;

// An info line with `fields` followed by `more`.
void LogWithFields(absl::string_view message, const state::Stores::Fields& fields,
                   const state::Stores::Fields& more) {
  std::vector<core::LogField> all;
  for (const auto* list : {&fields, &more}) {
    for (const auto& [k, v] : *list) all.emplace_back(k, v);
  }
  core::Log(core::LogLevel::kInfo, message, all);
}

}  // namespace

struct App::Components {
  v1::BrokerConfig config;
  AppOptions options;
  const core::Clock* clock = core::SystemClock::Get();
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<metrics::BrokerMetrics> metrics;
  std::unique_ptr<metrics::StateMetrics> state_metrics;
  // What the state store reports goes through it to the metrics (it outlives the store).
  std::unique_ptr<StateFreshness> state_freshness;
  providers::ProviderCatalog catalog;
  // Declared early so that it is destroyed last: everything below may write to it until then.
  std::unique_ptr<state::Stores> state;
  std::unique_ptr<rotation::KeySources> key_sources;
  std::unique_ptr<rotation::KeyRing> ring;
  // Ends before the ring: a store thread may report until the store is gone.
  std::unique_ptr<RingFreshnessLink> ring_freshness;
  std::vector<std::unique_ptr<rotation::KeyEventSubscription>> key_event_subscriptions;
  std::vector<std::unique_ptr<rotation::KeyRefresher>> refreshers;
  // Probes and key APIs of the providers (system CA store).
  std::unique_ptr<http::CurlHttpClient> provider_http;
  std::unique_ptr<rotation::HttpProviderProbe> probe;
  std::unique_ptr<rotation::HttpKeyMinter> minter;
  // Wakes the scheduler early (a new PENDING version, a suspected revocation).
  core::Wakeup wakeup;
  std::unique_ptr<rotation::RotationEngine> engine;
  std::unique_ptr<rotation::RotationScheduler> scheduler;
  std::unique_ptr<rotation::RevocationDetector> detector;
  std::unique_ptr<leasing::RevocationFeed> revocation_feed;
  std::unique_ptr<anomaly::AnomalyDetector> anomalies;
  std::unique_ptr<anomaly::BaselineKeeper> baselines;
  std::unique_ptr<anomaly::SuspensionFeed> suspension_feed;
  std::unique_ptr<leasing::LeaseCounts> counts;
  std::unique_ptr<leasing::LeaseTable> table;
  std::unique_ptr<identity::Authenticator> auth;
  std::unique_ptr<identity::Policy> policy;
  std::unique_ptr<identity::AuditLog> audit;
  std::unique_ptr<identity::AuthFailureFolder> auth_folder;
  std::unique_ptr<leasing::LeaseBroker> broker;
  std::unique_ptr<LeaseServiceImpl> lease_service;
  std::unique_ptr<AdminServiceImpl> admin_service;
  // grpc.health.v1.Health on both listeners, from one status table.
  HealthService health;
  std::unique_ptr<grpc::Server> server;
  // Plaintext, grpc.health.v1.Health only (server.health_listen); null when not configured.
  std::unique_ptr<grpc::Server> health_server;
  int health_port = 0;
  std::unique_ptr<prometheus::Exposer> exposer;
  int grpc_port = 0;
  int metrics_port = 0;
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

  secrets::SourceContext source_context;
  source_context.clock = c->clock;
  source_context.stats = c->metrics.get();
  CB_ASSIGN_OR_RETURN(c->key_sources,
                      rotation::KeySources::FromConfig(config, c->catalog, BuiltinSourceRegistry(),
                                                       source_context));
  c->ring = std::make_unique<rotation::KeyRing>(&c->catalog, c->clock, c->metrics.get(),
                                                c->key_sources->MaxStaleness());
  // The state file first: a second broker on the same data dir stops here, before doing anything.
  // Auth-failure reports are kept well past the revocation detection window.
  const absl::Duration report_retention =
      std::max(absl::Hours(1),
               2 * core::FromProtoDuration(config.rotation().revocation_detection().window()));
  c->state_metrics = std::make_unique<metrics::StateMetrics>(*c->registry);
  c->state_freshness = std::make_unique<StateFreshness>(c->state_metrics.get(), c->clock);
  c->ring_freshness = std::make_unique<RingFreshnessLink>(c->state_freshness.get(), c->ring.get());
  CB_ASSIGN_OR_RETURN(
      c->state, state::OpenStores(config.state(), {report_retention, c->state_freshness.get()}));
  metrics::StateMetrics* state_metrics = c->state_metrics.get();
  c->state->leadership().Subscribe(
      [state_metrics](bool leader, int64_t /*epoch*/) { state_metrics->Leader(leader); });
  CB_RETURN_IF_ERROR(c->ring->UsePersistedState(&c->state->key_states()));
  // With SQLite this broker always leads; with several replicas the others follow its decisions.
  CB_RETURN_IF_ERROR(c->ring->FollowDecisions(&c->state->leadership()));
  c->refreshers = c->key_sources->MakeRefreshers(c->ring.get());
  CB_ASSIGN_OR_RETURN(c->provider_http, http::CurlHttpClient::Create(http::TlsOptions{}));
  c->probe = std::make_unique<rotation::HttpProviderProbe>(c->provider_http.get());
  c->minter = std::make_unique<rotation::HttpKeyMinter>(c->provider_http.get(), c->clock);
  const v1::RotationConfig& rc = config.rotation();
  rotation::RotationEngineOptions engine_options;
  engine_options.probe_retry_interval = core::FromProtoDuration(rc.probe_retry_interval());
  c->engine = std::make_unique<rotation::RotationEngine>(
      c->ring.get(), &c->catalog, c->key_sources->ByProvider(), c->probe.get(), c->minter.get(),
      &c->state->key_states(), c->clock, c->metrics.get(), engine_options, &c->wakeup);
  // New versions of providers with a probe wait in PENDING until the engine has probed them.
  c->ring->GatePromotions(c->engine->GatedProviders());
  c->counts = std::make_unique<leasing::LeaseCounts>();
  {
    leasing::LeaseCounts* counts = c->counts.get();
    leasing::LeaseStats* m = c->metrics.get();
    CB_ASSIGN_OR_RETURN(
        c->table,
        leasing::LeaseTable::Create(
            &c->state->leases(), c->clock,
            {[counts](const leasing::LeaseRecord& l, int delta) { counts->Apply(l, delta); },
             [m](const leasing::LeaseRecord& l, int delta) {
               m->ActiveLeasesAdd(l.provider, l.key_version, delta);
             }}));
  }
  CB_ASSIGN_OR_RETURN(c->auth, identity::AuthenticatorFromConfig(config.identity(), c->clock));
  c->policy = std::make_unique<identity::Policy>(config.policy(), c->clock);
  if (!c->policy->configured()) {
    core::LogWarning("no policy rules: every lease is denied (add policy.rules)");
  }
  identity::AuditLogOptions audit;
  audit.path = config.audit().path();
  audit.max_queued_lines = config.audit().max_queued_lines();
  audit.fail_closed = config.audit().fail_closed();
  CB_ASSIGN_OR_RETURN(c->audit, identity::AuditLog::Open(audit, c->clock, c->metrics.get()));
  c->auth_folder = std::make_unique<identity::AuthFailureFolder>(
      identity::AuthFailureFolderOptions{}, c->clock, c->metrics.get());
  if (config.server().has_tls()) {
    CB_RETURN_IF_ERROR(core::Annotate(CheckTlsFiles(config.server().tls()), "server.tls"));
  } else if (config.server().insecure_plaintext()) {
    core::LogWarning(
        "server.insecure_plaintext: leases (which carry provider keys) are served without TLS; "
        "only something in front of the broker that encrypts the traffic keeps them secret",
        {{"listen", config.server().listen()}});
  }
  c->broker = std::make_unique<leasing::LeaseBroker>(
      c->ring.get(), c->table.get(), c->counts.get(), c->metrics.get(), c->clock,
      leasing::TtlPolicy::FromConfig(config.leases()), c->policy.get(), c->audit.get());
  // Retirement of replaced key versions waits for their leases (and revokes them at the deadline).
  c->ring->SetLeaseView(c->broker.get());
  c->broker->SetAuthFailureReports(&c->state->facts());
  if (!rc.revocation_detection().disabled()) {
    c->detector = std::make_unique<rotation::RevocationDetector>(
        rc.revocation_detection().min_callers(),
        core::FromProtoDuration(rc.revocation_detection().window()));
    rotation::RotationEngine* engine = c->engine.get();
    CB_ASSIGN_OR_RETURN(c->revocation_feed,
                        leasing::RevocationFeed::Start(
                            &c->state->facts(), &c->state->leadership(), c->detector.get(),
                            [engine](const std::string& provider, const std::string& version) {
                              engine->SuspectRevoked(provider, version);
                            },
                            c->clock->Now()));
  }
  if (!config.anomaly_detection().disabled()) {
    c->anomalies = std::make_unique<anomaly::AnomalyDetector>(
        anomaly::AnomalyOptions::FromConfig(config.anomaly_detection()), c->clock, c->metrics.get(),
        AnomalyResponder(c->broker.get(), c->audit.get(), c->ring.get(), &c->state->facts()),
        [policy = c->policy.get()](absl::string_view identity) {
          return policy->MetricLabel(identity);
        });
    c->broker->SetAnomalyDetector(c->anomalies.get());
    // What earlier runs learned: no fresh warm-up or learning window after a restart.
    c->baselines = std::make_unique<anomaly::BaselineKeeper>(c->anomalies.get(),
                                                             &c->state->anomaly_baselines());
    CB_RETURN_IF_ERROR(c->baselines->Restore());
    CB_ASSIGN_OR_RETURN(
        c->suspension_feed,
        anomaly::SuspensionFeed::Start(&c->state->facts(), c->anomalies.get(), c->clock->Now()));
  }
  const std::vector<std::pair<std::string, std::string>> anomaly_kinds =
      c->anomalies ? c->anomalies->options().KindActions()
                   : std::vector<std::pair<std::string, std::string>>{};
  for (const providers::ProviderSpec& spec : c->catalog.providers()) {
    c->metrics->InitProvider(spec.name, spec.mint != nullptr, anomaly_kinds);
  }
  // Cross-cutting work on key events: each concern its own subscriber.
  for (rotation::KeyRing::Listener listener :
       {rotation::KeyRing::Listener(rotation::KeyTransitionLogger()),
        rotation::KeyRing::Listener(rotation::KeyTransitionCounter(c->metrics.get())),
        rotation::KeyRing::Listener(rotation::KeyQuarantineCounter(c->metrics.get())),
        rotation::KeyRing::Listener(KeyTransitionAuditor(c->audit.get()))}) {
    c->key_event_subscriptions.push_back(
        std::make_unique<rotation::KeyEventSubscription>(c->ring.get(), std::move(listener)));
  }
  // The loops of rotation and lease expiry: leader work only while this replica leads.
  rotation::RotationSchedulerOptions scheduling;
  scheduling.check_interval = core::FromProtoDuration(rc.check_interval());
  scheduling.sweep_interval = core::FromProtoDuration(config.leases().sweep_interval());
  leasing::LeaseBroker* broker = c->broker.get();
  anomaly::BaselineKeeper* baselines = c->baselines.get();
  c->scheduler = std::make_unique<rotation::RotationScheduler>(
      &c->state->leadership(), &c->wakeup,
      rotation::RotationScheduler::Work{c->engine.get(), c->ring.get(),
                                        [broker] { broker->SweepExpired(); },
                                        [baselines] {
                                          if (baselines != nullptr) baselines->Tick();
                                        }},
      scheduling, c->clock);
  Edge edge{c->auth.get(), c->metrics.get(), c->policy.get(), c->audit.get(), c->auth_folder.get()};
  c->lease_service = std::make_unique<LeaseServiceImpl>(
      c->broker.get(), edge,
      WatchLimits{config.server().max_watch_streams(),
                  config.server().max_watch_streams_per_caller()});
  c->admin_service = std::make_unique<AdminServiceImpl>(c->broker.get(), edge, &c->catalog,
                                                        c->engine.get(), &c->state->leadership());
  return std::unique_ptr<App>(new App(std::move(c)));
}

absl::Status App::Start() {
  Components& c = *c_;
  // Keys first, so the first request is served from a loaded ring.
  for (auto& r : c.refreshers) r->Start();
  c.scheduler->Start();
  c.broker->RestoreLoaded(c.table->List([](const leasing::LeaseRecord&) { return true; }));
  LogWithFields("leases restored", {{"count", absl::StrCat(c.table->size())}}, c.state->Describe());

  try {
    c.exposer = std::make_unique<prometheus::Exposer>(c.config.server().metrics_listen());
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot serve metrics on ", c.config.server().metrics_listen(), ": ", e.what()));
  }
  c.exposer->RegisterCollectable(c.registry);
  std::vector<int> ports = c.exposer->GetListeningPorts();
  c.metrics_port = ports.empty() ? 0 : ports.front();

  grpc::ServerBuilder builder;
  // gRPC's default health service would keep a status table per server; ours serves both.
  builder.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
  builder.RegisterService(&c.health);
  if (c.config.server().reflection()) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  } else {
    // Linking gRPC's reflection library registers its plugin for every server at load time.
    builder.SetOption(std::make_unique<WithoutPlugin>(kReflectionPlugin));
  }
  // gRPC sets SO_REUSEPORT by default, which lets a second broker bind the same port and
  // silently share its traffic. One port, one broker.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Every request the API defines is small: a caller cannot make the broker buffer megabytes
  // (gRPC's default is 4 MiB per message) or kilobytes of headers beyond a projected token's.
  builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, kMaxMetadataBytes);
  builder.AddListeningPort(c.config.server().listen(),
                           c.config.server().has_tls() ? ServerCredentials(c.config.server().tls())
                                                       : grpc::InsecureServerCredentials(),
                           &c.grpc_port);
  builder.RegisterService(c.lease_service.get());
  builder.RegisterService(c.admin_service.get());
  c.server = builder.BuildAndStart();
  if (c.server == nullptr || c.grpc_port == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen for gRPC on ", c.config.server().listen()));
  }
  const std::string& health_listen = c.config.server().health_listen();
  if (!health_listen.empty()) {
    // The health service and nothing else: no leases in plaintext, no reflection.
    grpc::ServerBuilder health_builder;
    health_builder.SetOption(std::make_unique<WithoutPlugin>(kReflectionPlugin));
    health_builder.SetOption(
        std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    health_builder.RegisterService(&c.health);
    health_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    health_builder.SetMaxReceiveMessageSize(kMaxRequestBytes);
    health_builder.AddListeningPort(health_listen, grpc::InsecureServerCredentials(),
                                    &c.health_port);
    c.health_server = health_builder.BuildAndStart();
    if (c.health_server == nullptr || c.health_port == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot listen for gRPC health checks on ", health_listen));
    }
  }
  c.health.SetServing(true);

  c.started = true;

  std::vector<std::string> names;
  for (const auto& p : c.catalog.providers()) names.push_back(p.name);
  core::LogInfo(
      "credbroker serving",
      {{"grpc",
        absl::StrCat(c.config.server().listen().substr(0, c.config.server().listen().rfind(':')),
                     ":", c.grpc_port)},
       {"metrics", absl::StrCat(c.config.server().metrics_listen().substr(
                                    0, c.config.server().metrics_listen().rfind(':')),
                                ":", c.metrics_port, "/metrics")},
       {"health",
        c.health_server == nullptr
            ? std::string("main listener only")
            : absl::StrCat(health_listen.substr(0, health_listen.rfind(':')), ":", c.health_port)},
       {"providers", absl::StrJoin(names, ",")}});
  if (!c.options.port_file.empty()) {
    CB_RETURN_IF_ERROR(
        WritePortFile(c.options.port_file, c.grpc_port, c.metrics_port, c.health_port));
  }
  return absl::OkStatus();
}

void App::Shutdown() {
  Components& c = *c_;
  if (c.shut_down) return;
  c.shut_down = true;
  // NOT_SERVING first, on both listeners, so the kubelet takes the pod out of its Service
  // before the drain.
  c.health.Shutdown();
  if (c.server) {
    c.lease_service->CloseWatchers();
    c.server->Shutdown(
        std::chrono::system_clock::now() +
        absl::ToChronoSeconds(core::FromProtoDuration(c.config.server().shutdown_grace())));
    core::LogDebug("grpc server shut down");
    c.server->Wait();
  }
  if (c.health_server) {
    c.health_server->Shutdown(std::chrono::system_clock::now());
    c.health_server->Wait();
  }
  core::LogDebug("grpc server stopped");
  c.scheduler->Stop();
  if (c.baselines) c.baselines->Save();
  if (state::Stores::Fields summary = c.state->Summary(); !summary.empty()) {
    LogWithFields("state store: group commit", {}, summary);
  }
  for (auto& r : c.refreshers) r->Stop();
  core::LogDebug("refreshers stopped");
  c.key_event_subscriptions.clear();
  c.exposer.reset();
  if (c.started) core::LogInfo("credbroker stopped");
}

int App::grpc_port() const { return c_->grpc_port; }
int App::metrics_port() const { return c_->metrics_port; }

}  // namespace credbroker::broker
