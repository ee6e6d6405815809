#include "credbroker/sqlite/database.h"

#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace credbroker::sqlite {

absl::StatusOr<sqlite3*> OpenDatabase(const std::string& path, const char* schema,
                                      bool synchronous_full, absl::string_view what) {
  auto fail = [&](absl::string_view why) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": cannot open ", path, ": ", why));
  };
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return fail(absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return fail(why);
  }
  sqlite3_busy_timeout(db, 5000);
  const std::string pragmas = absl::StrCat(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=", synchronous_full ? "FULL" : "NORMAL", ";");
  char* err = nullptr;
  if (sqlite3_exec(db, pragmas.c_str(), nullptr, nullptr, &err) != SQLITE_OK ||
      sqlite3_exec(db, schema, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    sqlite3_close(db);
    return fail(why);
  }
  return db;
}

}  // namespace credbroker::sqlite
