// The soak: the real broker under a steady mix of AcquireLease / RenewLease / ReleaseLease /
// ReportAuthFailure from three callers while the operator rotates the minted key every few
// seconds and, half-way, the provider revokes the CURRENT key and the callers' 401 reports get it
// quarantined. Bounded: CB_SOAK_SECONDS (default 60, the CI run; scripts/soak.sh runs 300), then
// it stops by itself. Loopback only (the fake provider on a loopback port).
//
// It checks that
//  - every AcquireLease succeeds: rotations never leave the provider without a key. The one
//    exception is NO_KEY between the provider revoking the only valid key and the minted
//    replacement that follows its quarantine (counted; the replacement must come). No call fails
//    other than as documented (KEY_RETIRED on a renewal after the overlap, NOT_FOUND for a lease
//    revoked with its key version);
//  - no lease id is issued twice, and no lease requested after the caller saw a version's
//    QUARANTINED event is on that version;
//  - no lease is lost: a lease that disappears belongs to a version that left service, and at the
//    end the broker's lease list holds exactly the leases the callers still hold (no released
//    lease listed, no held lease missing);
//  - the broker's memory stays flat: its RSS grows by less than kMaxRssGrowth over the second
//    half of the run, with the same number of leases held throughout.
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "provider_fixture.h"

namespace credbroker::e2e {
namespace {

constexpr int64_t kMaxRssGrowth = int64_t{16} << 20;
constexpr int kHeldPerCaller = 8;
constexpr absl::Duration kOpInterval = absl::Milliseconds(20);  // 50 calls/s per caller

// The broker's resident set, from /proc.
int64_t RssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    int64_t kb = 0;
    if (absl::StartsWith(line, "VmRSS:") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(6), "kB")),
                         &kb)) {
      return kb * 1024;
    }
  }
  return -1;
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

class SoakTest : public ProbeEndToEndTest {
 protected:
  struct Held {
    std::string version;
    absl::Time expires_at;
  };

  // What every thread reports, under one lock.
  struct Ledger {
    absl::Mutex mu;
    std::set<std::string> issued ABSL_GUARDED_BY(mu);
    std::set<std::string> released ABSL_GUARDED_BY(mu);
    // Leases that vanished while unexpired: id -> version.
    std::map<std::string, std::string> vanished ABSL_GUARDED_BY(mu);
    std::set<std::string> left_service ABSL_GUARDED_BY(mu);  // versions, from WatchKeys
    std::set<std::string> quarantined ABSL_GUARDED_BY(mu);
    // The provider revoked the CURRENT key; a ROTATED event has followed its quarantine.
    bool revoking ABSL_GUARDED_BY(mu) = false;
    bool replaced ABSL_GUARDED_BY(mu) = false;
    int64_t no_key_while_replacing ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::string> failures ABSL_GUARDED_BY(mu);
    int64_t calls ABSL_GUARDED_BY(mu) = 0;
    int64_t key_retired ABSL_GUARDED_BY(mu) = 0;
    int64_t duplicates ABSL_GUARDED_BY(mu) = 0;
    void Fail(const std::string& what) {
      absl::MutexLock lock(&mu);
      if (failures.size() < 20) failures.push_back(what);
    }
  };

