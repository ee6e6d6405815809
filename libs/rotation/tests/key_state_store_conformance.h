// The behaviour every KeyStateStore implementation shares, as a typed test suite. An
// implementation's test instantiates it with a factory whose Make() returns a store that the
// factory owns (with what the store needs, e.g. a leader's Leadership):
//   INSTANTIATE_TYPED_TEST_SUITE_P(My, KeyStateStoreConformanceTest, ::testing::Types<MyFactory>);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/rotation/key_state_store.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::rotation {

inline PersistedKeyVersion TestKeyVersion(const std::string& version, KeyState state) {
  const absl::Time t = absl::FromUnixMicros(1'800'000'000'000'001);
  return {"lumenfall", version, "fp-" + version, state, t, absl::InfiniteFuture()};
}

// What a watch delivered: "version:STATE@revision" per record, in delivery order.
class KeyStateRecorder {
 public:
  KeyStateWatchFn Fn() {
    return [this](const std::vector<PersistedKeyVersion>& changed) {
      absl::MutexLock lock(&mu_);
      for (const PersistedKeyVersion& r : changed) {
        seen_.push_back(absl::StrCat(r.version_id, ":", KeyStateName(r.state), "@", r.revision));
      }
    };
  }
  std::vector<std::string> seen() const {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> seen_ ABSL_GUARDED_BY(mu_);
};

template <typename Factory>
class KeyStateStoreConformanceTest : public ::testing::Test {
 protected:
  Factory factory_;
  KeyStateStore* store_ = factory_.Make();
};

TYPED_TEST_SUITE_P(KeyStateStoreConformanceTest);

TYPED_TEST_P(KeyStateStoreConformanceTest, CreateOnlyWhenAbsentThenUpdateByRevision) {
  KeyStateStore& store = *this->store_;
  const PersistedKeyVersion v1 = TestKeyVersion("v1", KeyState::kCurrent);
  absl::StatusOr<int64_t> created = store.Write({{v1, 0}});
  ASSERT_THAT(created, testing::IsOk());
  // Created again from "absent": someone else got there first.
  EXPECT_THAT(store.Write({{v1, 0}}).status(),
              testing::StatusIs(absl::StatusCode::kAborted, ::testing::HasSubstr("changed")));
  PersistedKeyVersion previous = v1;
  previous.state = KeyState::kPrevious;
  previous.retires_at = v1.created_at + absl::Hours(24);
  absl::StatusOr<int64_t> updated = store.Write({{previous, *created}});
  ASSERT_THAT(updated, testing::IsOk());
  EXPECT_GT(*updated, *created);
  // A decision made from the old revision is refused.
  EXPECT_THAT(store.Write({{v1, *created}}).status(),
              testing::StatusIs(absl::StatusCode::kAborted));
  auto listing = store.List();
  ASSERT_THAT(listing, testing::IsOk());
  ASSERT_EQ(listing->records.size(), 1u);
  EXPECT_EQ(listing->records[0].state, KeyState::kPrevious);
  EXPECT_EQ(listing->records[0].retires_at, previous.retires_at);
  EXPECT_EQ(listing->records[0].created_at, v1.created_at);
  EXPECT_EQ(listing->records[0].revision, *updated);
  EXPECT_EQ(listing->revision, *updated);
}

TYPED_TEST_P(KeyStateStoreConformanceTest, ADecisionIsWrittenWhollyOrNotAtAll) {
  KeyStateStore& store = *this->store_;
  absl::StatusOr<int64_t> r1 = store.Write({{TestKeyVersion("v1", KeyState::kCurrent), 0}});
  ASSERT_THAT(r1, testing::IsOk());
  // A promotion: v2 CURRENT, v1 PREVIOUS; but v1 is expected at a revision it no longer has.
  EXPECT_THAT(store
                  .Write({{TestKeyVersion("v2", KeyState::kCurrent), 0},
                          {TestKeyVersion("v1", KeyState::kPrevious), *r1 + 100}})
                  .status(),
              testing::StatusIs(absl::StatusCode::kAborted));
  auto after = store.LoadAll();
  ASSERT_THAT(after, testing::IsOk());
  ASSERT_EQ(after->size(), 1u);  // v2 was not written either
  EXPECT_EQ((*after)[0].state, KeyState::kCurrent);
  // The same decision from the right revision: both records, one revision.
  absl::StatusOr<int64_t> r2 = store.Write({{TestKeyVersion("v2", KeyState::kCurrent), 0},
                                            {TestKeyVersion("v1", KeyState::kPrevious), *r1}});
  ASSERT_THAT(r2, testing::IsOk());
  after = store.LoadAll();
  ASSERT_THAT(after, testing::IsOk());
  ASSERT_EQ(after->size(), 2u);
  for (const PersistedKeyVersion& r : *after) EXPECT_EQ(r.revision, *r2);
}

TYPED_TEST_P(KeyStateStoreConformanceTest, SaveWritesWhateverIsStored) {
  KeyStateStore& store = *this->store_;
  ASSERT_THAT(store.Save(TestKeyVersion("v1", KeyState::kCurrent)), testing::IsOk());
  ASSERT_THAT(store.Save(TestKeyVersion("v1", KeyState::kRevoked)), testing::IsOk());
  auto all = store.LoadAll();
  ASSERT_THAT(all, testing::IsOk());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state, KeyState::kRevoked);
}

TYPED_TEST_P(KeyStateStoreConformanceTest, WatchReplaysFromARevisionThenFollows) {
  KeyStateStore& store = *this->store_;
  absl::StatusOr<int64_t> r1 = store.Write({{TestKeyVersion("v1", KeyState::kCurrent), 0}});
  ASSERT_THAT(r1, testing::IsOk());
  absl::StatusOr<int64_t> r2 = store.Write({{TestKeyVersion("v2", KeyState::kPending), 0}});
  ASSERT_THAT(r2, testing::IsOk());
  KeyStateRecorder from_start;
  KeyStateRecorder from_r1;
  auto w0 = store.Watch(*r1 - 1, from_start.Fn());
  auto w1 = store.Watch(*r1, from_r1.Fn());
  ASSERT_THAT(w0, testing::IsOk());
  ASSERT_THAT(w1, testing::IsOk());
  absl::StatusOr<int64_t> r3 = store.Write({{TestKeyVersion("v2", KeyState::kCurrent), *r2},
                                            {TestKeyVersion("v1", KeyState::kPrevious), *r1}});
  ASSERT_THAT(r3, testing::IsOk());
  const std::string at1 = absl::StrCat("@", *r1);
  const std::string at2 = absl::StrCat("@", *r2);
  const std::string at3 = absl::StrCat("@", *r3);
  EXPECT_THAT(from_start.seen(), ::testing::ElementsAre("v1:CURRENT" + at1, "v2:PENDING" + at2,
                                                        "v2:CURRENT" + at3, "v1:PREVIOUS" + at3));
  EXPECT_THAT(from_r1.seen(),
              ::testing::ElementsAre("v2:PENDING" + at2, "v2:CURRENT" + at3, "v1:PREVIOUS" + at3));
  // A refused write delivers nothing; a dropped watch gets nothing more.
  EXPECT_FALSE(store.Write({{TestKeyVersion("v3", KeyState::kPending), 7777}}).ok());
  w1->reset();
  ASSERT_THAT(store.Write({{TestKeyVersion("v3", KeyState::kPending), 0}}), testing::IsOk());
  EXPECT_EQ(from_r1.seen().size(), 3u);
  EXPECT_EQ(from_start.seen().size(), 5u);
}

TYPED_TEST_P(KeyStateStoreConformanceTest, RemembersMintedKeyIds) {
  KeyStateStore& store = *this->store_;
  EXPECT_THAT(store.MintedKeyId("firemoon", "fp").status(),
              testing::StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(store.SaveMintedKeyId("firemoon", "fp", "key_123"), testing::IsOk());
  absl::StatusOr<std::string> id = store.MintedKeyId("firemoon", "fp");
  ASSERT_THAT(id, testing::IsOk());
  EXPECT_EQ(*id, "key_123");
}

REGISTER_TYPED_TEST_SUITE_P(KeyStateStoreConformanceTest, CreateOnlyWhenAbsentThenUpdateByRevision,
                            ADecisionIsWrittenWhollyOrNotAtAll, SaveWritesWhateverIsStored,
                            WatchReplaysFromARevisionThenFollows, RemembersMintedKeyIds);

}  // namespace credbroker::rotation
