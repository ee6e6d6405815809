#include "credbroker/state/sqlite/shared_facts.h"

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

}  // namespace
}  // namespace credbroker::state::sqlite

namespace credbroker::state {
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, SharedFactsConformanceTest,
                               ::testing::Types<sqlite::SqliteFactsFactory>);
}  // namespace credbroker::state