  void WriteSoakConfig() {
    WriteFile(dir_.Join("minted/lumenfall/v1"), kLmnV1);
    ConfigOptions o;
    o.source_root = "minted";
    o.overlap = "3s";
    o.retire_grace = "20s";
    o.lumenfall_extra = MintBlock();
    o.top_level = R"(leases:
  default_ttl: 30s
  max_ttl: 1m
  min_ttl: 1s
  sweep_interval: 1s
)";
    WriteConfig(o);
  }

  // One caller: a steady call every kOpInterval until `stop`, holding up to kHeldPerCaller
  // leases. Returns the leases it still holds.
  std::map<std::string, Held> Caller(const std::string& token, uint32_t seed,
                                     const std::atomic<bool>& stop) {
    std::mt19937 rng(seed);
    std::map<std::string, Held> held;
    absl::Time next = absl::Now();
    while (!stop) {
      absl::SleepFor(next - absl::Now());
      next += kOpInterval;
      {
        absl::MutexLock lock(&ledger_.mu);
        ++ledger_.calls;
      }
      const int dice = static_cast<int>(rng() % 4);
      if (held.size() < kHeldPerCaller) {
        std::set<std::string> quarantined;
        bool replacing = false;
        {
          absl::MutexLock lock(&ledger_.mu);
          quarantined = ledger_.quarantined;
          replacing = ledger_.revoking && !ledger_.replaced;
        }
        v1::AcquireLeaseRequest req;
        req.set_provider("lumenfall");
        req.mutable_ttl()->set_seconds(30);
        v1::Lease lease;
        grpc::Status s = lease_->AcquireLease(Ctx(token).get(), req, &lease);
        if (!s.ok() && replacing && Reason(s) == "NO_KEY") {
          absl::MutexLock lock(&ledger_.mu);
          ++ledger_.no_key_while_replacing;
          continue;
        }
        if (!s.ok()) {
          ledger_.Fail(absl::StrCat("AcquireLease: ", s.error_message(), " (", Reason(s), ")"));
          continue;
        }
        if (quarantined.contains(lease.key_version())) {
          ledger_.Fail(absl::StrCat("a lease on ", lease.key_version(), " after its quarantine"));
        }
        absl::MutexLock lock(&ledger_.mu);
        if (!ledger_.issued.insert(lease.lease_id()).second) ++ledger_.duplicates;
        held[lease.lease_id()] = {lease.key_version(), FromProto(lease.expires_at())};
        continue;
      }
      auto it = held.begin();
      std::advance(it, rng() % held.size());
      const std::string id = it->first;
      const Held lease = it->second;
      if (dice == 0 || dice == 1) {  // renew (or, when it must, release and move on)
        v1::RenewLeaseRequest req;
        req.set_lease_id(id);
        req.mutable_ttl()->set_seconds(30);
        v1::Lease renewed;
        grpc::Status s = lease_->RenewLease(Ctx(token).get(), req, &renewed);
        if (s.ok()) {
          it->second.expires_at = FromProto(renewed.expires_at());
        } else if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
                   Reason(s) == "KEY_RETIRED") {
          {
            absl::MutexLock lock(&ledger_.mu);
            ++ledger_.key_retired;
          }
          Release(token, id, lease, held);
        } else if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
          Vanished(id, lease, held);
        } else {
          ledger_.Fail(absl::StrCat("RenewLease: ", s.error_message(), " (", Reason(s), ")"));
        }
      } else if (dice == 2) {
        Release(token, id, lease, held);
      } else {
        v1::ReportAuthFailureRequest req;
        req.set_lease_id(id);
        req.set_http_status(429);
        v1::ReportAuthFailureResponse resp;
        grpc::Status s = lease_->ReportAuthFailure(Ctx(token).get(), req, &resp);
        if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
          Vanished(id, lease, held);
        } else if (!s.ok()) {
          ledger_.Fail(absl::StrCat("ReportAuthFailure: ", s.error_message()));
        }
      }
    }
    return held;
  }

  void Release(const std::string& token, const std::string& id, const Held& lease,
               std::map<std::string, Held>& held) {
    v1::ReleaseLeaseRequest req;
    req.set_lease_id(id);
    v1::ReleaseLeaseResponse resp;
    grpc::Status s = lease_->ReleaseLease(Ctx(token).get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return Vanished(id, lease, held);
    if (!s.ok()) return ledger_.Fail(absl::StrCat("ReleaseLease: ", s.error_message()));
    held.erase(id);
    absl::MutexLock lock(&ledger_.mu);
    ledger_.released.insert(id);
  }

  // The broker no longer knows a lease: fine once it expired; else its version must have left
  // service (checked at the end, when every event has arrived).
  void Vanished(const std::string& id, const Held& lease, std::map<std::string, Held>& held) {
    held.erase(id);
    if (lease.expires_at <= absl::Now()) return;
    absl::MutexLock lock(&ledger_.mu);
    ledger_.vanished[id] = lease.version;
  }

  // Follows WatchKeys until cancelled: which versions left service, and when quarantined.
  void Watch(grpc::ClientContext* ctx) {
    v1::WatchKeysRequest req;
    auto reader = lease_->WatchKeys(ctx, req);
    v1::KeyEvent e;
    while (reader->Read(&e)) {
      absl::MutexLock lock(&ledger_.mu);
      if (e.type() == v1::KeyEvent::QUARANTINED) ledger_.quarantined.insert(e.key_version());
      if (e.type() == v1::KeyEvent::ROTATED && !ledger_.quarantined.empty()) {
        ledger_.replaced = true;
      }
      if (e.type() == v1::KeyEvent::QUARANTINED || e.type() == v1::KeyEvent::RETIRED ||
          e.type() == v1::KeyEvent::REVOKED) {
        ledger_.left_service.insert(e.key_version());
      }
    }
    (void)reader->Finish();
  }

  // The provider revokes the CURRENT key; each caller reports the 401 it then gets; the broker
  // probes and quarantines the key. Returns the quarantined version.
  std::string RevokeCurrentAtTheProvider() {
    const std::vector<std::string> tokens = {kAppToken, "billing-token-0123456789",
                                             "search-token-0123456789"};
    std::vector<v1::Lease> leases(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      // A rotation may be cutting over right now: each caller gets a few tries.
      if (!Eventually([&] { return Acquire("lumenfall", &leases[i], tokens[i]).ok(); },
                      absl::Seconds(5))) {
        return "";
      }
    }
    std::string version = leases[0].key_version();
    {
      absl::MutexLock lock(&ledger_.mu);
      ledger_.revoking = true;
    }
    Control("/__fixture/revoke", leases[0].api_key());
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (leases[i].key_version() != version) continue;
      (void)Report(leases[i].lease_id(), 401, tokens[i]);
    }
    return version;
  }

  Ledger ledger_;
};

