// OpenStores builds the state set that the `state:` configuration block chooses: `sqlite` (one
// broker owns a file; the embedded default) or `memory` (nothing survives a restart). The config
// was validated and its defaults applied before (config::ApplyDefaults).
// Errors: those of the implementation (FAILED_PRECONDITION naming the SQLite file when another
// broker holds it); INVALID_ARGUMENT when no store is configured.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "credbroker/state/state_stats.h"
#include "credbroker/state/stores.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::state {

struct StoresOptions {
  // How long auth-failure reports are kept (longer than the revocation detection window).
  absl::Duration report_retention = absl::Hours(1);
  // Where a replicated store reports its calls, leadership and watch (etcd); null: nowhere.
  StateStats* stats = nullptr;
};

absl::StatusOr<std::unique_ptr<Stores>> OpenStores(const v1::StateConfig& config,
                                                   const StoresOptions& options);

}  // namespace credbroker::state
