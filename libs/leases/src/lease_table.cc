#include "credbroker/leases/lease_table.h"

#include "absl/hash/hash.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::leases {
namespace {

absl::Status NotFound() {
  return core::WithReason(absl::NotFoundError("no such lease"), "LEASE_NOT_FOUND");
}
absl::Status Expired() {
  return core::WithReason(absl::NotFoundError("lease has expired; acquire a new one"),
                          "LEASE_EXPIRED");
}

}  // namespace

LeaseTable::Shard& LeaseTable::ShardFor(const std::string& id) const {
  return shards_[absl::Hash<std::string>{}(id) % kShards];
}

absl::StatusOr<std::vector<LeaseRecord>> LeaseTable::LoadFromStore() {
  CB_ASSIGN_OR_RETURN(std::vector<LeaseRecord> loaded, store_->LoadUnexpired(clock_->Now()));
  for (const LeaseRecord& l : loaded) {
    Shard& shard = ShardFor(l.id);
    absl::MutexLock lock(&shard.mu);
    shard.leases[l.id] = l;
  }
  return loaded;
}

absl::Status LeaseTable::Insert(const LeaseRecord& lease) {
  Shard& shard = ShardFor(lease.id);
  absl::MutexLock lock(&shard.mu);
  if (shard.leases.contains(lease.id)) return absl::AlreadyExistsError("lease id collision");
  CB_RETURN_IF_ERROR(store_->Put(lease));
  shard.leases.emplace(lease.id, lease);
  return absl::OkStatus();
}

absl::StatusOr<LeaseRecord> LeaseTable::Get(const std::string& id,
                                            const std::string& caller) const {
  Shard& shard = ShardFor(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.leases.find(id);
  if (it == shard.leases.end() || it->second.caller != caller) return NotFound();
  if (it->second.Expired(clock_->Now())) return Expired();
  return it->second;
}

absl::StatusOr<LeaseRecord> LeaseTable::Renew(
    const std::string& id, const std::string& caller,
    absl::FunctionRef<absl::StatusOr<absl::Time>(const LeaseRecord&)> next_expiry) {
  Shard& shard = ShardFor(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.leases.find(id);
  if (it == shard.leases.end() || it->second.caller != caller) return NotFound();
  if (it->second.Expired(clock_->Now())) return Expired();
  CB_ASSIGN_OR_RETURN(absl::Time expiry, next_expiry(it->second));
  LeaseRecord updated = it->second;
  updated.expires_at = expiry;
  updated.renew_count++;
  CB_RETURN_IF_ERROR(store_->Put(updated));
  it->second = updated;
  return updated;
}

absl::StatusOr<LeaseRecord> LeaseTable::Release(const std::string& id, const std::string& caller) {
  Shard& shard = ShardFor(id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.leases.find(id);
  if (it == shard.leases.end() || it->second.caller != caller) return NotFound();
  CB_RETURN_IF_ERROR(store_->Delete(id));
  LeaseRecord out = std::move(it->second);
  shard.leases.erase(it);
  return out;
}

absl::StatusOr<std::vector<LeaseRecord>> LeaseTable::RevokeIf(
    const std::function<bool(const LeaseRecord&)>& pred) {
  std::vector<LeaseRecord> out;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto it = shard.leases.begin(); it != shard.leases.end();) {
      if (!pred(it->second)) {
        ++it;
        continue;
      }
      CB_RETURN_IF_ERROR(store_->Delete(it->first));
      out.push_back(std::move(it->second));
      shard.leases.erase(it++);
    }
  }
  return out;
}

std::vector<LeaseRecord> LeaseTable::SweepExpired() {
  const absl::Time now = clock_->Now();
  std::vector<LeaseRecord> out;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto it = shard.leases.begin(); it != shard.leases.end();) {
      if (it->second.Expired(now)) {
        out.push_back(std::move(it->second));
        shard.leases.erase(it++);
      } else {
        ++it;
      }
    }
  }
  // One statement for the whole batch; a failure only leaves rows that the next sweep (or the
  // next start, which loads only unexpired leases) ignores.
  (void)store_->DeleteExpired(now);
  return out;
}

std::vector<LeaseRecord> LeaseTable::List(
    const std::function<bool(const LeaseRecord&)>& pred) const {
  std::vector<LeaseRecord> out;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (const auto& [id, l] : shard.leases) {
      if (pred(l)) out.push_back(l);
    }
  }
  return out;
}

size_t LeaseTable::size() const {
  size_t n = 0;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    n += shard.leases.size();
  }
  return n;
}

}  // namespace credbroker::leases