TEST_F(SoakTest, SteadyLoadThroughRotationsAndAQuarantine) {
  const char* env = std::getenv("CB_SOAK_SECONDS");
  const absl::Duration length = absl::Seconds(env != nullptr ? std::atoi(env) : 60);
  const absl::Duration rotate_every = absl::Seconds(8);
  WriteSoakConfig();
  StartBroker();
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(Metrics(), R"(credbroker_probe_calibrated{provider="lumenfall"} 1)");
  })) << broker_->Logs();

  grpc::ClientContext watch_ctx;
  watch_ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  std::thread watcher([&] { Watch(&watch_ctx); });
  // Joined on every way out, so a failed assertion reports instead of aborting the process.
  absl::Cleanup join_watcher = [&] {
    watch_ctx.TryCancel();
    watcher.join();
  };
  std::atomic<bool> stop{false};
  std::vector<std::map<std::string, Held>> still_held(3);
  std::vector<std::thread> callers;
  const std::vector<std::string> tokens = {kAppToken, "billing-token-0123456789",
                                           "search-token-0123456789"};
  for (size_t i = 0; i < tokens.size(); ++i) {
    callers.emplace_back([&, i] { still_held[i] = Caller(tokens[i], 1000 + i, stop); });
  }

  // The operator: a rotation every few seconds, the provider's revocation half-way; the RSS
  // sampled once a second.
  const absl::Time start = absl::Now();
  const absl::Time end = start + length;
  absl::Time next_rotation = start + rotate_every;
  bool revoked = false;
  std::string quarantined_version;
  int rotations = 0;
  std::vector<std::pair<absl::Duration, int64_t>> rss;
  while (absl::Now() < end) {
    absl::SleepFor(absl::Seconds(1));
    rss.emplace_back(absl::Now() - start, RssBytes(broker_->pid()));
    if (!revoked && absl::Now() >= start + length / 2) {
      revoked = true;
      quarantined_version = RevokeCurrentAtTheProvider();
      next_rotation = absl::Now() + rotate_every;
    } else if (absl::Now() >= next_rotation) {
      v1::RotateKeyRequest req;
      req.set_provider("lumenfall");
      v1::RotateKeyResponse resp;
      grpc::Status s = admin_->RotateKey(Ctx(kAdminToken).get(), req, &resp);
      if (s.ok()) {
        ++rotations;
      } else {
        ledger_.Fail(absl::StrCat("RotateKey: ", s.error_message()));
      }
      next_rotation = absl::Now() + rotate_every;
    }
  }
  stop = true;
  for (std::thread& t : callers) t.join();
  ASSERT_FALSE(quarantined_version.empty()) << "the revocation step could not take its leases";

  // Every version whose leases vanished has left service (its event may still be on its way),
  // and the quarantine happened.
  std::map<std::string, std::string> vanished;
  {
    absl::MutexLock lock(&ledger_.mu);
    vanished = ledger_.vanished;
  }
  EXPECT_TRUE(Eventually([&] {
    absl::MutexLock lock(&ledger_.mu);
    if (!ledger_.quarantined.contains(quarantined_version) || !ledger_.replaced) return false;
    for (const auto& [id, version] : vanished) {
      if (!ledger_.left_service.contains(version)) return false;
    }
    return true;
  })) << "a lease vanished while its key version was still in service, or the quarantined key "
         "was never replaced";

  // The broker's lease list against what the callers hold.
  std::set<std::string> held_now;
  for (const auto& held : still_held) {
    for (const auto& [id, lease] : held) {
      if (lease.expires_at > absl::Now() + absl::Seconds(2)) held_now.insert(id);
    }
  }
  v1::ListLeasesRequest list_req;
  list_req.set_provider("lumenfall");
  v1::ListLeasesResponse listed;
  ASSERT_TRUE(admin_->ListLeases(Ctx(kAdminToken).get(), list_req, &listed).ok());
  std::set<std::string> listed_ids;
  for (const v1::LeaseInfo& l : listed.leases()) listed_ids.insert(l.lease_id());
  {
    absl::MutexLock lock(&ledger_.mu);
    for (const std::string& id : held_now) {
      EXPECT_TRUE(listed_ids.contains(id)) << "a held lease is missing from the broker";
    }
    for (const std::string& id : listed_ids) {
      EXPECT_FALSE(ledger_.released.contains(id)) << "a released lease is still listed";
    }
    EXPECT_EQ(ledger_.duplicates, 0);
    EXPECT_TRUE(ledger_.failures.empty()) << absl::StrJoin(ledger_.failures, "\n");
    EXPECT_GT(ledger_.calls, 0);
    std::printf(
        "soak: %s, %lld calls, %zu leases issued, %zu released, %zu vanished with their key, "
        "%lld renewals refused after the overlap, %d rotations, quarantined %s, %lld acquires "
        "refused with NO_KEY until its replacement\n",
        absl::FormatDuration(length).c_str(), static_cast<long long>(ledger_.calls),
        ledger_.issued.size(), ledger_.released.size(), vanished.size(),
        static_cast<long long>(ledger_.key_retired), rotations, quarantined_version.c_str(),
        static_cast<long long>(ledger_.no_key_while_replacing));
  }
  EXPECT_GE(rotations, 2);

  // Memory: the second half against the first sample of it.
  ASSERT_GE(rss.size(), 4u);
  const size_t half = rss.size() / 2;
  int64_t peak = 0;
  for (size_t i = half; i < rss.size(); ++i) peak = std::max(peak, rss[i].second);
  const int64_t growth = peak - rss[half].second;
  std::printf("soak: broker RSS %lld KiB at %s, peak %lld KiB after (growth %lld KiB)\n",
              static_cast<long long>(rss[half].second / 1024),
              absl::FormatDuration(rss[half].first).c_str(), static_cast<long long>(peak / 1024),
              static_cast<long long>(growth / 1024));
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer holds freed memory in its quarantine: the figure is printed, not judged.
#else
  EXPECT_LT(growth, kMaxRssGrowth) << "the broker's memory grew under a steady load";
#endif
}

}  // namespace
}  // namespace credbroker::e2e
