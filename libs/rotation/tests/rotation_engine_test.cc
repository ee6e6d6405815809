// The rotation engine against a fake provider (probe endpoint and key API behind a fake HTTP
// client, through the real HttpProviderProbe and HttpKeyMinter), a fake secret source and an
// injected clock: whole 90-day lives of a key run in milliseconds.
#include "credbroker/rotation/rotation_engine.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/rotation/key_event_subscribers.h"
#include "credbroker/rotation/revocation_detector.h"
#include "credbroker/rotation/rotation_scheduler.h"
#include "credbroker/state/leadership.h"
#include "credbroker/testing/fake_http_client.h"
#include "credbroker/testing/fake_secret_source.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace credbroker::rotation {
namespace {

using ::credbroker::testing::FakeHttpClient;
using ::credbroker::testing::FakeSecretSource;
using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKeyApi[] = "http://keys.test/admin";
constexpr char kAdminToken[] = "admin-session-token-1";

std::string LmnKey(absl::string_view name) {
  return absl::StrCat("lmnfl_", name, ".", std::string(16, name.back()));
}

// A lumenfall-like provider: GET .../models answers 200 for a live key and 401 otherwise (or 200
// for anything when lying); the key API creates and revokes keys for the admin token.
class FakeProvider {
 public:
  absl::StatusOr<http::HttpResponse> Handle(const http::HttpRequest& r) {
    absl::MutexLock lock(&mu_);
    std::string auth = testing::HeaderOf(r, "Authorization");
    std::string key = absl::StartsWith(auth, "Bearer ") ? auth.substr(7) : "";
    if (absl::EndsWith(r.url, "/models") || absl::EndsWith(r.url, "/usage")) {
      ++probes_;
      if (down_) return FakeHttpClient::Answer(503);
      return FakeHttpClient::Answer(lying_ || live_.contains(key) ? 200 : 401);
    }
    if (!absl::StartsWith(r.url, kKeyApi)) return FakeHttpClient::Answer(404);
    if (key != kAdminToken) return FakeHttpClient::Answer(401);
    std::string path = r.url.substr(std::string(kKeyApi).size());
    if (r.method == "POST" && path == "/keys") {
      if (fail_creates_ > 0) {
        --fail_creates_;
        return FakeHttpClient::Answer(503);
      }
      std::string id = absl::StrCat("key_", ++next_id_);
      std::string minted = LmnKey(absl::StrCat("m", next_id_));
      live_.insert(minted);
      ids_[id] = minted;
      return FakeHttpClient::Answer(
          201, absl::StrCat(R"({"data":{"id":")", id, R"(","secret":")", minted, R"("}})"));
    }
    if (r.method == "DELETE" && absl::StartsWith(path, "/keys/")) {
      auto it = ids_.find(path.substr(6));
      if (it == ids_.end()) return FakeHttpClient::Answer(404);
      live_.erase(it->second);
      ids_.erase(it);
      ++revocations_;
      return FakeHttpClient::Answer(204);
    }
    return FakeHttpClient::Answer(404);
  }

