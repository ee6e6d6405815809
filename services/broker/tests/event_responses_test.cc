// The subscribers that turn key events and anomalies into audit lines, revocations and WatchKeys
// events, on the real leasing::LeaseBroker over an in-memory lease store.
#include "event_responses.h"

#include <string>
#include <vector>

#include "broker_fixture.h"  // libs/leasing/tests
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::broker {
namespace {

using leasing::BrokerFixture;

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::SizeIs;

class EventResponsesTest : public ::testing::Test, public BrokerFixture {
 protected:
  EventResponsesTest()
      : audit_(identity::AuditLog::ToSink(
            [this](absl::string_view line) { lines_.emplace_back(line); }, &clock)) {}

  std::unique_ptr<identity::AuditLog> audit_;
  std::vector<std::string> lines_;
};

TEST_F(EventResponsesTest, KeyTransitionsAndRejectionsAreAuditedAnomaliesAreNot) {
  KeyTransitionAuditor auditor(audit_.get());
  rotation::KeyEvent rotated;
  rotated.type = rotation::KeyEvent::Type::kRotated;
  rotated.provider = "lumenfall";
  rotated.version_id = "v2";
  rotated.fingerprint = "0123456789ab";
  rotated.state = rotation::KeyState::kCurrent;
  rotated.reason = "probe accepted";
  rotation::KeyEvent rejected = rotated;
  rejected.type = rotation::KeyEvent::Type::kRejected;
  rejected.version_id = "v3";
  rotation::KeyEvent anomaly = rotated;
  anomaly.type = rotation::KeyEvent::Type::kAnomaly;
  auditor({rotated, rejected, anomaly});
  ASSERT_THAT(lines_, SizeIs(2));
  EXPECT_THAT(lines_[0],
              AllOf(HasSubstr(R"("action":"KeyTransition")"), HasSubstr(R"("key_version":"v2")"),
                    HasSubstr(R"("decision":"CURRENT")"),
                    HasSubstr(R"("key_fingerprint":"0123456789ab")")));
  EXPECT_THAT(lines_[1],
              AllOf(HasSubstr(R"("key_version":"v3")"), HasSubstr(R"("decision":"REJECTED")")));
}

TEST_F(EventResponsesTest, ASuspensionRevokesTheCallersLeasesAuditsAndTellsWatchers) {
  ASSERT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), testing::IsOk());
  ASSERT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), testing::IsOk());
  ASSERT_THAT(broker->Acquire(other, "lumenfall", absl::ZeroDuration(), ""), testing::IsOk());
  std::vector<rotation::KeyEvent> announced;
  uint64_t sub = 0;
  ring->Subscribe(
      [&](const std::vector<rotation::KeyEvent>& ev) {
        announced.insert(announced.end(), ev.begin(), ev.end());
      },
      &sub);
  state::InMemorySharedFacts facts;
  AnomalyResponder respond(broker.get(), audit_.get(), ring.get(), &facts);
  anomaly::Anomaly a;
  a.kind = anomaly::AnomalyKind::kRateSpike;
  a.action = anomaly::AnomalyAction::kSuspend;
  a.caller = broker->Label(app.name);
  a.provider = "lumenfall";
  a.detail = "120 leases in a bucket, baseline 10";
  a.at = clock.Now();
  a.suspended_until = clock.Now() + absl::Minutes(15);
  respond(a);
  ring->Unsubscribe(sub);
  // Only the suspended caller's leases went.
  EXPECT_EQ(table->size(), 1u);
  EXPECT_EQ(table->List([](const leasing::LeaseRecord&) { return true; })[0].caller, other.name);
  EXPECT_THAT(lines_.back(),
              AllOf(HasSubstr(R"("action":"Anomaly")"), HasSubstr(R"("decision":"suspend")"),
                    HasSubstr("2 leases revoked")));
  ASSERT_THAT(announced, SizeIs(1));
  EXPECT_EQ(announced[0].type, rotation::KeyEvent::Type::kAnomaly);
  EXPECT_EQ(announced[0].anomaly_kind, "rate_spike");
  EXPECT_EQ(announced[0].caller, a.caller);
  // Stored for every replica (and a restart) to enforce.
  auto stored = facts.List(clock.Now());
  ASSERT_THAT(stored, testing::IsOk());
  ASSERT_THAT(stored->facts, SizeIs(1));
  EXPECT_EQ(stored->facts[0].suspension.caller, a.caller);
  EXPECT_EQ(stored->facts[0].suspension.until, a.suspended_until);
  EXPECT_EQ(stored->facts[0].suspension.reason, "rate_spike");
}

TEST_F(EventResponsesTest, AnAlertRevokesNothing) {
  ASSERT_THAT(broker->Acquire(app, "lumenfall", absl::ZeroDuration(), ""), testing::IsOk());
  state::InMemorySharedFacts facts;
  AnomalyResponder respond(broker.get(), audit_.get(), ring.get(), &facts);
  anomaly::Anomaly a;
  a.kind = anomaly::AnomalyKind::kNewCaller;
  a.action = anomaly::AnomalyAction::kAlert;
  a.caller = broker->Label(app.name);
  a.provider = "lumenfall";
  a.at = clock.Now();
  respond(a);
  EXPECT_EQ(table->size(), 1u);
  EXPECT_THAT(lines_.back(), HasSubstr(R"("decision":"alert")"));
  EXPECT_THAT(facts.List(clock.Now())->facts, SizeIs(0));  // nothing suspended
}

}  // namespace
}  // namespace credbroker::broker
