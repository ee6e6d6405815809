#include "credbroker/rotation/key_ring.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/log.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/rotation/key_event_subscribers.h"
#include "credbroker/rotation/key_refresher.h"
#include "credbroker/testing/fake_secret_source.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace credbroker::rotation {
namespace {

using ::credbroker::testing::FakeSecretSource;
using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kLmnV1 = "lmnfl_one.aaaaaaaaaaaaaaaa";
const std::string kLmnV2 = "lmnfl_two.bbbbbbbbbbbbbbbb";
const std::string kLmnV3 = "lmnfl_three.cccccccccccccccc";
const std::string kFlxV1 = "flx_live_" + std::string(40, 'a');
const std::string kFlxV2 = "flx_live_" + std::string(40, 'b');

class KeyRingTest : public ::testing::Test {
 protected:
  KeyRingTest() {
    v1::BrokerConfig config;
    config.add_sources()->set_name("fake");
    config.add_providers()->set_name("lumenfall");
    config.add_providers()->set_name("fluximage");
    catalog_ = *providers::ProviderCatalog::FromConfig(config);
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = std::make_unique<metrics::BrokerMetrics>(registry_);
    ring_ = std::make_unique<KeyRing>(
        &catalog_, &clock_, metrics_.get(),
        absl::flat_hash_map<std::string, absl::Duration>{{"lumenfall", absl::Hours(1)}});
    core::SetLogSinkForTest([this](absl::string_view line) { logs_ += std::string(line) + "\n"; });
    ring_->Subscribe(
        [this](const std::vector<KeyEvent>& ev) {
          events_.insert(events_.end(), ev.begin(), ev.end());
        },
        &sub_);
    counter_ =
        std::make_unique<KeyEventSubscription>(ring_.get(), KeyTransitionCounter(metrics_.get()));
  }
  ~KeyRingTest() override { core::SetLogSinkForTest(nullptr); }

  // A copy, which keeps the versions it shares alive after the ring publishes a newer snapshot.
  ProviderKeys Keys(const std::string& p) { return *ring_->Snapshot()->Find(p); }
  std::string Current(const std::string& p) {
    const ProviderKeys& k = Keys(p);
    return k.current ? k.current->version_id : "";
  }
  std::string Scrape() { return prometheus::TextSerializer().Serialize(registry_->Collect()); }
  std::vector<KeyEvent::Type> EventTypes() {
    std::vector<KeyEvent::Type> t;
    for (const auto& e : events_) t.push_back(e.type);
    return t;
  }

  core::FakeClock clock_;
  // Outlives ring_ (which may watch it).
  InMemoryKeyStateStore shared_store_;
  providers::ProviderCatalog catalog_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<metrics::BrokerMetrics> metrics_;
  std::unique_ptr<KeyRing> ring_;
  std::unique_ptr<KeyEventSubscription> counter_;
  FakeSecretSource source_;
  std::vector<KeyEvent> events_;
  std::string logs_;
  uint64_t sub_ = 0;
};

TEST_F(KeyRingTest, FirstLoadMakesNewestCurrentAndOlderPrevious) {
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  const ProviderKeys& k = Keys("lumenfall");
  ASSERT_EQ(k.versions.size(), 2u);
  EXPECT_EQ(Current("lumenfall"), "v2");
  EXPECT_EQ(k.Find("v1")->state, KeyState::kPrevious);
  EXPECT_EQ(k.Find("v1")->retires_at, clock_.Now() + absl::Hours(24 * 7));
  EXPECT_EQ(k.Find("v2")->fingerprint, core::Fingerprint(kLmnV2));
  EXPECT_TRUE(k.Find("v2")->material->reveal() == kLmnV2);
}

TEST_F(KeyRingTest, NewVersionRotatesAndPreviousRetiresAfterOverlap) {
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  events_.clear();
  clock_.Advance(absl::Hours(24 * 80));
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v2");
  EXPECT_THAT(EventTypes(),
              ::testing::UnorderedElementsAre(KeyEvent::Type::kRotated, KeyEvent::Type::kRetiring));
  const KeyVersion* old = Keys("lumenfall").Find("v1");
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(old->state, KeyState::kPrevious);

  clock_.Advance(absl::Hours(24 * 7) - absl::Seconds(1));
  ring_->Tick();
  EXPECT_NE(Keys("lumenfall").Find("v1"), nullptr);
  clock_.Advance(absl::Seconds(1));
  ring_->Tick();
  EXPECT_EQ(Keys("lumenfall").Find("v1"), nullptr);
  EXPECT_EQ(events_.back().type, KeyEvent::Type::kRetired);
  EXPECT_EQ(events_.back().version_id, "v1");

  // Still listed by the backend, but retired versions do not come back.
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Keys("lumenfall").Find("v1"), nullptr);
  EXPECT_EQ(Keys("lumenfall").versions.size(), 1u);
}