  void Issue(const std::string& key) {
    absl::MutexLock lock(&mu_);
    live_.insert(key);
  }
  void RevokeKey(const std::string& key) {
    absl::MutexLock lock(&mu_);
    live_.erase(key);
  }
  bool Live(const std::string& key) {
    absl::MutexLock lock(&mu_);
    return live_.contains(key);
  }
  size_t LiveCount() {
    absl::MutexLock lock(&mu_);
    return live_.size();
  }
  void SetLying(bool lying) {
    absl::MutexLock lock(&mu_);
    lying_ = lying;
  }
  void SetDown(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  void FailCreates(int n) {
    absl::MutexLock lock(&mu_);
    fail_creates_ = n;
  }
  int probes() {
    absl::MutexLock lock(&mu_);
    return probes_;
  }
  int revocations() {
    absl::MutexLock lock(&mu_);
    return revocations_;
  }
  int created() {
    absl::MutexLock lock(&mu_);
    return next_id_;
  }

 private:
  absl::Mutex mu_;
  std::set<std::string> live_;
  std::map<std::string, std::string> ids_;
  bool lying_ = false;
  bool down_ = false;
  int fail_creates_ = 0;
  int next_id_ = 0;
  int probes_ = 0;
  int revocations_ = 0;
};

// Leases held per key version; RevokeLeasesOn drops them.
class FakeLeases final : public LeaseView {
 public:
  int64_t ActiveLeases(absl::string_view, absl::string_view version) const override {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(std::string(version));
    return it == held_.end() ? 0 : it->second;
  }
  int64_t RevokeLeasesOn(absl::string_view, absl::string_view version, absl::string_view) override {
    absl::MutexLock lock(&mu_);
    int64_t n = held_[std::string(version)];
    held_[std::string(version)] = 0;
    revoked_ += n;
    return n;
  }
  void Hold(const std::string& version, int64_t n) {
    absl::MutexLock lock(&mu_);
    held_[version] = n;
  }
  int64_t revoked() const {
    absl::MutexLock lock(&mu_);
    return revoked_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, int64_t> held_;
  int64_t revoked_ = 0;
};

class RotationEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    core::SetLogSinkForTest([this](absl::string_view line) {
      absl::MutexLock lock(&log_mu_);
      logs_ += std::string(line) + "\n";
    });
  }
  void TearDown() override {
    engine_.reset();
    core::SetLogSinkForTest(nullptr);
  }

  // lumenfall with a 30-day period and a 7-day overlap; `minted` adds the key API.
  void Build(bool minted) {
    v1::BrokerConfig config;
    config.add_sources()->set_name("fake");
    v1::ProviderConfig* p = config.add_providers();
    p->set_name("lumenfall");
    p->mutable_rotation_period()->set_seconds(int64_t{30} * 86400);
    p->mutable_overlap()->set_seconds(int64_t{7} * 86400);
    if (minted) {
      std::ofstream(dir_.Join("admin-token")) << kAdminToken << "\n";
      v1::MintConfig* m = p->mutable_mint();
      m->set_base_url(kKeyApi);
      m->mutable_create()->set_path("/keys");
      m->mutable_create()->set_body(R"({"name":"credbroker-{timestamp}"})");
      m->mutable_revoke()->set_path("/keys/{key_id}");
      m->set_key_pointer("/data/secret");
      m->set_key_id_pointer("/data/id");
      m->set_admin_key_file(dir_.Join("admin-token"));
    }
    catalog_ = *providers::ProviderCatalog::FromConfig(config);
    counter_.reset();
    engine_.reset();
    ring_ = std::make_unique<KeyRing>(&catalog_, &clock_, &metrics_);
    // As the broker wires it: transitions are counted and logged by subscribers.
    counter_ = std::make_unique<KeyEventSubscription>(
        ring_.get(), [counter = KeyTransitionCounter(&metrics_)](const auto& events) {
          counter(events);
          KeyTransitionLogger()(events);
        });
    ASSERT_THAT(ring_->UsePersistedState(&store_), IsOk());
    ring_->SetLeaseView(&leases_);
    RotationEngineOptions options;
    options.probe_retry_interval = absl::Minutes(5);
    engine_ = MakeEngine(options);
    ring_->GatePromotions(engine_->GatedProviders());
    ring_->Subscribe(
        [this](const std::vector<KeyEvent>& ev) {
          for (const KeyEvent& e : ev) {
            history_.push_back(absl::StrCat(e.version_id, ":", KeyStateName(e.state)));
          }
        },
        &sub_);
  }

