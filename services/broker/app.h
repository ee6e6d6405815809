// The composition root: builds every component from the validated configuration, wires them,
// and owns their lifetimes. No other file constructs a backend, a store or the server.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "credbroker/secrets/secret_source.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::broker {

struct AppOptions {
  // Where to write "grpc=<port>\nmetrics=<port>\n" (and "health=<port>\n" with
  // server.health_listen) once listening (tests bind port 0).
  std::string port_file;
};

// The backends this build has, each with its factory (file, vault, ...).
secrets::SourceRegistry BuiltinSourceRegistry();

class App {
 public:
  static absl::StatusOr<std::unique_ptr<App>> Create(const v1::BrokerConfig& config,
                                                     const AppOptions& options);
  ~App();

  // Loads keys and leases, starts the gRPC server, the metrics endpoint and the background
  // threads. Returns once serving.
  absl::Status Start();
  // Stops accepting, lets in-flight RPCs finish (up to server.shutdown_grace), stops threads.
  void Shutdown();

  int grpc_port() const;
  int metrics_port() const;

 private:
  struct Components;
  explicit App(std::unique_ptr<Components> c);
  // Writes the anomaly detector's baselines to the state store (errors are logged).
  std::unique_ptr<Components> c_;
};

}  // namespace credbroker::broker