TEST_F(KeyRingTest, InvalidNewVersionIsRejectedAndTheLastGoodKeepsServing) {
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  const std::string bad = "sk-this-is-not-a-lumenfall-key";
  source_.Put("lumenfall", "v2", bad);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());  // counted once, not twice
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Keys("lumenfall").Find("v2"), nullptr);
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_key_versions_rejected_total{provider="lumenfall",reason="format"} 1)"));
  EXPECT_THAT(logs_, HasSubstr(core::Fingerprint(bad)));
  EXPECT_THAT(logs_, Not(HasSubstr(bad)));
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.back().type, KeyEvent::Type::kRejected);
}

TEST_F(KeyRingTest, VersionThatTurnsInvalidKeepsItsLastGoodMaterial) {
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v1", "garbage with spaces");
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ASSERT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Keys("lumenfall").current->fingerprint, core::Fingerprint(kLmnV1));
}

TEST_F(KeyRingTest, SingleKeyProviderCutsOverAtOnce) {
  source_.Put("fluximage", "v1", kFlxV1);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  events_.clear();
  source_.Put("fluximage", "v2", kFlxV2);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  EXPECT_EQ(Current("fluximage"), "v2");
  EXPECT_EQ(Keys("fluximage").versions.size(), 1u);
  EXPECT_THAT(EventTypes(),
              ::testing::UnorderedElementsAre(KeyEvent::Type::kRotated, KeyEvent::Type::kRetired));
}

// Each version and each event about it carries what fluximage's dashboard shows of the key.
TEST_F(KeyRingTest, VersionsAndEventsCarryTheDashboardHint) {
  source_.Put("fluximage", "v1", kFlxV1);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  EXPECT_EQ(Keys("fluximage").current->hint, "flx_live_aaaaa...aaaa");
  events_.clear();
  source_.Put("fluximage", "v2", kFlxV2);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  ASSERT_EQ(events_.size(), 2u);
  for (const KeyEvent& e : events_) {
    EXPECT_EQ(e.hint, e.version_id == "v2" ? "flx_live_bbbbb...bbbb" : "flx_live_aaaaa...aaaa");
  }
}

TEST_F(KeyRingTest, VersionRemovedFromBackendIsRetired) {
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Remove("lumenfall", "v2");
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  // v1 becomes CURRENT again (the operator rolled back).
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Keys("lumenfall").versions.size(), 1u);
}

TEST_F(KeyRingTest, DisabledOrExpiredVersionsAreNeverServed) {
  const absl::Time now = clock_.Now();
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("lumenfall", "v2", kLmnV2);
  // v2 is not valid yet (Azure nbf): v1 serves.
  source_.SetValidity("lumenfall", "v2", true, now + absl::Hours(1), absl::InfiniteFuture());
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Keys("lumenfall").Find("v2"), nullptr);

  // Valid now, with an expiry: it serves, and no lease on it may outlive the expiry.
  clock_.Advance(absl::Hours(1));
  source_.SetValidity("lumenfall", "v2", true, now + absl::Hours(1), now + absl::Hours(5));
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v2");
  EXPECT_EQ(Keys("lumenfall").current->expires_at, now + absl::Hours(5));
  EXPECT_EQ(Keys("lumenfall").current->ValidUntil(), now + absl::Hours(5));

  // Disabled in the backend (GCP DISABLED, Azure enabled=false): out of service at once.
  source_.SetValidity("lumenfall", "v2", false, absl::InfinitePast(), absl::InfiniteFuture());
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Keys("lumenfall").Find("v2"), nullptr);

  // Expired: the same.
  source_.SetValidity("lumenfall", "v1", true, absl::InfinitePast(), clock_.Now());
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "");
}

