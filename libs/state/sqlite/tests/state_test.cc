#include "credbroker/state/sqlite/state.h"

#include <filesystem>

#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::state::sqlite {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::TempDir;

// The lease file of the previous version, as it wrote it.
void WriteLegacyLeases(const std::string& path) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode=WAL;"
                         "CREATE TABLE leases (id TEXT PRIMARY KEY, caller TEXT NOT NULL, "
                         "provider TEXT NOT NULL, key_version TEXT NOT NULL, key_fingerprint TEXT "
                         "NOT NULL, purpose TEXT NOT NULL, issued_at_us INTEGER NOT NULL, "
                         "expires_at_us INTEGER NOT NULL, renew_count INTEGER NOT NULL);"
                         "INSERT INTO leases VALUES ('old-lease', 'billing/api', 'lumenfall', "
                         "'v1', '0123456789ab', '', 1700000000000000, 1900000000000000, 2);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
}

TEST(SqliteStateTest, AnUpgradeTakesOverTheLeasesOfTheEarlierLeaseFile) {
  TempDir dir;
  WriteLegacyLeases(dir.Join("leases.db"));
  v1::SqliteStoreConfig config;
  config.set_path(dir.Join("state.db"));
  {
    auto state = SqliteState::Open(config);
    ASSERT_THAT(state, IsOk());
    absl::StatusOr<VersionedLease> lease = (*state)->leases().Get("old-lease");
    ASSERT_THAT(lease, IsOk());
    EXPECT_EQ(lease->lease.caller, "billing/api");
    EXPECT_EQ(lease->lease.renew_count, 2);
    EXPECT_EQ(lease->lease.expires_at, absl::FromUnixSeconds(1'900'000'000));
    // Writable with compare-and-swap like any other lease.
    LeaseRecord renewed = lease->lease;
    renewed.renew_count = 3;
    EXPECT_THAT((*state)->leases().Update(renewed, lease->revision), IsOk());
  }
  EXPECT_FALSE(std::filesystem::exists(dir.Join("leases.db")));
  EXPECT_TRUE(std::filesystem::exists(dir.Join("leases.db.imported")));
  auto reopened = SqliteState::Open(config);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_EQ((*reopened)->leases().Get("old-lease")->lease.renew_count, 3);
}

}  // namespace
}  // namespace credbroker::state::sqlite
