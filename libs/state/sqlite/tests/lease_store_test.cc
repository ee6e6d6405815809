#include "credbroker/state/sqlite/lease_store.h"

#include "../../tests/lease_store_conformance.h"
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
  EXPECT_EQ(listing->revision, last);
  ASSERT_EQ(listing->leases.size(), 1u);
  EXPECT_EQ(listing->leases[0].lease.id, "a");
  EXPECT_EQ(listing->leases[0].lease.purpose, "nightly \"batch\"");
  EXPECT_EQ(listing->leases[0].revision, last - 1);
  // Changes from before the restart are not remembered; after it, revisions go on growing.
  Recorder rec;
  EXPECT_THAT(s.Watch(last - 1, rec.Fn()), StatusIs(absl::StatusCode::kOutOfRange));
  auto watch = s.Watch(last, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  EXPECT_EQ(*s.Create(TestLease("c")), last + 1);
  EXPECT_EQ(rec.changes().size(), 1u);
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

}  // namespace
}  // namespace credbroker::state::sqlite
