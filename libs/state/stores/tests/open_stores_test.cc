#include "credbroker/state/open_stores.h"

#include <gtest/gtest.h>

#include "credbroker/rotation/key_state_store.h"
#include "credbroker/state/sqlite/state.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"

namespace credbroker::state {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

LeaseRecord Lease(const std::string& id) {
  LeaseRecord l;
  l.id = id;
  l.caller = "billing/api";
  l.provider = "lumenfall";
  l.key_version = "v1";
  l.issued_at = absl::FromUnixSeconds(1000);
  l.expires_at = absl::FromUnixSeconds(2000);
  return l;
}

TEST(OpenStoresTest, SqliteKeepsLeasesAcrossAReopen) {
  testing::TempDir dir;
  v1::StateConfig config;
  config.mutable_sqlite()->set_path(dir.Join("state.db"));
  {
    absl::StatusOr<std::unique_ptr<Stores>> stores = OpenStores(config, {});
    ASSERT_THAT(stores, IsOk());
    EXPECT_EQ((*stores)->Describe().front().second, "sqlite");
    EXPECT_TRUE((*stores)->leadership().IsLeader());
    ASSERT_THAT((*stores)->leases().Create(Lease("a")), IsOk());
    // One broker owns the file.
    EXPECT_THAT(OpenStores(config, {}), StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  absl::StatusOr<std::unique_ptr<Stores>> again = OpenStores(config, {});
  ASSERT_THAT(again, IsOk());
  EXPECT_THAT((*again)->leases().Get("a"), IsOk());
}

TEST(OpenStoresTest, MemoryStoresWorkAndForgetEverything) {
  v1::StateConfig config;
  config.mutable_memory();
  absl::StatusOr<std::unique_ptr<Stores>> stores = OpenStores(config, {});
  ASSERT_THAT(stores, IsOk());
  EXPECT_EQ((*stores)->Describe().front().second, "memory");
  EXPECT_TRUE((*stores)->leadership().IsLeader());
  ASSERT_THAT((*stores)->leases().Create(Lease("a")), IsOk());
  EXPECT_THAT((*stores)->leases().Get("a"), IsOk());
  EXPECT_THAT((*stores)->key_states().List(), IsOk());
  absl::StatusOr<std::unique_ptr<Stores>> fresh = OpenStores(config, {});
  ASSERT_THAT(fresh, IsOk());
  EXPECT_THAT((*fresh)->leases().Get("a"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(OpenStoresTest, NoStoreConfiguredIsRefused) {
  EXPECT_THAT(OpenStores(v1::StateConfig{}, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("state")));
}

}  // namespace
}  // namespace credbroker::state
