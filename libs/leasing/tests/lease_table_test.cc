#include "credbroker/leasing/lease_table.h"

#include "credbroker/core/ids.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/in_memory_lease_store.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::leasing {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

// A store whose writes can be made to fail, to check nothing changes; and whose watch can be held
// back, to stand for another replica's view that has not caught up yet.
class FlakyStore final : public state::LeaseStore {
 public:
  absl::StatusOr<int64_t> Create(const LeaseRecord& l) override {
    if (fail) return absl::UnavailableError("disk full");
    return inner.Create(l);
  }
  absl::StatusOr<int64_t> Update(const LeaseRecord& l, int64_t r) override {
    if (fail) return absl::UnavailableError("disk full");
    ++updates;
    return inner.Update(l, r);
  }
  absl::StatusOr<LeaseRecord> Delete(const state::LeaseDelete& r) override {
    if (fail) return absl::UnavailableError("disk full");
    return inner.Delete(r);
  }
  absl::StatusOr<std::vector<LeaseRecord>> DeleteAll(
      const std::vector<state::LeaseDelete>& r) override {
    if (fail) return absl::UnavailableError("disk full");
    return inner.DeleteAll(r);
  }
  absl::StatusOr<std::vector<LeaseRecord>> DeleteExpired(absl::Time now) override {
    return inner.DeleteExpired(now);
  }
  absl::StatusOr<state::VersionedLease> Get(const std::string& id) override {
    return inner.Get(id);
  }
  absl::StatusOr<state::LeaseListing> List() override { return inner.List(); }
  absl::StatusOr<std::unique_ptr<state::LeaseWatch>> Watch(int64_t after,
                                                           state::LeaseWatchFn fn) override {
    if (deaf) fn = [](const std::vector<state::LeaseChange>&) {};
    return inner.Watch(after, std::move(fn));
  }
  bool fail = false;
  bool deaf = false;
  int updates = 0;
  state::InMemoryLeaseStore inner;
};

class LeaseTableTest : public ::testing::Test {
 protected:
  LeaseTableTest() {
    table_ = *LeaseTable::Create(&store_, &clock_,
                                 {[this](const LeaseRecord&, int d) { active_ += d; }});
  }
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
  int active_ = 0;
  std::unique_ptr<LeaseTable> table_;
};

