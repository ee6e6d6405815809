#include "credbroker/leases/lease_table.h"

#include "credbroker/core/ids.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::leases {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

// A store whose writes can be made to fail, to check the table stays unchanged.
class FlakyStore final : public LeaseStore {
 public:
  absl::Status Put(const LeaseRecord& l) override {
    if (fail) return absl::UnavailableError("disk full");
    return inner.Put(l);
  }
  absl::Status Delete(const std::string& id) override {
    if (fail) return absl::UnavailableError("disk full");
    return inner.Delete(id);
  }
  absl::StatusOr<int64_t> DeleteExpired(absl::Time now) override {
    return inner.DeleteExpired(now);
  }
  absl::StatusOr<std::vector<LeaseRecord>> LoadUnexpired(absl::Time now) override {
    return inner.LoadUnexpired(now);
  }
  bool fail = false;
  InMemoryLeaseStore inner;
};

class LeaseTableTest : public ::testing::Test {
 protected:
  LeaseRecord Make(const std::string& caller, absl::Duration ttl) {
    LeaseRecord l;
    l.id = core::NewLeaseId();
    l.caller = caller;
    l.provider = "lumenfall";
    l.key_version = "v1";
    l.key_fingerprint = "abcdefabcdef";
    l.issued_at = clock_.Now();
    l.expires_at = clock_.Now() + ttl;
    return l;
  }
  core::FakeClock clock_;
  FlakyStore store_;
  LeaseTable table_{&store_, &clock_};
};

TEST_F(LeaseTableTest, InsertGetRenewRelease) {
  LeaseRecord l = Make("svc", absl::Minutes(15));
  ASSERT_THAT(table_.Insert(l), IsOk());
  auto got = table_.Get(l.id, "svc");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->provider, "lumenfall");
  clock_.Advance(absl::Minutes(10));
  auto renewed = table_.Renew(l.id, "svc", [&](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
    return clock_.Now() + absl::Minutes(15);
  });
  ASSERT_THAT(renewed, IsOk());
  EXPECT_EQ(renewed->expires_at, clock_.Now() + absl::Minutes(15));
  EXPECT_EQ(renewed->renew_count, 1);
  ASSERT_THAT(table_.Release(l.id, "svc"), IsOk());
  EXPECT_THAT(table_.Get(l.id, "svc"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(table_.size(), 0u);
}

TEST_F(LeaseTableTest, AnotherCallersLeaseLooksUnknown) {
  LeaseRecord l = Make("svc-a", absl::Minutes(15));
  ASSERT_THAT(table_.Insert(l), IsOk());
  auto as_b = table_.Get(l.id, "svc-b");
  EXPECT_THAT(as_b, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(as_b.status()), "LEASE_NOT_FOUND");
  EXPECT_THAT(table_.Release(l.id, "svc-b"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table_.Get(l.id, "svc-a"), IsOk());
}

TEST_F(LeaseTableTest, ExpiredLeaseCannotBeRenewedButCanBeReleased) {
  LeaseRecord l = Make("svc", absl::Minutes(1));
  ASSERT_THAT(table_.Insert(l), IsOk());
  clock_.Advance(absl::Minutes(1));
  auto r = table_.Renew(l.id, "svc", [&](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
    return clock_.Now() + absl::Minutes(1);
  });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(r.status()), "LEASE_EXPIRED");
  EXPECT_THAT(table_.Release(l.id, "svc"), IsOk());
}

TEST_F(LeaseTableTest, RenewErrorFromCallbackLeavesLeaseUnchanged) {
  LeaseRecord l = Make("svc", absl::Minutes(5));
  ASSERT_THAT(table_.Insert(l), IsOk());
  auto r = table_.Renew(l.id, "svc", [](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
    return absl::FailedPreconditionError("key retired");
  });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(table_.Get(l.id, "svc")->renew_count, 0);
}

TEST_F(LeaseTableTest, StoreFailureLeavesTableUnchanged) {
  LeaseRecord kept = Make("svc", absl::Minutes(5));
  ASSERT_THAT(table_.Insert(kept), IsOk());
  store_.fail = true;
  EXPECT_THAT(table_.Insert(Make("svc", absl::Minutes(5))),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_THAT(table_.Release(kept.id, "svc"), StatusIs(absl::StatusCode::kUnavailable));
  auto r = table_.Renew(kept.id, "svc", [&](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
    return clock_.Now() + absl::Hours(1);
  });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(table_.Get(kept.id, "svc")->expires_at, kept.expires_at);
}

TEST_F(LeaseTableTest, SweepRemovesOnlyExpiredFromTableAndStore) {
  LeaseRecord short_lived = Make("svc", absl::Minutes(1));
  LeaseRecord long_lived = Make("svc", absl::Minutes(10));
  ASSERT_THAT(table_.Insert(short_lived), IsOk());
  ASSERT_THAT(table_.Insert(long_lived), IsOk());
  clock_.Advance(absl::Minutes(2));
  std::vector<LeaseRecord> swept = table_.SweepExpired();
  ASSERT_EQ(swept.size(), 1u);
  EXPECT_EQ(swept[0].id, short_lived.id);
  EXPECT_EQ(table_.size(), 1u);
  auto stored = store_.inner.LoadUnexpired(absl::InfinitePast());
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(stored->size(), 1u);
}

TEST_F(LeaseTableTest, LoadFromStoreRestoresUnexpiredLeases) {
  LeaseRecord a = Make("svc", absl::Minutes(10));
  LeaseRecord b = Make("svc", absl::Minutes(1));
  ASSERT_THAT(store_.Put(a), IsOk());
  ASSERT_THAT(store_.Put(b), IsOk());
  clock_.Advance(absl::Minutes(5));
  auto loaded = table_.LoadFromStore();
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->size(), 1u);
  EXPECT_THAT(table_.Get(a.id, "svc"), IsOk());
  EXPECT_THAT(table_.Get(b.id, "svc"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(LeaseTableTest, RevokeIfIgnoresOwner) {
  ASSERT_THAT(table_.Insert(Make("a", absl::Minutes(5))), IsOk());
  ASSERT_THAT(table_.Insert(Make("b", absl::Minutes(5))), IsOk());
  ASSERT_THAT(table_.Insert(Make("b", absl::Minutes(5))), IsOk());
  auto revoked = table_.RevokeIf([](const LeaseRecord& l) { return l.caller == "b"; });
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->size(), 2u);
  EXPECT_EQ(table_.size(), 1u);
  EXPECT_EQ(table_.List([](const LeaseRecord&) { return true; })[0].caller, "a");
}

}  // namespace
}  // namespace credbroker::leases
