#include "credbroker/client/lease_client.h"

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "credbroker/client/mock_lease_connection.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::client {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::_;
using ::testing::NiceMock;
using ::testing::Return;

// A WatchKeys stream the test feeds; every WatchKeys call gets a view of the same queue.
class EventQueue {
 public:
  void Push(v1::KeyEvent event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(std::move(event));
  }
  absl::StatusOr<std::optional<v1::KeyEvent>> Next() {
    absl::MutexLock lock(&mu_);
    auto ready = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return cancelled_ || !events_.empty(); };
    mu_.Await(absl::Condition(&ready));
    if (cancelled_) return absl::CancelledError("cancelled");
    v1::KeyEvent event = std::move(events_.front());
    events_.pop_front();
    return std::optional<v1::KeyEvent>(std::move(event));
  }
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

 private:
  absl::Mutex mu_;
  std::deque<v1::KeyEvent> events_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

class QueueStream final : public KeyEventStream {
 public:
  explicit QueueStream(EventQueue* queue) : queue_(queue) {}
  absl::StatusOr<std::optional<v1::KeyEvent>> Next() override { return queue_->Next(); }
  void Cancel() override { queue_->Cancel(); }

 private:
  EventQueue* const queue_;
};

v1::Lease MakeLease(const std::string& id, const std::string& version,
                    absl::Duration ttl = absl::Minutes(10), absl::Time issued = absl::Now()) {
  v1::Lease l;
  l.set_lease_id(id);
  l.set_provider("lumenfall");
  l.set_api_key("key-" + version);
  l.set_key_version(version);
  l.set_base_url("https://api.lumenfall.ai/v1");
  l.set_header_name("Authorization");
  l.set_header_value("Bearer key-" + version);
  core::ToProtoTime(issued, l.mutable_issued_at());
  core::ToProtoTime(issued + ttl, l.mutable_expires_at());
  return l;
}

v1::KeyEvent Event(v1::KeyEvent::Type type, const std::string& version) {
  v1::KeyEvent e;
  e.set_type(type);
  e.set_provider("lumenfall");
  e.set_key_version(version);
  return e;
}

class LeaseClientTest : public ::testing::Test {
 protected:
  LeaseClientTest() {
    ON_CALL(*mock_, WatchKeys(_)).WillByDefault([this](const v1::WatchKeysRequest&) {
      return std::make_unique<QueueStream>(&events_);
    });
    ON_CALL(*mock_, ReleaseLease(_)).WillByDefault([this](const v1::ReleaseLeaseRequest& r) {
      absl::MutexLock lock(&mu_);
      released_.push_back(r.lease_id());
      return absl::OkStatus();
    });
  }
  static LeaseClientOptions Options() {
    LeaseClientOptions o;
    o.retry_interval = absl::Milliseconds(5);
    return o;
  }
  // Waits until the client released `id`.
  void AwaitReleased(const std::string& id) {
    absl::MutexLock lock(&mu_);
    auto done = [this, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::find(released_.begin(), released_.end(), id) != released_.end();
    };
    mu_.Await(absl::Condition(&done));
  }

  std::shared_ptr<NiceMock<MockLeaseConnection>> mock_ =
      std::make_shared<NiceMock<MockLeaseConnection>>();
  EventQueue events_;
  absl::Mutex mu_;
  std::vector<std::string> released_ ABSL_GUARDED_BY(mu_);
};

TEST_F(LeaseClientTest, AcquiresOnceAndServesTheHeaderAndBaseUrl) {
  EXPECT_CALL(*mock_, AcquireLease(_)).WillOnce(Return(MakeLease("l1", "v1")));
  {
    LeaseClient client(mock_, Options());
    absl::StatusOr<LeaseClient::Header> h = client.AuthorizationHeader("lumenfall");
    ASSERT_THAT(h, IsOk());
    EXPECT_EQ(h->name, "Authorization");
    EXPECT_EQ(h->value, "Bearer key-v1");
    EXPECT_EQ(*client.BaseUrl("lumenfall"), "https://api.lumenfall.ai/v1");
    EXPECT_EQ(client.AuthorizationHeader("lumenfall")->value, "Bearer key-v1");
  }
  AwaitReleased("l1");  // released when the client goes away
}

