// The rotation engine against a fake provider (probe endpoint and key API behind a fake HTTP
// client, through the real HttpProviderProbe and HttpKeyMinter), a fake secret source and an
// injected clock: whole 90-day lives of a key run in milliseconds.
#include "credbroker/rotation/rotation_engine.h"

#include <atomic>
#include <string>

#include "credbroker/core/clock.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/rotation_scheduler.h"
#include "credbroker/state/leadership.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rotation_engine_fixture.h"

namespace credbroker::rotation {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(RotationEngineTest, NinetyDaysOfStagedRotation) {
  Build(/*minted=*/false);
  const std::string k1 = LmnKey("one"), k2 = LmnKey("two"), k3 = LmnKey("three"),
                    k4 = LmnKey("four"), k5 = LmnKey("five");
  provider_.Issue(k1);
  Day(0);
  Stage("v1", k1);
  Pass();
  EXPECT_EQ(Current(), "v1");
  EXPECT_EQ(engine_->CalibrationOf("lumenfall"), Calibration::kTrusted);
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_probe_calibrated{provider="lumenfall"} 1)"));

  // Day 31: overdue; the operator stages v2, which the provider knows. An old lease holds v1.
  Day(31);
  Pass();
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_key_rotation_due_seconds{provider="lumenfall"} -)"));
  provider_.Issue(k2);
  Stage("v2", k2);
  EXPECT_EQ(StateOf("v2"), KeyState::kPending);
  EXPECT_EQ(Current(), "v1");  // not before the probe
  Pass();
  EXPECT_EQ(Current(), "v2");
  EXPECT_EQ(StateOf("v1"), KeyState::kPrevious);
  leases_.Hold("v1", 2);

  // Undrained retirement: the overlap ends on day 38, the lease still holds v1; the hard
  // deadline (overlap + 1d grace) revokes it.
  Day(38.5);
  Pass();
  EXPECT_EQ(StateOf("v1"), KeyState::kPrevious);
  Day(39.1);
  Pass();
  EXPECT_EQ(Keys().Find("v1"), nullptr);
  EXPECT_EQ(leases_.revoked(), 2);

  // Day 55: v3 is staged before the provider activated it: the probe fails, v2 stays CURRENT.
  Day(55);
  Stage("v3", k3);
  Pass();
  EXPECT_EQ(Current(), "v2");
  EXPECT_EQ(StateOf("v3"), KeyState::kPending);
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_probe_failing{provider="lumenfall"} 1)"));
  EXPECT_THAT(Logs(), HasSubstr("new key version failed its probe: keeping the current key"));
  // Activated at the provider; the engine waits for its retry interval, then promotes.
  provider_.Issue(k3);
  const int probes = provider_.probes();
  clock_.Advance(absl::Minutes(1));
  Pass();
  EXPECT_EQ(provider_.probes(), probes);
  EXPECT_EQ(Current(), "v2");
  clock_.Advance(absl::Minutes(5));
  Pass();
  EXPECT_EQ(Current(), "v3");
  EXPECT_EQ(StateOf("v2"), KeyState::kPrevious);
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_probe_failing{provider="lumenfall"} 0)"));

  // Day 57: the provider revokes v3. 403 and 429 reports never count; three callers' 401s do.
  Day(57);
  provider_.RevokeKey(k3);
  Report("v3", "billing/api", 403);
  Report("v3", "search/api", 429);
  Report("v3", "ads/api", 429);
  Pass();
  EXPECT_EQ(Current(), "v3");
  Report("v3", "billing/api", 401);
  Report("v3", "search/api", 401);
  Pass();
  EXPECT_EQ(Current(), "v3");
  Report("v3", "ads/api", 401);
  Pass();
  // Quarantined; v2 (still in its overlap, and accepted by the provider) serves again.
  EXPECT_EQ(Keys().Find("v3"), nullptr);
  EXPECT_EQ(Current(), "v2");
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_key_quarantines_total{provider="lumenfall",reason="revoked_at_provider"} 1)"));
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_revocation_suspected_total{provider="lumenfall"} 1)"));

  // Day 58: a replacement is staged and promoted; v2 drains and retires as its overlap ends.
  Day(58);
  provider_.Issue(k4);
  Stage("v4", k4);
  Pass();
  EXPECT_EQ(Current(), "v4");
  Day(65.1);
  Pass();
  EXPECT_EQ(Keys().Find("v2"), nullptr);
  EXPECT_THAT(Logs(), HasSubstr("overlap ended and no lease holds it"));

  // Day 89: v4 is due again; v5 follows.
  Day(89);
  Pass();
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_key_rotation_due_seconds{provider="lumenfall"} -)"));
  provider_.Issue(k5);
  Stage("v5", k5);
  Pass();
  Day(90);
  Pass();
  EXPECT_EQ(Current(), "v5");
  EXPECT_EQ(StateOf("v4"), KeyState::kPrevious);

  EXPECT_THAT(history_, ::testing::ElementsAre(
                            "v1:CURRENT", "v2:PENDING", "v2:CURRENT", "v1:PREVIOUS", "v1:RETIRED",
                            "v3:PENDING", "v3:CURRENT", "v2:PREVIOUS", "v3:QUARANTINED",
                            "v2:CURRENT", "v4:PENDING", "v4:CURRENT", "v2:PREVIOUS", "v2:RETIRED",
                            "v5:PENDING", "v5:CURRENT", "v4:PREVIOUS"));
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_key_transitions_total{provider="lumenfall",state="CURRENT"} 6)"));
  // No key material anywhere in the logs.
  for (const std::string& k : {k1, k2, k3, k4, k5}) EXPECT_THAT(Logs(), Not(HasSubstr(k)));
}

