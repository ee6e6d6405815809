#include "credbroker/state/sqlite/lease_store.h"

#include <sqlite3.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "../../tests/lease_store_conformance.h"
#include "../src/lease_journal.h"
#include "../src/statement.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "credbroker/core/ids.h"
#include "credbroker/testing/temp_dir.h"

namespace credbroker::state::sqlite {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;
using ::testing::HasSubstr;

absl::StatusOr<std::unique_ptr<Database>> OpenDb(const std::string& path) {
  return Database::Open({path}, SqliteLeaseStore::Schema(), "state store");
}

// The store with the database it lives in.
class StoreWithDb final : public LeaseStore {
 public:
  explicit StoreWithDb(const std::string& path)
      : db_(*OpenDb(path)), store_(*SqliteLeaseStore::Open(db_.get())) {}
  absl::StatusOr<int64_t> Create(const LeaseRecord& l) override { return store_->Create(l); }
  absl::StatusOr<int64_t> Update(const LeaseRecord& l, int64_t r) override {
    return store_->Update(l, r);
  }
  absl::StatusOr<LeaseRecord> Delete(const LeaseDelete& r) override { return store_->Delete(r); }
  absl::StatusOr<std::vector<LeaseRecord>> DeleteAll(const std::vector<LeaseDelete>& r) override {
    return store_->DeleteAll(r);
  }
  absl::StatusOr<std::vector<LeaseRecord>> DeleteExpired(absl::Time now) override {
    return store_->DeleteExpired(now);
  }
  absl::StatusOr<VersionedLease> Get(const std::string& id) override { return store_->Get(id); }
  absl::StatusOr<LeaseListing> List() override { return store_->List(); }
  absl::StatusOr<std::unique_ptr<LeaseWatch>> Watch(int64_t after, LeaseWatchFn fn) override {
    return store_->Watch(after, std::move(fn));
  }
  Database& db() { return *db_; }
  SqliteLeaseStore& store() { return *store_; }

 private:
  std::unique_ptr<Database> db_;
  std::unique_ptr<SqliteLeaseStore> store_;
};

struct SqliteFactory {
  TempDir dir;
  std::unique_ptr<LeaseStore> Make() const {
    return std::make_unique<StoreWithDb>(dir.Join("state.db"));
  }
};
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, LeaseStoreConformanceTest, ::testing::Types<SqliteFactory>);

