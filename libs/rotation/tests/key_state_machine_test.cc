// Every transition of the key state machine and every refusal, as tables: the pure functions get
// a provider's versions, an input and a time, and nothing else.
#include "credbroker/rotation/key_state_machine.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::rotation {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
constexpr absl::Duration kOverlap = absl::Hours(24 * 7);
constexpr absl::Duration kGrace = absl::Hours(24);

using secrets::BackendStage;

struct V {
  std::string id;
  KeyState state;
  absl::Time retires_at = absl::InfiniteFuture();
  BackendStage stage = BackendStage::kNone;
};
constexpr absl::Time kNoRetire = absl::InfiniteFuture();

class Keys {
 public:
  explicit Keys(const std::vector<V>& versions, bool single_key = false) {
    spec_.name = "lumenfall";
    spec_.single_key = single_key;
    spec_.overlap = kOverlap;
    spec_.retire_grace = kGrace;
    keys_.spec = &spec_;
    for (const V& v : versions) {
      auto kv = std::make_shared<KeyVersion>();
      kv->provider = "lumenfall";
      kv->version_id = v.id;
      kv->fingerprint = "fp-" + v.id;
      kv->state = v.state;
      kv->retires_at = v.retires_at;
      kv->backend_stage = v.stage;
      if (v.state == KeyState::kCurrent) keys_.current = kv;
      keys_.versions.push_back(std::move(kv));
    }
  }
  const ProviderKeys& get() const { return keys_; }

 private:
  providers::ProviderSpec spec_;
  ProviderKeys keys_;
};

// "v1:CURRENT v2:PREVIOUS" for the live versions, "*" marking the CURRENT pointer.
std::string Live(const Decision& d) {
  std::vector<std::string> out;
  for (const auto& v : d.live) {
    out.push_back(
        absl::StrCat(v->version_id, ":", KeyStateName(v->state), d.current == v ? "*" : ""));
  }
  return absl::StrJoin(out, " ");
}

std::string Events(const Decision& d) {
  std::vector<std::string> out;
  for (const KeyEvent& e : d.events) {
    out.push_back(absl::StrCat(e.version_id, "->", KeyStateName(e.state)));
  }
  return absl::StrJoin(out, " ");
}

std::string Gone(const Decision& d) {
  std::vector<std::string> out;
  for (const KeyVersion* v : d.gone) out.push_back(v->version_id);
  return absl::StrJoin(out, " ");
}

std::string Removed(const Decision& d) {
  std::vector<std::string> out;
  for (const KeyVersion* v : d.removed) out.push_back(v->version_id);
  return absl::StrJoin(out, " ");
}

struct ListingCase {
  const char* name;
  std::vector<V> before;  // the ring's live versions
  std::vector<V> listed;  // what the backend lists, with the states the ring knows
  bool gated;
  bool first_load;
  bool single_key;
  const char* live;
  const char* events;
  const char* gone;
  const char* removed;
};

