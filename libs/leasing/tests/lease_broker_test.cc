#include "credbroker/leasing/lease_broker.h"

#include <optional>

#include "broker_fixture.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/shared_facts.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::leasing {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

class LeaseBrokerTest : public ::testing::Test, public BrokerFixture {};

TEST_F(LeaseBrokerTest, AcquireGrantsCurrentKeyWithDefaultTtl) {
  auto g = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "test");
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->lease.key_version, "v1");
  EXPECT_EQ(g->lease.key_fingerprint, core::Fingerprint(kLmnV1));
  EXPECT_TRUE(g->key->material->reveal() == kLmnV1);
  EXPECT_EQ(g->lease.expires_at - g->lease.issued_at, absl::Minutes(15));
  EXPECT_EQ(g->lease.caller, "billing");
  EXPECT_TRUE(core::LooksLikeLeaseId(g->lease.id));
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_leases_issued_total{caller="billing",provider="lumenfall"} 1)"));
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="lumenfall"} 1)"));
}

TEST_F(LeaseBrokerTest, TtlIsClampedToPolicyAndNegativeIsRejected) {
  auto big = broker->Acquire(app, "lumenfall", absl::Hours(10), "");
  ASSERT_THAT(big, IsOk());
  EXPECT_EQ(big->lease.expires_at - big->lease.issued_at, absl::Hours(1));
  auto small = broker->Acquire(app, "lumenfall", absl::Seconds(1), "");
  ASSERT_THAT(small, IsOk());
  EXPECT_EQ(small->lease.expires_at - small->lease.issued_at, absl::Seconds(30));
  auto neg = broker->Acquire(app, "lumenfall", -absl::Seconds(1), "");
  EXPECT_THAT(neg, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(core::ReasonOf(neg.status()), "BAD_TTL");
}

TEST_F(LeaseBrokerTest, UnknownOrUnloadedProviderIsRefused) {
  auto unknown = broker->Acquire(app, "nope", absl::ZeroDuration(), "");
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(core::ReasonOf(unknown.status()), "UNKNOWN_PROVIDER");
  auto empty = broker->Acquire(app, "", absl::ZeroDuration(), "");
  EXPECT_THAT(empty, StatusIs(absl::StatusCode::kInvalidArgument));
  // fluximage is configured but was never loaded from its source.
  auto unloaded = broker->Acquire(app, "fluximage", absl::ZeroDuration(), "");
  EXPECT_THAT(unloaded, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_lease_requests_denied_total{method="AcquireLease",reason="UNKNOWN_PROVIDER"} 1)"));
}

TEST_F(LeaseBrokerTest, StaleBackendFailsClosedAndRecovers) {
  source.FailListing(absl::UnavailableError("vault down"));
  clock.Advance(absl::Minutes(30));
  (void)ring->RefreshProvider("lumenfall", source);
  EXPECT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), IsOk());
  clock.Advance(absl::Minutes(31));
  (void)ring->RefreshProvider("lumenfall", source);
  auto stale = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  EXPECT_THAT(stale, StatusIs(absl::StatusCode::kUnavailable, Not(HasSubstr("vault down"))));
  EXPECT_EQ(core::ReasonOf(stale.status()), "BACKEND_STALE");
  // The backend's error names the secret store's paths and roles: admins only.
  EXPECT_THAT(
      broker->Acquire(identity::Identity{"ops", true}, "lumenfall", absl::ZeroDuration(), ""),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("vault down")));
  source.FailListing(absl::OkStatus());
  (void)ring->RefreshProvider("lumenfall", source);
  EXPECT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), IsOk());
}

