// EtcdCluster (tests only): real etcd members (Debian's etcd-server) started on free loopback
// ports in a temp dir, one member or several forming one cluster, that a test can kill, restart,
// pause (SIGSTOP: reachable but silent, as behind a partition) and resume.
// The binary is $CB_ETCD_BIN, else /usr/bin/etcd.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace credbroker::state::etcd::testing {

class EtcdCluster {
 public:
  // Starts `members` members under `dir` and waits until the cluster serves linearizable reads.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(const std::string& dir,
                                                            int members = 1);
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;
  ~EtcdCluster();

  int size() const { return static_cast<int>(members_.size()); }
  // host:port of member i's client URL.
  std::string endpoint(int i) const;
  std::vector<std::string> endpoints() const;

  // SIGKILL member i.
  void Kill(int i);
  // Starts member i again on its data dir and ports; waits until it serves reads through itself.
  absl::Status Restart(int i);
  // Starts every killed member again, then waits until each serves (a cluster that lost quorum
  // needs its members back together before any of them serves).
  absl::Status RestartKilled();
  // SIGSTOP / SIGCONT member i.
  void Pause(int i);
  void Resume(int i);
  // Until member i answers a linearizable read (so the cluster has a leader it can reach).
  absl::Status WaitServing(int i, absl::Duration timeout = absl::Seconds(30)) const;
  // The member's log so far.
  std::string Logs(int i) const;

 private:
  struct Member {
    std::string name;
    std::string data_dir;
    std::string log_path;
    int client_port = 0;
    int peer_port = 0;
    pid_t pid = -1;
  };
  EtcdCluster() = default;
  absl::Status Launch(int i, bool existing);

  std::string initial_cluster_;
  std::vector<Member> members_;
};

}  // namespace credbroker::state::etcd::testing
