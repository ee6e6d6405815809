// EtcdSharedFacts: auth-failure reports and caller suspensions that every replica sees, in etcd.
// A report is `<prefix>facts/reports/<time>-<random>`, bound to an etcd lease that ends after the
// retention (reports of the same minute share one); a suspension is
// `<prefix>facts/suspensions/<provider>/<caller>` (a later one replaces it), bound to a lease that
// ends with it. A fact's revision is its key's mod_revision; every replica delivers the facts its
// watch sees, so a report made on one replica counts in the leader's revocation detection.
// Thread-safety: safe for concurrent use.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/core/clock.h"
#include "credbroker/state/change_log.h"
#include "credbroker/state/etcd/client.h"
#include "credbroker/state/etcd/delivered.h"
#include "credbroker/state/etcd/watcher.h"
#include "credbroker/state/shared_facts.h"

namespace credbroker::state::etcd {

class EtcdSharedFacts final : public SharedFacts, public PrefixWatcher::Handler {
 public:
  // `clock` dates the etcd leases that end reports and suspensions. Registers with `watcher`.
  EtcdSharedFacts(EtcdClient* client, PrefixWatcher* watcher, const std::string& prefix,
                  int64_t revision, absl::Duration report_retention, const core::Clock* clock);
  ~EtcdSharedFacts() override;

  void AddAuthFailure(const AuthFailureReport& report,
                      std::function<void(absl::Status)> done) override;
  absl::Status Suspend(const Suspension& suspension) override;
  absl::StatusOr<FactListing> List(absl::Time now) override;
  absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision,
                                                      FactWatchFn fn) override;

  void Apply(const std::vector<const mvccpb::Event*>& events) override;
  absl::Status Reload(int64_t revision) override;

 private:
  absl::StatusOr<int64_t> Put(const std::string& key, const std::string& value,
                              absl::Time expires_at);
  absl::StatusOr<FactListing> ReadAll(int64_t revision);

  EtcdClient* const client_;
  PrefixWatcher* const watcher_;
  const std::string prefix_;  // "<prefix>facts/"
  const absl::Duration retention_;
  const core::Clock* const clock_;
  ChangeLogOf<Fact> log_;
  Delivered delivered_;
  absl::Mutex mu_;
  // etcd lease per expiry minute.
  std::map<absl::Time, int64_t> leases_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::state::etcd