TEST_F(KeyRingTest, TheBackendsStagesAreKeptOnTheVersions) {
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.SetStage("lumenfall", "v1", secrets::BackendStage::kCurrent);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  std::shared_ptr<const KeyVersion> before = Keys("lumenfall").current;
  EXPECT_EQ(before->backend_stage, secrets::BackendStage::kCurrent);
  EXPECT_THAT(before->backend_labels, ::testing::ElementsAre("CURRENT"));
  // A label moves without the content changing (same etag): the version is not fetched again,
  // but its stage follows.
  const int fetches = source_.fetch_calls();
  source_.Put("lumenfall", "v2", kLmnV2);
  source_.SetStage("lumenfall", "v2", secrets::BackendStage::kPending);
  source_.SetStage("lumenfall", "v1", secrets::BackendStage::kPrevious);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(source_.fetch_calls(), fetches + 1);  // v2 only
  EXPECT_EQ(Current("lumenfall"), "v1");          // v2 is held PENDING by the backend
  EXPECT_EQ(Keys("lumenfall").current->backend_stage, secrets::BackendStage::kPrevious);
  EXPECT_EQ(Keys("lumenfall").Find("v2")->state, KeyState::kPending);
}

TEST_F(KeyRingTest, OutageServesCachedKeysUntilMaxStalenessThenRecovers) {
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.FailListing(absl::UnavailableError("connection refused"));
  clock_.Advance(absl::Minutes(59));
  EXPECT_THAT(ring_->RefreshProvider("lumenfall", source_),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_FALSE(Keys("lumenfall").Stale(clock_.Now()));
  EXPECT_THAT(Keys("lumenfall").last_error, HasSubstr("connection refused"));
  clock_.Advance(absl::Minutes(2));
  EXPECT_THAT(ring_->RefreshProvider("lumenfall", source_),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(Keys("lumenfall").Stale(clock_.Now()));
  EXPECT_THAT(logs_, HasSubstr("past max_staleness"));
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_provider_servable{provider="lumenfall"} 0)"));
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_backend_errors_total{backend="fake",reason="unavailable"} 2)"));

  source_.FailListing(absl::OkStatus());
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_FALSE(Keys("lumenfall").Stale(clock_.Now()));
  // Time alone makes keys stale; Tick keeps the gauge honest between refreshes.
  clock_.Advance(absl::Minutes(61));
  ring_->Tick();
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_provider_servable{provider="lumenfall"} 0)"));
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_TRUE(Keys("lumenfall").last_error.empty());
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_provider_servable{provider="lumenfall"} 1)"));
}

TEST_F(KeyRingTest, UnchangedVersionsAreNotFetchedAgain) {
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(source_.fetch_calls(), 1);
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(source_.fetch_calls(), 2);
}

TEST_F(KeyRingTest, OneUnfetchableVersionDoesNotBlockTheOthers) {
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("lumenfall", "v2", kLmnV2);
  source_.FailFetch("v2", absl::PermissionDeniedError("denied"));
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_THAT(Scrape(), HasSubstr(R"(reason="permission_denied")"));
}

TEST_F(KeyRingTest, NothingLoadedMeansNoCurrent) {
  EXPECT_EQ(Current("lumenfall"), "");
  EXPECT_EQ(Keys("lumenfall").last_error, "not loaded yet");
  EXPECT_THAT(ring_->RefreshProvider("nope", source_), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(KeyRingTest, UnsubscribedListenerGetsNothing) {
  ring_->Unsubscribe(sub_);
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_TRUE(events_.empty());
}

class FakeLeaseView final : public LeaseView {
 public:
  int64_t ActiveLeases(absl::string_view provider, absl::string_view version) const override {
    auto it = held.find(absl::StrCat(provider, "/", version));
    return it == held.end() ? 0 : it->second;
  }
  int64_t RevokeLeasesOn(absl::string_view provider, absl::string_view version,
                         absl::string_view reason) override {
    int64_t n = ActiveLeases(provider, version);
    held.erase(absl::StrCat(provider, "/", version));
    revoked.push_back(absl::StrCat(provider, "/", version, ":", reason));
    return n;
  }
  std::map<std::string, int64_t> held;
  std::vector<std::string> revoked;
};

TEST_F(KeyRingTest, RetirementWaitsForLeasesUntilTheHardDeadline) {
  FakeLeaseView leases;
  ring_->SetLeaseView(&leases);
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  leases.held["lumenfall/v1"] = 2;
  events_.clear();
  clock_.Advance(absl::Hours(24 * 7));  // overlap over, but two leases still hold v1
  ring_->Tick();
  EXPECT_NE(Keys("lumenfall").Find("v1"), nullptr);
  EXPECT_TRUE(events_.empty());
  EXPECT_THAT(logs_, HasSubstr("retirement waits for leases"));
  clock_.Advance(absl::Hours(23));
  ring_->Tick();
  EXPECT_NE(Keys("lumenfall").Find("v1"), nullptr) << "still inside retire_grace (1d)";
  clock_.Advance(absl::Hours(1));
  ring_->Tick();
  EXPECT_EQ(Keys("lumenfall").Find("v1"), nullptr);
  EXPECT_THAT(leases.revoked, ::testing::ElementsAre("lumenfall/v1:KEY_RETIRED_AT_DEADLINE"));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].type, KeyEvent::Type::kRetired);
  EXPECT_EQ(events_[0].reason, "hard deadline: 2 leases revoked");
}

