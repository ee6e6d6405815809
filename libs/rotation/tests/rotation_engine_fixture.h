// Shared by the rotation engine tests and the randomized histories (verification/): a fake
// lumenfall-like provider behind a fake HTTP client (through the real HttpProviderProbe and
// HttpKeyMinter), a fake secret source, an in-memory key-state store and an injected clock, with
// the KeyRing and RotationEngine wired as the broker wires them.
#pragma once

#include <algorithm>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/log.h"
#include "credbroker/metrics/broker_metrics.h"
#include "credbroker/rotation/key_event_subscribers.h"
#include "credbroker/rotation/key_minter.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/rotation/key_state_store.h"
#include "credbroker/rotation/probe.h"
#include "credbroker/rotation/revocation_detector.h"
#include "credbroker/rotation/rotation_engine.h"
#include "credbroker/testing/fake_http_client.h"
#include "credbroker/testing/fake_secret_source.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace credbroker::rotation {

using ::credbroker::testing::FakeHttpClient;
using ::credbroker::testing::FakeSecretSource;
using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

inline constexpr char kKeyApi[] = "http://keys.test/admin";
inline constexpr char kAdminToken[] = "admin-session-token-1";

inline std::string LmnKey(absl::string_view name) {
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
      ++deletes_[path.substr(6)];
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
  // The most DELETE requests any one key id received.
  int MostDeletesOfOneKey() {
    absl::MutexLock lock(&mu_);
    int most = 0;
    for (const auto& [id, n] : deletes_) most = std::max(most, n);
    return most;
  }

 private:
  absl::Mutex mu_;
  std::set<std::string> live_;
  std::map<std::string, std::string> ids_;
  std::map<std::string, int> deletes_;
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

  // lumenfall with a 30-day period and a 7-day overlap (unless given); `minted` adds the key API.
  // `with_revoke` false: a key API that cannot delete keys (firemoon).
  void Build(bool minted, absl::Duration overlap = absl::Hours(7 * 24), bool with_revoke = true) {
    v1::BrokerConfig config;
    config.add_sources()->set_name("fake");
    v1::ProviderConfig* p = config.add_providers();
    p->set_name("lumenfall");
    p->mutable_rotation_period()->set_seconds(int64_t{30} * 86400);
    p->mutable_overlap()->set_seconds(absl::ToInt64Seconds(overlap));
    if (no_probe_) p->mutable_probe()->set_disabled(true);
    if (minted) {
      std::ofstream(dir_.Join("admin-token")) << kAdminToken << "\n";
      v1::MintConfig* m = p->mutable_mint();
      m->set_base_url(kKeyApi);
      m->mutable_create()->set_path("/keys");
      m->mutable_create()->set_body(R"({"name":"credbroker-{timestamp}"})");
      if (with_revoke) m->mutable_revoke()->set_path("/keys/{key_id}");
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
        ring_.get(), [counter = KeyTransitionCounter(&metrics_),
                      quarantines = KeyQuarantineCounter(&metrics_)](const auto& events) {
          counter(events);
          quarantines(events);
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
  // Set before Build: the provider has no probe (new versions are promoted when seen).
  bool no_probe_ = false;
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

}  // namespace credbroker::rotation
