#include "credbroker/testing/broker_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX sigwait/kill
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "credbroker/testing/temp_dir.h"

namespace credbroker::testing {
namespace {

// posix_spawn, not fork + exec: the tests that start processes have gRPC threads running, and a
// forked child that allocates before exec can deadlock on a lock another thread held at the fork
// (seen under ASan: the restarted broker never ran, its log stayed empty). glibc's posix_spawn
// runs nothing but the file actions and exec in the child. Returns -1 (errno set) on failure.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  if (::posix_spawn_file_actions_init(&actions) != 0) return -1;
  int rc = ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                              O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  if (rc == 0) {
    rc = ::posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  pid_t pid = -1;
  if (rc == 0) rc = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    errno = rc;
    return -1;
  }
  return pid;
}

// Waits for `pid` up to `timeout`; returns the wait status or -1 on timeout.
int WaitFor(pid_t pid, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return 0;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return -1;
}

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

}  // namespace

pid_t SpawnProcess(const std::vector<std::string>& argv, const std::string& log_path) {
  return Spawn(argv, log_path);
}

absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return absl::InternalError("bind(127.0.0.1:0) failed");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

ProcessResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout) {
  char tmpl[] = "/tmp/credbroker-cmd-XXXXXX";
  int fd = ::mkstemp(tmpl);
  if (fd >= 0) ::close(fd);
  ProcessResult result;
  pid_t pid = Spawn(argv, tmpl);
  if (pid < 0) {
    result.exit_code = 127;  // as a shell says of a command it cannot run
    result.output = absl::StrCat("cannot run ", argv.front(), ": ", std::strerror(errno));
    ::unlink(tmpl);
    return result;
  }
  int status = WaitFor(pid, timeout);
  if (status == -1) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    result.exit_code = -1;
  } else {
    result.exit_code = ExitCode(status);
  }
  result.output = ReadFile(tmpl);
  ::unlink(tmpl);
  return result;
}

absl::StatusOr<BrokerProcess> BrokerProcess::Start(const std::string& binary,
                                                   const std::vector<std::string>& args,
                                                   const std::string& work_dir,
                                                   absl::Duration timeout) {
  static int counter = 0;
  std::string port_file = absl::StrCat(work_dir, "/ports-", ++counter, ".txt");
  std::error_code ec;
  std::filesystem::remove(port_file, ec);
  std::vector<std::string> argv = {binary};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.emplace_back("--port-file");
  argv.push_back(port_file);
  BrokerProcess proc;
  proc.log_path_ = absl::StrCat(work_dir, "/broker-", counter, ".log");
  proc.pid_ = Spawn(argv, proc.log_path_);
  if (proc.pid_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", binary, ": ", std::strerror(errno)));
  }
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (::waitpid(proc.pid_, &status, WNOHANG) == proc.pid_) {
      proc.pid_ = -1;
      return absl::FailedPreconditionError(absl::StrCat(
          "broker exited with code ", ExitCode(status), " before listening; log:\n", proc.Logs()));
    }
    std::string contents = ReadFile(port_file);
    // The broker writes "grpc=<port>\nmetrics=<port>\n" atomically (rename).
    if (absl::StrContains(contents, "metrics=")) {
      for (absl::string_view line : absl::StrSplit(contents, '\n', absl::SkipEmpty())) {
        std::pair<std::string, std::string> kv = absl::StrSplit(line, '=');
        int port = 0;
        if (!absl::SimpleAtoi(kv.second, &port)) continue;
        if (kv.first == "grpc") proc.grpc_port_ = port;
        if (kv.first == "metrics") proc.metrics_port_ = port;
        if (kv.first == "health") proc.health_port_ = port;
      }
      return proc;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("broker did not report its ports; log:\n" + proc.Logs());
}

BrokerProcess::BrokerProcess(BrokerProcess&& other) noexcept
    : pid_(other.pid_),
      grpc_port_(other.grpc_port_),
      metrics_port_(other.metrics_port_),
      health_port_(other.health_port_),
      log_path_(std::move(other.log_path_)) {
  other.pid_ = -1;
}

BrokerProcess::~BrokerProcess() {
  if (pid_ > 0) Stop();
}

void BrokerProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int BrokerProcess::Stop(absl::Duration grace) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = WaitFor(pid_, grace);
  if (status == -1) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }
  pid_ = -1;
  return ExitCode(status);
}

std::string BrokerProcess::Logs() const { return ReadFile(log_path_); }

absl::StatusOr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv,
                                                 const std::string& port_file,
                                                 const std::string& log_path,
                                                 absl::Duration timeout) {
  std::error_code ec;
  std::filesystem::remove(port_file, ec);
  ChildProcess proc;
  proc.log_path_ = log_path;
  proc.pid_ = Spawn(argv, log_path);
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (::waitpid(proc.pid_, &status, WNOHANG) == proc.pid_) {
      proc.pid_ = -1;
      return absl::FailedPreconditionError(
          absl::StrCat(argv[0], " exited early; log:\n", ReadFile(log_path)));
    }
    int port = 0;
    std::string contents = ReadFile(port_file);
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(contents), &port) && port > 0) {
      proc.port_ = port;
      return proc;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("child did not report its port; log:\n" + proc.Logs());
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), port_(other.port_), log_path_(std::move(other.log_path_)) {
  other.pid_ = -1;
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (WaitFor(pid_, absl::Seconds(5)) == -1) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string ChildProcess::Logs() const { return ReadFile(log_path_); }

absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path) {
  std::pair<std::string, std::string> hp = absl::StrSplit(host_port, ':');
  int port = 0;
  if (!absl::SimpleAtoi(hp.second, &port)) return absl::InvalidArgumentError("bad address");
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, hp.first.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return absl::UnavailableError("connect failed");
  }
  std::string req = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host_port, "\r\n\r\n");
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return absl::UnavailableError("write failed");
  }
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  ::close(fd);
  size_t header_end = resp.find("\r\n\r\n");
  if (header_end == std::string::npos) return absl::UnavailableError("no HTTP response");
  if (!absl::StrContains(resp.substr(0, resp.find("\r\n")), " 200")) {
    return absl::UnavailableError("HTTP status: " + resp.substr(0, resp.find("\r\n")));
  }
  return resp.substr(header_end + 4);
}

std::string BinaryFromEnv(const char* env_var) {
  const char* v = std::getenv(env_var);
  return v ? v : "";
}

}  // namespace credbroker::testing
