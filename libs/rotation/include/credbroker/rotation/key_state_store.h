// KeyStateStore persists what the broker decided about each key version — state, first-seen
// time, retire time — so a restart does not give replaced versions a fresh overlap or bring back
// retired ones. Keyed by (provider, version id, fingerprint): a version id reused for different
// material is a different key.
// Errors: UNAVAILABLE / INTERNAL from storage; DATA_LOSS for unreadable rows.
// The broker's implementation is state::sqlite::SqliteKeyStateStore (its state file).
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace credbroker::rotation {

enum class KeyState;

struct PersistedKeyVersion {
  std::string provider;
  std::string version_id;
  std::string fingerprint;
  KeyState state;
  absl::Time created_at;
  absl::Time retires_at;  // InfiniteFuture when not set
};

class KeyStateStore {
 public:
  virtual ~KeyStateStore() = default;
  virtual absl::StatusOr<std::vector<PersistedKeyVersion>> LoadAll() = 0;
  // Inserts or replaces the record for (provider, version_id, fingerprint).
  virtual absl::Status Save(const PersistedKeyVersion& record) = 0;

  // The provider's id of a key the broker minted, by the key's fingerprint: needed to revoke the
  // key at the provider once it retires, also after a restart.
  virtual absl::Status SaveMintedKeyId(const std::string& provider, const std::string& fingerprint,
                                       const std::string& key_id) = 0;
  // NOT_FOUND when the broker did not mint this key.
  virtual absl::StatusOr<std::string> MintedKeyId(const std::string& provider,
                                                  const std::string& fingerprint) = 0;
};

class InMemoryKeyStateStore final : public KeyStateStore {
 public:
  absl::StatusOr<std::vector<PersistedKeyVersion>> LoadAll() override;
  absl::Status Save(const PersistedKeyVersion& record) override;
  absl::Status SaveMintedKeyId(const std::string& provider, const std::string& fingerprint,
                               const std::string& key_id) override;
  absl::StatusOr<std::string> MintedKeyId(const std::string& provider,
                                          const std::string& fingerprint) override;

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, PersistedKeyVersion> records_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> minted_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::rotation
