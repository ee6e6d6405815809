#include "credbroker/state/sqlite/open.h"

#include <filesystem>
#include <mutex>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace credbroker::state::sqlite {

absl::StatusOr<sqlite3*> OpenDatabase(const std::string& path, const char* schema,
                                      bool synchronous_full, absl::string_view what) {
  // SQLite's memory statistics take a process-wide mutex on every allocation; nothing reads them.
  // Must be set before SQLite initializes, so once, before the first open.
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
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
  // Readable by the broker's user only, also when an earlier version created it with the default
  // umask (new files already are: main() sets umask 077).
  std::filesystem::permissions(
      path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
      std::filesystem::perm_options::replace, ec);
  if (ec) {
    std::string why = absl::StrCat("cannot make it private (0600): ", ec.message());
    sqlite3_close(db);
    return fail(why);
  }
  // A broker that is shutting down (a rolling restart on the same volume) gets a moment to let go.
  sqlite3_busy_timeout(db, 2000);
  // Small pages (set before the file's first write; a file created earlier keeps its size): a
  // commit appends every page it dirtied to the WAL whole, and a batch of lease writes dirties a
  // few pages at the end of the lease table, so 1 KiB pages write a quarter of the bytes of 4 KiB
  // ones for the same rows (bench/RESULTS.md).
  // Exclusive locking before WAL is entered: the WAL index lives in heap memory, and the file
  // lock taken by the first write below is held until close, so no transaction takes file locks
  // again and a second process cannot open the file.
  const std::string pragmas = absl::StrCat(
      "PRAGMA page_size=1024; PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA "
      "synchronous=",
      synchronous_full ? "FULL" : "NORMAL", ";");
  char* err = nullptr;
  int rc = sqlite3_exec(db, pragmas.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, "BEGIN EXCLUSIVE; COMMIT;", nullptr, nullptr, &err);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, schema, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db);
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
      why = absl::StrCat(
          "the file is locked by another process (another credbroker using the same data dir? "
          "one broker owns a SQLite state file; several replicas need the etcd state store): ",
          why);
    }
    sqlite3_free(err);
    sqlite3_close(db);
    return fail(why);
  }
  return db;
}

}  // namespace credbroker::state::sqlite