TEST_F(KeyRingTest, DrainedVersionRetiresAsSoonAsTheOverlapEnds) {
  FakeLeaseView leases;
  ring_->SetLeaseView(&leases);
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  leases.held["lumenfall/v1"] = 1;
  clock_.Advance(absl::Hours(24 * 7) + absl::Minutes(1));
  ring_->Tick();
  ASSERT_NE(Keys("lumenfall").Find("v1"), nullptr);
  leases.held.clear();  // the last holder released its lease
  events_.clear();
  ring_->Tick();
  EXPECT_EQ(Keys("lumenfall").Find("v1"), nullptr);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].reason, "overlap ended and no lease holds it");
  EXPECT_TRUE(leases.revoked.empty());
}

TEST_F(KeyRingTest, KeyAgeAndRotationDueAreExported) {
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  clock_.Advance(absl::Hours(24 * 30));
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ring_->Tick();
  std::string m = Scrape();
  EXPECT_THAT(
      m, HasSubstr(R"(credbroker_key_age_seconds{key_version="v1",provider="lumenfall"} 2592000)"));
  EXPECT_THAT(m, HasSubstr(R"(credbroker_key_rotation_due_seconds{provider="lumenfall"} 5184000)"));
  EXPECT_THAT(logs_, Not(HasSubstr("rotation due")));
  clock_.Advance(absl::Hours(24 * 61));  // 91 days: one day overdue (default period 90d)
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ring_->Tick();
  ring_->Tick();
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_key_rotation_due_seconds{provider="lumenfall"} -86400)"));
  EXPECT_THAT(logs_, HasSubstr("key rotation due"));
  EXPECT_EQ(logs_.find("key rotation due"), logs_.rfind("key rotation due")) << "logged once";
  // Staging a new version resets the clock.
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ring_->Tick();
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_key_rotation_due_seconds{provider="lumenfall"} 7776000)"));
}

TEST_F(KeyRingTest, QuarantineOfCurrentPromotesTheNewestOtherAndSticks) {
  InMemoryKeyStateStore store;
  ASSERT_THAT(ring_->UsePersistedState(&store), IsOk());
  FakeLeaseView leases;
  ring_->SetLeaseView(&leases);
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  leases.held["lumenfall/v2"] = 3;
  events_.clear();
  ASSERT_THAT(ring_->Quarantine("lumenfall", "v2", "leaked in a log"), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Keys("lumenfall").Find("v1")->retires_at, absl::InfiniteFuture());
  EXPECT_EQ(Keys("lumenfall").Find("v2"), nullptr);
  EXPECT_THAT(leases.revoked, ::testing::ElementsAre("lumenfall/v2:KEY_QUARANTINED"));
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[0].type, KeyEvent::Type::kQuarantined);
  EXPECT_EQ(events_[1].type, KeyEvent::Type::kRotated);
  EXPECT_THAT(logs_, HasSubstr("key version quarantined"));
  // Still in the backend, but never served again — not after a refresh, not after a restart.
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");
  KeyRing restarted(&catalog_, &clock_, metrics_.get());
  ASSERT_THAT(restarted.UsePersistedState(&store), IsOk());
  ASSERT_THAT(restarted.RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(restarted.Snapshot()->Find("lumenfall")->current->version_id, "v1");
  EXPECT_EQ(restarted.Snapshot()->Find("lumenfall")->Find("v2"), nullptr);
  EXPECT_THAT(ring_->Quarantine("lumenfall", "v9", ""), StatusIs(absl::StatusCode::kNotFound));
  // Quarantining the last key leaves the provider without one.
  ASSERT_THAT(ring_->Quarantine("lumenfall", "v1", "revoked at the provider"), IsOk());
  EXPECT_EQ(Current("lumenfall"), "");
}

