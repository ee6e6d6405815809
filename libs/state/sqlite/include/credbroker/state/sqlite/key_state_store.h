// SqliteKeyStateStore: rotation::KeyStateStore in the broker's SQLite state file — what the broker
// decided about each key version (state, first-seen and retire times) and the provider ids of
// keys it minted. Writes go through the Database's group commit.
// Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "credbroker/rotation/key_state_store.h"
#include "credbroker/state/sqlite/database.h"

namespace credbroker::state::sqlite {

class SqliteKeyStateStore final : public rotation::KeyStateStore {
 public:
  static const char* Schema();
  // `db` must outlive the store and have been opened with Schema().
  explicit SqliteKeyStateStore(Database* db) : db_(db) {}

  absl::StatusOr<std::vector<rotation::PersistedKeyVersion>> LoadAll() override;
  absl::Status Save(const rotation::PersistedKeyVersion& record) override;
  absl::Status SaveMintedKeyId(const std::string& provider, const std::string& fingerprint,
                               const std::string& key_id) override;
  absl::StatusOr<std::string> MintedKeyId(const std::string& provider,
                                          const std::string& fingerprint) override;

 private:
  Database* const db_;
};

}  // namespace credbroker::state::sqlite
