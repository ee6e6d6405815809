#include "credbroker/state/etcd/etcd_cluster.h"

#include <signal.h>  // NOLINT(modernize-deprecated-headers): POSIX kill
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/etcd/client.h"
#include "credbroker/testing/broker_process.h"
#include "credbroker/testing/temp_dir.h"

namespace credbroker::state::etcd::testing {
namespace {

std::string EtcdBinary() {
  const char* bin = std::getenv("CB_ETCD_BIN");
  return bin != nullptr && *bin != '\0' ? bin : "/usr/bin/etcd";
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(const std::string& dir,
                                                                int members) {
  std::unique_ptr<EtcdCluster> cluster(new EtcdCluster());
  std::vector<std::string> peers;
  for (int i = 0; i < members; ++i) {
    Member m;
    m.name = absl::StrCat("m", i);
    m.data_dir = absl::StrCat(dir, "/etcd-", m.name);
    m.log_path = absl::StrCat(dir, "/etcd-", m.name, ".log");
    CB_ASSIGN_OR_RETURN(m.client_port, credbroker::testing::FreeLoopbackPort());
    CB_ASSIGN_OR_RETURN(m.peer_port, credbroker::testing::FreeLoopbackPort());
    peers.push_back(absl::StrCat(m.name, "=http://127.0.0.1:", m.peer_port));
    cluster->members_.push_back(std::move(m));
  }
  cluster->initial_cluster_ = absl::StrJoin(peers, ",");
  for (int i = 0; i < members; ++i) CB_RETURN_IF_ERROR(cluster->Launch(i, /*existing=*/false));
  for (int i = 0; i < members; ++i) CB_RETURN_IF_ERROR(cluster->WaitServing(i));
  return cluster;
}

EtcdCluster::~EtcdCluster() {
  for (int i = 0; i < size(); ++i) Kill(i);
}

std::string EtcdCluster::endpoint(int i) const {
  return absl::StrCat("127.0.0.1:", members_[i].client_port);
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (int i = 0; i < size(); ++i) out.push_back(endpoint(i));
  return out;
}

absl::Status EtcdCluster::Launch(int i, bool existing) {
  Member& m = members_[i];
  const std::string client = absl::StrCat("http://127.0.0.1:", m.client_port);
  const std::string peer = absl::StrCat("http://127.0.0.1:", m.peer_port);
  std::vector<std::string> argv = {
      EtcdBinary(),
      "--name",
      m.name,
      "--data-dir",
      m.data_dir,
      "--listen-client-urls",
      client,
      "--advertise-client-urls",
      client,
      "--listen-peer-urls",
      peer,
      "--initial-advertise-peer-urls",
      peer,
      "--initial-cluster",
      initial_cluster_,
      "--initial-cluster-state",
      existing ? "existing" : "new",
      "--initial-cluster-token",
      "credbroker-test",
      // Loopback: elections in a fraction of etcd's defaults (100 ms / 1 s) keep tests short.
      "--heartbeat-interval",
      "25",
      "--election-timeout",
      "250",
      "--logger",
      "zap",
      "--log-outputs",
      "stderr",
      "--log-level",
      "warn",
  };
  m.pid = credbroker::testing::SpawnProcess(argv, m.log_path);
  if (m.pid <= 0) return absl::InternalError("cannot start etcd");
  return absl::OkStatus();
}

void EtcdCluster::Kill(int i) {
  Member& m = members_[i];
  if (m.pid <= 0) return;
  ::kill(m.pid, SIGCONT);
  ::kill(m.pid, SIGKILL);
  ::waitpid(m.pid, nullptr, 0);
  m.pid = -1;
}

absl::Status EtcdCluster::Restart(int i) {
  Kill(i);
  CB_RETURN_IF_ERROR(Launch(i, /*existing=*/true));
  return WaitServing(i);
}

absl::Status EtcdCluster::RestartKilled() {
  for (int i = 0; i < size(); ++i) {
    if (members_[i].pid <= 0) CB_RETURN_IF_ERROR(Launch(i, /*existing=*/true));
  }
  for (int i = 0; i < size(); ++i) CB_RETURN_IF_ERROR(WaitServing(i));
  return absl::OkStatus();
}

void EtcdCluster::Pause(int i) {
  if (members_[i].pid > 0) ::kill(members_[i].pid, SIGSTOP);
}

void EtcdCluster::Resume(int i) {
  if (members_[i].pid > 0) ::kill(members_[i].pid, SIGCONT);
}

absl::Status EtcdCluster::WaitServing(int i, absl::Duration timeout) const {
  EtcdClientOptions options;
  options.endpoints = {endpoint(i)};
  options.request_timeout = absl::Milliseconds(500);
  CB_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> client, EtcdClient::Create(options));
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last;
  while (absl::Now() < deadline) {
    int status = 0;
    if (members_[i].pid > 0 && ::waitpid(members_[i].pid, &status, WNOHANG) == members_[i].pid) {
      return absl::FailedPreconditionError(
          absl::StrCat("etcd ", members_[i].name, " exited; log:\n", Logs(i)));
    }
    // etcd listens before it serves: a gRPC connection made in between stalls for seconds, so
    // first wait for its HTTP health endpoint (true once it has a leader).
    absl::StatusOr<std::string> health = credbroker::testing::HttpGet(endpoint(i), "/health");
    if (!health.ok() || health->find("\"true\"") == std::string::npos) {
      last = health.ok() ? absl::UnavailableError(*health) : health.status();
      absl::SleepFor(absl::Milliseconds(20));
      continue;
    }
    etcdserverpb::RangeRequest request;
    request.set_key("credbroker-test-health");
    absl::StatusOr<etcdserverpb::RangeResponse> r = client->Range(request);
    if (r.ok()) return absl::OkStatus();
    last = r.status();
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "etcd ", members_[i].name, " not serving: ", last.ToString(), "; log:\n", Logs(i)));
}

std::string EtcdCluster::Logs(int i) const {
  return credbroker::testing::ReadFile(members_[i].log_path);
}

}  // namespace credbroker::state::etcd::testing
