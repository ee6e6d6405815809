#include "credbroker/state/open_stores.h"

#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/etcd/state.h"
#include "credbroker/state/memory_stores.h"
#include "credbroker/state/sqlite/state.h"

namespace credbroker::state {

absl::StatusOr<std::unique_ptr<Stores>> OpenStores(const v1::StateConfig& config,
                                                   const StoresOptions& options) {
  switch (config.store_case()) {
    case v1::StateConfig::kSqlite: {
      CB_ASSIGN_OR_RETURN(std::unique_ptr<sqlite::SqliteState> s,
                          sqlite::SqliteState::Open(config.sqlite(), options.report_retention));
      return std::unique_ptr<Stores>(std::move(s));
    }
    case v1::StateConfig::kEtcd: {
      CB_ASSIGN_OR_RETURN(
          std::unique_ptr<etcd::EtcdState> s,
          etcd::EtcdState::Open(config.etcd(), options.report_retention, options.stats));
      return std::unique_ptr<Stores>(std::move(s));
    }
    case v1::StateConfig::kMemory:
      core::LogWarning(
          "state.memory: leases, key states and suspensions live in this process only and are "
          "lost when it stops (development and benchmarks only)");
      return std::unique_ptr<Stores>(std::make_unique<MemoryStores>(options.report_retention));
    case v1::StateConfig::STORE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("state: no store is configured (sqlite, etcd or memory)");
}

}  // namespace credbroker::state