  std::unique_ptr<RotationEngine> MakeEngine(RotationEngineOptions options) {
    return std::make_unique<RotationEngine>(
        ring_.get(), &catalog_,
        absl::flat_hash_map<std::string, secrets::SecretSource*>{{"lumenfall", &source_}}, &probe_,
        &minter_, &store_, &clock_, &metrics_, options, &wakeup_);
  }
  void Day(double d) { clock_.Set(start_ + absl::Hours(24 * d)); }
  // What the refresher and the engine thread do, once.
  void Pass() {
    ring_->Tick();
    engine_->RunOnce();
    ring_->Tick();
  }
  void Stage(const std::string& version, const std::string& key) {
    source_.Put("lumenfall", version, key);
    ASSERT_THAT(ring_->RefreshProvider("lumenfall", source_), IsOk());
  }
  // A caller's report, through the same detector the lease broker uses.
  void Report(const std::string& version, const std::string& caller, int status) {
    if (detector_.Record("lumenfall", version, caller, status, clock_.Now())) {
      engine_->SuspectRevoked("lumenfall", version);
    }
  }
  // A copy: the snapshot it came from may be replaced (and freed) by the scheduler's thread
  // meanwhile, while the versions the copy shares stay alive with it (found by the tsan preset).
  ProviderKeys Keys() { return *ring_->Snapshot()->Find("lumenfall"); }
  std::string Current() {
    const ProviderKeys keys = Keys();
    return keys.current ? keys.current->version_id : "";
  }
  KeyState StateOf(const std::string& v) {
    const ProviderKeys keys = Keys();
    const KeyVersion* k = keys.Find(v);
    return k ? k->state : KeyState::kRetired;
  }
  std::string Scrape() { return prometheus::TextSerializer().Serialize(registry_->Collect()); }
  std::string Logs() {
    absl::MutexLock lock(&log_mu_);
    return logs_;
  }

  const absl::Time start_ = absl::FromUnixSeconds(1'790'000'000);
  core::FakeClock clock_{start_};
  testing::TempDir dir_;
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  metrics::BrokerMetrics metrics_{registry_};
  FakeProvider provider_;
  FakeHttpClient http_{[this](const http::HttpRequest& r) { return provider_.Handle(r); }};
  HttpProviderProbe probe_{&http_};
  HttpKeyMinter minter_{&http_, &clock_};
  InMemoryKeyStateStore store_;
  FakeSecretSource source_;
  FakeLeases leases_;
  RevocationDetector detector_{3, absl::Minutes(5)};
  providers::ProviderCatalog catalog_;
  std::unique_ptr<KeyRing> ring_;
  std::unique_ptr<KeyEventSubscription> counter_;  // after ring_: unsubscribes first
  core::Wakeup wakeup_;
  std::unique_ptr<RotationEngine> engine_;
  std::vector<std::string> history_;
  uint64_t sub_ = 0;
  absl::Mutex log_mu_;
  std::string logs_;
};

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
  RotationScheduler scheduler(&leadership, &wakeup_, {engine_.get(), ring_.get(), {}, {}}, options);
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
      {engine_.get(), ring_.get(), [&] { ++sweeps; }, [&] { ++replica_ticks; }}, options);
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
}  // namespace credbroker::rotation

namespace credbroker::rotation {
namespace {

// One seeded history of the rotation work: random operator stages (some with keys the provider
// refuses), minted rotations, caller leases (FakeLeases, not the lease table), provider-side
// revocations with 401 reports, time steps of minutes to days each followed by the scheduler's
// tick, engine passes, and restarts from the key-state store. After every step the invariants of
// verification/rotation.pml are checked against the real KeyRing, state machine and
// RotationEngine: (1) one CURRENT whenever a version is valid, (2) a new CURRENT works at the
// provider, (3) leases only on versions in service, (4) no PREVIOUS past its hard deadline,
// (5) no minted key in service revoked by the broker, (6) a restart changes no decision.
class History : public RotationEngineTest {
 public:
  explicit History(uint32_t seed) : rng_(seed) {}
  void TestBody() override {}

  // Empty when the history kept every invariant; else what broke, at which step.
  std::string Run(int steps) {
    SetUp();
    minted_ = rng_() % 2 == 0;
    Build(minted_);
    provider_.Issue(LmnKey("v0"));
    keys_["v1"] = LmnKey("v0");
    Stage("v1", LmnKey("v0"));
    Pass();
    next_ = 2;
    const bool trace = std::getenv("CB_HISTORY_TRACE") != nullptr;
    for (int step = 0; step < steps && failure_.empty(); ++step) {
      Act(step);
      Check(step);
      if (trace)
        std::fprintf(stderr, "step %d action %d: %s\n", step, last_action_, Describe().c_str());
    }
    TearDown();
    return failure_;
  }

 private:
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }

