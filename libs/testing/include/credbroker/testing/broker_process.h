// Runs the real `credbroker` binary as a child process for end-to-end tests. The broker binds
// 127.0.0.1:0 and reports its ports through --port-file, so tests never pick fixed ports.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace credbroker::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string output;  // stdout and stderr together
};

// Starts `argv` (argv[0] a path) with stdout and stderr going to `log_path`; returns its pid.
pid_t SpawnProcess(const std::vector<std::string>& argv, const std::string& log_path);

// A TCP port on 127.0.0.1 that was free a moment ago (bound and released), for a child process
// that cannot report the port it bound itself.
absl::StatusOr<int> FreeLoopbackPort();

// Runs a command to completion (bounded by `timeout`), capturing its output.
ProcessResult RunCommand(const std::vector<std::string>& argv,
                         absl::Duration timeout = absl::Seconds(60));

class BrokerProcess {
 public:
  // Starts `binary` with `args` plus --port-file and waits until it reports its ports.
  static absl::StatusOr<BrokerProcess> Start(const std::string& binary,
                                             const std::vector<std::string>& args,
                                             const std::string& work_dir,
                                             absl::Duration timeout = absl::Seconds(30));
  BrokerProcess(BrokerProcess&& other) noexcept;
  BrokerProcess& operator=(BrokerProcess&&) = delete;
  ~BrokerProcess();

  std::string grpc_address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  std::string metrics_address() const { return "127.0.0.1:" + std::to_string(metrics_port_); }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  // The plaintext health listener's port (server.health_listen); 0 when there is none.
  int health_port() const { return health_port_; }
  pid_t pid() const { return pid_; }

  // SIGKILL, no cleanup: simulates a crash.
  void Kill();
  // SIGTERM and wait; returns the exit code (-1 if it had to be killed).
  int Stop(absl::Duration grace = absl::Seconds(10));
  // Everything the broker wrote to stderr so far.
  std::string Logs() const;

 private:
  BrokerProcess() = default;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int health_port_ = 0;
  std::string log_path_;
};

// Any helper process (e.g. a fixture server) that writes its port number to a file once
// listening. Killed on destruction.
class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Start(const std::vector<std::string>& argv,
                                            const std::string& port_file,
                                            const std::string& log_path,
                                            absl::Duration timeout = absl::Seconds(20));
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess();
  int port() const { return port_; }
  std::string Logs() const;

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

// GET http://address/path over a plain socket; returns the body (status 200 only).
absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path);

// The path of a built binary, from an environment variable set by CTest (e.g. CREDBROKER_BIN).
std::string BinaryFromEnv(const char* env_var);

}  // namespace credbroker::testing