TEST_F(LeaseTableTest, InsertGetRenewRelease) {
  LeaseRecord l = Make("svc", absl::Minutes(15));
  ASSERT_THAT(table_->Insert(l), IsOk());
  EXPECT_EQ(active_, 1);
  auto got = table_->Get(l.id, "svc");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->provider, "lumenfall");
  clock_.Advance(absl::Minutes(10));
  auto renewed = table_->Renew(l.id, "svc", [&](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
    return clock_.Now() + absl::Minutes(15);
  });
  ASSERT_THAT(renewed, IsOk());
  EXPECT_EQ(renewed->expires_at, clock_.Now() + absl::Minutes(15));
  EXPECT_EQ(renewed->renew_count, 1);
  EXPECT_EQ(store_.inner.Get(l.id)->lease.expires_at, renewed->expires_at);  // in the store
  EXPECT_EQ(active_, 1);
  ASSERT_THAT(table_->Release(l.id, "svc"), IsOk());
  EXPECT_THAT(table_->Get(l.id, "svc"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_.inner.Get(l.id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_EQ(active_, 0);
}

TEST_F(LeaseTableTest, AnotherCallersLeaseLooksUnknown) {
  LeaseRecord l = Make("svc-a", absl::Minutes(15));
  ASSERT_THAT(table_->Insert(l), IsOk());
  auto as_b = table_->Get(l.id, "svc-b");
  EXPECT_THAT(as_b, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(as_b.status()), "LEASE_NOT_FOUND");
  EXPECT_THAT(table_->Release(l.id, "svc-b"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(table_->Get(l.id, "svc-a"), IsOk());
}

TEST_F(LeaseTableTest, ExpiredLeaseCannotBeRenewedButCanBeReleased) {
  LeaseRecord l = Make("svc", absl::Minutes(1));
  ASSERT_THAT(table_->Insert(l), IsOk());
  clock_.Advance(absl::Minutes(1));
  auto r = table_->Renew(l.id, "svc", [&](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
    return clock_.Now() + absl::Minutes(1);
  });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(r.status()), "LEASE_EXPIRED");
  EXPECT_THAT(table_->Release(l.id, "svc"), IsOk());
}

TEST_F(LeaseTableTest, RenewErrorFromCallbackLeavesLeaseUnchanged) {
  LeaseRecord l = Make("svc", absl::Minutes(5));
  ASSERT_THAT(table_->Insert(l), IsOk());
  auto r = table_->Renew(l.id, "svc", [](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
    return absl::FailedPreconditionError("key retired");
  });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(table_->Get(l.id, "svc")->renew_count, 0);
  EXPECT_EQ(store_.updates, 0);
}

TEST_F(LeaseTableTest, StoreFailureChangesNothing) {
  LeaseRecord kept = Make("svc", absl::Minutes(5));
  ASSERT_THAT(table_->Insert(kept), IsOk());
  store_.fail = true;
  EXPECT_THAT(table_->Insert(Make("svc", absl::Minutes(5))),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_THAT(table_->Release(kept.id, "svc"), StatusIs(absl::StatusCode::kUnavailable));
  auto r = table_->Renew(kept.id, "svc", [&](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
    return clock_.Now() + absl::Hours(1);
  });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(table_->Get(kept.id, "svc")->expires_at, kept.expires_at);
  EXPECT_EQ(active_, 1);
}

TEST_F(LeaseTableTest, ARenewThatLosesARaceLooksAgain) {
  LeaseRecord l = Make("svc", absl::Minutes(5));
  ASSERT_THAT(table_->Insert(l), IsOk());
  int calls = 0;
  auto r = table_->Renew(l.id, "svc", [&](const LeaseRecord& seen) -> absl::StatusOr<absl::Time> {
    if (++calls == 1) {
      // Another replica renews the lease between this renew's read and its write.
      LeaseRecord other = seen;
      other.renew_count = 7;
      EXPECT_THAT(store_.inner.Update(other, store_.inner.Get(l.id)->revision), IsOk());
    }
    return clock_.Now() + absl::Minutes(10);
  });
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r->renew_count, 8);  // built on the other replica's renewal, not over it
}

TEST_F(LeaseTableTest, ALeaseNotYetSeenByTheWatchIsReadThroughFromTheStore) {
  FlakyStore store;
  store.deaf = true;  // this replica's watch lags behind
  auto table = LeaseTable::Create(&store, &clock_);
  ASSERT_THAT(table, IsOk());
  LeaseRecord l = Make("svc", absl::Minutes(5));
  ASSERT_THAT(store.inner.Create(l), IsOk());  // acquired on another replica
  EXPECT_EQ((*table)->size(), 0u);
  EXPECT_THAT((*table)->Get(l.id, "svc"), IsOk());
  auto renewed =
      (*table)->Renew(l.id, "svc", [&](const LeaseRecord&) -> absl::StatusOr<absl::Time> {
        return clock_.Now() + absl::Minutes(10);
      });
  ASSERT_THAT(renewed, IsOk());
  EXPECT_THAT((*table)->Release(l.id, "svc"), IsOk());
  EXPECT_THAT(store.inner.Get(l.id), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(LeaseTableTest, SweepRemovesOnlyExpiredLeasesFromStoreAndTable) {
  LeaseRecord short_lived = Make("svc", absl::Minutes(1));
  LeaseRecord long_lived = Make("svc", absl::Minutes(10));
  ASSERT_THAT(table_->Insert(short_lived), IsOk());
  ASSERT_THAT(table_->Insert(long_lived), IsOk());
  clock_.Advance(absl::Minutes(2));
  auto swept = table_->SweepExpired();
  ASSERT_THAT(swept, IsOk());
  ASSERT_EQ(swept->size(), 1u);
  EXPECT_EQ((*swept)[0].id, short_lived.id);
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(store_.inner.List()->leases.size(), 1u);
  EXPECT_EQ(active_, 1);
}

TEST_F(LeaseTableTest, CreateLoadsTheStoresLeases) {
  FlakyStore store;
  LeaseRecord a = Make("svc", absl::Minutes(10));
  ASSERT_THAT(store.inner.Create(a), IsOk());
  int loaded = 0;
  auto table =
      LeaseTable::Create(&store, &clock_, {[&](const LeaseRecord&, int d) { loaded += d; }});
  ASSERT_THAT(table, IsOk());
  EXPECT_EQ(loaded, 1);
  EXPECT_THAT((*table)->Get(a.id, "svc"), IsOk());
}

TEST_F(LeaseTableTest, RevokeIfIgnoresOwner) {
  ASSERT_THAT(table_->Insert(Make("a", absl::Minutes(5))), IsOk());
  ASSERT_THAT(table_->Insert(Make("b", absl::Minutes(5))), IsOk());
  ASSERT_THAT(table_->Insert(Make("b", absl::Minutes(5))), IsOk());
  auto revoked = table_->RevokeIf([](const LeaseRecord& l) { return l.caller == "b"; });
  ASSERT_THAT(revoked, IsOk());
  EXPECT_EQ(revoked->size(), 2u);
  EXPECT_EQ(table_->size(), 1u);
  EXPECT_EQ(table_->List([](const LeaseRecord&) { return true; })[0].caller, "a");
  EXPECT_EQ(active_, 1);
}

}  // namespace
}  // namespace credbroker::leasing
