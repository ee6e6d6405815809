#include "credbroker/leasing/lease_table.h"

#include <utility>

#include "absl/hash/hash.h"
#include "absl/synchronization/notification.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::leasing {
namespace {

absl::Status NotFound() {
  return core::WithReason(absl::NotFoundError("no such lease"), "LEASE_NOT_FOUND");
}
absl::Status Expired() {
  return core::WithReason(absl::NotFoundError("lease has expired; acquire a new one"),
                          "LEASE_EXPIRED");
}

}  // namespace

LeaseTable::LeaseTable(state::LeaseStore* store, const core::Clock* clock,
                       std::vector<Listener> listeners)
    : store_(store), clock_(clock), listeners_(std::move(listeners)) {}

LeaseTable::~LeaseTable() { watch_.reset(); }

absl::StatusOr<std::unique_ptr<LeaseTable>> LeaseTable::Create(state::LeaseStore* store,
                                                               const core::Clock* clock,
                                                               std::vector<Listener> listeners) {
  std::unique_ptr<LeaseTable> table(new LeaseTable(store, clock, std::move(listeners)));
  CB_ASSIGN_OR_RETURN(state::LeaseListing listing, store->List());
  for (const state::VersionedLease& v : listing.leases) {
    table->Tell(v.lease, +1);
    table->Put(v.lease, v.revision);
  }
  LeaseTable* t = table.get();
  CB_ASSIGN_OR_RETURN(table->watch_,
                      store->Watch(listing.revision,
                                   [t](const std::vector<state::LeaseChange>& c) { t->Apply(c); }));
  return table;
}

LeaseTable::Shard& LeaseTable::ShardFor(const std::string& id) const {
  return shards_[absl::Hash<std::string>{}(id) % kShards];
}

bool LeaseTable::Put(const LeaseRecord& lease, int64_t revision) {
  Shard& shard = ShardFor(lease.id);
  absl::MutexLock lock(&shard.mu);
  if (CompactLease* cur = shard.leases.Find(lease.id)) {
    LeaseClasses::Id cls = cur->cls;
    if (!classes_.Is(cls, lease)) {
      cls = classes_.Ref(lease);
      classes_.Unref(cur->cls);
    }
    *cur = CompactLease::Of(lease, revision, cls);
    return false;
  }
  shard.leases.Put(lease.id, CompactLease::Of(lease, revision, classes_.Ref(lease)));
  return true;
}

void LeaseTable::ForEach(const std::function<void(const state::VersionedLease&)>& fn) const {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    shard.leases.ForEach(
        [&](const std::string& id, const CompactLease& c) { fn(c.Expand(id, classes_)); });
  }
}

void LeaseTable::Tell(const LeaseRecord& lease, int delta) const {
  for (const Listener& l : listeners_) l(lease, delta);
}

void LeaseTable::Apply(const std::vector<state::LeaseChange>& changes) {
  for (const state::LeaseChange& c : changes) {
    Shard& shard = ShardFor(c.lease.id);
    int delta = 0;
    {
      absl::MutexLock lock(&shard.mu);
      CompactLease* cur = shard.leases.Find(c.lease.id);
      if (cur != nullptr && cur->revision >= c.revision) continue;  // seen
      if (c.type == state::LeaseChange::Type::kDelete) {
        if (cur == nullptr) continue;
        classes_.Unref(cur->cls);
        shard.leases.Erase(c.lease.id);
        delta = -1;
      }
    }
    if (c.type == state::LeaseChange::Type::kPut && Put(c.lease, c.revision)) delta = +1;
    if (delta != 0) Tell(c.lease, delta);
  }
}

absl::Status LeaseTable::Insert(const LeaseRecord& lease) {
  absl::StatusOr<int64_t> rev = store_->Create(lease);
  if (absl::IsAlreadyExists(rev.status())) return absl::AlreadyExistsError("lease id collision");
  return rev.status();
}

absl::StatusOr<state::VersionedLease> LeaseTable::Find(const std::string& id,
                                                       const std::string& caller) const {
  std::optional<state::VersionedLease> found;
  {
    Shard& shard = ShardFor(id);
    absl::MutexLock lock(&shard.mu);
    if (const CompactLease* c = shard.leases.Find(id)) found = c->Expand(id, classes_);
  }
  if (!found) {
    // Not applied here yet (written by another replica a moment ago): ask the store.
    absl::StatusOr<state::VersionedLease> stored = store_->Get(id);
    if (absl::IsNotFound(stored.status())) return NotFound();
    if (!stored.ok()) return stored.status();
    found = *std::move(stored);
  }
  if (found->lease.caller != caller) return NotFound();
  return *std::move(found);
}

absl::StatusOr<LeaseRecord> LeaseTable::Get(const std::string& id,
                                            const std::string& caller) const {
  CB_ASSIGN_OR_RETURN(state::VersionedLease v, Find(id, caller));
  if (v.lease.Expired(clock_->Now())) return Expired();
  return std::move(v.lease);
}

