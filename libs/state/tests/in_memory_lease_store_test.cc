#include "credbroker/state/in_memory_lease_store.h"

#include "lease_store_conformance.h"

namespace credbroker::state {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

struct InMemoryFactory {
  static std::unique_ptr<LeaseStore> Make() { return std::make_unique<InMemoryLeaseStore>(); }
};
INSTANTIATE_TYPED_TEST_SUITE_P(InMemory, LeaseStoreConformanceTest,
                               ::testing::Types<InMemoryFactory>);

TEST(ChangeLogTest, ForgetsOldBatchesAndSaysSo) {
  ChangeLog log(/*compacted_through=*/10, /*remember=*/2);
  for (int64_t rev = 11; rev <= 14; ++rev) {
    log.Publish({LeaseChange{LeaseChange::Type::kPut, rev, TestLease("a")}});
  }
  Recorder rec;
  EXPECT_THAT(log.Watch(11, rec.Fn()), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(log.Watch(9, rec.Fn()), StatusIs(absl::StatusCode::kOutOfRange));
  auto watch = log.Watch(12, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  EXPECT_THAT(rec.Summary(), ::testing::ElementsAre("put a@13", "put a@14"));
}

TEST(ChangeLogTest, ReplaysThePartOfABatchAfterTheStartRevision) {
  ChangeLog log(0);
  log.Publish({LeaseChange{LeaseChange::Type::kPut, 1, TestLease("a")},
               LeaseChange{LeaseChange::Type::kPut, 2, TestLease("b")},
               LeaseChange{LeaseChange::Type::kDelete, 3, TestLease("a")}});
  Recorder rec;
  auto watch = log.Watch(1, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  EXPECT_THAT(rec.Summary(), ::testing::ElementsAre("put b@2", "delete a@3"));
}

}  // namespace
}  // namespace credbroker::state