TEST_F(LeaseBrokerTest, RenewExtendsAndCountsOnlyForTheHolder) {
  auto g = broker->Acquire(app, "lumenfall", absl::Minutes(5), "");
  ASSERT_THAT(g, IsOk());
  clock.Advance(absl::Minutes(4));
  auto r = broker->Renew(app, g->lease.id, absl::Minutes(10));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->lease.expires_at, clock.Now() + absl::Minutes(10));
  EXPECT_EQ(r->lease.renew_count, 1);
  EXPECT_TRUE(r->key->material->reveal() == kLmnV1);
  auto theirs = broker->Renew(other, g->lease.id, absl::Minutes(10));
  EXPECT_THAT(theirs, StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(LeaseBrokerTest, RenewOfMalformedUnknownOrExpiredLease) {
  EXPECT_EQ(core::ReasonOf(broker->Renew(app, "../../etc", absl::ZeroDuration()).status()),
            "BAD_LEASE_ID");
  EXPECT_EQ(core::ReasonOf(broker->Renew(app, core::NewLeaseId(), absl::ZeroDuration()).status()),
            "LEASE_NOT_FOUND");
  auto g = broker->Acquire(app, "lumenfall", absl::Minutes(1), "");
  ASSERT_THAT(g, IsOk());
  clock.Advance(absl::Minutes(2));
  EXPECT_EQ(core::ReasonOf(broker->Renew(app, g->lease.id, absl::ZeroDuration()).status()),
            "LEASE_EXPIRED");
}

TEST_F(LeaseBrokerTest, LeaseOnPreviousVersionRenewsUntilRetireThenFails) {
  auto g = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  ASSERT_THAT(g, IsOk());
  clock.Advance(absl::Minutes(1));
  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  const absl::Time retires = clock.Now() + absl::Hours(24 * 7);
  // Renew every 50 minutes across the whole overlap.
  absl::Time last_expiry;
  std::optional<absl::Status> refused;
  for (int i = 0; i < 300 && !refused; ++i) {
    auto r = broker->Renew(app, g->lease.id, absl::Hours(1));
    if (!r.ok()) {
      refused = r.status();
      break;
    }
    EXPECT_EQ(r->lease.key_version, "v1");
    EXPECT_LE(r->lease.expires_at, retires);
    last_expiry = r->lease.expires_at;
    clock.Advance(absl::Minutes(50));
    ASSERT_TRUE(ring->RefreshProvider("lumenfall", source).ok());  // backend stays fresh
  }
  EXPECT_EQ(last_expiry, retires) << "the last renewal is capped at the retire time";
  // 300 renewals 50 minutes apart outlast the 7 day overlap: the renewal after the retire time
  // is refused, because the lease expired with it.
  ASSERT_TRUE(refused.has_value()) << "renewals never stopped";
  EXPECT_EQ(core::ReasonOf(*refused), "LEASE_EXPIRED") << *refused;
  EXPECT_GE(clock.Now(), retires);
  ring->Tick();
  auto after = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->lease.key_version, "v2");
}

// A backend that gives a version an end of validity (Azure `exp`): no lease on it outlives it,
// acquired or renewed, and once it has passed no lease is handed out on it.
TEST_F(LeaseBrokerTest, NoLeaseOutlivesTheKeysExpiryInItsBackend) {
  const absl::Time exp = clock.Now() + absl::Minutes(20);
  source.SetValidity("lumenfall", "v1", true, absl::InfinitePast(), exp);
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  auto g = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->lease.expires_at, exp);
  clock.Advance(absl::Minutes(10));
  auto r = broker->Renew(app, g->lease.id, absl::Hours(1));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->lease.expires_at, exp);
  // Past it (before the next refresh takes the version out): refused, not served.
  clock.Advance(absl::Minutes(11));
  auto late = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  EXPECT_THAT(late, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(core::ReasonOf(late.status()), "KEY_EXPIRED");
}

TEST_F(LeaseBrokerTest, RenewAfterVersionRemovedIsKeyRetired) {
  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  auto g = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  ASSERT_THAT(g, IsOk());
  ASSERT_EQ(g->lease.key_version, "v2");
  source.Remove("lumenfall", "v2");
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  auto r = broker->Renew(app, g->lease.id, absl::ZeroDuration());
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(core::ReasonOf(r.status()), "KEY_RETIRED");
}

TEST_F(LeaseBrokerTest, ReleaseRemovesAndUpdatesGauge) {
  auto g = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  ASSERT_THAT(g, IsOk());
  EXPECT_THAT(broker->Release(other, g->lease.id), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(broker->Release(app, g->lease.id), IsOk());
  EXPECT_THAT(broker->Release(app, g->lease.id), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="lumenfall"} 0)"));
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_leases_released_total{caller="billing",provider="lumenfall"} 1)"));
}