TEST(SqliteLeaseStoreTest, LeasesAndRevisionsSurviveAReopen) {
  TempDir dir;
  const std::string path = dir.Join("data/state.db");  // parent created on open
  int64_t last = 0;
  {
    StoreWithDb s(path);
    const int64_t ra = *s.Create(TestLease("a"));
    *s.Create(TestLease("b"));
    last = *s.Update(TestLease("a"), ra);
    s.Delete({"b", 0}).IgnoreError();
    last += 1;
  }
  StoreWithDb s(path);
  absl::StatusOr<LeaseListing> listing = s.List();
  ASSERT_THAT(listing, IsOk());
  // The store starts again at or above every revision it gave out, the deleted lease's too.
  const int64_t reopened = listing->revision;
  EXPECT_GE(reopened, last);
  ASSERT_EQ(listing->leases.size(), 1u);
  EXPECT_EQ(listing->leases[0].lease.id, "a");
  EXPECT_EQ(listing->leases[0].lease.purpose, "nightly \"batch\"");
  EXPECT_EQ(listing->leases[0].revision, last - 1);
  // Changes from before the restart are not remembered; after it, revisions go on growing.
  Recorder rec;
  EXPECT_THAT(s.Watch(reopened - 1, rec.Fn()), StatusIs(absl::StatusCode::kOutOfRange));
  auto watch = s.Watch(reopened, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  EXPECT_EQ(*s.Create(TestLease("c")), reopened + 1);
  EXPECT_EQ(rec.changes().size(), 1u);
}

// A sweep larger than one chunk deletes every expired lease (ids of both shapes), publishes each
// deletion once in revision order, and leaves the unexpired ones.
TEST(SqliteLeaseStoreTest, ASweepInSeveralChunksDeletesEveryExpiredLease) {
  TempDir dir;
  StoreWithDb s(dir.Join("state.db"));
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  for (int i = 0; i < 2500; ++i) {
    const std::string id = i % 2 == 0 ? core::NewLeaseId() : absl::StrCat("l", i);
    ASSERT_THAT(s.Create(TestLease(id, now - absl::Seconds(1))), IsOk());
  }
  ASSERT_THAT(s.Create(TestLease(core::NewLeaseId(), now + absl::Hours(1))), IsOk());
  Recorder rec;
  auto watch = s.Watch(s.List()->revision, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  absl::StatusOr<std::vector<LeaseRecord>> gone = s.DeleteExpired(now);
  ASSERT_THAT(gone, IsOk());
  EXPECT_EQ(gone->size(), 2500u);
  EXPECT_EQ(s.List()->leases.size(), 1u);
  const std::vector<LeaseChange> changes = rec.changes();
  ASSERT_EQ(changes.size(), 2500u);
  for (size_t i = 0; i < changes.size(); ++i) {
    EXPECT_EQ(changes[i].type, LeaseChange::Type::kDelete);
    if (i > 0) {
      EXPECT_EQ(changes[i].revision, changes[i - 1].revision + 1);
    }
  }
  EXPECT_THAT(s.DeleteExpired(now), IsOk());
  EXPECT_EQ(s.List()->leases.size(), 1u);
}

// Past several reserved blocks, deleting the newest lease last: a reopened store still gives
// out revisions above all of them.
TEST(SqliteLeaseStoreTest, RevisionsNeverGoBackAcrossAReopen) {
  TempDir dir;
  const std::string path = dir.Join("state.db");
  int64_t newest = 0;
  {
    StoreWithDb s(path);
    for (int i = 0; i < 2500; ++i) {
      const std::string id = absl::StrCat("l", i);
      ASSERT_THAT(s.Create(TestLease(id)), IsOk());
      ASSERT_THAT(s.Delete({id, 0}), IsOk());
    }
    newest = s.List()->revision;
  }
  EXPECT_EQ(newest, 5000);
  StoreWithDb s(path);
  EXPECT_GE(s.List()->revision, newest);
  EXPECT_GT(*s.Create(TestLease("after")), newest);
}

TEST(SqliteLeaseStoreTest, ASecondProcessCannotOpenTheSameFile) {
  TempDir dir;
  const std::string path = dir.Join("state.db");
  StoreWithDb first(path);
  *first.Create(TestLease("a"));
  // Another connection stands for another broker process: SQLite's file locks are the same.
  EXPECT_THAT(OpenDb(path), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     HasSubstr("locked by another process")));
  EXPECT_THAT(first.Create(TestLease("b")), IsOk());  // the owner is not disturbed
}

// Holds the database's committer (so nothing journaled is applied to the table) until released.
class CommitterHold {
 public:
  explicit CommitterHold(Database& db)
      : thread_([this, &db] {
          EXPECT_THAT(db.Write([this](Database::Txn&) {
            entered_.Notify();
            release_.WaitForNotification();
            return absl::OkStatus();
          }),
                      IsOk());
        }) {
    entered_.WaitForNotification();
  }
  ~CommitterHold() { Release(); }
  CommitterHold(const CommitterHold&) = delete;
  CommitterHold& operator=(const CommitterHold&) = delete;
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (thread_.joinable()) thread_.join();
  }

 private:
  absl::Notification entered_;
  absl::Notification release_;
  std::thread thread_;
};

