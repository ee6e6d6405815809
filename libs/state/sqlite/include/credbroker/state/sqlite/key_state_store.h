// SqliteKeyStateStore: rotation::KeyStateStore in the broker's SQLite state file — what the broker
// decided about each key version (state, first-seen and retire times, with the revision of each
// record's last write) and the provider ids of keys it minted. Writes go through the Database's
// group commit; a write's compare-and-swap checks and its rows are one transaction. They are
// leader-only: each carries the Leadership's epoch and is refused (FAILED_PRECONDITION, reason
// NOT_LEADER or FENCED) when this replica does not lead or a newer epoch has written to the file.
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "credbroker/rotation/key_state_store.h"
#include "credbroker/state/change_log.h"
#include "credbroker/state/leadership.h"
#include "credbroker/state/sqlite/database.h"

namespace credbroker::state::sqlite {

template <typename Change>
class RevisionCounter;

class SqliteKeyStateStore final : public rotation::KeyStateStore {
 public:
  static const char* Schema();
  // `db` and `leadership` must outlive the store; `db` was opened with Schema() and the lease
  // store's schema (its store_meta table holds the newest epoch and the key-state revision). A
  // file written before records had revisions gets the column.
  static absl::StatusOr<std::unique_ptr<SqliteKeyStateStore>> Open(Database* db,
                                                                   const Leadership* leadership);

  ~SqliteKeyStateStore() override;

  absl::StatusOr<rotation::KeyStateListing> List() override;
  absl::StatusOr<int64_t> Write(const std::vector<rotation::KeyStateWrite>& writes) override;
  absl::StatusOr<std::unique_ptr<state::Watch>> Watch(int64_t after_revision,
                                                      rotation::KeyStateWatchFn fn) override;
  absl::Status SaveMintedKeyId(const std::string& provider, const std::string& fingerprint,
                               const std::string& key_id) override;
  absl::StatusOr<std::string> MintedKeyId(const std::string& provider,
                                          const std::string& fingerprint) override;

 private:
  // Refuses the write unless this replica leads an epoch no older than the newest seen.
  absl::Status Fence(Database::Txn& txn, int64_t epoch) const;

  SqliteKeyStateStore(Database* db, const Leadership* leadership, int64_t revision);

  Database* const db_;
  const Leadership* const leadership_;
  // Revisions and the watch (revision_counter.h).
  std::unique_ptr<RevisionCounter<rotation::PersistedKeyVersion>> counter_;
};

}  // namespace credbroker::state::sqlite