TEST_F(RotationEngineTest, NinetyDaysOfMintedRotation) {
  Build(/*minted=*/true);
  const std::string k1 = LmnKey("one");
  provider_.Issue(k1);
  Day(0);
  Stage("v1", k1);
  Pass();
  Day(29);
  Pass();
  EXPECT_EQ(provider_.created(), 0);

  // Day 30: due. The engine mints a key, stores it as a version, probes and promotes it.
  Day(30);
  Pass();
  EXPECT_EQ(provider_.created(), 1);
  EXPECT_EQ(Current(), "w1");
  EXPECT_EQ(StateOf("v1"), KeyState::kPrevious);
  EXPECT_EQ(*store_.MintedKeyId("lumenfall", Keys().current->fingerprint), "key_1");

  // v1 retires after the overlap. The broker did not mint it, so it cannot revoke it.
  Day(37.1);
  Pass();
  EXPECT_EQ(Keys().Find("v1"), nullptr);
  EXPECT_TRUE(provider_.Live(k1));
  EXPECT_THAT(Logs(), HasSubstr("retired key was not minted by the broker"));

  // Day 60: the key API is down once: counted, retried after the retry interval.
  Day(60);
  provider_.FailCreates(1);
  Pass();
  EXPECT_EQ(Current(), "w1");
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_key_mint_failures_total{operation="create",provider="lumenfall"} 1)"));
  clock_.Advance(absl::Minutes(6));
  Pass();
  EXPECT_EQ(Current(), "w2");
  const std::string w1_fingerprint = Keys().Find("w1")->fingerprint;

  // w1 retires on day 67 and, minted by the broker, is revoked at the provider.
  Day(67.2);
  Pass();
  EXPECT_EQ(Keys().Find("w1"), nullptr);
  EXPECT_EQ(provider_.revocations(), 1);
  EXPECT_EQ(history_.back(), "w1:REVOKED");
  auto persisted = store_.LoadAll();
  ASSERT_THAT(persisted, IsOk());
  bool revoked = false;
  for (const PersistedKeyVersion& r : *persisted) {
    revoked |= r.fingerprint == w1_fingerprint && r.state == KeyState::kRevoked;
  }
  EXPECT_TRUE(revoked);

  Day(90.1);
  Pass();
  EXPECT_EQ(Current(), "w3");
  // Live at the provider: the unminted original, the PREVIOUS w2 and the CURRENT w3.
  EXPECT_EQ(provider_.LiveCount(), 3u);
  EXPECT_THAT(Logs(), Not(HasSubstr(Keys().current->material->reveal())));
}