absl::StatusOr<LeaseRecord> LeaseTable::Renew(
    const std::string& id, const std::string& caller,
    absl::FunctionRef<absl::StatusOr<absl::Time>(const LeaseRecord&)> next_expiry) {
  absl::Notification finished;
  absl::StatusOr<LeaseRecord> out;
  RenewAsync(
      id, caller, [next_expiry](const LeaseRecord& l) { return next_expiry(l); },
      [&](absl::StatusOr<LeaseRecord> r) {
        out = std::move(r);
        finished.Notify();
      });
  finished.WaitForNotification();
  return out;
}

absl::StatusOr<LeaseRecord> LeaseTable::Release(const std::string& id, const std::string& caller) {
  absl::Notification finished;
  absl::StatusOr<LeaseRecord> out;
  ReleaseAsync(id, caller, [&](absl::StatusOr<LeaseRecord> r) {
    out = std::move(r);
    finished.Notify();
  });
  finished.WaitForNotification();
  return out;
}

void LeaseTable::InsertAsync(const LeaseRecord& lease, std::function<void(absl::Status)> done) {
  store_->CreateAsync(lease, [done = std::move(done)](const absl::StatusOr<int64_t>& rev) {
    if (absl::IsAlreadyExists(rev.status())) {
      done(absl::AlreadyExistsError("lease id collision"));
    } else {
      done(rev.status());
    }
  });
}

void LeaseTable::RenewAsync(const std::string& id, const std::string& caller,
                            NextExpiry next_expiry, Done<LeaseRecord> done) {
  RenewAttempt(id, caller, std::move(next_expiry), std::move(done), 0);
}

void LeaseTable::RenewAttempt(const std::string& id, const std::string& caller,
                              NextExpiry next_expiry, Done<LeaseRecord> done, int attempt) {
  absl::StatusOr<state::VersionedLease> v = Find(id, caller);
  if (!v.ok()) return done(v.status());
  if (v->lease.Expired(clock_->Now())) return done(Expired());
  absl::StatusOr<absl::Time> expiry = next_expiry(v->lease);
  if (!expiry.ok()) return done(expiry.status());
  LeaseRecord updated = std::move(v->lease);
  updated.expires_at = *expiry;
  updated.renew_count++;
  const int64_t revision = v->revision;
  store_->UpdateAsync(
      updated, revision,
      [this, id, caller, next_expiry = std::move(next_expiry), done = std::move(done), attempt,
       updated](const absl::StatusOr<int64_t>& rev) mutable {
        if (rev.ok()) return done(std::move(updated));
        if (absl::IsNotFound(rev.status())) return done(NotFound());  // released meanwhile
        if (absl::IsAborted(rev.status()) && attempt + 1 < kCasAttempts) {
          // Renewed or changed concurrently: look again.
          return RenewAttempt(id, caller, std::move(next_expiry), std::move(done), attempt + 1);
        }
        done(rev.status());
      });
}

void LeaseTable::ReleaseAsync(const std::string& id, const std::string& caller,
                              Done<LeaseRecord> done) {
  ReleaseAttempt(id, caller, std::move(done), 0);
}

void LeaseTable::ReleaseAttempt(const std::string& id, const std::string& caller,
                                Done<LeaseRecord> done, int attempt) {
  absl::StatusOr<state::VersionedLease> v = Find(id, caller);
  if (!v.ok()) return done(v.status());
  store_->DeleteAsync({id, v->revision, std::move(v->lease)},
                      [this, id, caller, done = std::move(done),
                       attempt](absl::StatusOr<LeaseRecord> gone) mutable {
                        if (absl::IsNotFound(gone.status())) return done(NotFound());
                        if (absl::IsAborted(gone.status()) && attempt + 1 < kCasAttempts) {
                          return ReleaseAttempt(id, caller, std::move(done), attempt + 1);
                        }
                        done(std::move(gone));
                      });
}

absl::StatusOr<std::vector<LeaseRecord>> LeaseTable::RevokeIf(
    const std::function<bool(const LeaseRecord&)>& pred) {
  std::vector<state::LeaseDelete> targets;
  ForEach([&](const state::VersionedLease& v) {
    if (pred(v.lease)) targets.push_back({v.lease.id, 0});
  });
  if (targets.empty()) return std::vector<LeaseRecord>{};
  return store_->DeleteAll(targets);
}

absl::StatusOr<std::vector<LeaseRecord>> LeaseTable::SweepExpired() {
  return store_->DeleteExpired(clock_->Now());
}

std::vector<LeaseRecord> LeaseTable::List(
    const std::function<bool(const LeaseRecord&)>& pred) const {
  std::vector<LeaseRecord> out;
  ForEach([&](const state::VersionedLease& v) {
    if (pred(v.lease)) out.push_back(v.lease);
  });
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

}  // namespace credbroker::leasing
