// Randomized histories of one provider's rotation and its leases, checked after every step
// against the invariants of verification/rotation.pml. What runs is the broker's own code, wired
// as App wires it: the KeyRing and its state machine over the key-state store, the
// RotationEngine (real HttpProviderProbe and HttpKeyMinter against a fake provider), the
// RotationScheduler deciding what is due at the fake clock's time, the LeaseBroker over a
// LeaseTable fed by the lease store, and auth-failure reports through the shared facts, the
// RevocationFeed and the RevocationDetector. A restart rebuilds all of that from the stores.
//
// Actions: operator stages (some with keys the provider refuses), forced and minted rotations,
// lease acquire / renew / release by four callers with TTLs up to an hour, provider-side
// revocation of the CURRENT key with three callers reporting 401, the scheduler's wake-ups after
// seconds or days, restarts, and a leader change.
//
// Invariants (numbers as in rotation.pml and the README):
//  1. one CURRENT whenever a version is valid;
//  2. a new CURRENT works at the provider (it was probed first);
//  3. no unexpired lease on a version out of service, none outliving its version's retire time,
//     a new lease only on the CURRENT version, and no acknowledged lease lost while its version
//     is in service (across restarts too);
//  4. no PREVIOUS past its hard deadline once the scheduler ran;
//  5. a minted key in service is never revoked by the broker, and no key id is revoked twice;
//  6. a restart or a leader change alone changes no decision.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/leasing/lease_broker.h"
#include "credbroker/leasing/lease_counts.h"
#include "credbroker/leasing/lease_table.h"
#include "credbroker/leasing/revocation_feed.h"
#include "credbroker/rotation/key_refresher.h"
#include "credbroker/rotation/rotation_scheduler.h"
#include "credbroker/state/in_memory_lease_store.h"
#include "credbroker/state/leadership.h"
#include "credbroker/state/shared_facts.h"
#include "gtest/gtest.h"
#include "rotation_engine_fixture.h"

namespace credbroker::rotation {
namespace {

constexpr const char* kCallers[] = {"a", "b", "c", "d"};
constexpr absl::Duration kRefreshInterval = absl::Minutes(5);

class History : public RotationEngineTest {
 public:
  explicit History(uint32_t seed) : rng_(seed) {}
  void TestBody() override {}

  // Empty when the history kept every invariant; else what broke, at which step.
  std::string Run(int steps) {
    SetUp();
    minted_ = rng_() % 2 == 0;
    // Short overlaps bring retire times within reach of leases (at most an hour long).
    const absl::Duration overlaps[] = {absl::Minutes(30), absl::Hours(2), absl::Hours(7 * 24)};
    overlap_ = overlaps[rng_() % 3];
    leadership_.Set(epoch_);
    Boot();
    provider_.Issue(LmnKey("v0"));
    keys_["v1"] = LmnKey("v0");
    Stage("v1", LmnKey("v0"));
    Schedule(absl::Seconds(1));
    next_ = 2;
    const bool trace = std::getenv("CB_HISTORY_TRACE") != nullptr;
    for (int step = 0; step < steps && failure_.empty(); ++step) {
      Act(step);
      Check(step);
      if (trace) {
        std::fprintf(stderr, "step %d action %d: %s leases %s\n", step, last_action_,
                     Describe().c_str(), LeaseIds().c_str());
      }
    }
    Shutdown();
    TearDown();
    return failure_;
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }

  // A process start: the key ring and engine from the key-state store, the lease table from the
  // lease store, revocation detection replayed from the shared facts, a scheduler not yet run.
  void Boot() {
    Shutdown();
    Build(minted_, overlap_);
    counts_ = std::make_unique<leasing::LeaseCounts>();
    absl::StatusOr<std::unique_ptr<leasing::LeaseTable>> table = leasing::LeaseTable::Create(
        &lease_store_, &clock_,
        {[this](const state::LeaseRecord& l, int delta) { counts_->Apply(l, delta); }});
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = *std::move(table);
    broker_ = std::make_unique<leasing::LeaseBroker>(ring_.get(), table_.get(), counts_.get(),
                                                     &metrics_, &clock_, leasing::TtlPolicy{});
    broker_->SetAuthFailureReports(&facts_);
    ring_->SetLeaseView(broker_.get());
    process_detector_ = std::make_unique<RevocationDetector>(3, absl::Minutes(5));
    absl::StatusOr<std::unique_ptr<leasing::RevocationFeed>> feed = leasing::RevocationFeed::Start(
        &facts_, &leadership_, process_detector_.get(),
        [this](const std::string& provider, const std::string& version) {
          engine_->SuspectRevoked(provider, version);
        },
        clock_.Now());
    ASSERT_TRUE(feed.ok()) << feed.status();
    feed_ = *std::move(feed);
    refresher_ = std::make_unique<KeyRefresher>(
        ring_.get(), &source_, std::vector<std::string>{"lumenfall"}, kRefreshInterval);
    scheduler_ = std::make_unique<RotationScheduler>(
        &leadership_, &wakeup_,
        RotationScheduler::Work{
            engine_.get(), ring_.get(), [this] { broker_->SweepExpired(); }, {}},
        RotationSchedulerOptions{}, &clock_);
  }