TEST_F(RotationEngineTest, RevocationOfARetiredMintedKeySurvivesARestart) {
  Build(/*minted=*/true);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  Pass();
  ASSERT_THAT(engine_->RotateNow("lumenfall", false), IsOk());  // w1
  ASSERT_THAT(engine_->RotateNow("lumenfall", false), IsOk());  // w2; w1 PREVIOUS
  clock_.Advance(absl::Hours(24 * 7 + 1));
  ring_->Tick();    // w1 retires; its revocation is queued in this engine only...
  engine_.reset();  // ...which stops before running it.
  EXPECT_EQ(provider_.revocations(), 0);

  // A restarted engine (same key ring and keys.db) resumes it; a second restart does not repeat
  // it: the key is REVOKED now.
  for (int restart = 0; restart < 2; ++restart) {
    engine_ = MakeEngine(RotationEngineOptions{});
    engine_->ResumeRevocations();
    engine_->RunOnce();
    EXPECT_EQ(provider_.revocations(), 1);
  }
}

// firemoon documents how to create keys but not how to delete them: a retired minted key becomes
// an operator task (listed, counted, logged once) until an operator confirms the deletion.
TEST_F(RotationEngineTest, RetiredMintedKeysWithoutADeleteApiAreLeftToTheOperatorVisibly) {
  no_probe_ = true;  // as firemoon: its only documented call generates an image
  Build(/*minted=*/true, absl::Hours(7 * 24), /*with_revoke=*/false);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  Pass();
  // Without a probe the minted version is CURRENT as soon as it is stored: RotateNow says so.
  auto w1_current = engine_->RotateNow("lumenfall", false);
  ASSERT_THAT(w1_current, IsOk());
  EXPECT_EQ((*w1_current)->version_id, "w1");
  ASSERT_THAT(engine_->RotateNow("lumenfall", false), IsOk());  // w2; w1 PREVIOUS
  EXPECT_EQ(Current(), "w2");
  const std::string w1 = Keys().Find("w1")->fingerprint;
  auto none = engine_->KeysToDelete("");
  ASSERT_THAT(none, IsOk());
  EXPECT_TRUE(none->empty());
  clock_.Advance(absl::Hours(24 * 7 + 1));
  Pass();  // w1 retires; nothing can delete it at the provider
  EXPECT_EQ(provider_.revocations(), 0);
  auto keys = engine_->KeysToDelete("lumenfall");
  ASSERT_THAT(keys, IsOk());
  ASSERT_EQ(keys->size(), 1u);  // v1 was not minted by the broker: not the broker's to list
  EXPECT_EQ((*keys)[0].version, "w1");
  EXPECT_EQ((*keys)[0].fingerprint, w1);
  EXPECT_EQ((*keys)[0].provider_key, "key_1");
  EXPECT_EQ((*keys)[0].state, KeyState::kRetired);
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_provider_keys_to_delete{provider="lumenfall"} 1)"));
  Pass();
  const std::string logs = Logs();
  const std::string line = "a minted key left service and the provider has no API to delete it";
  ASSERT_THAT(logs, HasSubstr(line));
  EXPECT_EQ(logs.find(line), logs.rfind(line)) << "logged once per key";

  // A restarted engine still lists it (from the persisted key states).
  engine_ = MakeEngine(RotationEngineOptions{});
  keys = engine_->KeysToDelete("");
  ASSERT_THAT(keys, IsOk());
  EXPECT_EQ(keys->size(), 1u);

  auto wrong = engine_->ConfirmDeleted("lumenfall", "w2", "ops");
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(wrong), "NOT_TO_DELETE");
  ASSERT_THAT(engine_->ConfirmDeleted("lumenfall", "w1", "ops"), IsOk());
  EXPECT_EQ(history_.back(), "w1:REVOKED");
  keys = engine_->KeysToDelete("");
  ASSERT_THAT(keys, IsOk());
  EXPECT_TRUE(keys->empty());
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_provider_keys_to_delete{provider="lumenfall"} 0)"));
}

