// LeaseStore is the truth about leases: every replica's lease table is a cache of it, fed by its
// watch. Revisions are store-wide and grow with every commit (as in etcd; writes committed
// together may share one, as the writes of one etcd Txn do), and every lease carries the revision
// of its last change, so writers can compare-and-swap.
//
// Errors: ALREADY_EXISTS (Create of an existing id), NOT_FOUND (no such lease), ABORTED (the
// lease changed since `expected_revision`), OUT_OF_RANGE (Watch from a revision the store no
// longer remembers: reload with List), UNAVAILABLE / DATA_LOSS / INTERNAL from storage. A write
// that returns an error changed nothing.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "credbroker/state/watch.h"

namespace credbroker::state {

// Who holds which provider key version until when. Holds no key material: the key is looked up
// in the KeyRing by version when the lease is handed out.
struct LeaseRecord {
  std::string id;
  std::string caller;
  std::string provider;
  std::string key_version;
  std::string key_fingerprint;
  std::string purpose;
  absl::Time issued_at;
  absl::Time expires_at;
  int64_t renew_count = 0;

  bool Expired(absl::Time now) const { return expires_at <= now; }
};

// A lease with the store revision of its last change.
struct VersionedLease {
  LeaseRecord lease;
  int64_t revision = 0;
};

// One committed change. For kDelete, `lease` is the lease as it was before it was deleted.
struct LeaseChange {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  int64_t revision = 0;
  LeaseRecord lease;
};

struct LeaseListing {
  std::vector<VersionedLease> leases;
  // The store revision the listing reflects: watch from here to miss nothing.
  int64_t revision = 0;
};

struct LeaseDelete {
  std::string id;
  // 0: whatever the lease's revision.
  int64_t expected_revision = 0;
  // The lease as read at `expected_revision`, when the caller has it (from its cache): a revision
  // names one write, so the store may answer with this record instead of reading the row first.
  // Ignored when expected_revision is 0.
  std::optional<LeaseRecord> as_seen = std::nullopt;
};

// Receives committed changes in revision order, one call per committed batch. Runs on the thread
// that committed the batch, before that batch's writers return: it must not block or call back
// into the store.
using LeaseWatchFn = std::function<void(const std::vector<LeaseChange>& changes)>;

using LeaseWatch = Watch;

class LeaseStore {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

  virtual ~LeaseStore() = default;

  // Adds a lease; returns its revision. ALREADY_EXISTS when the id is taken.
  virtual absl::StatusOr<int64_t> Create(const LeaseRecord& lease) = 0;
  // Replaces the lease with this id if its revision is still `expected_revision`; returns the new
  // revision. NOT_FOUND, ABORTED.
  virtual absl::StatusOr<int64_t> Update(const LeaseRecord& lease, int64_t expected_revision) = 0;
  // Deletes one lease; returns it. NOT_FOUND, ABORTED.
  virtual absl::StatusOr<LeaseRecord> Delete(const LeaseDelete& request) = 0;

  // The same three writes for callers that must not block a thread on a commit (the gRPC
  // handlers): `done` gets the outcome, possibly on another thread once the write committed (the
  // watch has delivered the change by then). By default they run the blocking form inline.
  virtual void CreateAsync(const LeaseRecord& lease, Done<int64_t> done) {
    Done<int64_t> finish = std::move(done);
    finish(Create(lease));
  }
  virtual void UpdateAsync(const LeaseRecord& lease, int64_t expected_revision,
                           Done<int64_t> done) {
    Done<int64_t> finish = std::move(done);
    finish(Update(lease, expected_revision));
  }
  // By value: an asynchronous store moves the request (and the lease it may carry) into its
  // write.
  // NOLINTNEXTLINE(performance-unnecessary-value-param)
  virtual void DeleteAsync(LeaseDelete request, Done<LeaseRecord> done) {
    Done<LeaseRecord> finish = std::move(done);
    finish(Delete(request));
  }
  // Deletes, in one write, every requested lease that exists with the expected revision; returns
  // the ones deleted (the others are skipped).
  virtual absl::StatusOr<std::vector<LeaseRecord>> DeleteAll(
      const std::vector<LeaseDelete>& requests) = 0;
  // Deletes every lease that expired at or before `now`; returns them. An implementation may
  // delete them in several writes (SQLite: chunks, so other writes are not held up behind a big
  // sweep); an error after some were deleted returns those, and the next sweep meets it again.
  virtual absl::StatusOr<std::vector<LeaseRecord>> DeleteExpired(absl::Time now) = 0;

  virtual absl::StatusOr<VersionedLease> Get(const std::string& id) = 0;
  virtual absl::StatusOr<LeaseListing> List() = 0;
  // Delivers every change after `after_revision`: first those already committed, then each new
  // batch. OUT_OF_RANGE when changes after `after_revision` are no longer remembered.
  virtual absl::StatusOr<std::unique_ptr<LeaseWatch>> Watch(int64_t after_revision,
                                                            LeaseWatchFn fn) = 0;
};

}  // namespace credbroker::state
