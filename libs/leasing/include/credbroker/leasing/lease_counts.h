// LeaseCounts: how many leases each caller holds on each provider, and how many leases hold each
// key version, counted from the shared lease data (the LeaseTable's changes, which mirror the
// store, so leases of every replica count) plus this process's reservations for leases it is
// about to create. Admission reserves a slot before the store write, so two concurrent acquires
// cannot both take the last slot; the reservation turns into the counted lease when the lease
// arrives from the store, or is cancelled when the write failed.
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/state/lease_store.h"

namespace credbroker::leasing {

struct CallerProvider {
  std::string caller;
  std::string provider;
  friend bool operator==(const CallerProvider&, const CallerProvider&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const CallerProvider& k) {
    return H::combine(std::move(h), k.caller, k.provider);
  }
};

struct ProviderVersion {
  std::string provider;
  std::string version;
  friend bool operator==(const ProviderVersion&, const ProviderVersion&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const ProviderVersion& k) {
    return H::combine(std::move(h), k.provider, k.version);
  }
};

class LeaseCounts {
 public:
  // A lease entered (+1) or left (-1) the lease data.
  void Apply(const state::LeaseRecord& lease, int delta) ABSL_LOCKS_EXCLUDED(mu_);

  // Reserves one of the caller's slots on the provider for the lease `lease_id` about to be
  // written; false when the caller already holds (or is acquiring) `limit` leases. 0: no limit.
  bool Reserve(const std::string& lease_id, const std::string& caller, const std::string& provider,
               int32_t limit) ABSL_LOCKS_EXCLUDED(mu_);
  // The lease `lease_id` was not written: frees its reservation (no-op when already counted).
  void Cancel(const std::string& lease_id) ABSL_LOCKS_EXCLUDED(mu_);

  int64_t ByCaller(absl::string_view caller, absl::string_view provider) const
      ABSL_LOCKS_EXCLUDED(mu_);
  int64_t ByVersion(absl::string_view provider, absl::string_view version) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static void Add(absl::flat_hash_map<CallerProvider, int64_t>& m, const CallerProvider& k,
                  int64_t delta);

  mutable absl::Mutex mu_;
  // Leases in the data plus reservations, per caller × provider.
  absl::flat_hash_map<CallerProvider, int64_t> by_caller_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ProviderVersion, int64_t> by_version_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, CallerProvider> reserved_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::leasing