// Found by the randomized histories: leadership lost and regained while a quarantined minted
// key's revocation was still queued must not queue (and send) it a second time.
TEST_F(RotationEngineTest, RegainedLeadershipRevokesAQueuedKeyOnce) {
  Build(/*minted=*/true);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  Pass();
  ASSERT_THAT(engine_->RotateNow("lumenfall", false), IsOk());
  const std::string minted(Keys().current->material->reveal());
  provider_.RevokeKey(minted);
  for (const char* caller : {"a", "b", "c"}) Report("w1", caller, 401);
  engine_->RunOnce();  // quarantines w1; its revocation is queued for the next pass
  ASSERT_THAT(history_, ::testing::Contains("w1:QUARANTINED"));
  ASSERT_EQ(provider_.MostDeletesOfOneKey(), 0);
  engine_->ResumeRevocations();  // leadership regained: w1 is QUARANTINED and not yet REVOKED
  engine_->RunOnce();
  engine_->RunOnce();
  EXPECT_EQ(provider_.MostDeletesOfOneKey(), 1);
  EXPECT_EQ(provider_.revocations(), 1);
}

// Found by the soak: the provider revoked the only valid key of a minted provider. Once it is
// quarantined, the next pass mints a replacement instead of leaving callers without a key until
// the rotation period ends.
TEST_F(RotationEngineTest, MintedProviderReplacesAQuarantinedOnlyKeyAtOnce) {
  Build(/*minted=*/true);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  Pass();
  provider_.RevokeKey(LmnKey("one"));
  for (const char* caller : {"a", "b", "c"}) Report("v1", caller, 401);
  engine_->RunOnce();  // confirms and quarantines v1: no version left to serve
  ASSERT_THAT(history_, ::testing::Contains("v1:QUARANTINED"));
  EXPECT_EQ(Current(), "");
  Pass();
  EXPECT_EQ(Current(), "w1");
  EXPECT_EQ(provider_.created(), 1);
  EXPECT_TRUE(provider_.Live(std::string(Keys().current->material->reveal())));
  EXPECT_THAT(Logs(), HasSubstr("no valid key: minting a replacement now"));
}

TEST_F(RotationEngineTest, LyingProbeIsNotTrustedUntilAnOperatorForces) {
  Build(/*minted=*/false);
  provider_.SetLying(true);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  Pass();
  EXPECT_EQ(engine_->CalibrationOf("lumenfall"), Calibration::kLying);
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_probe_calibrated{provider="lumenfall"} 0)"));
  Stage("v2", LmnKey("garbage"));  // the provider would answer 200 even for this
  Pass();
  EXPECT_EQ(Current(), "v1");
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_probe_failing{provider="lumenfall"} 1)"));
  EXPECT_THAT(engine_->RotateNow("lumenfall", /*skip_probe=*/false),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  auto forced = engine_->RotateNow("lumenfall", /*skip_probe=*/true);
  ASSERT_THAT(forced, IsOk());
  EXPECT_EQ((*forced)->version_id, "v2");
  EXPECT_EQ(Current(), "v2");
}

TEST_F(RotationEngineTest, UnreachableProviderKeepsTheOldKeyAndRetries) {
  Build(/*minted=*/false);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  Pass();
  provider_.SetDown(true);
  provider_.Issue(LmnKey("two"));
  Stage("v2", LmnKey("two"));
  Pass();
  EXPECT_EQ(Current(), "v1");
  // A suspected revocation is not confirmed by a provider that does not answer.
  engine_->SuspectRevoked("lumenfall", "v1");
  Pass();
  EXPECT_EQ(Current(), "v1");
  EXPECT_THAT(Logs(), HasSubstr("the probe got no conclusive answer"));
  provider_.SetDown(false);
  clock_.Advance(absl::Minutes(5));
  Pass();
  EXPECT_EQ(Current(), "v2");
}

