// RevocationDetector notices when a key was probably revoked at the provider: 401 reports on one
// key version from at least `min_callers` distinct callers within `window`. One caller's 401s
// prove little (its own bug, a stale copy); several callers failing on the same version at once
// is the provider refusing the key. 403 and 429 never count: they mean "not allowed" or "slow
// down", and quarantining a working key for them would turn a rate limit into an outage.
// Thread-safety: safe for concurrent use.
#pragma once

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace credbroker::rotation {

class RevocationDetector {
 public:
  RevocationDetector(int min_callers, absl::Duration window)
      : min_callers_(min_callers), window_(window) {}

  // Records one report. True exactly when this report completes a burst; the same version then
  // triggers again only after `window` has passed.
  bool Record(absl::string_view provider, absl::string_view version, absl::string_view caller,
              int http_status, absl::Time now);
  // A report that settles it alone (the provider said the key expired): one caller completes
  // the burst; the window still keeps a flood of them to one check.
  bool RecordDecisive(absl::string_view provider, absl::string_view version,
                      absl::string_view caller, absl::Time now);

  // Distinct callers with a 401 on the version within the window ending at `now`.
  int DistinctCallers(absl::string_view provider, absl::string_view version, absl::Time now);

 private:
  struct Burst {
    absl::flat_hash_map<std::string, absl::Time> last_report;  // by caller
    absl::Time triggered_at = absl::InfinitePast();
  };
  void Prune(Burst& burst, absl::Time now) const;
  bool Add(absl::string_view provider, absl::string_view version, absl::string_view caller,
           absl::Time now, int min_callers);

  const int min_callers_;
  const absl::Duration window_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Burst> bursts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::rotation
