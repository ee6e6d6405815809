#include "credbroker/rotation/key_state_store.h"

#include "absl/strings/str_cat.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/key_ring.h"

namespace credbroker::rotation {
namespace {

std::string Key(const PersistedKeyVersion& r) {
  return absl::StrCat(r.provider, "\x1f", r.version_id, "\x1f", r.fingerprint);
}

}  // namespace

absl::StatusOr<std::vector<PersistedKeyVersion>> InMemoryKeyStateStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  std::vector<PersistedKeyVersion> out;
  out.reserve(records_.size());
  for (const auto& [k, r] : records_) out.push_back(r);
  return out;
}

absl::Status InMemoryKeyStateStore::Save(const PersistedKeyVersion& record) {
  absl::MutexLock lock(&mu_);
  records_[Key(record)] = record;
  return absl::OkStatus();
}

absl::Status InMemoryKeyStateStore::SaveMintedKeyId(const std::string& provider,
                                                    const std::string& fingerprint,
                                                    const std::string& key_id) {
  absl::MutexLock lock(&mu_);
  minted_[absl::StrCat(provider, "\x1f", fingerprint)] = key_id;
  return absl::OkStatus();
}

absl::StatusOr<std::string> InMemoryKeyStateStore::MintedKeyId(const std::string& provider,
                                                               const std::string& fingerprint) {
  absl::MutexLock lock(&mu_);
  auto it = minted_.find(absl::StrCat(provider, "\x1f", fingerprint));
  if (it == minted_.end()) return absl::NotFoundError("key was not minted by the broker");
  return it->second;
}

}  // namespace credbroker::rotation
