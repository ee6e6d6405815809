// credbroker: parses flags, loads the configuration, runs the App until SIGINT/SIGTERM.
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigwait/kill

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "app.h"
#include "credbroker/config/config.h"
#include "credbroker/core/log.h"
#include "credbroker/core/process.h"

namespace {

constexpr char kUsage[] = R"(usage:
  credbroker --config FILE [--listen HOST:PORT] [--metrics-listen HOST:PORT] [--data-dir DIR]
             [--port-file FILE]
  credbroker --check-config FILE
  credbroker --version

Flags override the configuration file. --port-file writes the bound ports ("grpc=N",
"metrics=N", "health=N") once serving, for listen addresses with port 0.
)";

struct Flags {
  std::string config;
  std::string check_config;
  std::string port_file;
  credbroker::config::Overrides overrides;
  bool version = false;
  bool help = false;
};

// Returns false and prints why when the command line is malformed.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    size_t eq = arg.find('=');
    bool inline_value = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto take = [&](std::string* out) {
      if (inline_value) {
        *out = value;
        return true;
      }
      if (i + 1 >= argc) {
        std::fprintf(stderr, "credbroker: %s needs a value\n", arg.c_str());
        return false;
      }
      *out = argv[++i];
      return true;
    };
    bool ok = true;
    if (arg == "--config")
      ok = take(&flags->config);
    else if (arg == "--check-config")
      ok = take(&flags->check_config);
    else if (arg == "--listen")
      ok = take(&flags->overrides.listen);
    else if (arg == "--metrics-listen")
      ok = take(&flags->overrides.metrics_listen);
    else if (arg == "--data-dir")
      ok = take(&flags->overrides.data_dir);
    else if (arg == "--port-file")
      ok = take(&flags->port_file);
    else if (arg == "--version")
      flags->version = true;
    else if (arg == "--help" || arg == "-h")
      flags->help = true;
    else {
      std::fprintf(stderr, "credbroker: unknown flag %s\n\n%s", arg.c_str(), kUsage);
      return false;
    }
    if (!ok) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil is built with the lock-order cycle detector on, which looks up a graph on every
  // Mutex acquisition. The tests keep it (they link the libraries, not this main); the broker runs
  // without it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  if (flags.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (flags.version) {
    std::puts("credbroker 0.1.0");
    return 0;
  }
  // Each backend checks its own block of the config.
  const credbroker::secrets::SourceRegistry backends = credbroker::broker::BuiltinSourceRegistry();
  auto backend_checks = [&backends](const credbroker::v1::BrokerConfig& c) {
    return backends.Validate(c);
  };
  if (!flags.check_config.empty()) {
    auto config = credbroker::config::LoadConfigFile(flags.check_config, {}, backend_checks);
    if (!config.ok()) {
      std::fprintf(stderr, "credbroker: invalid configuration:\n%s\n",
                   std::string(config.status().message()).c_str());
      return 2;
    }
    std::printf("%s: configuration is valid (%d providers, %d sources)\n",
                flags.check_config.c_str(), config->providers_size(), config->sources_size());
    return 0;
  }
  if (flags.config.empty()) {
    std::fprintf(stderr, "credbroker: --config FILE is required\n\n%s", kUsage);
    return 2;
  }
  auto config = credbroker::config::LoadConfigFile(flags.config, flags.overrides, backend_checks);
  if (!config.ok()) {
    std::fprintf(stderr, "credbroker: invalid configuration:\n%s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }

  // Before anything holds a key or creates a file.
  if (absl::Status s = credbroker::core::HardenProcess(); !s.ok()) {
    std::fprintf(stderr, "credbroker: cannot harden the process: %s\n", s.ToString().c_str());
    return 1;
  }

  // Signals are taken synchronously by this thread with sigwait; block them before any other
  // thread starts so they inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  credbroker::broker::AppOptions options;
  options.port_file = flags.port_file;
  auto app = credbroker::broker::App::Create(*config, options);
  if (!app.ok()) {
    credbroker::core::LogError("cannot start", {{"error", app.status().ToString()}});
    return 1;
  }
  if (absl::Status s = (*app)->Start(); !s.ok()) {
    credbroker::core::LogError("cannot start", {{"error", s.ToString()}});
    (*app)->Shutdown();
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  credbroker::core::LogInfo("shutting down", {{"signal", strsignal(sig)}});
  (*app)->Shutdown();
  return 0;
}