TEST_F(KeyRingTest, StateSurvivesARestart) {
  InMemoryKeyStateStore store;
  ASSERT_THAT(ring_->UsePersistedState(&store), IsOk());
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  clock_.Advance(absl::Hours(24 * 60));
  source_.Put("lumenfall", "v2", kLmnV2);
  source_.Put("lumenfall", "v3", kLmnV3);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  clock_.Advance(absl::Hours(24 * 8));
  ring_->Tick();  // v1 and v2 retire (no lease view: at the end of the overlap)
  ASSERT_EQ(Keys("lumenfall").Find("v1"), nullptr);
  clock_.Advance(absl::Hours(1));

  // A new process with the same store sees the same backend listing.
  KeyRing restarted(
      &catalog_, &clock_, metrics_.get(),
      absl::flat_hash_map<std::string, absl::Duration>{{"lumenfall", absl::Hours(1)}});
  ASSERT_THAT(restarted.UsePersistedState(&store), IsOk());
  ASSERT_THAT(restarted.RefreshProvider("lumenfall", source_), IsOk());
  const std::shared_ptr<const KeySnapshot> snap = restarted.Snapshot();
  const ProviderKeys& k = *snap->Find("lumenfall");
  EXPECT_EQ(k.Find("v1"), nullptr) << "retired versions stay retired";
  EXPECT_EQ(k.Find("v2"), nullptr);
  ASSERT_NE(k.current, nullptr);
  EXPECT_EQ(k.current->version_id, "v3");
  EXPECT_LT(k.current->created_at, clock_.Now() - absl::Hours(24 * 8))
      << "first-seen time is kept, so the key's age is right";
}

TEST_F(KeyRingTest, RestartMidOverlapKeepsTheRetireTime) {
  InMemoryKeyStateStore store;
  ASSERT_THAT(ring_->UsePersistedState(&store), IsOk());
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  const absl::Time retires = Keys("lumenfall").Find("v1")->retires_at;
  clock_.Advance(absl::Hours(24 * 3));
  KeyRing restarted(&catalog_, &clock_, metrics_.get());
  ASSERT_THAT(restarted.UsePersistedState(&store), IsOk());
  ASSERT_THAT(restarted.RefreshProvider("lumenfall", source_), IsOk());
  const std::shared_ptr<const KeySnapshot> snap = restarted.Snapshot();
  const KeyVersion* v1 = snap->Find("lumenfall")->Find("v1");
  ASSERT_NE(v1, nullptr);
  EXPECT_EQ(v1->state, KeyState::kPrevious);
  EXPECT_EQ(v1->retires_at, retires) << "no fresh overlap after a restart";
}

TEST_F(KeyRingTest, GatedProviderKeepsNewVersionPendingUntilPromoted) {
  ring_->GatePromotions({"lumenfall"});
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");  // the first load trusts what the source has
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Keys("lumenfall").Find("v2")->state, KeyState::kPending);
  EXPECT_EQ(events_.back().type, KeyEvent::Type::kAdded);
  EXPECT_EQ(events_.back().state, KeyState::kPending);
  // A later refresh changes nothing.
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Keys("lumenfall").Find("v2")->state, KeyState::kPending);
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_key_transitions_total{provider="lumenfall",state="PENDING"} 1)"));

  auto promoted = ring_->Promote("lumenfall", "v2", "probe accepted");
  ASSERT_THAT(promoted, IsOk());
  EXPECT_EQ((*promoted)->state, KeyState::kCurrent);
  EXPECT_EQ(Current("lumenfall"), "v2");
  EXPECT_EQ(Keys("lumenfall").Find("v1")->state, KeyState::kPrevious);
  EXPECT_EQ(Keys("lumenfall").Find("v1")->retires_at, clock_.Now() + absl::Hours(24 * 7));
  EXPECT_THAT(ring_->Promote("lumenfall", "v2", "again"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(ring_->Promote("lumenfall", "v9", "x"), StatusIs(absl::StatusCode::kNotFound));
  // Still promoted after the source is read again.
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v2");
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_key_transitions_total{provider="lumenfall",state="PREVIOUS"} 1)"));
}