TEST(KeyStateMachineTest, Listing) {
  const absl::Time later = kNow + absl::Hours(1);
  const std::vector<ListingCase> cases = {
      {"first load: the newest is current, older ones previous (nothing rotates: listing order)",
       {},
       {{"v1", KeyState::kPending}, {"v2", KeyState::kPending}},
       false,
       true,
       false,
       "v1:PREVIOUS v2:CURRENT*",
       "v1->PREVIOUS v2->CURRENT",
       "",
       ""},
      {"first load of a gated provider trusts what the backend has",
       {},
       {{"v1", KeyState::kPending}},
       true,
       true,
       false,
       "v1:CURRENT*",
       "v1->CURRENT",
       "",
       ""},
      {"gated: a new version waits for its probe",
       {{"v1", KeyState::kCurrent}},
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       true,
       false,
       false,
       "v1:CURRENT* v2:PENDING",
       "v2->PENDING",
       "",
       ""},
      {"not gated: a new version is current at once",
       {{"v1", KeyState::kCurrent}},
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       false,
       false,
       false,
       "v1:PREVIOUS v2:CURRENT*",
       "v2->CURRENT v1->PREVIOUS",
       "",
       ""},
      {"single-key provider: the replaced key retires at once",
       {{"v1", KeyState::kCurrent}},
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       false,
       false,
       true,
       "v2:CURRENT*",
       "v2->CURRENT v1->RETIRED",
       "v1",
       ""},
      {"a version the backend no longer lists is retired (it may come back)",
       {{"v1", KeyState::kPrevious, later}, {"v2", KeyState::kCurrent}},
       {{"v2", KeyState::kCurrent}},
       true,
       false,
       false,
       "v2:CURRENT*",
       "v1->RETIRED",
       "",
       "v1"},
      {"gated, the current version removed: the newest that is not pending takes over",
       {{"v1", KeyState::kPrevious, later}, {"v2", KeyState::kCurrent}, {"v3", KeyState::kPending}},
       {{"v1", KeyState::kPrevious, later}, {"v3", KeyState::kPending}},
       true,
       false,
       false,
       "v1:CURRENT* v3:PENDING",
       "v1->CURRENT v2->RETIRED",
       "",
       "v2"},
      {"a known pending version overtaken by a newer current one is superseded",
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}, {"v3", KeyState::kPending}},
       false,
       false,
       false,
       "v1:PREVIOUS v3:CURRENT*",
       "v3->CURRENT v1->PREVIOUS v2->RETIRED",
       "v2",
       ""},
      {"staged backend, first load: the backend's PENDING is held, its CURRENT serves",
       {},
       {{"v1", KeyState::kPending, kNoRetire, BackendStage::kPrevious},
        {"v2", KeyState::kPending, kNoRetire, BackendStage::kCurrent},
        {"v3", KeyState::kPending, kNoRetire, BackendStage::kPending}},
       true,
       true,
       false,
       "v1:PREVIOUS v2:CURRENT* v3:PENDING",
       "v1->PREVIOUS v2->CURRENT v3->PENDING",
       "",
       ""},
      {"staged backend, no probe: a backend PENDING is still held (only the backend's CURRENT "
       "is promoted by a listing)",
       {{"v1", KeyState::kCurrent, kNoRetire, BackendStage::kCurrent}},
       {{"v1", KeyState::kCurrent, kNoRetire, BackendStage::kCurrent},
        {"v2", KeyState::kPending, kNoRetire, BackendStage::kPending}},
       false,
       false,
       false,
       "v1:CURRENT* v2:PENDING",
       "v2->PENDING",
       "",
       ""},
      {"staged backend, no probe: the backend moved CURRENT, the broker follows",
       {{"v1", KeyState::kCurrent, kNoRetire, BackendStage::kCurrent}},
       {{"v1", KeyState::kCurrent, kNoRetire, BackendStage::kPrevious},
        {"v2", KeyState::kPending, kNoRetire, BackendStage::kCurrent}},
       false,
       false,
       false,
       "v1:PREVIOUS v2:CURRENT*",
       "v2->CURRENT v1->PREVIOUS",
       "",
       ""},
      {"staged backend, gated: a new backend CURRENT waits for its probe",
       {{"v1", KeyState::kCurrent, kNoRetire, BackendStage::kCurrent}},
       {{"v1", KeyState::kCurrent, kNoRetire, BackendStage::kPrevious},
        {"v2", KeyState::kPending, kNoRetire, BackendStage::kCurrent}},
       true,
       false,
       false,
       "v1:CURRENT* v2:PENDING",
       "v2->PENDING",
       "",
       ""},
      {"staged backend, only a held version: no key",
       {},
       {{"v1", KeyState::kPending, kNoRetire, BackendStage::kPending}},
       false,
       true,
       false,
       "v1:PENDING",
       "v1->PENDING",
       "",
       ""},
      {"nothing listed: no key",
       {{"v1", KeyState::kCurrent}},
       {},
       true,
       false,
       false,
       "",
       "v1->RETIRED",
       "",
       "v1"},
  };
  for (const ListingCase& c : cases) {
    SCOPED_TRACE(c.name);
    Keys keys(c.before, c.single_key);
    Keys listed(c.listed);
    Decision d = DecideListing(keys.get(), listed.get().versions, c.gated, c.first_load, kNow);
    EXPECT_EQ(Live(d), c.live);
    EXPECT_EQ(Events(d), c.events);
    EXPECT_EQ(Gone(d), c.gone);
    EXPECT_EQ(Removed(d), c.removed);
  }
}

