// Opening the broker's SQLite files (leases.db, keys.db, anomaly.db) the one way they are all
// opened: folder created, WAL journal, a busy timeout, the store's schema applied.
#pragma once

#include <sqlite3.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace credbroker::sqlite {

// Opens (creating the file and its folder) `path` in WAL mode with synchronous=NORMAL, or FULL
// when `synchronous_full`, and runs `schema`. The caller owns the handle (sqlite3_close).
// FAILED_PRECONDITION "<what>: cannot open <path>: <why>" when any step fails.
absl::StatusOr<sqlite3*> OpenDatabase(const std::string& path, const char* schema,
                                      bool synchronous_full, absl::string_view what);

}  // namespace credbroker::sqlite