  void Shutdown() {
    scheduler_.reset();
    refresher_.reset();
    feed_.reset();
    broker_.reset();
    table_.reset();
    counts_.reset();
  }

  // Time passes until the scheduler's next wake-up, which runs what is due then (a rotation pass
  // when something woke it, as a PENDING version or a suspected revocation does).
  // The refresher reads the backend at its interval meanwhile.
  void Schedule(absl::Duration d) {
    clock_.Advance(d);
    if (clock_.Now() >= last_refresh_ + kRefreshInterval) Refresh();
    scheduler_->RunDue(wakeup_.WaitUntil(absl::InfinitePast()));
    // A pass that woke the scheduler again (a quarantine queues a revocation) is followed at
    // once by the next, as on the scheduler's thread.
    for (int again = 0; again < 3 && wakeup_.WaitUntil(absl::InfinitePast()); ++again) {
      scheduler_->RunDue(true);
    }
    scheduled_ = leadership_.IsLeader();
  }
  void Refresh() {
    (void)refresher_->RefreshAll();
    last_refresh_ = clock_.Now();
  }

  static identity::Identity Caller(const std::string& name) {
    return identity::Identity{name, false};
  }

  // A held lease chosen at random, or nullptr.
  const state::LeaseRecord* AnyHeld() {
    if (held_.empty()) return nullptr;
    auto it = held_.begin();
    std::advance(it, Pick(static_cast<int>(held_.size())));
    return &it->second;
  }

  bool InService(const std::string& version) {
    const ProviderKeys keys = Keys();
    const KeyVersion* k = keys.Find(version);
    return k != nullptr && (k->state == KeyState::kCurrent || k->state == KeyState::kPrevious);
  }

  void Act(int step) {
    last_action_ = Pick(12);
    switch (last_action_) {
      case 0:  // a long quiet time (minutes to days) until the scheduler's next wake-up
        Schedule(absl::Minutes(1 + Pick(60 * 24 * 3)));
        break;
      case 1:  // the operator stages a new version (a key the provider refuses now and then)
        if (!minted_ && next_ < 12) {
          const std::string v = absl::StrCat("v", next_++);
          const std::string key = LmnKey(absl::StrCat("s", next_));
          if (Pick(5) != 0) provider_.Issue(key);
          keys_[v] = key;
          source_.Put("lumenfall", v, key);
          Refresh();  // a file source's inotify wakes the refresher at once
        }
        break;
      case 2:  // an operator's forced rotation (minted providers mint at once)
        if (minted_) (void)engine_->RotateNow("lumenfall", /*skip_probe=*/false);
        break;
      case 3:
        Acquire(step, kCallers[Pick(4)]);
        break;
      case 4: {  // a caller renews one of its leases
        const state::LeaseRecord* held = AnyHeld();
        if (held == nullptr) break;
        const state::LeaseRecord lease = *held;
        absl::StatusOr<leasing::LeaseGrant> renewed =
            broker_->Renew(Caller(lease.caller), lease.id, absl::Seconds(30 + Pick(3570)));
        if (renewed.ok()) {
          const ProviderKeys keys = Keys();
          const KeyVersion* k = keys.Find(renewed->lease.key_version);
          if (k == nullptr || !InService(k->version_id)) {
            Fail(step, absl::StrCat("3: renewed on ", lease.key_version, " out of service"));
          } else if (renewed->lease.expires_at > k->retires_at) {
            Fail(step, absl::StrCat("3: renewed past ", lease.key_version, "'s retire time"));
          }
          held_[lease.id] = renewed->lease;
        } else if (absl::IsNotFound(renewed.status())) {
          if (lease.expires_at > clock_.Now() && InService(lease.key_version)) {
            Fail(step,
                 absl::StrCat("3: renew lost lease ", lease.id, ": ", renewed.status().ToString()));
          }
          held_.erase(lease.id);
        } else if (!absl::IsFailedPrecondition(renewed.status())) {  // KEY_RETIRED
          Fail(step, absl::StrCat("renew refused: ", renewed.status().ToString()));
        }
        break;
      }
      case 5: {  // a caller lets a lease go (late releases are not errors)
        const state::LeaseRecord* held = AnyHeld();
        if (held == nullptr) break;
        const state::LeaseRecord lease = *held;
        held_.erase(lease.id);
        const absl::Status released = broker_->Release(Caller(lease.caller), lease.id);
        if (!released.ok() && !absl::IsNotFound(released)) {
          Fail(step, absl::StrCat("release refused: ", released.ToString()));
        }
        break;
      }
      case 6: {  // the provider revokes the CURRENT key; three callers using it report 401
        if (Pick(4) != 0) break;
        const ProviderKeys keys = Keys();
        if (keys.current == nullptr) break;
        const std::string version = keys.current->version_id;
        provider_.RevokeKey(std::string(keys.current->material->reveal()));
        revoked_outside_.insert(version);
        for (const char* caller : {"a", "b", "c"}) {
          const std::string id = Acquire(step, caller);
          if (id.empty()) break;
          (void)broker_->ReportAuthFailure(Caller(caller), id, 401, "");
        }
        break;
      }
      case 7:  // a restart: everything rebuilt from the stores
        if (Pick(3) == 0) {
          const std::string before = absl::StrCat(Describe(), " leases ", LeaseIds());
          Boot();
          Refresh();  // as KeyRefresher::Start does before the broker serves
          const std::string after = absl::StrCat(Describe(), " leases ", LeaseIds());
          if (after != before) {
            Fail(step, absl::StrCat("6: a restart changed the decisions: ", before, " -> ", after));
          }
        }
        break;
      case 8: {  // leadership moves away, a follower's pass decides nothing, a new leader leads
        const std::string before = Describe();
        leadership_.Set(0);
        Schedule(absl::Seconds(1));
        if (Describe() != before) {
          Fail(step,
               absl::StrCat("6: a follower changed the decisions: ", before, " -> ", Describe()));
        }
        leadership_.Set(++epoch_);
        Schedule(absl::Seconds(1));
        break;
      }
      default:  // the scheduler's next wake-up, seconds away
        Schedule(absl::Seconds(1 + Pick(60)));
        break;
    }
  }