struct ServableCase {
  const char* name;
  std::vector<secrets::VersionInfo> listed;
  std::vector<std::string> live;  // versions the ring serves now
  const char* expected;           // ids in the order DecideListing will read them
};

secrets::VersionInfo Info(const std::string& id, BackendStage stage = BackendStage::kNone,
                          bool enabled = true, absl::Time not_before = absl::InfinitePast(),
                          absl::Time expires_at = absl::InfiniteFuture()) {
  secrets::VersionInfo info;
  info.version_id = id;
  info.stage = stage;
  info.enabled = enabled;
  info.not_before = not_before;
  info.expires_at = expires_at;
  return info;
}

TEST(KeyStateMachineTest, ServableListing) {
  const std::vector<ServableCase> cases = {
      {"a backend without stages keeps its order", {Info("1"), Info("2"), Info("3")}, {}, "1 2 3"},
      {"disabled versions are left out",
       {Info("1"), Info("2", BackendStage::kNone, false)},
       {},
       "1"},
      {"expired and not-yet-valid versions are left out",
       {Info("1", BackendStage::kNone, true, absl::InfinitePast(), kNow),
        Info("2", BackendStage::kNone, true, kNow + absl::Seconds(1)),
        Info("3", BackendStage::kNone, true, kNow - absl::Seconds(1), kNow + absl::Seconds(1))},
       {},
       "3"},
      {"stages order the listing: previous and deprecated, current, pending",
       {Info("p", BackendStage::kPending), Info("c", BackendStage::kCurrent),
        Info("o", BackendStage::kPrevious), Info("d", BackendStage::kDeprecated)},
       {"d"},
       "o d c p"},
      {"a deprecated version is kept only while the broker serves it",
       {Info("d1", BackendStage::kDeprecated), Info("d2", BackendStage::kDeprecated),
        Info("c", BackendStage::kCurrent)},
       {"d2"},
       "d2 c"},
  };
  for (const ServableCase& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<secrets::VersionInfo> out = ServableListing(
        c.listed,
        [&c](absl::string_view id) {
          return std::find(c.live.begin(), c.live.end(), id) != c.live.end();
        },
        kNow);
    std::vector<std::string> ids;
    for (const auto& v : out) ids.push_back(v.version_id);
    EXPECT_EQ(absl::StrJoin(ids, " "), c.expected);
  }
}

struct PromoteCase {
  const char* name;
  std::vector<V> before;
  bool single_key;
  const char* promote;
  const char* live;
  const char* events;
  const char* gone;
};

