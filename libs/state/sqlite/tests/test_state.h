// Test helper: a state file opened as the broker opens it (SqliteState::Open on a path).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "credbroker/state/sqlite/state.h"
#include "credbroker/testing/temp_dir.h"

namespace credbroker::state::sqlite {

inline absl::StatusOr<std::unique_ptr<SqliteState>> OpenStateAt(
    const std::string& path, absl::Duration report_retention = absl::Hours(1)) {
  v1::SqliteStoreConfig config;
  config.set_path(path);
  return SqliteState::Open(config, report_retention);
}

// `dir`/state.db.
inline absl::StatusOr<std::unique_ptr<SqliteState>> OpenStateIn(
    const testing::TempDir& dir, absl::Duration report_retention = absl::Hours(1)) {
  return OpenStateAt(dir.Join("state.db"), report_retention);
}

}  // namespace credbroker::state::sqlite