  // A new lease for `caller`; its id, or empty when it was refused (then a failure unless no
  // version is CURRENT).
  std::string Acquire(int step, const std::string& caller) {
    const std::string current = Current();
    absl::StatusOr<leasing::LeaseGrant> grant =
        broker_->Acquire(Caller(caller), "lumenfall", absl::Seconds(30 + Pick(3570)), "history");
    if (!grant.ok()) {
      if (!current.empty() || !absl::IsUnavailable(grant.status())) {
        Fail(step, absl::StrCat("acquire refused: ", grant.status().ToString()));
      }
      return "";
    }
    if (grant->lease.key_version != current) {
      Fail(step, absl::StrCat("3: a lease issued on ", grant->lease.key_version, ", CURRENT is ",
                              current));
    }
    held_[grant->lease.id] = grant->lease;
    return grant->lease.id;
  }

  // "v1:CURRENT v2:PREVIOUS " for the live versions.
  std::string Describe() {
    std::string out;
    for (const auto& v : Keys().versions) {
      absl::StrAppend(&out, v->version_id, ":", KeyStateName(v->state), " ");
    }
    return out;
  }

  // The lease table's leases, "id@version" sorted.
  std::string LeaseIds() {
    std::set<std::string> ids;
    for (const state::LeaseRecord& l : table_->List([](const state::LeaseRecord&) { return true; }))
      ids.insert(absl::StrCat(l.id.substr(0, 8), "@", l.key_version));
    return absl::StrJoin(ids, ",");
  }

  void Fail(int step, const std::string& what) {
    if (failure_.empty()) failure_ = absl::StrCat("step ", step, ": ", what, " [", Describe(), "]");
  }