TEST(KeyStateMachineTest, Promote) {
  const std::vector<PromoteCase> cases = {
      {"pending becomes current, current becomes previous",
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       false,
       "v2",
       "v1:PREVIOUS v2:CURRENT*",
       "v2->CURRENT v1->PREVIOUS",
       ""},
      {"older pending versions are superseded, newer ones wait",
       {{"v1", KeyState::kCurrent},
        {"v2", KeyState::kPending},
        {"v3", KeyState::kPending},
        {"v4", KeyState::kPending}},
       false,
       "v3",
       "v1:PREVIOUS v3:CURRENT* v4:PENDING",
       "v3->CURRENT v1->PREVIOUS v2->RETIRED",
       "v2"},
      {"a previous version stays previous",
       {{"v0", KeyState::kPrevious, kNow + absl::Hours(1)},
        {"v1", KeyState::kCurrent},
        {"v2", KeyState::kPending}},
       false,
       "v2",
       "v0:PREVIOUS v1:PREVIOUS v2:CURRENT*",
       "v2->CURRENT v1->PREVIOUS",
       ""},
      {"single-key provider: the old key retires at once",
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       true,
       "v2",
       "v2:CURRENT*",
       "v2->CURRENT v1->RETIRED",
       "v1"},
      {"first promotion without a current version",
       {{"v1", KeyState::kPending}},
       false,
       "v1",
       "v1:CURRENT*",
       "v1->CURRENT",
       ""},
  };
  for (const PromoteCase& c : cases) {
    SCOPED_TRACE(c.name);
    Keys keys(c.before, c.single_key);
    absl::StatusOr<Decision> d = DecidePromote(keys.get(), c.promote, "probe accepted", kNow);
    ASSERT_THAT(d, IsOk());
    EXPECT_EQ(Live(*d), c.live);
    EXPECT_EQ(Events(*d), c.events);
    EXPECT_EQ(Gone(*d), c.gone);
    for (const auto& v : d->live) {
      if (v->state == KeyState::kPrevious && v->version_id == "v1") {
        EXPECT_EQ(v->retires_at, kNow + kOverlap);  // the overlap starts now
      }
      if (v->state == KeyState::kCurrent) {
        EXPECT_EQ(v->retires_at, absl::InfiniteFuture());
      }
    }
    EXPECT_TRUE(d->revoke_leases.empty());
  }
}

TEST(KeyStateMachineTest, PromoteRefusesWhatIsNotPending) {
  Keys keys({{"v0", KeyState::kPrevious, kNow + absl::Hours(1)},
             {"v1", KeyState::kCurrent},
             {"v2", KeyState::kPending}});
  for (const char* v : {"v0", "v1"}) {
    absl::StatusOr<Decision> d = DecidePromote(keys.get(), v, "x", kNow);
    EXPECT_THAT(d, StatusIs(absl::StatusCode::kFailedPrecondition)) << v;
    EXPECT_EQ(core::ReasonOf(d.status()), "NOT_PENDING");
  }
  absl::StatusOr<Decision> d = DecidePromote(keys.get(), "v9", "x", kNow);
  EXPECT_THAT(d, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(d.status()), "UNKNOWN_KEY_VERSION");
}

struct QuarantineCase {
  const char* name;
  std::vector<V> before;
  const char* quarantine;
  const char* replacement;
  const char* live;
  const char* events;
  const char* gone;
};