TEST_F(LeaseBrokerTest, ReportAuthFailureCountsAndTellsWhetherANewerKeyExists) {
  auto g = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  ASSERT_THAT(g, IsOk());
  auto same = broker->ReportAuthFailure(app, g->lease.id, 401, "INVALID_API_KEY");
  ASSERT_THAT(same, IsOk());
  EXPECT_FALSE(same->newer_key_available);
  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  auto newer = broker->ReportAuthFailure(app, g->lease.id, 429, "");
  ASSERT_THAT(newer, IsOk());
  EXPECT_TRUE(newer->newer_key_available);
  EXPECT_EQ(newer->current_key_version, "v2");
  EXPECT_THAT(broker->ReportAuthFailure(app, g->lease.id, 500, ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(broker->ReportAuthFailure(other, g->lease.id, 401, ""),
              StatusIs(absl::StatusCode::kNotFound));
  std::string text = Scrape();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(credbroker_auth_failure_reports_total{caller="billing",classification="key_rejected",http_status="401",key_version="v1",provider="lumenfall"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(http_status="429",key_version="v1")"));
}

// The answer is classified by the provider's documented shapes (providers/auth_failure.h); only
// refusals of the key reach revocation detection, and what the caller may send is bounded.
TEST_F(LeaseBrokerTest, AnswersAreClassifiedAndOnlyRefusalsOfTheKeyAreEvidence) {
  state::InMemorySharedFacts facts;
  broker->SetAuthFailureReports(&facts);
  auto g = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  ASSERT_THAT(g, IsOk());
  auto classify = [&](int status, const std::string& code, const std::string& body = "") {
    auto out = broker->ReportAuthFailure(app, g->lease.id, status, code, body);
    return out.ok() ? out->classification : out.status().ToString();
  };
  EXPECT_EQ(classify(429, ""), "rate_limited");
  EXPECT_EQ(classify(403, ""), "forbidden");
  // Codes are the provider's own: lumenfall documents none, so its 401 is a refusal whatever
  // the code says.
  EXPECT_EQ(classify(401, "EXPIRED_API_KEY"), "key_rejected");
  EXPECT_EQ(classify(401, "", R"({"error":{"message":"Incorrect API key provided"}})"),
            "key_rejected");
  EXPECT_THAT(broker->ReportAuthFailure(app, g->lease.id, 401, "", std::string(4097, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("body")));
  EXPECT_THAT(broker->ReportAuthFailure(app, g->lease.id, 401, std::string(129, 'X')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  auto listing = facts.List(clock.Now());
  ASSERT_THAT(listing, IsOk());
  ASSERT_EQ(listing->facts.size(), 2u);  // the two 401s, not the 429 or the 403
  for (const state::Fact& f : listing->facts) EXPECT_EQ(f.report.kind, "key_rejected");
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_auth_failure_reports_total{caller="billing",classification="forbidden",http_status="403",key_version="v1",provider="lumenfall"} 1)"));
}

TEST_F(LeaseBrokerTest, KeyRingRetiresThroughTheBrokersLeaseCounts) {
  ring->SetLeaseView(broker.get());
  auto held = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  ASSERT_THAT(held, IsOk());
  EXPECT_EQ(broker->ActiveLeases("lumenfall", "v1"), 1);
  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_TRUE(ring->RefreshProvider("lumenfall", source).ok());
  clock.Advance(absl::Hours(24 * 7) + absl::Minutes(1));
  ASSERT_TRUE(ring->RefreshProvider("lumenfall", source).ok());  // keep the backend fresh
  // The lease expired long ago but has not been swept: it still counts, so v1 waits.
  ring->Tick();
  EXPECT_NE(ring->Snapshot()->Find("lumenfall")->Find("v1"), nullptr);
  EXPECT_EQ(broker->SweepExpired(), 1u);
  EXPECT_EQ(broker->ActiveLeases("lumenfall", "v1"), 0);
  ring->Tick();
  EXPECT_EQ(ring->Snapshot()->Find("lumenfall")->Find("v1"), nullptr);
}

TEST_F(LeaseBrokerTest, HardDeadlineRevokesRemainingLeases) {
  ring->SetLeaseView(broker.get());
  ASSERT_THAT(broker->Acquire(app, "lumenfall", absl::Hours(1), ""), IsOk());
  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_TRUE(ring->RefreshProvider("lumenfall", source).ok());
  clock.Advance(absl::Hours(24 * 8) + absl::Minutes(1));  // overlap + retire_grace
  ASSERT_TRUE(ring->RefreshProvider("lumenfall", source).ok());
  ring->Tick();
  EXPECT_EQ(ring->Snapshot()->Find("lumenfall")->Find("v1"), nullptr);
  EXPECT_EQ(broker->ActiveLeases("lumenfall", "v1"), 0);
  EXPECT_EQ(broker->table().size(), 0u);
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_leases_revoked_total{caller="billing",provider="lumenfall"} 1)"));
}

TEST_F(LeaseBrokerTest, SweepExpiresAndCounts) {
  ASSERT_THAT(broker->Acquire(app, "lumenfall", absl::Minutes(1), ""), IsOk());
  ASSERT_THAT(broker->Acquire(app, "lumenfall", absl::Minutes(20), ""), IsOk());
  clock.Advance(absl::Minutes(2));
  EXPECT_EQ(broker->SweepExpired(), 1u);
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_leases_expired_total{caller="billing",provider="lumenfall"} 1)"));
  EXPECT_THAT(Scrape(),
              HasSubstr(R"(credbroker_active_leases{key_version="v1",provider="lumenfall"} 1)"));
}

// The broker's hooks into the anomaly detector: what it records, and suspensions.
class LeaseBrokerAnomalyTest : public ::testing::Test, public BrokerFixture {
 protected:
  void Build(anomaly::AnomalyOptions options) {
    options.learning_period = absl::Minutes(5);
    detector = std::make_unique<anomaly::AnomalyDetector>(
        options, &clock, metrics.get(), [this](const anomaly::Anomaly& a) {
          found.push_back(a);
          if (a.action == anomaly::AnomalyAction::kSuspend) {
            revoked += broker->RevokeCallerLeases(a.caller, a.provider, "CALLER_SUSPENDED");
          }
        });
    broker->SetAnomalyDetector(detector.get());
  }
  std::unique_ptr<anomaly::AnomalyDetector> detector;
  std::vector<anomaly::Anomaly> found;
  int64_t revoked = 0;
};

TEST_F(LeaseBrokerAnomalyTest, ASuspensionHitsOneIdentityNotEveryoneSharingItsLabel) {
  // billing and search are both matched only by "*": both have the metric label "unknown".
  v1::PolicyConfig config;
  auto* rule = config.add_rules();
  rule->add_identities("*");
  rule->add_providers("*");
  identity::Policy policy(config, &clock);
  broker = std::make_unique<LeaseBroker>(ring.get(), table.get(), &counts, metrics.get(), &clock,
                                         TtlPolicy{}, &policy);
  anomaly::AnomalyOptions options;
  options.retired_key_use = anomaly::AnomalyAction::kSuspend;
  Build(options);
  ASSERT_EQ(policy.MetricLabel("search"), policy.MetricLabel("billing"));
  auto mine = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  auto theirs = broker->Acquire(other, "lumenfall", absl::ZeroDuration(), "");
  ASSERT_THAT(mine, IsOk());
  ASSERT_THAT(theirs, IsOk());
  detector->RecordRetiredKeyUse(other.name, "lumenfall", "v1", "a report on a retired key");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].caller, "search");
  EXPECT_EQ(revoked, 1);
  EXPECT_THAT(broker->Renew(other, theirs->lease.id, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(broker->Acquire(other, "lumenfall", absl::ZeroDuration(), ""),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // billing shares the label, not the verdict.
  EXPECT_THAT(broker->Renew(app, mine->lease.id, absl::ZeroDuration()), IsOk());
  EXPECT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), IsOk());
}

TEST_F(LeaseBrokerAnomalyTest, RenewalOfARetiredKeyIsRetiredKeyUseAndSuspends) {
  anomaly::AnomalyOptions options;
  options.retired_key_use = anomaly::AnomalyAction::kSuspend;
  Build(options);
  auto held = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  auto other = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  ASSERT_THAT(held, IsOk());
  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  // v1 leaves service (removed from the source) while the caller still holds it.
  source.Remove("lumenfall", "v1");
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  auto r = broker->Renew(app, held->lease.id, absl::ZeroDuration());
  EXPECT_EQ(core::ReasonOf(r.status()), "KEY_RETIRED");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].kind, anomaly::AnomalyKind::kRetiredKeyUse);
  EXPECT_EQ(found[0].key_version, "v1");
  EXPECT_EQ(found[0].caller, "billing");
  // Suspended: both of its leases are revoked and new ones refused; other callers are not.
  EXPECT_EQ(revoked, 2);
  auto refused = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(core::ReasonOf(refused.status()), "CALLER_SUSPENDED");
  EXPECT_THAT(broker->Acquire(other_identity, "lumenfall", absl::ZeroDuration(), ""), IsOk());
  clock.Advance(absl::Minutes(16));
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  EXPECT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), IsOk());
}