  void Check(int step) {
    const absl::Time now = clock_.Now();
    // 2 (liveness): a minted provider has a valid key after the leader's pass, even after its
    // only key was revoked at the provider and quarantined (the key API always works here).
    if (scheduled_ && minted_ && Current().empty())
      Fail(step, "2: a minted provider without a key");
    scheduled_ = false;
    const ProviderKeys keys = Keys();
    int current = 0;
    int valid = 0;
    for (const auto& v : keys.versions) {
      if (v->state == KeyState::kCurrent) ++current;
      if (v->state == KeyState::kCurrent || v->state == KeyState::kPrevious) ++valid;
      // 4: never PREVIOUS past the hard deadline once the scheduler ran.
      if (v->state == KeyState::kPrevious && now > v->retires_at + absl::Hours(24)) {
        Fail(step, absl::StrCat("4: ", v->version_id, " PREVIOUS past its deadline"));
      }
      // 5: a minted key in service is never revoked by the broker.
      if ((v->state == KeyState::kCurrent || v->state == KeyState::kPrevious) &&
          !revoked_outside_.contains(v->version_id) &&
          !provider_.Live(std::string(v->material->reveal())) &&
          keys_.find(v->version_id) == keys_.end()) {
        Fail(step, absl::StrCat("5: minted ", v->version_id, " revoked while in service"));
      }
    }
    // 1.
    if (current > 1 || (valid > 0 && current != 1)) {
      Fail(step, absl::StrCat("1: ", current, " CURRENT versions"));
    }
    // 2: a new CURRENT (not a quarantine's replacement) works at the provider.
    const std::string cur = keys.current ? keys.current->version_id : "";
    if (cur != last_current_ && !cur.empty() && revoked_outside_.empty() &&
        !provider_.Live(std::string(keys.current->material->reveal()))) {
      Fail(step, absl::StrCat("2: ", cur, " became CURRENT but the provider refuses it"));
    }
    last_current_ = cur;
    // 3: the lease data holds no unexpired lease on a version out of service. (A lease taken
    // before its version was replaced may outlive the overlap; renewals are capped, see Act.)
    for (const state::LeaseRecord& l :
         table_->List([now](const state::LeaseRecord& l) { return !l.Expired(now); })) {
      if (!InService(l.key_version)) {
        Fail(step, absl::StrCat("3: an unexpired lease on ", l.key_version, " out of service"));
      }
    }
    // 3: no lease acknowledged to a caller is lost while it is unexpired and its version serves.
    for (auto it = held_.begin(); it != held_.end();) {
      const state::LeaseRecord& l = it->second;
      if (l.Expired(now)) {
        it = held_.erase(it);
        continue;
      }
      if (InService(l.key_version) && !table_->Get(l.id, l.caller).ok()) {
        Fail(step, absl::StrCat("3: lease ", l.id.substr(0, 8), " on ", l.key_version, " lost"));
      }
      ++it;
    }
    // 5: revoked at the provider at most once.
    if (provider_.MostDeletesOfOneKey() > 1) Fail(step, "5: a minted key revoked twice");
  }

  std::mt19937 rng_;
  int last_action_ = -1;
  bool minted_ = false;
  bool scheduled_ = false;  // the step ended with the leader's scheduler pass
  absl::Duration overlap_;
  int next_ = 2;
  int64_t epoch_ = 1;
  std::map<std::string, std::string> keys_;  // staged versions and their keys
  std::set<std::string> revoked_outside_;
  std::map<std::string, state::LeaseRecord> held_;  // acknowledged leases, by id
  std::string last_current_;
  std::string failure_;
  // What survives a restart (the stores and the election), then one process's objects.
  state::InMemoryLeaseStore lease_store_;
  state::InMemorySharedFacts facts_;
  state::ManualLeadership leadership_;
  std::unique_ptr<leasing::LeaseCounts> counts_;
  std::unique_ptr<leasing::LeaseTable> table_;
  std::unique_ptr<leasing::LeaseBroker> broker_;
  std::unique_ptr<RevocationDetector> process_detector_;
  std::unique_ptr<leasing::RevocationFeed> feed_;
  std::unique_ptr<KeyRefresher> refresher_;
  std::unique_ptr<RotationScheduler> scheduler_;
  absl::Time last_refresh_ = absl::InfinitePast();
};

// CB_HISTORIES (default 1000 in CI; the full run is CB_HISTORIES=10000) histories of
// CB_HISTORY_STEPS (default 80) steps from CB_SEED (default 1). A failure prints its seed;
// CB_SEED=n CB_HISTORIES=1 replays it, and CB_HISTORY_TRACE=1 prints each step's action, the
// versions' states and the leases.
TEST(RotationHistoriesTest, RandomHistoriesKeepTheInvariants) {
  auto env = [](const char* name, int fallback) {
    const char* v = std::getenv(name);
    return v == nullptr ? fallback : std::atoi(v);
  };
  const int first = env("CB_SEED", 1);
  const int count = env("CB_HISTORIES", 1000);
  const int steps = env("CB_HISTORY_STEPS", 80);
  core::SetLogSinkForTest([](absl::string_view) {});
  for (int seed = first; seed < first + count; ++seed) {
    History history(static_cast<uint32_t>(seed));
    const std::string failure = history.Run(steps);
    ASSERT_TRUE(failure.empty()) << "seed " << seed << " (replay: CB_SEED=" << seed
                                 << " CB_HISTORIES=1): " << failure;
  }
  core::SetLogSinkForTest(nullptr);
}

}  // namespace
}  // namespace credbroker::rotation
