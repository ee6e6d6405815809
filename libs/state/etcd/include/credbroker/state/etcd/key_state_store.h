// EtcdKeyStateStore: the leader's decisions about key versions, shared with every replica through
// etcd. A record is the key `<prefix>keys/<provider>/<version id>/<fingerprint>` (each part
// escaped), its value a KeyVersionValue, its revision the key's mod_revision. A decision is one
// Txn: a compare per record (absent, or at the revision it was read at) and the leader's fence
// (EtcdLeadership::FenceCompare), so a deposed leader's decision is refused (FAILED_PRECONDITION,
// FENCED) and a stale one is ABORTED (KEY_STATE_CHANGED). Minted key ids live under
// `<prefix>minted/` and are written under the fence too.
// Every replica follows the records through its watch (followers apply the leader's decisions).
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "credbroker/rotation/key_state_store.h"
#include "credbroker/state/change_log.h"
#include "credbroker/state/etcd/client.h"
#include "credbroker/state/etcd/delivered.h"
#include "credbroker/state/etcd/leadership.h"
#include "credbroker/state/etcd/watcher.h"

namespace credbroker::state::etcd {

class EtcdKeyStateStore final : public rotation::KeyStateStore, public PrefixWatcher::Handler {
 public:
  // Registers with `watcher` (not started yet, watching from `revision`). All three outlive the
  // store.
  EtcdKeyStateStore(EtcdClient* client, PrefixWatcher* watcher, EtcdLeadership* leadership,
                    const std::string& prefix, int64_t revision);
  ~EtcdKeyStateStore() override;

  absl::StatusOr<rotation::KeyStateListing> List() override;
  absl::StatusOr<int64_t> Write(const std::vector<rotation::KeyStateWrite>& writes) override;
  absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision,
                                                      rotation::KeyStateWatchFn fn) override;
  absl::Status SaveMintedKeyId(const std::string& provider, const std::string& fingerprint,
                               const std::string& key_id) override;
  absl::StatusOr<std::string> MintedKeyId(const std::string& provider,
                                          const std::string& fingerprint) override;

  void Apply(const std::vector<const mvccpb::Event*>& events) override;
  absl::Status Reload(int64_t revision) override;

 private:
  absl::StatusOr<rotation::KeyStateListing> ReadAll(int64_t revision);

  EtcdClient* const client_;
  PrefixWatcher* const watcher_;
  EtcdLeadership* const leadership_;
  const std::string keys_;    // "<prefix>keys/"
  const std::string minted_;  // "<prefix>minted/"
  ChangeLogOf<rotation::PersistedKeyVersion> log_;
  Delivered delivered_;
};

// A key part that may hold '/' or '%', escaped so keys split unambiguously.
std::string EscapeKeyPart(const std::string& part);

}  // namespace credbroker::state::etcd
