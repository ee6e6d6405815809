// How the lease cache holds a lease in memory: a fixed-size record (no per-lease strings) keyed
// by the lease id's 16 bytes (core::LeaseIdMap), with the strings a lease shares with many others —
// caller, provider, key version, key fingerprint, purpose — interned once per distinct combination
// (a "lease class") and counted, so a class is freed with its last lease (purposes are free
// text). At a million leases that is ~48 bytes of slot per lease instead of six std::strings.
// Thread-safety: LeaseClasses is safe for concurrent use; the rest are values.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/core/lease_id_map.h"
#include "credbroker/state/lease_store.h"

namespace credbroker::leasing {

using core::LeaseKey;

// The interned strings of leases; ids are dense and reused once free.
class LeaseClasses {
 public:
  using Id = uint32_t;
  // The class of `lease`'s strings, counted once more.
  Id Ref(const state::LeaseRecord& lease) ABSL_LOCKS_EXCLUDED(mu_);
  // One lease of class `id` fewer; the class is freed with its last one.
  void Unref(Id id) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `lease`'s strings are those of class `id` (a renewal keeps its class).
  bool Is(Id id, const state::LeaseRecord& lease) const ABSL_LOCKS_EXCLUDED(mu_);
  // Copies class `id`'s strings into `lease`.
  void Fill(Id id, state::LeaseRecord* lease) const ABSL_LOCKS_EXCLUDED(mu_);
  // Classes in use (for tests and the memory benchmark).
  size_t size() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using Strings = std::tuple<std::string, std::string, std::string, std::string, std::string>;
  struct Entry {
    Strings strings;
    int64_t refs = 0;
  };
  static Strings Of(const state::LeaseRecord& lease);

  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Strings, Id> index_ ABSL_GUARDED_BY(mu_);
  std::vector<Id> free_ ABSL_GUARDED_BY(mu_);
};

// A cached lease without its id and strings: 32 bytes.
struct CompactLease {
  int64_t issued_ns = 0;   // absl::ToUnixNanos
  int64_t expires_ns = 0;  // absl::ToUnixNanos
  int64_t revision = 0;    // the store revision of its last change
  uint32_t renew_count = 0;
  LeaseClasses::Id cls = 0;

  // `lease` (its class already referenced as `cls`) at `revision`.
  static CompactLease Of(const state::LeaseRecord& lease, int64_t revision, LeaseClasses::Id cls);
  // The whole record again.
  state::VersionedLease Expand(const std::string& id, const LeaseClasses& classes) const;
};
static_assert(sizeof(CompactLease) == 32);

}  // namespace credbroker::leasing
