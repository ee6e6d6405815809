// Opening the broker's SQLite files the one way they are all opened: folder created, exclusive
// locking (one broker owns the file; no file locks per transaction), WAL journal, the store's
// schema applied.
#pragma once

#include <sqlite3.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace credbroker::state::sqlite {

// Opens (creating the file and its folder) `path` in WAL mode with synchronous=NORMAL, or FULL
// when `synchronous_full`, takes the file's exclusive lock for as long as the handle is open, and
// runs `schema`. The caller owns the handle (sqlite3_close).
// FAILED_PRECONDITION "<what>: cannot open <path>: <why>" when any step fails; when another
// process holds the file, <why> says so.
absl::StatusOr<sqlite3*> OpenDatabase(const std::string& path, const char* schema,
                                      bool synchronous_full, absl::string_view what);

}  // namespace credbroker::state::sqlite
