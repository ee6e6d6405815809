// EtcdLeadership: leader election among the replicas over etcd, with a lease-guarded key (the
// recipe of etcd's own concurrency.Election). Each replica holds a session (an etcd lease of `ttl`
// it keeps alive) and a candidate key `<prefix>leader/<session id>` bound to it; the candidate
// whose key was created first leads, and its key's create revision is the epoch of its term.
//
// Fencing: every leader-only write is an etcd Txn that also compares the leader's key's create
// revision with the epoch it decided under (FenceCompare). A deposed leader's key is gone (its
// session ended) or its epoch is older, so its write fails whatever it believes.
//
// Losing the session ends leadership at once: the leader counts its term as valid only until the
// TTL etcd granted at its last successful keep-alive, measured from when that keep-alive was sent
// (less a margin), so it stops leading before etcd could let another replica win; a deleted key
// (seen through the watch) ends it too. A follower tries again when the leader's key is deleted
// (watch) and at every keep-alive, so a dead leader is replaced within `ttl` and a little.
// Stopping (the destructor) revokes the session, so a clean shutdown hands over at once.
// Thread-safety: safe for concurrent use; listeners run on the election thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/state/etcd/client.h"
#include "credbroker/state/etcd/watcher.h"
#include "credbroker/state/leadership.h"

namespace credbroker::state::etcd {

struct EtcdLeadershipOptions {
  // Written as the candidate key's value (who leads, for operators: `etcdctl get --prefix`).
  std::string replica_name;
  // The session TTL: how long a dead leader keeps the term.
  absl::Duration ttl = absl::Seconds(10);
};

class EtcdLeadership final : public Leadership, public PrefixWatcher::Handler {
 public:
  // Registers with `watcher` (for deletions of candidate keys) and starts campaigning.
  static std::unique_ptr<EtcdLeadership> Start(EtcdClient* client, PrefixWatcher* watcher,
                                               const std::string& prefix,
                                               const EtcdLeadershipOptions& options);
  ~EtcdLeadership() override;

  bool IsLeader() const override;
  int64_t Epoch() const override;
  uint64_t Subscribe(Listener listener) override;
  void Unsubscribe(uint64_t id) override;
  std::string LeaderName() const override ABSL_LOCKS_EXCLUDED(mu_);

  // The compare a leader-only Txn carries: this replica's candidate key was created at `epoch`.
  // With epoch 0 (not leader), a compare that always fails.
  etcdserverpb::Compare FenceCompare(int64_t epoch) const;
  // Adds, to a Txn's failure branch, the read that tells a fenced write from a conflict
  // (IsFenced).
  void AddFenceCheck(etcdserverpb::TxnRequest& txn) const;
  // Whether a failed Txn (with AddFenceCheck's read at `response_index`) failed on the fence.
  static bool IsFenced(const etcdserverpb::TxnResponse& response, int response_index,
                       int64_t epoch);

  // PrefixWatcher::Handler: deletions of candidate keys wake the election.
  void Apply(const std::vector<const mvccpb::Event*>& events) override;
  absl::Status Reload(int64_t revision) override;

 private:
  EtcdLeadership(EtcdClient* client, PrefixWatcher* watcher, std::string prefix,
                 EtcdLeadershipOptions options);
  void Run();
  // One round: session, candidate key, keep-alive, who leads. Returns when to run again.
  absl::Time Round();
  void SetEpoch(int64_t epoch) ABSL_LOCKS_EXCLUDED(mu_);
  void SetValidUntil(absl::Time t) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Time CallDeadline() const;
  std::string CandidateKey() const ABSL_LOCKS_EXCLUDED(mu_);

  EtcdClient* const client_;
  PrefixWatcher* const watcher_;
  const std::string prefix_;  // "<prefix>leader/"
  const EtcdLeadershipOptions options_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  // The session's sure end (a copy of session_valid_until_ for readers).
  absl::Time valid_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t session_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t candidate_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::string leader_name_ ABSL_GUARDED_BY(mu_);  // the first candidate's value, as last read
  // Held while listeners run (outside mu_, so a listener may ask IsLeader()).
  absl::Mutex notify_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::map<uint64_t, Listener> listeners_ ABSL_GUARDED_BY(notify_mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(notify_mu_) = 1;

  // Election thread only.
  absl::Time session_valid_until_ = absl::InfinitePast();
};

}  // namespace credbroker::state::etcd
