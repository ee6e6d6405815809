#include "credbroker/state/sqlite/open.h"

#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::state::sqlite {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string JournalMode(sqlite3* db) {
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr);
  std::string mode;
  if (sqlite3_step(s) == SQLITE_ROW)
    mode = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  return mode;
}

TEST(OpenDatabaseTest, CreatesTheFolderUsesWalAndAppliesTheSchema) {
  testing::TempDir dir;
  auto db = OpenDatabase(dir.Join("a/b/x.db"), "CREATE TABLE t (v INTEGER);", false, "test store");
  ASSERT_THAT(db, IsOk());
  EXPECT_EQ(JournalMode(*db), "wal");
  EXPECT_EQ(sqlite3_exec(*db, "INSERT INTO t VALUES (1)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(*db);
}

TEST(OpenDatabaseTest, FailuresNameTheStoreAndThePath) {
  testing::TempDir dir;
  testing::WriteFile(dir.Join("file"), "not a folder");
  EXPECT_THAT(OpenDatabase(dir.Join("file/x.db"), "", false, "test store"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("test store: cannot open"), HasSubstr("file/x.db"))));
  EXPECT_THAT(OpenDatabase(dir.Join("y.db"), "NOT SQL", false, "test store"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("syntax error")));
}

}  // namespace
}  // namespace credbroker::state::sqlite