TEST(KeyStateMachineTest, Quarantine) {
  const absl::Time later = kNow + absl::Hours(1);
  const std::vector<QuarantineCase> cases = {
      {"a previous version leaves, the current one stays",
       {{"v1", KeyState::kPrevious, later}, {"v2", KeyState::kCurrent}},
       "v1",
       "",
       "v2:CURRENT*",
       "v1->QUARANTINED",
       "v1"},
      {"the current version: the newest one that is not pending takes over",
       {{"v1", KeyState::kPrevious, later}, {"v2", KeyState::kCurrent}, {"v3", KeyState::kPending}},
       "v2",
       "",
       "v1:CURRENT* v3:PENDING",
       "v2->QUARANTINED v1->CURRENT",
       "v2"},
      {"the named replacement takes over",
       {{"v1", KeyState::kPrevious, later}, {"v2", KeyState::kCurrent}, {"v3", KeyState::kPending}},
       "v2",
       "v3",
       "v1:PREVIOUS v3:CURRENT*",
       "v2->QUARANTINED v3->CURRENT",
       "v2"},
      {"only pending versions left: the newest pending takes over, older pending ones are "
       "superseded (as by a promotion)",
       {{"v2", KeyState::kCurrent}, {"v3", KeyState::kPending}, {"v4", KeyState::kPending}},
       "v2",
       "",
       "v4:CURRENT*",
       "v2->QUARANTINED v4->CURRENT v3->RETIRED",
       "v2 v3"},
      {"a named pending replacement: older pending ones are superseded, previous ones stay",
       {{"v1", KeyState::kPrevious, later},
        {"v2", KeyState::kCurrent},
        {"v3", KeyState::kPending},
        {"v4", KeyState::kPending},
        {"v5", KeyState::kPending}},
       "v2",
       "v4",
       "v1:PREVIOUS v4:CURRENT* v5:PENDING",
       "v2->QUARANTINED v4->CURRENT v3->RETIRED",
       "v2 v3"},
      {"nothing left: no current version",
       {{"v2", KeyState::kCurrent}},
       "v2",
       "",
       "",
       "v2->QUARANTINED",
       "v2"},
      {"a pending version leaves",
       {{"v2", KeyState::kCurrent}, {"v3", KeyState::kPending}},
       "v3",
       "",
       "v2:CURRENT*",
       "v3->QUARANTINED",
       "v3"},
  };
  for (const QuarantineCase& c : cases) {
    SCOPED_TRACE(c.name);
    Keys keys(c.before);
    absl::StatusOr<Decision> d =
        DecideQuarantine(keys.get(), c.quarantine, "compromised", c.replacement, kNow);
    ASSERT_THAT(d, IsOk());
    EXPECT_EQ(Live(*d), c.live);
    EXPECT_EQ(Events(*d), c.events);
    EXPECT_EQ(Gone(*d), c.gone);
    ASSERT_EQ(d->revoke_leases.size(), 1u);
    EXPECT_EQ(d->revoke_leases[0],
              std::make_pair(std::string(c.quarantine), std::string("KEY_QUARANTINED")));
  }
  Keys keys({{"v2", KeyState::kCurrent}});
  EXPECT_THAT(DecideQuarantine(keys.get(), "v9", "x", "", kNow),
              StatusIs(absl::StatusCode::kNotFound));
}

struct RetirementCase {
  const char* name;
  absl::Time retires_at;  // of the PREVIOUS version v1
  int64_t leases;         // holding v1
  bool count_leases;
  const char* live;
  const char* events;
  bool revoked;
  bool waiting;
};

TEST(KeyStateMachineTest, Retirement) {
  const std::vector<RetirementCase> cases = {
      {"overlap not over", kNow + absl::Seconds(1), 0, true, "v1:PREVIOUS v2:CURRENT*", "", false,
       false},
      {"overlap over, no lease", kNow, 0, true, "v2:CURRENT*", "v1->RETIRED", false, false},
      {"overlap over, leases hold it", kNow - absl::Hours(1), 3, true, "v1:PREVIOUS v2:CURRENT*",
       "", false, true},
      {"hard deadline: retired and its leases revoked", kNow - kGrace, 3, true, "v2:CURRENT*",
       "v1->RETIRED", true, false},
      {"leases not tracked: retired when the overlap ends", kNow, 3, false, "v2:CURRENT*",
       "v1->RETIRED", false, false},
  };
  for (const RetirementCase& c : cases) {
    SCOPED_TRACE(c.name);
    Keys keys({{"v1", KeyState::kPrevious, c.retires_at}, {"v2", KeyState::kCurrent}});
    absl::flat_hash_map<std::string, int64_t> leases;
    if (c.leases > 0) leases["v1"] = c.leases;
    Decision d = DecideRetirement(keys.get(), leases, c.count_leases, kNow);
    EXPECT_EQ(Live(d), c.live);
    EXPECT_EQ(Events(d), c.events);
    EXPECT_EQ(d.revoke_leases.size(), c.revoked ? 1u : 0u);
    if (c.revoked) {
      EXPECT_EQ(d.revoke_leases[0].second, "KEY_RETIRED_AT_DEADLINE");
    }
    ASSERT_EQ(d.waiting.size(), c.waiting ? 1u : 0u);
    if (c.waiting) {
      EXPECT_EQ(d.waiting[0].leases, 3);
      EXPECT_EQ(d.waiting[0].deadline, c.retires_at + kGrace);
    }
  }
}