TEST_F(LeaseClientTest, RenewsInTheBackgroundAndReacquiresWhatTheBrokerForgot) {
  // A short lease: due for renewal after 200 ms.
  EXPECT_CALL(*mock_, AcquireLease(_))
      .WillOnce(Return(MakeLease("l1", "v1", absl::Milliseconds(300))))
      .WillOnce(Return(MakeLease("l2", "v1")));
  absl::Notification renewed;
  EXPECT_CALL(*mock_, RenewLease(_)).WillOnce([&](const v1::RenewLeaseRequest& r) {
    EXPECT_EQ(r.lease_id(), "l1");
    renewed.Notify();
    return absl::NotFoundError("no such lease (the broker restarted)");
  });
  LeaseClient client(mock_, Options());
  ASSERT_THAT(client.AuthorizationHeader("lumenfall"), IsOk());
  renewed.WaitForNotification();
  // The broker's answer leads to a new lease; the next call uses it.
  while (client.CurrentLease("lumenfall")->lease_id() != "l2") {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(client.AuthorizationHeader("lumenfall")->value, "Bearer key-v1");
}

// Each renewal is scheduled from when its grant arrived: a long-lived lease (whose issued_at
// stays the first grant's) is renewed at the same cadence, never ever sooner.
TEST_F(LeaseClientTest, RenewalsKeepTheirCadenceAsTheLeaseAges) {
  constexpr absl::Duration kTtl = absl::Milliseconds(300);
  const absl::Time issued = absl::Now();
  EXPECT_CALL(*mock_, AcquireLease(_)).WillOnce(Return(MakeLease("l1", "v1", kTtl, issued)));
  absl::Mutex mu;
  std::vector<absl::Time> renewals;
  ON_CALL(*mock_, RenewLease(_)).WillByDefault([&](const v1::RenewLeaseRequest&) {
    absl::MutexLock lock(&mu);
    renewals.push_back(absl::Now());
    v1::Lease renewed = MakeLease("l1", "v1", kTtl, issued);
    core::ToProtoTime(absl::Now() + kTtl, renewed.mutable_expires_at());
    return absl::StatusOr<v1::Lease>(renewed);
  });
  LeaseClient client(mock_, Options());
  ASSERT_THAT(client.AuthorizationHeader("lumenfall"), IsOk());
  {
    absl::MutexLock lock(&mu);
    auto enough = [&renewals]() { return renewals.size() >= 5; };
    mu.Await(absl::Condition(&enough));
    // 2/3 of each 300 ms grant: 200 ms apart (more on a slow machine, never less).
    for (size_t i = 1; i < renewals.size(); ++i) {
      EXPECT_GE(renewals[i] - renewals[i - 1], absl::Milliseconds(190)) << "renewal " << i;
    }
  }
}

TEST_F(LeaseClientTest, AQuarantinedKeyIsDroppedAtOnce) {
  EXPECT_CALL(*mock_, AcquireLease(_))
      .WillOnce(Return(MakeLease("l1", "v1")))
      .WillRepeatedly(Return(MakeLease("l2", "v2")));
  LeaseClient client(mock_, Options());
  ASSERT_EQ(client.AuthorizationHeader("lumenfall")->value, "Bearer key-v1");
  events_.Push(Event(v1::KeyEvent::QUARANTINED, "v1"));
  AwaitReleased("l1");  // the drop released the lease
  EXPECT_EQ(client.AuthorizationHeader("lumenfall")->value, "Bearer key-v2");
}

TEST_F(LeaseClientTest, ARotationMovesToTheNewKeyWithoutAnError) {
  absl::Notification second;
  EXPECT_CALL(*mock_, AcquireLease(_))
      .WillOnce(Return(MakeLease("l1", "v1")))
      .WillOnce([&](const v1::AcquireLeaseRequest&) {
        second.Notify();
        return MakeLease("l2", "v2");
      });
  LeaseClient client(mock_, Options());
  ASSERT_EQ(client.AuthorizationHeader("lumenfall")->value, "Bearer key-v1");
  events_.Push(Event(v1::KeyEvent::ROTATED, "v2"));
  second.WaitForNotification();
  AwaitReleased("l1");
  EXPECT_EQ(client.AuthorizationHeader("lumenfall")->value, "Bearer key-v2");
}

// The broker down longer than the lease: the key serves until the lease's expiry, never after.
TEST_F(LeaseClientTest, NoKeyPastItsLeaseWhenTheBrokerIsDown) {
  const v1::Lease lease = MakeLease("l1", "v1", absl::Milliseconds(300));
  const absl::Time expires = core::FromProtoTime(lease.expires_at());
  EXPECT_CALL(*mock_, AcquireLease(_))
      .WillOnce(Return(lease))
      .WillRepeatedly(Return(absl::UnavailableError("connection refused")));
  ON_CALL(*mock_, RenewLease(_))
      .WillByDefault(Return(absl::UnavailableError("connection refused")));
  LeaseClient client(mock_, Options());
  absl::StatusOr<LeaseClient::Header> h;
  while (true) {
    const absl::Time asked = absl::Now();
    h = client.AuthorizationHeader("lumenfall");
    if (!h.ok()) break;
    EXPECT_LT(asked, expires) << "a key served past its lease";
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(h, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_GE(absl::Now(), expires);
}

TEST_F(LeaseClientTest, AReportedFailureMovesToANewerKey) {
  EXPECT_CALL(*mock_, AcquireLease(_))
      .WillOnce(Return(MakeLease("l1", "v1")))
      .WillRepeatedly(Return(MakeLease("l2", "v2")));
  EXPECT_CALL(*mock_, ReportAuthFailure(_)).WillOnce([](const v1::ReportAuthFailureRequest& r) {
    EXPECT_EQ(r.lease_id(), "l1");
    EXPECT_EQ(r.http_status(), 401);
    v1::ReportAuthFailureResponse resp;
    resp.set_newer_key_available(true);
    resp.set_classification("key_rejected");
    return resp;
  });
  LeaseClient client(mock_, Options());
  ASSERT_THAT(client.AuthorizationHeader("lumenfall"), IsOk());
  EXPECT_EQ(*client.ReportAuthFailure("lumenfall", 401, "invalid_api_key"), "key_rejected");
  EXPECT_EQ(client.AuthorizationHeader("lumenfall")->value, "Bearer key-v2");
  EXPECT_THAT(client.ReportAuthFailure("fluximage", 401),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace credbroker::client