// fluximage keeps one key per account: a new key means the old one is already dead.
TEST_F(RotationEngineTest, SingleKeyProviderCutsOverUnlessTheProviderRefusesTheNewKey) {
  v1::BrokerConfig config;
  config.add_sources()->set_name("fake");
  v1::ProviderConfig* p = config.add_providers();
  p->set_name("fluximage");
  p->set_base_url("https://fluximage.test/api");
  catalog_ = *providers::ProviderCatalog::FromConfig(config);
  counter_.reset();
  engine_.reset();
  ring_ = std::make_unique<KeyRing>(&catalog_, &clock_, &metrics_);
  engine_ = std::make_unique<RotationEngine>(
      ring_.get(), &catalog_,
      absl::flat_hash_map<std::string, secrets::SecretSource*>{{"fluximage", &source_}}, &probe_,
      nullptr, nullptr, &clock_, &metrics_, RotationEngineOptions{});
  ring_->GatePromotions(engine_->GatedProviders());
  const std::string k1 = "flx_live_" + std::string(40, '1');
  const std::string k2 = "flx_live_" + std::string(40, '2');
  const std::string k3 = "flx_live_" + std::string(40, '3');
  auto current = [&] { return ring_->Snapshot()->Find("fluximage")->current->version_id; };
  provider_.Issue(k1);
  source_.Put("fluximage", "v1", k1);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  engine_->RunOnce();
  // The provider is down: the new key is promoted anyway, and the old one retired at once.
  provider_.SetDown(true);
  provider_.RevokeKey(k1);
  provider_.Issue(k2);
  source_.Put("fluximage", "v2", k2);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  engine_->RunOnce();
  EXPECT_EQ(current(), "v2");
  EXPECT_EQ(ring_->Snapshot()->Find("fluximage")->versions.size(), 1u);
  // A key the provider refuses is not promoted.
  provider_.SetDown(false);
  source_.Put("fluximage", "v3", k3);
  ASSERT_THAT(ring_->RefreshProvider("fluximage", source_), IsOk());
  clock_.Advance(absl::Minutes(10));
  engine_->RunOnce();
  EXPECT_EQ(current(), "v2");
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_probe_failing{provider="fluximage"} 1)"));
}