TEST_F(LeaseBrokerAnomalyTest, UseOfALeaseRevokedWithItsQuarantinedKeyIsRetiredKeyUse) {
  Build(anomaly::AnomalyOptions{});
  ring->SetLeaseView(broker.get());
  auto g = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  ASSERT_THAT(g, IsOk());
  source.Put("lumenfall", "v2", kLmnV2);
  ASSERT_THAT(ring->RefreshProvider("lumenfall", source), IsOk());
  auto on_v2 = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  ASSERT_THAT(ring->Quarantine("lumenfall", "v1", "leaked"), IsOk());
  EXPECT_THAT(broker->ReportAuthFailure(app, g->lease.id, 401, ""),
              StatusIs(absl::StatusCode::kNotFound));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].kind, anomaly::AnomalyKind::kRetiredKeyUse);
  EXPECT_THAT(found[0].detail, HasSubstr("KEY_QUARANTINED"));
  // A report on a live key counts toward the failure baseline and is no anomaly.
  ASSERT_THAT(broker->ReportAuthFailure(app, on_v2->lease.id, 401, ""), IsOk());
  EXPECT_EQ(found.size(), 1u);
}

class LeaseBrokerPolicyTest : public ::testing::Test, public BrokerFixture {
 protected:
  LeaseBrokerPolicyTest() {
    v1::PolicyConfig config;
    auto* rule = config.add_rules();
    rule->add_identities("billing");
    rule->add_providers("lumenfall");
    rule->mutable_max_ttl()->set_seconds(600);
    rule->set_max_active_leases(2);
    rule->mutable_rate_limit()->set_per_second(1);
    rule->mutable_rate_limit()->set_burst(3);
    policy = std::make_unique<identity::Policy>(config, &clock);
    audit = identity::AuditLog::ToSink(
        [this](absl::string_view line) { audit_lines.emplace_back(line); }, &clock);
    broker = std::make_unique<LeaseBroker>(ring.get(), table.get(), &counts, metrics.get(), &clock,
                                           TtlPolicy{}, policy.get(), audit.get());
  }
  std::unique_ptr<identity::Policy> policy;
  std::unique_ptr<identity::AuditLog> audit;
  std::vector<std::string> audit_lines;
};

