#include "credbroker/state/sqlite/state.h"

#include <filesystem>

#include "credbroker/rotation/key_ring.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test_state.h"

namespace credbroker::state::sqlite {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;
using rotation::KeyState;
using rotation::PersistedKeyVersion;

absl::StatusOr<std::unique_ptr<SqliteState>> OpenState(const std::string& path) {
  return OpenStateAt(path);
}

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
  {
    auto state = OpenStateIn(dir);
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
  auto reopened = OpenStateIn(dir);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_EQ((*reopened)->leases().Get("old-lease")->lease.renew_count, 3);
}

TEST(SqliteKeyStateStoreTest, RoundTripsRecords) {
  testing::TempDir dir;
  const absl::Time t = absl::FromUnixMicros(1'800'000'000'000'001);
  {
    auto store = OpenState(dir.Join("data/state.db"));
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->key_states().Save({"lumenfall", "v1", "aaaaaaaaaaaa", KeyState::kPrevious,
                                             t, t + absl::Hours(1)}),
                IsOk());
    ASSERT_THAT((*store)->key_states().Save({"lumenfall", "v2", "bbbbbbbbbbbb", KeyState::kCurrent,
                                             t, absl::InfiniteFuture()}),
                IsOk());
    ASSERT_THAT((*store)->key_states().Save({"lumenfall", "v1", "aaaaaaaaaaaa", KeyState::kRetired,
                                             t, absl::InfiniteFuture()}),
                IsOk());
  }
  auto store = OpenState(dir.Join("data/state.db"));
  ASSERT_THAT(store, IsOk());
  auto all = (*store)->key_states().LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_EQ(all->size(), 2u);
  for (const PersistedKeyVersion& r : *all) {
    EXPECT_EQ(r.created_at, t);
    EXPECT_EQ(r.retires_at, absl::InfiniteFuture());
    EXPECT_EQ(r.state, r.version_id == "v1" ? KeyState::kRetired : KeyState::kCurrent);
  }
}

TEST(SqliteKeyStateStoreTest, RemembersMintedKeyIdsAcrossReopen) {
  testing::TempDir dir;
  {
    auto store = OpenState(dir.Join("state.db"));
    ASSERT_THAT(store, IsOk());
    ASSERT_THAT((*store)->key_states().SaveMintedKeyId("lumenfall", "aaaaaaaaaaaa", "key_42"),
                IsOk());
  }
  auto store = OpenState(dir.Join("state.db"));
  ASSERT_THAT(store, IsOk());
  EXPECT_EQ(*(*store)->key_states().MintedKeyId("lumenfall", "aaaaaaaaaaaa"), "key_42");
  EXPECT_THAT((*store)->key_states().MintedKeyId("lumenfall", "bbbbbbbbbbbb"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(SqliteAnomalyBaselineStoreTest, KeepsTheFirstLearningPeriodAndTheBaselines) {
  TempDir dir;
  const absl::Time first = absl::FromUnixSeconds(1'800'000'000);
  anomaly::AnomalyBaseline b;
  b.caller = "billing/api";
  b.provider = "lumenfall";
  b.rate_mean = 12.5;
  b.rate_var = 3.25;
  b.fail_mean = 0.01;
  b.fail_var = 0.001;
  b.buckets = 40;
  b.suspended_until = first + absl::Minutes(15);
  {
    auto state = OpenState(dir.Join("state.db"));
    ASSERT_THAT(state, IsOk());
    EXPECT_EQ(*(*state)->anomaly_baselines().LearningUntil(first), first);
    ASSERT_THAT((*state)->anomaly_baselines().Save({b}), IsOk());
  }
  auto state = OpenState(dir.Join("state.db"));
  ASSERT_THAT(state, IsOk());
  EXPECT_EQ(*(*state)->anomaly_baselines().LearningUntil(first + absl::Hours(5)), first);
  auto loaded = (*state)->anomaly_baselines().Load();
  ASSERT_THAT(loaded, IsOk());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].caller, "billing/api");
  EXPECT_EQ((*loaded)[0].rate_var, 3.25);
  EXPECT_EQ((*loaded)[0].buckets, 40);
  EXPECT_EQ((*loaded)[0].suspended_until, first + absl::Minutes(15));
  ASSERT_THAT((*state)->anomaly_baselines().Save({}), IsOk());  // replaces everything
  EXPECT_TRUE((*state)->anomaly_baselines().Load()->empty());
}

TEST(SqliteStateTest, AnUpgradeTakesOverKeyStatesAndBaselinesOfTheEarlierFiles) {
  TempDir dir;
  auto exec = [](const std::string& path, const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  // As the previous version wrote them.
  exec(dir.Join("keys.db"),
       "CREATE TABLE key_versions (provider TEXT NOT NULL, version TEXT NOT NULL, fingerprint "
       "TEXT NOT NULL, state TEXT NOT NULL, created_at_us INTEGER NOT NULL, retires_at_us "
       "INTEGER, PRIMARY KEY (provider, version, fingerprint));"
       "CREATE TABLE minted_keys (provider TEXT NOT NULL, fingerprint TEXT NOT NULL, key_id TEXT "
       "NOT NULL, PRIMARY KEY (provider, fingerprint));"
       "INSERT INTO key_versions VALUES ('lumenfall', 'v1', 'aaaaaaaaaaaa', 'PREVIOUS', "
       "1800000000000000, 1800000600000000);"
       "INSERT INTO minted_keys VALUES ('lumenfall', 'aaaaaaaaaaaa', 'key_7');");
  exec(dir.Join("anomaly.db"),
       "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
       "CREATE TABLE baselines (caller TEXT NOT NULL, provider TEXT NOT NULL, rate_mean REAL NOT "
       "NULL, rate_var REAL NOT NULL, fail_mean REAL NOT NULL, fail_var REAL NOT NULL, buckets "
       "INTEGER NOT NULL, suspended_until_us INTEGER, PRIMARY KEY (caller, provider));"
       "INSERT INTO meta VALUES ('learning_until_us', 1800000000000000);"
       "INSERT INTO baselines VALUES ('billing/api', 'lumenfall', 10, 2, 0, 0, 30, NULL);");
  auto state = OpenState(dir.Join("state.db"));
  ASSERT_THAT(state, IsOk());
  auto keys = (*state)->key_states().LoadAll();
  ASSERT_THAT(keys, IsOk());
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].state, KeyState::kPrevious);
  EXPECT_EQ((*keys)[0].retires_at, absl::FromUnixSeconds(1'800'000'600));
  EXPECT_EQ(*(*state)->key_states().MintedKeyId("lumenfall", "aaaaaaaaaaaa"), "key_7");
  EXPECT_EQ(*(*state)->anomaly_baselines().LearningUntil(absl::InfiniteFuture()),
            absl::FromUnixSeconds(1'800'000'000));
  EXPECT_EQ((*state)->anomaly_baselines().Load()->size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(dir.Join("keys.db.imported")));
  EXPECT_TRUE(std::filesystem::exists(dir.Join("anomaly.db.imported")));
  EXPECT_EQ((*keys)[0].revision, 1);  // imported records start at revision 1
}

// A state file written before key-version records had revisions (the previous release's
// state.db): the column is added, existing records are at revision 1, and compare-and-swap works
// from there.
TEST(SqliteStateTest, AStateFileWithoutKeyRevisionsGetsThem) {
  TempDir dir;
  {
    auto state = OpenState(dir.Join("state.db"));
    ASSERT_THAT(state, IsOk());
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir.Join("state.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE key_versions;"
                         "CREATE TABLE key_versions (provider TEXT NOT NULL, version TEXT NOT "
                         "NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL, created_at_us "
                         "INTEGER NOT NULL, retires_at_us INTEGER, PRIMARY KEY (provider, "
                         "version, fingerprint));"
                         "INSERT INTO key_versions VALUES ('lumenfall', 'v1', 'aaaaaaaaaaaa', "
                         "'CURRENT', 1800000000000000, NULL);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
  auto state = OpenState(dir.Join("state.db"));
  ASSERT_THAT(state, IsOk());
  auto listing = (*state)->key_states().List();
  ASSERT_THAT(listing, IsOk());
  ASSERT_EQ(listing->records.size(), 1u);
  EXPECT_EQ(listing->records[0].revision, 1);
  PersistedKeyVersion previous = listing->records[0];
  previous.state = KeyState::kPrevious;
  EXPECT_THAT((*state)->key_states().Write({{previous, 0}}).status(),
              StatusIs(absl::StatusCode::kAborted));
  auto written = (*state)->key_states().Write({{previous, 1}});
  ASSERT_THAT(written, IsOk());
  EXPECT_GT(*written, 1);
}

TEST(SqliteKeyStateStoreTest, WritesAreFencedByTheLeaderEpoch) {
  TempDir dir;
  const std::string schema =
      std::string(SqliteLeaseStore::Schema()) + SqliteKeyStateStore::Schema();
  auto db = Database::Open({dir.Join("state.db")}, schema.c_str(), "state store");
  ASSERT_THAT(db, IsOk());
  ManualLeadership first;
  ManualLeadership second;
  first.Set(1);
  auto deposed_store = SqliteKeyStateStore::Open(db->get(), &first);
  auto successor_store = SqliteKeyStateStore::Open(db->get(), &second);
  ASSERT_THAT(deposed_store, IsOk());
  ASSERT_THAT(successor_store, IsOk());
  SqliteKeyStateStore& deposed = **deposed_store;
  SqliteKeyStateStore& successor = **successor_store;
  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  PersistedKeyVersion v1{"lumenfall",        "v1", "aaaaaaaaaaaa",
                         KeyState::kCurrent, t,    absl::InfiniteFuture()};
  ASSERT_THAT(deposed.Save(v1), IsOk());
  // Not leading: refused.
  EXPECT_THAT(successor.Save(v1), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           ::testing::HasSubstr("not the leader")));
  // A new term writes; the old leader, which has not noticed, can no longer.
  second.Set(2);
  PersistedKeyVersion previous = v1;
  previous.state = KeyState::kPrevious;
  previous.retires_at = t + absl::Hours(1);
  ASSERT_THAT(successor.Save(previous), IsOk());
  EXPECT_THAT(deposed.Save(v1),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("fenced")));
  EXPECT_THAT(deposed.SaveMintedKeyId("lumenfall", "aaaaaaaaaaaa", "key_1"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  auto all = successor.LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state, KeyState::kPrevious);  // the successor's decision stands
}

TEST(SqliteStateTest, EveryOpenIsANewLeaderTerm) {
  TempDir dir;
  int64_t first = 0;
  {
    auto state = OpenState(dir.Join("state.db"));
    ASSERT_THAT(state, IsOk());
    EXPECT_TRUE((*state)->leadership().IsLeader());
    first = (*state)->leadership().Epoch();
    EXPECT_GT(first, 0);
  }
  auto state = OpenState(dir.Join("state.db"));
  ASSERT_THAT(state, IsOk());
  EXPECT_EQ((*state)->leadership().Epoch(), first + 1);
}

}  // namespace
}  // namespace credbroker::state::sqlite