TEST_F(RotationEngineTest, ForcedRotation) {
  Build(/*minted=*/false);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  Pass();
  EXPECT_THAT(engine_->RotateNow("lumenfall", false),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(engine_->RotateNow("nope", false), StatusIs(absl::StatusCode::kNotFound));
  // Staged but refused by the provider: PROBE_FAILED, the old key stays.
  source_.Put("lumenfall", "v2", LmnKey("two"));
  auto refused = engine_->RotateNow("lumenfall", false);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(core::ReasonOf(refused.status()), "PROBE_FAILED");
  EXPECT_EQ(Current(), "v1");
  // A forced rotation does not wait for the retry interval.
  provider_.Issue(LmnKey("two"));
  auto rotated = engine_->RotateNow("lumenfall", false);
  ASSERT_THAT(rotated, IsOk());
  EXPECT_EQ((*rotated)->version_id, "v2");
}

TEST_F(RotationEngineTest, ForcedMintedRotationAndBrokenKeyApi) {
  Build(/*minted=*/true);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  Pass();
  auto rotated = engine_->RotateNow("lumenfall", false);
  ASSERT_THAT(rotated, IsOk());
  EXPECT_EQ((*rotated)->version_id, "w1");
  // The source refuses the write: the new key is revoked at the provider again, nothing leaks.
  source_.FailWrites(absl::PermissionDeniedError("read-only"));
  EXPECT_THAT(engine_->RotateNow("lumenfall", false),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(provider_.created(), 2);
  EXPECT_EQ(provider_.revocations(), 1);
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_key_mint_failures_total{operation="store",provider="lumenfall"} 1)"));
  EXPECT_EQ(Current(), "w1");
}

TEST_F(RotationEngineTest, SchedulerPromotesAStagedVersionWithoutWaitingForTheInterval) {
  Build(/*minted=*/false);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  state::SingleNodeLeadership leadership(1);
  RotationSchedulerOptions options;
  options.check_interval = absl::Hours(1);  // only the wake-up can explain a prompt promotion
  RotationScheduler scheduler(&leadership, &wakeup_, {engine_.get(), ring_.get(), {}, {}}, options,
                              core::SystemClock::Get());
  scheduler.Start();
  provider_.Issue(LmnKey("two"));
  Stage("v2", LmnKey("two"));  // the PENDING event wakes the scheduler
  for (int i = 0; i < 1000 && Current() != "v2"; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(Current(), "v2");
  scheduler.Stop();
}

TEST_F(RotationEngineTest, OnlyTheLeaderRotatesAndANewLeaderStartsAtOnce) {
  Build(/*minted=*/false);
  provider_.Issue(LmnKey("one"));
  Stage("v1", LmnKey("one"));
  state::ManualLeadership leadership;  // a follower to begin with
  RotationSchedulerOptions options;
  options.check_interval = absl::Hours(1);
  std::atomic<int> sweeps{0};
  std::atomic<int> replica_ticks{0};
  options.sweep_interval = absl::Milliseconds(10);
  RotationScheduler scheduler(
      &leadership, &wakeup_,
      {engine_.get(), ring_.get(), [&] { ++sweeps; }, [&] { ++replica_ticks; }}, options,
      core::SystemClock::Get());
  scheduler.Start();
  provider_.Issue(LmnKey("two"));
  Stage("v2", LmnKey("two"));
  // Every replica's work runs; the leader's does not: v2 stays PENDING and nothing is swept.
  for (int i = 0; i < 1000 && replica_ticks < 3; ++i) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_GE(replica_ticks.load(), 3);
  EXPECT_EQ(Current(), "v1");
  EXPECT_EQ(sweeps.load(), 0);
  leadership.Set(1);  // gained: the first pass runs at once, not after check_interval
  for (int i = 0; i < 1000 && Current() != "v2"; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(Current(), "v2");
  for (int i = 0; i < 1000 && sweeps == 0; ++i) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_GT(sweeps.load(), 0);
  scheduler.Stop();
}

}  // namespace
// Puts a version with the backend's stage, then (unless told not to) refreshes the ring.
class StagedBackendTest : public RotationEngineTest {
 protected:
  void StageAs(const std::string& version, const std::string& key, secrets::BackendStage stage,
               bool refresh = true) {
    source_.Put("lumenfall", version, key);
    source_.SetStage("lumenfall", version, stage);
    if (refresh) {
      ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
    }
  }
};

// A backend that stages versions itself (AWS): the broker probes the backend's PENDING version,
// moves the backend's current marker with the promotion, and promotes nothing while the marker
// cannot move (a gauge says so, and it is retried).
TEST_F(StagedBackendTest, PromotionMovesTheBackendsCurrentMarkerOrWaits) {
  Build(/*minted=*/false);
  source_.SetStaged(true);
  const std::string k1 = LmnKey("one");
  const std::string k2 = LmnKey("two");
  const std::string k3 = LmnKey("six");
  provider_.Issue(k1);
  provider_.Issue(k2);
  provider_.Issue(k3);
  Day(0);
  StageAs("v1", k1, secrets::BackendStage::kCurrent, /*refresh=*/false);
  StageAs("v2", k2, secrets::BackendStage::kPending);
  EXPECT_EQ(Current(), "v1");
  EXPECT_EQ(StateOf("v2"), KeyState::kPending);

  Pass();
  EXPECT_EQ(Current(), "v2");
  EXPECT_EQ(source_.promote_calls(), 1);
  auto listed = source_.ListVersions("lumenfall");
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].stage, secrets::BackendStage::kPrevious);
  EXPECT_EQ((*listed)[1].stage, secrets::BackendStage::kCurrent);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Keys().current->backend_stage, secrets::BackendStage::kCurrent);

  // The next version passes its probe, but the backend refuses to move its marker.
  StageAs("v3", k3, secrets::BackendStage::kPending);
  source_.FailPromote(absl::PermissionDeniedError("not authorized: UpdateSecretVersionStage"));
  Pass();
  EXPECT_EQ(Current(), "v2");
  EXPECT_EQ(StateOf("v3"), KeyState::kPending);
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_backend_promote_failing{provider="lumenfall"} 1)"));
  EXPECT_THAT(Logs(), HasSubstr("cannot move the backend's current marker"));
  // Not again before the retry interval.
  const int calls = source_.promote_calls();
  Pass();
  EXPECT_EQ(source_.promote_calls(), calls);

  source_.FailPromote(absl::OkStatus());
  clock_.Advance(absl::Minutes(6));
  Pass();
  EXPECT_EQ(Current(), "v3");
  EXPECT_EQ(StateOf("v2"), KeyState::kPrevious);
  EXPECT_THAT(Scrape(), HasSubstr(R"(credbroker_backend_promote_failing{provider="lumenfall"} 0)"));
}

