#include "credbroker/rotation/key_state_store.h"

#include "absl/strings/str_cat.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/key_ring.h"

namespace credbroker::rotation {

absl::Status KeyStateChanged(const KeyVersionId& id, int64_t expected, int64_t actual) {
  return core::WithReason(
      absl::AbortedError(absl::StrCat(
          "key version ", id.provider, "/", id.version_id, " (", id.fingerprint,
          ") changed since it was read: expected ",
          expected == 0 ? std::string("no record") : absl::StrCat("revision ", expected),
          ", found ", actual == 0 ? std::string("none") : absl::StrCat("revision ", actual))),
      "KEY_STATE_CHANGED");
}

absl::StatusOr<KeyStateListing> InMemoryKeyStateStore::List() {
  absl::MutexLock lock(&mu_);
  KeyStateListing out;
  out.records.reserve(records_.size());
  for (const auto& [k, r] : records_) out.records.push_back(r);
  out.revision = revision_;
  return out;
}

absl::StatusOr<int64_t> InMemoryKeyStateStore::Write(const std::vector<KeyStateWrite>& writes) {
  absl::MutexLock lock(&mu_);
  for (const KeyStateWrite& w : writes) {
    if (w.expected_revision == KeyStateWrite::kAnyRevision) continue;
    auto it = records_.find(w.record.Id());
    const int64_t actual = it == records_.end() ? 0 : it->second.revision;
    if (actual != w.expected_revision) {
      return KeyStateChanged(w.record.Id(), w.expected_revision, actual);
    }
  }
  const int64_t revision = ++revision_;
  std::vector<PersistedKeyVersion> changed;
  changed.reserve(writes.size());
  for (const KeyStateWrite& w : writes) {
    PersistedKeyVersion r = w.record;
    r.revision = revision;
    records_[r.Id()] = r;
    changed.push_back(std::move(r));
  }
  log_.Publish(std::move(changed));
  return revision;
}

absl::StatusOr<std::unique_ptr<state::Watch>> InMemoryKeyStateStore::Watch(int64_t after_revision,
                                                                           KeyStateWatchFn fn) {
  absl::MutexLock lock(&mu_);  // no write between the replay and the registration
  return log_.Watch(after_revision, std::move(fn));
}

absl::Status InMemoryKeyStateStore::SaveMintedKeyId(const std::string& provider,
                                                    const std::string& fingerprint,
                                                    const std::string& key_id) {
  absl::MutexLock lock(&mu_);
  minted_[{provider, fingerprint}] = key_id;
  return absl::OkStatus();
}

absl::StatusOr<std::string> InMemoryKeyStateStore::MintedKeyId(const std::string& provider,
                                                               const std::string& fingerprint) {
  absl::MutexLock lock(&mu_);
  auto it = minted_.find(std::make_pair(provider, fingerprint));
  if (it == minted_.end()) return absl::NotFoundError("key was not minted by the broker");
  return it->second;
}

}  // namespace credbroker::rotation
