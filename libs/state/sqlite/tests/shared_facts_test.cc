#include "credbroker/state/sqlite/shared_facts.h"

#include <sqlite3.h>

#include "../../tests/shared_facts_conformance.h"
#include "credbroker/state/sqlite/state.h"
#include "credbroker/testing/temp_dir.h"
#include "test_state.h"

namespace credbroker::state::sqlite {
namespace {

// The facts in a state file as the broker opens it.
class SqliteFactsFactory {
 public:
  SharedFacts* Make(absl::Duration retention) {
    state_ = std::move(*OpenStateIn(dir_, retention));
    return &state_->facts();
  }

 private:
  testing::TempDir dir_;
  std::unique_ptr<SqliteState> state_;
};

// Suspensions outlive a restart; so do reports within their retention.
TEST(SqliteSharedFactsTest, FactsSurviveReopen) {
  testing::TempDir dir;
  int64_t revision = 0;
  {
    auto state = OpenStateIn(dir);
    ASSERT_THAT(state, testing::IsOk());
    ASSERT_THAT((*state)->facts().Suspend(
                    {"billing/api", "lumenfall", kFactsT0 + absl::Minutes(15), "rate_spike"}),
                testing::IsOk());
    absl::Notification stored;
    (*state)->facts().AddAuthFailure(Report401("search/api", kFactsT0), [&](const absl::Status& s) {
      EXPECT_THAT(s, testing::IsOk());
      stored.Notify();
    });
    stored.WaitForNotification();
    revision = (*state)->facts().List(kFactsT0)->revision;
  }
  auto state = OpenStateIn(dir);
  ASSERT_THAT(state, testing::IsOk());
  auto listing = (*state)->facts().List(kFactsT0 + absl::Minutes(1));
  ASSERT_THAT(listing, testing::IsOk());
  EXPECT_EQ(listing->revision, revision);
  EXPECT_THAT(Describe(listing->facts),
              ::testing::ElementsAre(absl::StrCat("suspend:billing/api@", revision - 1),
                                     absl::StrCat("report:search/api@", revision)));
}

// A state file from before reports carried their classification gains the column; its reports
// read back with an empty kind (judged by their status, as before).
TEST(SqliteSharedFactsTest, OldReportsWithoutAKindAreMigrated) {
  testing::TempDir dir;
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir.Join("state.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE auth_failure_reports (revision INTEGER PRIMARY KEY, "
                           "provider TEXT NOT NULL, key_version TEXT NOT NULL, caller TEXT NOT "
                           "NULL, http_status INTEGER NOT NULL, at_us INTEGER NOT NULL);"
                           "INSERT INTO auth_failure_reports VALUES (1, 'lumenfall', 'v1', "
                           "'search/api', 401, 1800000000000000);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto state = OpenStateIn(dir);
  ASSERT_THAT(state, testing::IsOk());
  auto listing = (*state)->facts().List(kFactsT0);
  ASSERT_THAT(listing, testing::IsOk());
  ASSERT_EQ(listing->facts.size(), 1u);
  EXPECT_EQ(listing->facts[0].report.http_status, 401);
  EXPECT_EQ(listing->facts[0].report.kind, "");
  absl::Notification stored;
  (*state)->facts().AddAuthFailure(Report401("billing/api", kFactsT0), [&](const absl::Status& s) {
    EXPECT_THAT(s, testing::IsOk());
    stored.Notify();
  });
  stored.WaitForNotification();
  listing = (*state)->facts().List(kFactsT0);
  ASSERT_THAT(listing, testing::IsOk());
  ASSERT_EQ(listing->facts.size(), 2u);
  EXPECT_EQ(listing->facts[1].report.kind, "key_rejected");
}

}  // namespace
}  // namespace credbroker::state::sqlite

namespace credbroker::state {
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, SharedFactsConformanceTest,
                               ::testing::Types<sqlite::SqliteFactsFactory>);
}  // namespace credbroker::state