TEST_F(LeaseBrokerPolicyTest, NoRuleIsPermissionDeniedCountedAndAudited) {
  auto denied = broker->Acquire(other, "lumenfall", absl::ZeroDuration(), "");
  EXPECT_THAT(denied, StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("search")));
  EXPECT_EQ(core::ReasonOf(denied.status()), "NO_RULE");
  EXPECT_THAT(
      Scrape(),
      HasSubstr(
          R"(credbroker_policy_denials_total{caller="unknown",provider="lumenfall",reason="NO_RULE"} 1)"));
  ASSERT_EQ(audit_lines.size(), 1u);
  EXPECT_THAT(audit_lines[0], HasSubstr(R"("action":"AcquireLease","caller":"search")"));
  EXPECT_THAT(audit_lines[0], HasSubstr(R"("decision":"deny","reason":"NO_RULE")"));
}

TEST_F(LeaseBrokerPolicyTest, ACallerWithoutARuleLearnsNothingAboutProviders) {
  // Unknown, unloaded and stale providers all answer NO_RULE, as a loaded one does.
  source.FailListing(absl::UnavailableError("vault down: secret/ai/lumenfall"));
  clock.Advance(absl::Hours(2));
  (void)ring->RefreshProvider("lumenfall", source);
  for (const std::string provider : {"nope", "fluximage", "lumenfall"}) {
    auto denied = broker->Acquire(other, provider, absl::ZeroDuration(), "");
    EXPECT_THAT(denied, StatusIs(absl::StatusCode::kPermissionDenied, Not(HasSubstr("vault"))))
        << provider;
    EXPECT_EQ(core::ReasonOf(denied.status()), "NO_RULE") << provider;
  }
  // A caller with a rule learns the provider is unavailable, not the backend's error.
  auto stale = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  EXPECT_THAT(stale, StatusIs(absl::StatusCode::kUnavailable, Not(HasSubstr("vault"))));
  EXPECT_EQ(core::ReasonOf(stale.status()), "BACKEND_STALE");
}