  void Act(int step) {
    last_action_ = Pick(9);
    switch (last_action_) {
      case 0:  // time passes (minutes to days), and the scheduler's tick runs, as it does
        clock_.Advance(absl::Minutes(1 + Pick(60 * 24 * 3)));
        ring_->Tick();
        break;
      case 1:  // the operator stages a new version (a bad key now and then)
        if (!minted_ && next_ < 12) {
          const std::string v = absl::StrCat("v", next_++);
          const std::string key = LmnKey(absl::StrCat("s", next_));
          if (Pick(5) != 0) provider_.Issue(key);
          keys_[v] = key;
          source_.Put("lumenfall", v, key);
          (void)ring_->RefreshProvider("lumenfall", source_);
        }
        break;
      case 2:  // an operator's forced rotation (minted providers mint at once)
        if (minted_) (void)engine_->RotateNow("lumenfall", /*skip_probe=*/false);
        break;
      case 3: {  // a caller takes a lease on the CURRENT version
        const std::string cur = Current();
        if (!cur.empty()) leases_.Hold(cur, leases_.ActiveLeases("lumenfall", cur) + 1);
        break;
      }
      case 4: {  // a caller lets a lease go
        const ProviderKeys keys = Keys();
        if (!keys.versions.empty()) {
          const std::string v =
              keys.versions[Pick(static_cast<int>(keys.versions.size()))]->version_id;
          const int64_t n = leases_.ActiveLeases("lumenfall", v);
          if (n > 0) leases_.Hold(v, n - 1);
        }
        break;
      }
      case 5: {  // the provider revokes the CURRENT key; three callers report 401
        if (Pick(4) != 0) break;
        const ProviderKeys keys = Keys();
        if (keys.current == nullptr) break;
        provider_.RevokeKey(std::string(keys.current->material->reveal()));
        revoked_outside_.insert(keys.current->version_id);
        for (const char* caller : {"a", "b", "c"}) Report(keys.current->version_id, caller, 401);
        break;
      }
      case 6:  // a restart: ring and engine rebuilt from the store
        if (Pick(3) == 0) {
          const std::string before = Describe();
          Build(minted_);
          (void)ring_->RefreshProvider("lumenfall", source_);
          if (Describe() != before) {
            Fail(step,
                 absl::StrCat("6: a restart changed the decisions: ", before, " -> ", Describe()));
          }
        }
        break;
      default:  // the scheduler's pass
        Pass();
        break;
    }
  }

  // "v1:CURRENT v2:PREVIOUS" for the live versions.
  std::string Describe() {
    std::string out;
    for (const auto& v : Keys().versions) {
      absl::StrAppend(&out, v->version_id, ":", KeyStateName(v->state), " ");
    }
    return out;
  }

  void Fail(int step, const std::string& what) {
    if (failure_.empty()) failure_ = absl::StrCat("step ", step, ": ", what, " [", Describe(), "]");
  }

  void Check(int step) {
    const ProviderKeys keys = Keys();
    int current = 0;
    int valid = 0;
    for (const auto& v : keys.versions) {
      if (v->state == KeyState::kCurrent) ++current;
      if (v->state == KeyState::kCurrent || v->state == KeyState::kPrevious) ++valid;
      // 3: leases only on versions in service.
      if (leases_.ActiveLeases("lumenfall", v->version_id) > 0 && v->state != KeyState::kCurrent &&
          v->state != KeyState::kPrevious) {
        Fail(step, absl::StrCat("3: leases on ", v->version_id));
      }
      // 4: never PREVIOUS past the hard deadline once the scheduler ran.
      if (v->state == KeyState::kPrevious && clock_.Now() > v->retires_at + absl::Hours(24)) {
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
    for (const auto& [version, key] : keys_) {
      if (keys.Find(version) == nullptr && leases_.ActiveLeases("lumenfall", version) > 0) {
        Fail(step, absl::StrCat("3: leases on ", version, " out of service"));
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
  }

  std::mt19937 rng_;
  int last_action_ = -1;
  bool minted_ = false;
  int next_ = 2;
  std::map<std::string, std::string> keys_;  // staged versions and their keys
  std::set<std::string> revoked_outside_;
  std::string last_current_;
  std::string failure_;
};

// CB_HISTORIES (default 1000 in CI; the full run is CB_HISTORIES=10000, about 20 s) histories of
// CB_HISTORY_STEPS (default 80) steps from CB_SEED (default 1). A failure prints its seed;
// CB_SEED=n CB_HISTORIES=1 replays it, and CB_HISTORY_TRACE=1 prints each step's action and the
// versions' states.
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