TEST_F(KeyRingTest, PromotingTheNewestSupersedesOlderPendingVersions) {
  ring_->GatePromotions({"lumenfall"});
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v2", kLmnV2);
  source_.Put("lumenfall", "v3", kLmnV3);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ASSERT_THAT(ring_->Promote("lumenfall", "v3", "probe accepted"), IsOk());
  EXPECT_EQ(Keys("lumenfall").Find("v2"), nullptr);
  bool superseded = false;
  for (const KeyEvent& e : events_) {
    superseded |= e.version_id == "v2" && e.type == KeyEvent::Type::kRetired &&
                  absl::StrContains(e.reason, "superseded");
  }
  EXPECT_TRUE(superseded);
  // It does not come back on the next refresh.
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Keys("lumenfall").Find("v2"), nullptr);
  EXPECT_EQ(Current("lumenfall"), "v3");
}

TEST_F(KeyRingTest, GatedSingleKeyProviderRetiresTheOldKeyOnPromotion) {
  ring_->GatePromotions({"fluximage"});
  source_.Put("fluximage", "v1", kFlxV1);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  source_.Put("fluximage", "v2", kFlxV2);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  EXPECT_EQ(Current("fluximage"), "v1");
  ASSERT_THAT(ring_->Promote("fluximage", "v2", "probe accepted"), IsOk());
  EXPECT_EQ(Current("fluximage"), "v2");
  EXPECT_EQ(Keys("fluximage").versions.size(), 1u);
}

TEST_F(KeyRingTest, PendingStateSurvivesARestart) {
  InMemoryKeyStateStore store;
  ASSERT_THAT(ring_->UsePersistedState(&store), IsOk());
  ring_->GatePromotions({"lumenfall"});
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());

  KeyRing restarted(&catalog_, &clock_, metrics_.get());
  ASSERT_THAT(restarted.UsePersistedState(&store), IsOk());
  restarted.GatePromotions({"lumenfall"});
  ASSERT_THAT(restarted.RefreshProvider("lumenfall", source_), IsOk());
  const std::shared_ptr<const KeySnapshot> snap = restarted.Snapshot();
  const ProviderKeys& k = *snap->Find("lumenfall");
  EXPECT_EQ(k.current->version_id, "v1");
  EXPECT_EQ(k.Find("v2")->state, KeyState::kPending);
}

// Quarantines are counted by their own subscriber, from the event's cause, whoever quarantined.
TEST_F(KeyRingTest, QuarantineEventsCarryTheirCauseForTheCounter) {
  KeyEventSubscription quarantines(ring_.get(), KeyQuarantineCounter(metrics_.get()));
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("lumenfall", "v2", kLmnV2);
  source_.Put("lumenfall", "v3", kLmnV3);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  events_.clear();
  ASSERT_THAT(ring_->Quarantine("lumenfall", "v3", "leaked"), IsOk());
  ASSERT_THAT(
      ring_->Quarantine("lumenfall", "v2", "probe refused", "", kQuarantinedRevokedAtProvider),
      IsOk());
  std::vector<std::string> causes;
  for (const KeyEvent& e : events_) {
    if (e.type == KeyEvent::Type::kQuarantined) causes.push_back(e.version_id + ":" + e.cause);
  }
  EXPECT_THAT(causes, ::testing::ElementsAre("v3:operator", "v2:revoked_at_provider"));
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_key_quarantines_total{provider="lumenfall",reason="operator"} 1)"));
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_key_quarantines_total{provider="lumenfall",reason="revoked_at_provider"} 1)"));
}

TEST_F(KeyRingTest, QuarantinePrefersTheNamedReplacementThenNonPendingVersions) {
  ring_->GatePromotions({"lumenfall"});
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v3", kLmnV3);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  // v3 is PENDING (unverified): v1, the newest verified version, replaces v2.
  ASSERT_THAT(ring_->Quarantine("lumenfall", "v2", "test"), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Keys("lumenfall").Find("v3")->state, KeyState::kPending);
  ASSERT_THAT(ring_->Quarantine("lumenfall", "v1", "test", "v3"), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v3");
}

TEST_F(KeyRingTest, RevokedAtProviderIsAnnouncedAndPersisted) {
  InMemoryKeyStateStore store;
  ASSERT_THAT(ring_->UsePersistedState(&store), IsOk());
  ring_->RecordRevokedAtProvider("lumenfall", "v1", "aaaaaaaaaaaa", "after retirement");
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.back().type, KeyEvent::Type::kRevoked);
  EXPECT_EQ(events_.back().state, KeyState::kRevoked);
  auto all = store.LoadAll();
  ASSERT_THAT(all, IsOk());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].state, KeyState::kRevoked);
}

