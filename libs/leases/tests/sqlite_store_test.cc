#include <sys/stat.h>

#include "credbroker/leases/lease_store.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::leases {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;

LeaseRecord Lease(const std::string& id, absl::Time expires) {
  LeaseRecord l;
  l.id = id;
  l.caller = "svc";
  l.provider = "lumenfall";
  l.key_version = "v7";
  l.key_fingerprint = "0123456789ab";
  l.purpose = "nightly \"batch\"";
  l.issued_at = absl::FromUnixMicros(1'700'000'000'123'456);
  l.expires_at = expires;
  l.renew_count = 3;
  return l;
}

TEST(SqliteLeaseStoreTest, PersistsAcrossReopen) {
  TempDir dir;
  const std::string path = dir.Join("data/leases.db");  // parent created on open
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  {
    auto store = SqliteLeaseStore::Open(path);
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->Put(Lease("a", now + absl::Minutes(5))), IsOk());
    ASSERT_THAT((*store)->Put(Lease("b", now + absl::Minutes(5))), IsOk());
    ASSERT_THAT((*store)->Delete("b"), IsOk());
  }
  auto store = SqliteLeaseStore::Open(path);
  ASSERT_THAT(store, IsOk());
  auto loaded = (*store)->LoadUnexpired(now);
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  const LeaseRecord& l = (*loaded)[0];
  EXPECT_EQ(l.id, "a");
  EXPECT_EQ(l.purpose, "nightly \"batch\"");
  EXPECT_EQ(l.issued_at, absl::FromUnixMicros(1'700'000'000'123'456));
  EXPECT_EQ(l.expires_at, now + absl::Minutes(5));
  EXPECT_EQ(l.renew_count, 3);
  EXPECT_EQ(l.key_version, "v7");
}

TEST(SqliteLeaseStoreTest, PutReplacesAndExpiredAreDeletedInOneCall) {
  TempDir dir;
  auto store = SqliteLeaseStore::Open(dir.Join("l.db"), /*synchronous_full=*/true);
  ASSERT_THAT(store, IsOk());
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  ASSERT_THAT((*store)->Put(Lease("a", now - absl::Seconds(1))), IsOk());
  ASSERT_THAT((*store)->Put(Lease("a", now + absl::Minutes(1))), IsOk());  // renewed
  ASSERT_THAT((*store)->Put(Lease("b", now - absl::Seconds(1))), IsOk());
  ASSERT_THAT((*store)->Put(Lease("c", now)), IsOk());
  auto deleted = (*store)->DeleteExpired(now);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(*deleted, 2);  // b and c (expiry == now counts as expired)
  auto loaded = (*store)->LoadUnexpired(absl::InfinitePast());
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].id, "a");
}

TEST(SqliteLeaseStoreTest, UsesWriteAheadLog) {
  TempDir dir;
  auto store = SqliteLeaseStore::Open(dir.Join("l.db"));
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->Put(Lease("a", absl::InfiniteFuture() - absl::Hours(1))), IsOk());
  struct stat st;
  EXPECT_EQ(::stat(dir.Join("l.db-wal").c_str(), &st), 0) << "no WAL file next to the database";
}

TEST(SqliteLeaseStoreTest, UnopenablePathIsAnError) {
  TempDir dir;
  // A regular file where the data directory should be: fails even for root.
  testing::WriteFile(dir.Join("blocker"), "x");
  EXPECT_THAT(SqliteLeaseStore::Open(dir.Join("blocker/sub/l.db")),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("blocker")));
}

TEST(SqliteLeaseStoreTest, NotADatabaseIsAnError) {
  TempDir dir;
  testing::WriteFile(dir.Join("l.db"), std::string(8192, 'x'));
  EXPECT_FALSE(SqliteLeaseStore::Open(dir.Join("l.db")).ok());
}

TEST(MakeLeaseStoreTest, BuildsSqliteFromConfig) {
  TempDir dir;
  v1::LeaseStoreConfig config;
  config.mutable_sqlite()->set_path(dir.Join("x.db"));
  EXPECT_THAT(MakeLeaseStore(config), IsOk());
  EXPECT_THAT(MakeLeaseStore(v1::LeaseStoreConfig()), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace credbroker::leases
