#include "credbroker/leasing/compact_lease.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace credbroker::leasing {

LeaseClasses::Strings LeaseClasses::Of(const state::LeaseRecord& lease) {
  return {lease.caller, lease.provider, lease.key_version, lease.key_fingerprint, lease.purpose};
}

LeaseClasses::Id LeaseClasses::Ref(const state::LeaseRecord& lease) {
  Strings strings = Of(lease);
  absl::MutexLock lock(&mu_);
  auto it = index_.find(strings);
  if (it != index_.end()) {
    ++entries_[it->second].refs;
    return it->second;
  }
  Id id = 0;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
    entries_[id] = Entry{strings, 1};
  } else {
    id = static_cast<Id>(entries_.size());
    entries_.push_back(Entry{strings, 1});
  }
  index_.emplace(std::move(strings), id);
  return id;
}

void LeaseClasses::Unref(Id id) {
  absl::MutexLock lock(&mu_);
  Entry& e = entries_[id];
  if (--e.refs > 0) return;
  index_.erase(e.strings);
  e.strings = Strings();
  free_.push_back(id);
}

bool LeaseClasses::Is(Id id, const state::LeaseRecord& lease) const {
  absl::ReaderMutexLock lock(&mu_);
  const auto& [caller, provider, version, fingerprint, purpose] = entries_[id].strings;
  return caller == lease.caller && provider == lease.provider && version == lease.key_version &&
         fingerprint == lease.key_fingerprint && purpose == lease.purpose;
}

void LeaseClasses::Fill(Id id, state::LeaseRecord* lease) const {
  absl::ReaderMutexLock lock(&mu_);
  std::tie(lease->caller, lease->provider, lease->key_version, lease->key_fingerprint,
           lease->purpose) = entries_[id].strings;
}

size_t LeaseClasses::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return index_.size();
}

CompactLease CompactLease::Of(const state::LeaseRecord& lease, int64_t revision,
                              LeaseClasses::Id cls) {
  CompactLease c;
  c.issued_ns = absl::ToUnixNanos(lease.issued_at);
  c.expires_ns = absl::ToUnixNanos(lease.expires_at);
  c.revision = revision;
  c.renew_count = static_cast<uint32_t>(
      std::clamp<int64_t>(lease.renew_count, 0, std::numeric_limits<uint32_t>::max()));
  c.cls = cls;
  return c;
}

state::VersionedLease CompactLease::Expand(const std::string& id,
                                           const LeaseClasses& classes) const {
  state::VersionedLease v;
  v.lease.id = id;
  classes.Fill(cls, &v.lease);
  v.lease.issued_at = absl::FromUnixNanos(issued_ns);
  v.lease.expires_at = absl::FromUnixNanos(expires_ns);
  v.lease.renew_count = renew_count;
  v.revision = revision;
  return v;
}

}  // namespace credbroker::leasing
