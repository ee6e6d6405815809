// The behaviour every LeaseStore implementation shares, as a typed test suite. An implementation's
// test instantiates it with a factory:
//   struct MyFactory { std::unique_ptr<LeaseStore> Make(); };  // the fixture keeps it alive
//   INSTANTIATE_TYPED_TEST_SUITE_P(My, LeaseStoreConformanceTest, ::testing::Types<MyFactory>);
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/state/lease_store.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::state {

inline LeaseRecord TestLease(const std::string& id, absl::Time expires = absl::InfiniteFuture(),
                             const std::string& caller = "billing/api") {
  LeaseRecord l;
  l.id = id;
  l.caller = caller;
  l.provider = "lumenfall";
  l.key_version = "v7";
  l.key_fingerprint = "0123456789ab";
  l.purpose = "nightly \"batch\"";
  l.issued_at = absl::FromUnixMicros(1'700'000'000'123'456);
  l.expires_at = expires == absl::InfiniteFuture() ? absl::FromUnixSeconds(1'900'000'000) : expires;
  l.renew_count = 3;
  return l;
}

// Collects what a watch delivers.
class Recorder {
 public:
  LeaseWatchFn Fn() {
    return [this](const std::vector<LeaseChange>& changes) {
      absl::MutexLock lock(&mu_);
      for (const LeaseChange& c : changes) changes_.push_back(c);
    };
  }
  std::vector<LeaseChange> changes() const {
    absl::MutexLock lock(&mu_);
    return changes_;
  }
  std::vector<std::string> Summary() const {
    std::vector<std::string> out;
    for (const LeaseChange& c : changes()) {
      out.push_back(absl::StrCat(c.type == LeaseChange::Type::kPut ? "put " : "delete ", c.lease.id,
                                 "@", c.revision));
    }
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<LeaseChange> changes_ ABSL_GUARDED_BY(mu_);
};

template <typename Factory>
class LeaseStoreConformanceTest : public ::testing::Test {
 protected:
  LeaseStoreConformanceTest() : store_(factory_.Make()) {}
  LeaseStore& store() { return *store_; }

  Factory factory_;
  std::unique_ptr<LeaseStore> store_;
};

TYPED_TEST_SUITE_P(LeaseStoreConformanceTest);

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::ElementsAre;

TYPED_TEST_P(LeaseStoreConformanceTest, CreateGetAndRefuseADuplicate) {
  LeaseStore& s = this->store();
  absl::StatusOr<int64_t> rev = s.Create(TestLease("a"));
  ASSERT_THAT(rev, IsOk());
  EXPECT_GT(*rev, 0);
  absl::StatusOr<VersionedLease> got = s.Get("a");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->revision, *rev);
  EXPECT_EQ(got->lease.purpose, "nightly \"batch\"");
  EXPECT_EQ(got->lease.issued_at, absl::FromUnixMicros(1'700'000'000'123'456));
  EXPECT_EQ(got->lease.renew_count, 3);
  LeaseRecord other = TestLease("a", absl::InfiniteFuture(), "search/api");
  EXPECT_THAT(s.Create(other), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(s.Get("a")->lease.caller, "billing/api");  // unchanged
  EXPECT_THAT(s.Get("nope"), StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST_P(LeaseStoreConformanceTest, UpdateIsACompareAndSwap) {
  LeaseStore& s = this->store();
  const int64_t r1 = *s.Create(TestLease("a"));
  LeaseRecord renewed = TestLease("a");
  renewed.renew_count = 4;
  absl::StatusOr<int64_t> r2 = s.Update(renewed, r1);
  ASSERT_THAT(r2, IsOk());
  EXPECT_GT(*r2, r1);
  renewed.renew_count = 99;
  EXPECT_THAT(s.Update(renewed, r1), StatusIs(absl::StatusCode::kAborted));  // stale revision
  EXPECT_EQ(s.Get("a")->lease.renew_count, 4);
  EXPECT_THAT(s.Update(TestLease("b"), r1), StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST_P(LeaseStoreConformanceTest, DeleteChecksTheRevisionWhenGiven) {
  LeaseStore& s = this->store();
  const int64_t r1 = *s.Create(TestLease("a"));
  *s.Update(TestLease("a"), r1);
  EXPECT_THAT(s.Delete({"a", r1}), StatusIs(absl::StatusCode::kAborted));
  absl::StatusOr<LeaseRecord> gone = s.Delete({"a", 0});
  ASSERT_THAT(gone, IsOk());
  EXPECT_EQ(gone->caller, "billing/api");
  EXPECT_THAT(s.Get("a"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(s.Delete({"a", 0}), StatusIs(absl::StatusCode::kNotFound));
}

// A caller that read the lease at a revision may hand it over (LeaseDelete::as_seen): the outcome
// is the same as without it, and watchers see the deleted record.
TYPED_TEST_P(LeaseStoreConformanceTest, DeleteWithTheLeaseAsSeenChecksTheRevisionToo) {
  LeaseStore& s = this->store();
  const int64_t r1 = *s.Create(TestLease("a"));
  LeaseRecord renewed = TestLease("a");
  renewed.renew_count = 3;
  const int64_t r2 = *s.Update(renewed, r1);
  EXPECT_THAT(s.Delete({"a", r1, TestLease("a")}), StatusIs(absl::StatusCode::kAborted));
  EXPECT_THAT(s.Delete({"x", r2, TestLease("x")}), StatusIs(absl::StatusCode::kNotFound));
  Recorder rec;
  auto watch = s.Watch(r2, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  absl::StatusOr<LeaseRecord> gone = s.Delete({"a", r2, renewed});
  ASSERT_THAT(gone, IsOk());
  EXPECT_EQ(gone->renew_count, 3);
  EXPECT_THAT(s.Get("a"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(rec.Summary(), ElementsAre(absl::StrCat("delete a@", r2 + 1)));
  ASSERT_EQ(rec.changes().size(), 1u);
  EXPECT_EQ(rec.changes()[0].lease.renew_count, 3);
  EXPECT_THAT(s.Delete({"a", r2, renewed}), StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST_P(LeaseStoreConformanceTest, DeleteAllSkipsMissingAndChangedLeases) {
  LeaseStore& s = this->store();
  const int64_t ra = *s.Create(TestLease("a"));
  const int64_t rb = *s.Create(TestLease("b"));
  *s.Create(TestLease("c"));
  absl::StatusOr<std::vector<LeaseRecord>> gone =
      s.DeleteAll({{"a", ra}, {"b", rb - 1}, {"c", 0}, {"zz", 0}});
  ASSERT_THAT(gone, IsOk());
  std::vector<std::string> ids;
  for (const LeaseRecord& l : *gone) ids.push_back(l.id);
  std::sort(ids.begin(), ids.end());
  EXPECT_THAT(ids, ElementsAre("a", "c"));
  EXPECT_THAT(s.Get("b"), IsOk());
}

TYPED_TEST_P(LeaseStoreConformanceTest, DeleteExpiredRemovesOnlyExpiredLeases) {
  LeaseStore& s = this->store();
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  *s.Create(TestLease("old", now - absl::Seconds(1)));
  *s.Create(TestLease("edge", now));
  *s.Create(TestLease("live", now + absl::Seconds(1)));
  absl::StatusOr<std::vector<LeaseRecord>> gone = s.DeleteExpired(now);
  ASSERT_THAT(gone, IsOk());
  EXPECT_EQ(gone->size(), 2u);
  absl::StatusOr<LeaseListing> listing = s.List();
  ASSERT_THAT(listing, IsOk());
  ASSERT_EQ(listing->leases.size(), 1u);
  EXPECT_EQ(listing->leases[0].lease.id, "live");
}

TYPED_TEST_P(LeaseStoreConformanceTest, WatchFromAListingMissesNothingAndRepeatsNothing) {
  LeaseStore& s = this->store();
  const int64_t ra = *s.Create(TestLease("a"));
  absl::StatusOr<LeaseListing> listing = s.List();
  ASSERT_THAT(listing, IsOk());
  EXPECT_EQ(listing->revision, ra);
  Recorder rec;
  auto watch = s.Watch(listing->revision, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  const int64_t rb = *s.Create(TestLease("b"));
  const int64_t ra2 = *s.Update(TestLease("a"), ra);
  const LeaseRecord gone = *s.Delete({"b", 0});
  EXPECT_THAT(rec.Summary(), ElementsAre(absl::StrCat("put b@", rb), absl::StrCat("put a@", ra2),
                                         absl::StrCat("delete b@", ra2 + 1)));
  watch->reset();
  *s.Create(TestLease("c"));
  EXPECT_EQ(rec.changes().size(), 3u);  // a cancelled watch gets nothing more
}

TYPED_TEST_P(LeaseStoreConformanceTest, WatchReplaysRememberedChanges) {
  LeaseStore& s = this->store();
  absl::StatusOr<LeaseListing> start = s.List();
  ASSERT_THAT(start, IsOk());
  const int64_t ra = *s.Create(TestLease("a"));
  const int64_t rb = *s.Create(TestLease("b"));
  Recorder rec;
  auto watch = s.Watch(ra, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  EXPECT_THAT(rec.Summary(), ElementsAre(absl::StrCat("put b@", rb)));
  Recorder all;
  auto watch_all = s.Watch(start->revision, all.Fn());
  ASSERT_THAT(watch_all, IsOk());
  EXPECT_EQ(all.changes().size(), 2u);
}

// Revisions grow with every commit; writes committed together (group commit) may share one, as
// the writes of one etcd Txn do, but one lease's changes always have growing revisions.
TYPED_TEST_P(LeaseStoreConformanceTest, ConcurrentWritersGetOrderedRevisions) {
  LeaseStore& s = this->store();
  Recorder rec;
  auto watch = s.Watch(s.List()->revision, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&s, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = absl::StrCat("t", t, "-", i);
        absl::StatusOr<int64_t> rev = s.Create(TestLease(id));
        EXPECT_THAT(rev, IsOk());
        if (i % 2 == 0) {
          EXPECT_THAT(s.Delete({id, *rev}), IsOk());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const std::vector<LeaseChange> changes = rec.changes();
  ASSERT_EQ(changes.size(), static_cast<size_t>(kThreads * kPerThread * 3 / 2));
  std::map<std::string, int64_t> last;
  for (size_t i = 0; i < changes.size(); ++i) {
    if (i > 0) {
      EXPECT_GE(changes[i].revision, changes[i - 1].revision);
    }
    int64_t& seen = last[changes[i].lease.id];
    EXPECT_GT(changes[i].revision, seen) << changes[i].lease.id;
    seen = changes[i].revision;
  }
  EXPECT_EQ(s.List()->leases.size(), static_cast<size_t>(kThreads * kPerThread / 2));
}

REGISTER_TYPED_TEST_SUITE_P(LeaseStoreConformanceTest, CreateGetAndRefuseADuplicate,
                            UpdateIsACompareAndSwap, DeleteChecksTheRevisionWhenGiven,
                            DeleteWithTheLeaseAsSeenChecksTheRevisionToo,
                            DeleteAllSkipsMissingAndChangedLeases,
                            DeleteExpiredRemovesOnlyExpiredLeases,
                            WatchFromAListingMissesNothingAndRepeatsNothing,
                            WatchReplaysRememberedChanges, ConcurrentWritersGetOrderedRevisions);

}  // namespace credbroker::state