// A version the backend marks current is probed before any newer one, and a listing alone never
// makes it CURRENT on a gated provider.
TEST_F(StagedBackendTest, TheBackendsCurrentVersionIsProbedFirst) {
  Build(/*minted=*/false);
  source_.SetStaged(true);
  const std::string k1 = LmnKey("one");
  const std::string k2 = LmnKey("two");
  const std::string k3 = LmnKey("six");
  provider_.Issue(k1);
  provider_.Issue(k2);
  Day(0);
  StageAs("v1", k1, secrets::BackendStage::kCurrent);
  ASSERT_EQ(Current(), "v1");
  // An operator put v2 as AWSCURRENT (the CLI's default) and v3 as AWSPENDING; v3 is invalid.
  source_.Put("lumenfall", "v2", k2);
  source_.Put("lumenfall", "v3", k3);
  source_.SetStage("lumenfall", "v1", secrets::BackendStage::kPrevious);
  source_.SetStage("lumenfall", "v2", secrets::BackendStage::kCurrent);
  source_.SetStage("lumenfall", "v3", secrets::BackendStage::kPending);
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  EXPECT_EQ(Current(), "v1");
  EXPECT_EQ(StateOf("v2"), KeyState::kPending);
  Pass();
  EXPECT_EQ(Current(), "v2");
  EXPECT_EQ(StateOf("v3"), KeyState::kPending);
}

// After a quarantine the backend still marks the quarantined version current: the broker moves
// the marker to the version it promoted instead.
TEST_F(StagedBackendTest, AfterAQuarantineTheBackendsMarkerFollowsTheBroker) {
  Build(/*minted=*/false);
  source_.SetStaged(true);
  const std::string k1 = LmnKey("one");
  const std::string k2 = LmnKey("two");
  provider_.Issue(k1);
  provider_.Issue(k2);
  Day(0);
  StageAs("v1", k1, secrets::BackendStage::kCurrent);
  StageAs("v2", k2, secrets::BackendStage::kPending);
  Pass();
  ASSERT_EQ(Current(), "v2");
  ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  ASSERT_THAT(ring_->Quarantine("lumenfall", "v2", "leaked", "v1"), IsOk());
  EXPECT_EQ(Current(), "v1");
  Pass();
  auto listed = source_.ListVersions("lumenfall");
  ASSERT_THAT(listed, IsOk());
  EXPECT_EQ((*listed)[0].version_id, "v1");
  EXPECT_EQ((*listed)[0].stage, secrets::BackendStage::kCurrent);
}

// Minted rotation on a staged backend: the new key is written as the backend's PENDING version,
// and its promotion makes it the backend's current one.
TEST_F(StagedBackendTest, AMintedKeyIsWrittenPendingAndPromotedInTheBackend) {
  Build(/*minted=*/true);
  source_.SetStaged(true);
  const std::string k1 = LmnKey("one");
  provider_.Issue(k1);
  Day(0);
  StageAs("v1", k1, secrets::BackendStage::kCurrent);
  Day(30);
  Pass();
  EXPECT_EQ(Current(), "w1");
  auto listed = source_.ListVersions("lumenfall");
  ASSERT_THAT(listed, IsOk());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].stage, secrets::BackendStage::kPrevious);
  EXPECT_EQ((*listed)[1].version_id, "w1");
  EXPECT_EQ((*listed)[1].stage, secrets::BackendStage::kCurrent);
}

}  // namespace credbroker::rotation