TEST_F(LeaseBrokerPolicyTest, RuleCapsTtlAndActiveLeasesAndAuditsWithoutKeys) {
  auto a = broker->Acquire(app, "lumenfall", absl::Hours(1), "");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->lease.expires_at - a->lease.issued_at, absl::Minutes(10));
  ASSERT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), IsOk());
  auto third = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  EXPECT_THAT(third, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_EQ(core::ReasonOf(third.status()), "TOO_MANY_LEASES");
  // Releasing one frees a slot.
  ASSERT_THAT(broker->Release(app, a->lease.id), IsOk());
  clock.Advance(absl::Seconds(5));  // refill the bucket
  EXPECT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), IsOk());
  for (const std::string& line : audit_lines) {
    EXPECT_THAT(line, Not(HasSubstr(kLmnV1)));
  }
  EXPECT_THAT(audit_lines.front(), HasSubstr(R"("key_fingerprint":")" + core::Fingerprint(kLmnV1)));
}

TEST_F(LeaseBrokerPolicyTest, RateLimitIsResourceExhaustedAndCounted) {
  std::vector<std::string> ids;
  for (int i = 0; i < 2; ++i) {
    auto g = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
    ASSERT_THAT(g, IsOk());
    ids.push_back(g->lease.id);
  }
  for (const std::string& id : ids) ASSERT_THAT(broker->Release(app, id), IsOk());
  ASSERT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), IsOk());  // 3rd token
  auto limited = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  EXPECT_THAT(limited, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("retry in")));
  EXPECT_EQ(core::ReasonOf(limited.status()), "RATE_LIMITED");
  EXPECT_THAT(
      Scrape(),
      HasSubstr(R"(credbroker_rate_limit_hits_total{caller="billing",provider="lumenfall"} 1)"));
}

TEST_F(LeaseBrokerPolicyTest, RenewIsCappedByTheRule) {
  auto g = broker->Acquire(app, "lumenfall", absl::ZeroDuration(), "");
  ASSERT_THAT(g, IsOk());
  auto r = broker->Renew(app, g->lease.id, absl::Hours(1));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->lease.expires_at - clock.Now(), absl::Minutes(10));
}

TEST(TtlPolicyTest, FromConfigTakesTheLeaseLimits) {
  v1::LeaseConfig c;
  c.mutable_default_ttl()->set_seconds(600);
  c.mutable_min_ttl()->set_seconds(5);
  c.mutable_max_ttl()->set_seconds(7200);
  const TtlPolicy p = TtlPolicy::FromConfig(c);
  EXPECT_EQ(p.default_ttl, absl::Minutes(10));
  EXPECT_EQ(p.min_ttl, absl::Seconds(5));
  EXPECT_EQ(p.max_ttl, absl::Hours(2));
}

}  // namespace
}  // namespace credbroker::leasing