// A write is answered once journaled, on the writer's thread, without waiting for a commit; the
// table gets the writes later, many in one transaction.
TEST(SqliteLeaseStoreTest, WritesAreAnsweredFromTheJournalAndAppliedInBatches) {
  TempDir dir;
  StoreWithDb s(dir.Join("state.db"));
  {
    CommitterHold hold(s.db());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&s, t] {
        for (int i = 0; i < 50; ++i) {
          const std::string id = absl::StrCat(t, "-", i);
          const int64_t rev = *s.Create(TestLease(id));
          const int64_t renewed = *s.Update(TestLease(id), rev);
          // Created and deleted before any apply: never written to the table.
          if (t == 0) {
            EXPECT_THAT(s.Delete({id, renewed, TestLease(id)}), IsOk());
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();  // all answered while nothing can commit
  }
  ASSERT_THAT(s.store().ApplyJournal(), IsOk());
  // All 450 writes reached the table in one transaction: the first apply to run took them all.
  EXPECT_EQ(s.store().applies(), 1u);
  absl::StatusOr<LeaseListing> listing = s.List();
  ASSERT_THAT(listing, IsOk());
  EXPECT_EQ(listing->leases.size(), 150u);
  EXPECT_EQ(listing->revision, 450);
  for (const VersionedLease& v : listing->leases) {
    EXPECT_GE(v.revision, 2) << v.lease.id;  // its update, not its create
    EXPECT_NE(v.lease.id.substr(0, 2), "0-") << v.lease.id;
  }
  // What the table holds (no journal left to overlay): the same.
  int rows = 0;
  ASSERT_THAT(s.db().Read([&](sqlite3* h) {
    Statement q(h, "SELECT COUNT(*) FROM lease_rows");
    if (sqlite3_step(q.get()) == SQLITE_ROW) rows = sqlite3_column_int(q.get(), 0);
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_EQ(rows, 150);
}

// A crash while writes are journaled but not in the table: the next Open applies them. The files
// are copied while the committer is held, as a crash would leave them.
TEST(SqliteLeaseStoreTest, JournaledWritesSurviveACrashBeforeTheyReachTheTable) {
  TempDir dir;
  TempDir crashed;
  const std::string path = dir.Join("state.db");
  int64_t ra = 0;
  {
    StoreWithDb s(path);
    ra = *s.Create(TestLease("a"));
    const int64_t rgone = *s.Create(TestLease("gone"));
    ASSERT_THAT(s.store().ApplyJournal(), IsOk());
    // (Reads wait for the connection, which the holder keeps: only writes that need none here.)
    CommitterHold hold(s.db());
    LeaseRecord renewed = TestLease("a");
    renewed.renew_count = 5;
    ra = *s.Update(renewed, ra);
    ASSERT_THAT(s.Create(TestLease("b")), IsOk());
    ASSERT_THAT(s.Delete({"gone", rgone, TestLease("gone")}), IsOk());
    for (const char* f : {"state.db", "state.db-wal", "state.db-leases.journal"}) {
      std::filesystem::copy_file(dir.Join(f), crashed.Join(f));
    }
    // A write cut short by the crash: half a record at the journal's end.
    std::string half;
    LeaseJournal::Encode(JournalRecord{JournalRecord::Op::kPut, 99, 99, TestLease("torn")}, &half);
    std::ofstream(crashed.Join("state.db-leases.journal"), std::ios::app)
        << half.substr(0, half.size() / 2);
  }
  StoreWithDb s(crashed.Join("state.db"));
  // Applied at Open, then emptied (the torn end with it).
  EXPECT_EQ(std::filesystem::file_size(crashed.Join("state.db-leases.journal")), 0u);
  absl::StatusOr<LeaseListing> listing = s.List();
  ASSERT_THAT(listing, IsOk());
  std::vector<std::string> ids;
  for (const VersionedLease& v : listing->leases) ids.push_back(v.lease.id);
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre("a", "b"));
  absl::StatusOr<VersionedLease> a = s.Get("a");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->revision, ra);
  EXPECT_EQ(a->lease.renew_count, 5);
  EXPECT_GE(listing->revision, ra + 2);  // the delete's revision too
  EXPECT_GT(*s.Create(TestLease("c")), listing->revision);
}

// Under steady load the journal is never all applied at one moment: past its size limit it is
// rewritten with what is not applied yet, and still brings that back after a crash.
TEST(SqliteLeaseStoreTest, ALongJournalIsRewrittenWithOnlyWhatIsNotApplied) {
  TempDir dir;
  TempDir crashed;
  const std::string journal = dir.Join("state.db-leases.journal");
  StoreWithDb s(dir.Join("state.db"));
  {
    CommitterHold hold(s.db());
    // Past the journal's 1 MiB limit in fewer writes than one apply takes (4096).
    for (int i = 0; i < 4000; ++i) {
      LeaseRecord l = TestLease(absl::StrCat("l", i));
      l.purpose = std::string(300, 'p');
      ASSERT_THAT(s.Create(l), IsOk());
    }
    EXPECT_GT(std::filesystem::file_size(journal), size_t{1} << 20);
    // Soon the applier queues an apply (it waits 10 ms for more), which takes all 4000 when the
    // batch runs.
    while (s.db().queued() == 0) std::this_thread::yield();
    // Journaled after that apply took its records, before it committed.
    absl::Notification late;
    s.db().WriteAsync([&](Database::Txn&) { return s.store().Create(TestLease("late")).status(); },
                      [&](const absl::Status& st) {
                        EXPECT_THAT(st, IsOk());
                        late.Notify();
                      });
    hold.Release();
    late.WaitForNotification();
  }
  // Only the late lease's record is left.
  {
    auto left = LeaseJournal::Open(journal);
    ASSERT_THAT(left, IsOk());
    uint64_t torn = 0;
    absl::StatusOr<std::vector<JournalRecord>> records = (*left)->ReadAll(&torn);
    ASSERT_THAT(records, IsOk());
    ASSERT_EQ(records->size(), 1u);
    EXPECT_EQ((*records)[0].lease.id, "late");
    EXPECT_EQ(torn, 0u);
  }
  {
    CommitterHold hold(s.db());  // no commit under way while the files are copied
    for (const char* f : {"state.db", "state.db-wal", "state.db-leases.journal"}) {
      std::filesystem::copy_file(dir.Join(f), crashed.Join(f));
    }
  }
  StoreWithDb reopened(crashed.Join("state.db"));
  EXPECT_EQ(reopened.List()->leases.size(), 4001u);
  EXPECT_THAT(reopened.Get("late"), IsOk());
}

// A storage failure while applying rolls back the apply, not the writes: they were answered
// from the journal, stay readable, and reach the table with the next apply.
TEST(SqliteLeaseStoreTest, AFailedApplyKeepsTheWritesForTheNextOne) {
  TempDir dir;
  const std::string path = dir.Join("state.db");
  {
    StoreWithDb s(path);
    const int64_t ra = *s.Create(TestLease("a"));
    ASSERT_THAT(s.store().ApplyJournal(), IsOk());
    {
      CommitterHold hold(s.db());
      EXPECT_THAT(s.Create(TestLease("b")), IsOk());
      EXPECT_THAT(s.Update(TestLease("a"), ra), IsOk());
      absl::Status applied;
      std::thread apply([&] { applied = s.store().ApplyJournal(); });
      while (s.db().queued() == 0) std::this_thread::yield();
      // In the same batch as that apply: rolls all of it back.
      s.db().WriteAsync(
          [](Database::Txn&) { return absl::InternalError("disk on fire"); },
          [](const absl::Status& st) { EXPECT_THAT(st, StatusIs(absl::StatusCode::kInternal)); });
      hold.Release();
      apply.join();
      EXPECT_THAT(applied, StatusIs(absl::StatusCode::kInternal));
    }
    EXPECT_THAT(s.Get("b"), IsOk());
    EXPECT_EQ(s.Get("a")->revision, ra + 2);
    EXPECT_THAT(s.Create(TestLease("c")), IsOk());
  }
  // Everything reached the table (the journal was emptied at this open, and held nothing).
  StoreWithDb s(path);
  EXPECT_EQ(s.List()->leases.size(), 3u);
  EXPECT_EQ(s.Get("a")->revision, 3);
}

// synchronous=FULL: an asynchronous write is answered once an fsync of the journal covers it,
// one fsync for all the writes waiting.
TEST(SqliteLeaseStoreTest, WithSynchronousFullWritesAreAnsweredAfterTheGroupFsync) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(
      {dir.Join("state.db"), /*synchronous_full=*/true}, SqliteLeaseStore::Schema(), "state store");
  ASSERT_THAT(db, IsOk());
  absl::StatusOr<std::unique_ptr<SqliteLeaseStore>> store = SqliteLeaseStore::Open(db->get());
  ASSERT_THAT(store, IsOk());
  absl::BlockingCounter answered(20);
  std::atomic<int> ok{0};
  {
    CommitterHold hold(**db);
    for (int i = 0; i < 20; ++i) {
      (*store)->CreateAsync(TestLease(absl::StrCat("l", i)),
                            [&](const absl::StatusOr<int64_t>& rev) {
                              if (rev.ok()) ok.fetch_add(1);
                              answered.DecrementCount();
                            });
    }
    EXPECT_EQ(ok.load(), 0);  // journaled, not yet fsynced: nobody answered
  }
  answered.Wait();
  EXPECT_EQ(ok.load(), 20);
  EXPECT_EQ((*store)->List()->leases.size(), 20u);
}

TEST(SqliteLeaseStoreTest, OpensAFileWithLeasesKeyedById) {
  TempDir dir;
  const std::string path = dir.Join("state.db");
  {
    // The layout of the previous version: the leases keyed by id, with an expiry index.
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h,
                           "CREATE TABLE leases (id TEXT PRIMARY KEY, caller TEXT NOT NULL, "
                           "provider TEXT NOT NULL, key_version TEXT NOT NULL, key_fingerprint "
                           "TEXT NOT NULL, purpose TEXT NOT NULL, issued_at_us INTEGER NOT NULL, "
                           "expires_at_us INTEGER NOT NULL, renew_count INTEGER NOT NULL, "
                           "revision INTEGER NOT NULL) WITHOUT ROWID;"
                           "CREATE INDEX leases_expires ON leases(expires_at_us);"
                           "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                           "INSERT INTO leases VALUES ('a', 'billing/api', 'lumenfall', 'v1', "
                           "'fp', 'batch', 1, 4102444800000000, 2, 7);"
                           "INSERT INTO store_meta VALUES ('lease_revision', 9);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(h);
  }
  StoreWithDb s(path);
  absl::StatusOr<VersionedLease> a = s.Get("a");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->revision, 7);
  EXPECT_EQ(a->lease.caller, "billing/api");
  EXPECT_EQ(a->lease.renew_count, 2);
  EXPECT_EQ(s.List()->revision, 9);
  EXPECT_THAT(s.Update(a->lease, 7), IsOk());
  // Moved once: the old table is gone, so a second open finds the lease where it now lives.
  bool old_table = true;
  ASSERT_THAT(s.db().Read([&](sqlite3* h) {
    Statement q(h, "SELECT 1 FROM sqlite_master WHERE name='leases'");
    old_table = sqlite3_step(q.get()) == SQLITE_ROW;
    return absl::OkStatus();
  }),
              IsOk());
  EXPECT_FALSE(old_table);
}

}  // namespace
}  // namespace credbroker::state::sqlite
