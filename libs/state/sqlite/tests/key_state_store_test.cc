#include "credbroker/state/sqlite/key_state_store.h"

#include "../../../rotation/tests/key_state_store_conformance.h"
#include "credbroker/state/sqlite/state.h"
#include "credbroker/testing/temp_dir.h"
#include "test_state.h"

namespace credbroker::state::sqlite {
namespace {

// The SQLite store as the broker opens it (always the leader of its file).
class SqliteFactory {
 public:
  rotation::KeyStateStore* Make() {
    state_ = std::move(*OpenStateIn(dir_));
    return &state_->key_states();
  }

 private:
  testing::TempDir dir_;
  std::unique_ptr<SqliteState> state_;
};

// Revisions survive a restart: a record written before it keeps its revision and the next write
// gets a higher one (a CAS from a pre-restart read still works; a stale one still fails).
TEST(SqliteKeyStateStoreTest, RevisionsSurviveReopen) {
  testing::TempDir dir;
  int64_t written = 0;
  {
    auto state = OpenStateIn(dir);
    ASSERT_THAT(state, testing::IsOk());
    auto r = (*state)->key_states().Write(
        {{rotation::TestKeyVersion("v1", rotation::KeyState::kCurrent), 0}});
    ASSERT_THAT(r, testing::IsOk());
    written = *r;
  }
  auto state = OpenStateIn(dir);
  ASSERT_THAT(state, testing::IsOk());
  auto listing = (*state)->key_states().List();
  ASSERT_THAT(listing, testing::IsOk());
  ASSERT_EQ(listing->records.size(), 1u);
  EXPECT_EQ(listing->records[0].revision, written);
  EXPECT_EQ(listing->revision, written);
  auto next = (*state)->key_states().Write(
      {{rotation::TestKeyVersion("v1", rotation::KeyState::kPrevious), written}});
  ASSERT_THAT(next, testing::IsOk());
  EXPECT_GT(*next, written);
}

}  // namespace
}  // namespace credbroker::state::sqlite

namespace credbroker::rotation {
INSTANTIATE_TYPED_TEST_SUITE_P(Sqlite, KeyStateStoreConformanceTest,
                               ::testing::Types<state::sqlite::SqliteFactory>);
}  // namespace credbroker::rotation