TEST(KeyStateMachineTest, CurrentAndPendingVersionsNeverRetireWithTime) {
  Keys keys({{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}});
  Decision d = DecideRetirement(keys.get(), {}, true, kNow + absl::Hours(24 * 365));
  EXPECT_EQ(Live(d), "v1:CURRENT* v2:PENDING");
  EXPECT_TRUE(d.events.empty());
}

struct FollowCase {
  const char* name;
  std::vector<V> before;  // the follower's live versions
  std::vector<V> stored;  // records the leader wrote (fingerprint fp-<id>, in revision order)
  const char* live;
  const char* events;
  const char* gone;
};

TEST(KeyStateMachineTest, Follow) {
  const absl::Time later = kNow + kOverlap;
  const std::vector<FollowCase> cases = {
      {"a promotion: the new CURRENT first, then what it replaced",
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       {{"v2", KeyState::kCurrent}, {"v1", KeyState::kPrevious, later}},
       "v1:PREVIOUS v2:CURRENT*",
       "v2->CURRENT v1->PREVIOUS",
       ""},
      {"a retirement leaves service",
       {{"v1", KeyState::kPrevious, later}, {"v2", KeyState::kCurrent}},
       {{"v1", KeyState::kRetired}},
       "v2:CURRENT*",
       "v1->RETIRED",
       "v1"},
      {"a quarantine of the current version and its replacement",
       {{"v1", KeyState::kPrevious, later}, {"v2", KeyState::kCurrent}},
       {{"v2", KeyState::kQuarantined}, {"v1", KeyState::kCurrent}},
       "v1:CURRENT*",
       "v1->CURRENT v2->QUARANTINED",
       "v2"},
      {"a revocation at the provider",
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       {{"v2", KeyState::kRevoked}},
       "v1:CURRENT*",
       "v2->REVOKED",
       "v2"},
      {"unchanged records and unknown versions decide nothing",
       {{"v1", KeyState::kCurrent}},
       {{"v1", KeyState::kCurrent}, {"v9", KeyState::kCurrent}},
       "v1:CURRENT*",
       "",
       ""},
      {"a new retire time of a PREVIOUS version is taken",
       {{"v1", KeyState::kPrevious, later}, {"v2", KeyState::kCurrent}},
       {{"v1", KeyState::kPrevious, later + absl::Hours(1)}},
       "v1:PREVIOUS v2:CURRENT*",
       "v1->PREVIOUS",
       ""},
      {"of several records of one version the newest wins",
       {{"v1", KeyState::kCurrent}, {"v2", KeyState::kPending}},
       {{"v2", KeyState::kCurrent}, {"v2", KeyState::kQuarantined}},
       "v1:CURRENT*",
       "v2->QUARANTINED",
       "v2"},
  };
  for (const FollowCase& c : cases) {
    SCOPED_TRACE(c.name);
    Keys keys(c.before);
    std::vector<PersistedKeyVersion> stored;
    for (const V& v : c.stored) {
      stored.push_back({"lumenfall", v.id, "fp-" + v.id, v.state, kNow, v.retires_at});
    }
    Decision d = DecideFollow(keys.get(), stored, kNow);
    EXPECT_EQ(Live(d), c.live);
    EXPECT_EQ(Events(d), c.events);
    EXPECT_EQ(Gone(d), c.gone);
    EXPECT_TRUE(d.revoke_leases.empty());  // the leader revokes; a follower only follows
  }
  // A record of the same version id with other material is another key.
  Keys keys({{"v1", KeyState::kCurrent}});
  Decision d =
      DecideFollow(keys.get(), {{"lumenfall", "v1", "other-fp", KeyState::kRetired, kNow}}, kNow);
  EXPECT_EQ(Live(d), "v1:CURRENT*");
  EXPECT_EQ(Events(d), "");
}

}  // namespace
}  // namespace credbroker::rotation