// A promotion is one decision: the new CURRENT and the replaced (now PREVIOUS) version are written
// together, in one compare-and-swap, with one revision.
TEST_F(KeyRingTest, APromotionIsWrittenAsOneDecision) {
  InMemoryKeyStateStore store;
  ASSERT_THAT(ring_->UsePersistedState(&store), IsOk());
  ring_->GatePromotions({"lumenfall"});
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ASSERT_EQ(Keys("lumenfall").Find("v2")->state, KeyState::kPending);
  std::vector<std::vector<std::string>> writes;
  auto watch = store.Watch(store.List()->revision, [&](const std::vector<PersistedKeyVersion>& c) {
    std::vector<std::string> w;
    for (const auto& r : c) w.push_back(r.version_id + ":" + std::string(KeyStateName(r.state)));
    writes.push_back(w);
  });
  ASSERT_THAT(watch, IsOk());
  ASSERT_THAT(ring_->Promote("lumenfall", "v2", "probe accepted"), IsOk());
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_THAT(writes[0], ::testing::UnorderedElementsAre("v2:CURRENT", "v1:PREVIOUS"));
}

// Another writer changed a record this ring decided from (with several replicas: a leader that
// did not know it was deposed). The write is refused whole, said loudly, and the ring re-reads the
// revisions so that its next decision is written.
TEST_F(KeyRingTest, ADecisionFromAStaleRevisionIsRefusedAndTheNextOneIsWritten) {
  InMemoryKeyStateStore store;
  ASSERT_THAT(ring_->UsePersistedState(&store), IsOk());
  ring_->GatePromotions({"lumenfall"});
  source_.Put("lumenfall", "v1", kLmnV1);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  // Someone else rewrites v1's record behind the ring's back.
  auto all = store.LoadAll();
  ASSERT_THAT(all, IsOk());
  for (PersistedKeyVersion r : *all) {
    if (r.version_id == "v1") {
      ASSERT_THAT(store.Write({{r, r.revision}}), IsOk());
    }
  }
  ASSERT_THAT(ring_->Promote("lumenfall", "v2", "probe accepted"), IsOk());
  EXPECT_THAT(logs_, HasSubstr("cannot write key version decision"));
  EXPECT_THAT(logs_, HasSubstr("KEY_STATE_CHANGED"));
  auto after = store.LoadAll();
  ASSERT_THAT(after, IsOk());
  for (const PersistedKeyVersion& r : *after) {
    // Nothing of the refused decision was written.
    EXPECT_NE(r.state, r.version_id == "v1" ? KeyState::kPrevious : KeyState::kCurrent);
  }
  // The next decision starts from the re-read revisions and is written.
  ASSERT_THAT(ring_->Quarantine("lumenfall", "v1", "leaked"), IsOk());
  after = store.LoadAll();
  ASSERT_THAT(after, IsOk());
  bool quarantined = false;
  bool promoted = false;  // the refused decision's part that still holds went with it
  for (const PersistedKeyVersion& r : *after) {
    quarantined |= r.version_id == "v1" && r.state == KeyState::kQuarantined;
    promoted |= r.version_id == "v2" && r.state == KeyState::kCurrent;
  }
  EXPECT_TRUE(quarantined);
  EXPECT_TRUE(promoted);
}

