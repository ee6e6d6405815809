#include "credbroker/state/sqlite/lease_store.h"

#include <sqlite3.h>

#include <thread>

#include "../../tests/lease_store_conformance.h"
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
  // The store starts again from its saved ceiling (revisions are reserved in blocks): at or
  // above every revision it gave out, the deleted lease's too.
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

TEST(SqliteLeaseStoreTest, ConcurrentWritesShareCommits) {
  TempDir dir;
  StoreWithDb s(dir.Join("state.db"));
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&s, t] {
      for (int i = 0; i < 200; ++i)
        EXPECT_THAT(s.Create(TestLease(absl::StrCat(t, "-", i))), IsOk());
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(s.db().writes(), 1600u);
  EXPECT_LT(s.db().batches(), s.db().writes());
  EXPECT_EQ(s.List()->leases.size(), 1600u);
}

TEST(SqliteLeaseStoreTest, ARolledBackBatchLeavesTheStoreAsItWas) {
  TempDir dir;
  StoreWithDb s(dir.Join("state.db"));
  const int64_t ra = *s.Create(TestLease("a"));
  // Hold the committer so that the writes below, and a storage failure after them, make up one
  // batch: the failure rolls all of it back.
  absl::Notification entered;
  absl::Notification release;
  std::thread holder([&] {
    EXPECT_THAT(s.db().Write([&](Database::Txn&) {
      entered.Notify();
      release.WaitForNotification();
      return absl::OkStatus();
    }),
                IsOk());
  });
  entered.WaitForNotification();
  absl::BlockingCounter finished(4);
  std::vector<absl::Status> got(4);
  auto record = [&](int i) {
    return [&, i](const auto& result) {
      got[i] = result.status();
      finished.DecrementCount();
    };
  };
  s.store().CreateAsync(TestLease("b"), record(0));
  s.store().UpdateAsync(TestLease("a"), ra, record(1));
  s.store().DeleteAsync({"a", 0}, record(2));
  s.db().WriteAsync([](Database::Txn&) { return absl::InternalError("disk on fire"); },
                    [&](absl::Status st) {
                      got[3] = std::move(st);
                      finished.DecrementCount();
                    });
  release.Notify();
  holder.join();
  finished.Wait();
  for (const absl::Status& st : got) EXPECT_THAT(st, StatusIs(absl::StatusCode::kInternal));
  // As before the batch: "a" at its revision, no "b"; and both can be written again.
  absl::StatusOr<VersionedLease> a = s.Get("a");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->revision, ra);
  EXPECT_THAT(s.Get("b"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(s.Create(TestLease("b")), IsOk());
  EXPECT_THAT(s.Update(TestLease("a"), ra), IsOk());
  EXPECT_EQ(s.List()->leases.size(), 2u);
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
