#include "credbroker/state/sqlite/database.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::state::sqlite {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

constexpr char kSchema[] = "CREATE TABLE IF NOT EXISTS t (v INTEGER PRIMARY KEY);";

absl::Status Insert(Database& db, Database::Txn& txn, int v) {
  const std::string sql = "INSERT INTO t VALUES (" + std::to_string(v) + ")";
  if (sqlite3_exec(txn.db(), sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    return db.Error(txn.db(), "insert");
  }
  return absl::OkStatus();
}

std::vector<int> Rows(Database& db) {
  std::vector<int> out;
  EXPECT_THAT(db.Read([&](sqlite3* h) {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(h, "SELECT v FROM t ORDER BY v", -1, &s, nullptr);
    while (sqlite3_step(s) == SQLITE_ROW) out.push_back(sqlite3_column_int(s, 0));
    sqlite3_finalize(s);
    return absl::OkStatus();
  }),
              IsOk());
  return out;
}

// Holds the database's commit with one write while `writes` more queue behind it (in the order
// given), then lets all of them go: they are committed together, as one batch. Returns their
// statuses.
std::vector<absl::Status> OneBatch(
    Database& db, std::vector<std::function<absl::Status(Database::Txn&)>> writes) {
  absl::Notification entered;
  absl::Notification release;
  std::thread holder([&] {
    EXPECT_THAT(db.Write([&](Database::Txn&) {
      entered.Notify();
      release.WaitForNotification();
      return absl::OkStatus();
    }),
                IsOk());
  });
  entered.WaitForNotification();
  const uint64_t batches_before = db.batches();
  std::vector<absl::Status> out(writes.size());
  std::vector<std::thread> writers;
  for (size_t i = 0; i < writes.size(); ++i) {
    writers.emplace_back([&, i] { out[i] = db.Write(writes[i]); });
    // One at a time, so the batch holds the writes in the order given.
    while (db.queued() < i + 1) std::this_thread::yield();
  }
  release.Notify();
  holder.join();
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(db.batches(), batches_before + 2);  // the holder's batch, then all the others
  return out;
}

TEST(DatabaseTest, QueuedWritesCommitTogether) {
  testing::TempDir dir;
  auto db = Database::Open({dir.Join("x.db")}, kSchema, "test store");
  ASSERT_THAT(db, IsOk());
  Database& d = **db;
  std::vector<absl::Status> got = OneBatch(
      d, {[&](Database::Txn& t) { return Insert(d, t, 1); },
          [&](Database::Txn& t) { return Insert(d, t, 2); },
          [&](Database::Txn&) { return absl::AlreadyExistsError("a result of its own"); }});
  EXPECT_THAT(got[0], IsOk());
  EXPECT_THAT(got[1], IsOk());
  EXPECT_THAT(got[2], StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(Rows(d), (std::vector<int>{1, 2}));
}

TEST(DatabaseTest, AStorageFailureRollsBackTheWholeBatch) {
  testing::TempDir dir;
  auto db = Database::Open({dir.Join("x.db")}, kSchema, "test store");
  ASSERT_THAT(db, IsOk());
  Database& d = **db;
  bool rolled_back = false;
  std::vector<absl::Status> got = OneBatch(
      d, {[&](Database::Txn& t) {
            t.AfterRollback(&rolled_back, [&] { rolled_back = true; });
            return Insert(d, t, 1);
          },
          [&](Database::Txn& t) {
            EXPECT_THAT(Insert(d, t, 2), IsOk());
            return Insert(d, t, 2);  // constraint violation: a failed statement is a storage error
          }});
  EXPECT_THAT(got[0], StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(got[1], StatusIs(absl::StatusCode::kInternal));
  EXPECT_TRUE(rolled_back);
  EXPECT_TRUE(Rows(d).empty());  // nothing half-written
}

TEST(DatabaseTest, HooksRunOncePerBatch) {
  testing::TempDir dir;
  auto db = Database::Open({dir.Join("x.db")}, kSchema, "test store");
  ASSERT_THAT(db, IsOk());
  Database& d = **db;
  int before = 0;
  int after = 0;
  auto write = [&](int v) {
    return [&, v](Database::Txn& t) {
      t.BeforeCommit(&before, [&](sqlite3*) {
        ++before;
        return absl::OkStatus();
      });
      t.AfterCommit(&after, [&] { ++after; });
      return Insert(d, t, v);
    };
  };
  std::vector<absl::Status> got = OneBatch(d, {write(1), write(2), write(3)});
  for (const absl::Status& s : got) EXPECT_THAT(s, IsOk());
  EXPECT_EQ(before, 1);
  EXPECT_EQ(after, 1);
}

}  // namespace
}  // namespace credbroker::state::sqlite