// Two replicas over one key-state store: the leader's promotion, retirement and quarantine reach
// the follower through the watch, its watchers hear them, and the follower writes nothing itself.
TEST_F(KeyRingTest, AFollowerAppliesTheLeadersDecisions) {
  InMemoryKeyStateStore& store = shared_store_;
  state::ManualLeadership leader_term;
  state::ManualLeadership follower_term;
  leader_term.Set(1);
  KeyRing follower(&catalog_, &clock_, nullptr);
  std::vector<KeyEvent> heard;
  uint64_t sub = 0;
  follower.Subscribe(
      [&](const std::vector<KeyEvent>& ev) { heard.insert(heard.end(), ev.begin(), ev.end()); },
      &sub);
  for (KeyRing* r : {ring_.get(), &follower}) {
    ASSERT_THAT(r->UsePersistedState(&store), IsOk());
    r->GatePromotions({"lumenfall"});
  }
  ASSERT_THAT(ring_->FollowDecisions(&leader_term), IsOk());
  ASSERT_THAT(follower.FollowDecisions(&follower_term), IsOk());
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  const int64_t before_follower = store.List()->revision;
  ASSERT_THAT(follower.RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(store.List()->revision, before_follower);  // a follower writes nothing
  auto follower_keys = [&] { return *follower.Snapshot()->Find("lumenfall"); };
  ASSERT_EQ(follower_keys().current->version_id, "v2");  // the same first-load rule
  // The leader quarantines v2: v1 takes over on the follower too.
  heard.clear();
  ASSERT_THAT(ring_->Quarantine("lumenfall", "v2", "leaked"), IsOk());
  EXPECT_EQ(follower_keys().current->version_id, "v1");
  EXPECT_EQ(follower_keys().Find("v2"), nullptr);
  std::vector<std::string> types;
  for (const KeyEvent& e : heard) {
    types.push_back(e.version_id + ":" + std::string(KeyStateName(e.state)));
  }
  EXPECT_THAT(types, ::testing::ElementsAre("v1:CURRENT", "v2:QUARANTINED"));
  // A new version, probed and promoted by the leader.
  source_.Put("lumenfall", "v3", kLmnV3);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ASSERT_THAT(follower.RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(follower_keys().Find("v3")->state, KeyState::kPending);
  ASSERT_THAT(ring_->Promote("lumenfall", "v3", "probe accepted"), IsOk());
  EXPECT_EQ(follower_keys().current->version_id, "v3");
  EXPECT_EQ(follower_keys().Find("v1")->state, KeyState::kPrevious);
  EXPECT_EQ(follower_keys().Find("v1")->retires_at, Keys("lumenfall").Find("v1")->retires_at);
  follower.Unsubscribe(sub);
}

TEST_F(KeyRingTest, RefresherLoadsEveryProviderOfItsSource) {
  source_.Put("lumenfall", "v1", kLmnV1);
  source_.Put("fluximage", "v1", kFlxV1);
  KeyRefresher refresher(ring_.get(), &source_, {"lumenfall", "fluximage"}, absl::Hours(1));
  EXPECT_THAT(refresher.RefreshAll(), IsOk());
  EXPECT_EQ(Current("lumenfall"), "v1");
  EXPECT_EQ(Current("fluximage"), "v1");
  refresher.Start();
  refresher.Stop();
}

}  // namespace
}  // namespace credbroker::rotation

namespace credbroker::rotation {
namespace {

// The transition log names real state changes and rejected versions; snapshots, anomalies and
// the state store's freshness are not key states.
TEST(KeyTransitionLoggerTest, LogsTransitionsAndRejectionsOnly) {
  std::string logs;
  core::SetLogSinkForTest([&](absl::string_view line) { absl::StrAppend(&logs, line, "\n"); });
  std::vector<KeyEvent> events;
  for (KeyEvent::Type t :
       {KeyEvent::Type::kRotated, KeyEvent::Type::kRejected, KeyEvent::Type::kSnapshot,
        KeyEvent::Type::kAnomaly, KeyEvent::Type::kStateStale, KeyEvent::Type::kStateFresh}) {
    KeyEvent e;
    e.type = t;
    e.provider = "lumenfall";
    e.version_id = absl::StrCat("v", static_cast<int>(t));
    events.push_back(e);
  }
  KeyTransitionLogger()(events);
  core::SetLogSinkForTest(nullptr);
  EXPECT_THAT(logs, HasSubstr(absl::StrCat("\"v", static_cast<int>(KeyEvent::Type::kRotated))));
  EXPECT_THAT(logs, HasSubstr(absl::StrCat("\"v", static_cast<int>(KeyEvent::Type::kRejected))));
  for (KeyEvent::Type t : {KeyEvent::Type::kSnapshot, KeyEvent::Type::kAnomaly,
                           KeyEvent::Type::kStateStale, KeyEvent::Type::kStateFresh}) {
    EXPECT_THAT(logs, Not(HasSubstr(absl::StrCat("\"v", static_cast<int>(t), "\""))));
  }
}

}  // namespace
}  // namespace credbroker::rotation
