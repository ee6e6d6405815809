// KeyStateStore holds what the leader decided about each key version — state, first-seen time,
// retire time — so a restart does not give replaced versions a fresh overlap or bring back
// retired ones, and so other replicas can follow the leader's decisions. Keyed by (provider,
// version id, fingerprint): a version id reused for different material is a different key.
//
// Every record carries the store revision of its last write. Writes are compare-and-swap: a
// decision writes all the versions it changed in one transaction, each only if its revision is
// still the one the decision was made from. Watch delivers committed records in revision order.
//
// Errors: ABORTED (reason KEY_STATE_CHANGED) when a record changed since it was read, nothing
// written; FAILED_PRECONDITION (NOT_LEADER, FENCED) from implementations fenced by a Leadership;
// UNAVAILABLE / INTERNAL from storage; DATA_LOSS for unreadable rows; OUT_OF_RANGE from Watch when
// the changes after the revision are no longer remembered (list again).
// Implementations: InMemoryKeyStateStore (tests), state::sqlite::SqliteKeyStateStore (the state
// file). Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/state/change_log.h"
#include "credbroker/state/watch.h"

namespace credbroker::rotation {

enum class KeyState;

// Which key a record is about.
struct KeyVersionId {
  std::string provider;
  std::string version_id;
  std::string fingerprint;
  friend bool operator==(const KeyVersionId&, const KeyVersionId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const KeyVersionId& k) {
    return H::combine(std::move(h), k.provider, k.version_id, k.fingerprint);
  }
};

struct PersistedKeyVersion {
  std::string provider;
  std::string version_id;
  std::string fingerprint;
  KeyState state;
  absl::Time created_at;
  absl::Time retires_at = absl::InfiniteFuture();  // InfiniteFuture when not set
  // Set by the store: the revision of the write that stored this record (0: never stored).
  int64_t revision = 0;

  KeyVersionId Id() const { return {provider, version_id, fingerprint}; }
};

struct KeyStateWrite {
  // Unconditional: whatever is stored.
  static constexpr int64_t kAnyRevision = -1;
  PersistedKeyVersion record;
  // The stored record's revision this write replaces; 0 when the record must not exist yet.
  int64_t expected_revision = kAnyRevision;
};

struct KeyStateListing {
  std::vector<PersistedKeyVersion> records;
  // The store revision the listing reflects: watch from here to miss nothing.
  int64_t revision = 0;
};

// Receives committed records in revision order, one call per committed write. Runs on the thread
// that committed; it must not block or call back into the store.
using KeyStateWatchFn = std::function<void(const std::vector<PersistedKeyVersion>& changed)>;

class KeyStateStore {
 public:
  virtual ~KeyStateStore() = default;

  virtual absl::StatusOr<KeyStateListing> List() = 0;
  absl::StatusOr<std::vector<PersistedKeyVersion>> LoadAll() {
    absl::StatusOr<KeyStateListing> l = List();
    if (!l.ok()) return l.status();
    return std::move(l->records);
  }

  // Writes every record in one transaction if each expected revision still holds; returns the
  // revision the records were stored with.
  virtual absl::StatusOr<int64_t> Write(const std::vector<KeyStateWrite>& writes) = 0;
  // Stores `record` whatever is stored now.
  absl::Status Save(const PersistedKeyVersion& record) {
    return Write({KeyStateWrite{record, KeyStateWrite::kAnyRevision}}).status();
  }

  // Delivers every record written after `after_revision`: first those already committed, then
  // each new write.
  virtual absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision,
                                                              KeyStateWatchFn fn) = 0;

  // The provider's id of a key the broker minted, by the key's fingerprint: needed to revoke the
  // key at the provider once it retires, also after a restart.
  virtual absl::Status SaveMintedKeyId(const std::string& provider, const std::string& fingerprint,
                                       const std::string& key_id) = 0;
  // NOT_FOUND when the broker did not mint this key.
  virtual absl::StatusOr<std::string> MintedKeyId(const std::string& provider,
                                                  const std::string& fingerprint) = 0;
};

// ABORTED with reason KEY_STATE_CHANGED: `id` was stored at `actual` (0: absent), not `expected`.
absl::Status KeyStateChanged(const KeyVersionId& id, int64_t expected, int64_t actual);

class InMemoryKeyStateStore final : public KeyStateStore {
 public:
  InMemoryKeyStateStore() : log_(0) {}
  absl::StatusOr<KeyStateListing> List() override;
  absl::StatusOr<int64_t> Write(const std::vector<KeyStateWrite>& writes) override;
  absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision,
                                                      KeyStateWatchFn fn) override;
  absl::Status SaveMintedKeyId(const std::string& provider, const std::string& fingerprint,
                               const std::string& key_id) override;
  absl::StatusOr<std::string> MintedKeyId(const std::string& provider,
                                          const std::string& fingerprint) override;

 private:
  // Serializes writes with their delivery, so watchers see revisions in order.
  absl::Mutex mu_;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<KeyVersionId, PersistedKeyVersion> records_ ABSL_GUARDED_BY(mu_);
  // (provider, fingerprint) -> key id
  absl::flat_hash_map<std::pair<std::string, std::string>, std::string> minted_
      ABSL_GUARDED_BY(mu_);
  state::ChangeLogOf<PersistedKeyVersion> log_;
};

}  // namespace credbroker::rotation
