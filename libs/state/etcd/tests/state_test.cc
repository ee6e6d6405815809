#include "credbroker/state/etcd/state.h"

#include <atomic>

#include "../../../rotation/tests/key_state_store_conformance.h"
#include "../../tests/shared_facts_conformance.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/state/etcd/etcd_cluster.h"
#include "credbroker/testing/broker_process.h"
#include "credbroker/testing/temp_dir.h"

namespace credbroker::state::etcd {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;
using rotation::KeyState;
using rotation::TestKeyVersion;

template <typename F>
bool Eventually(F condition, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

v1::EtcdStoreConfig Config(const std::vector<std::string>& endpoints, const std::string& name,
                           absl::Duration election_ttl = absl::Seconds(3)) {
  v1::EtcdStoreConfig c;
  for (const std::string& e : endpoints) c.add_endpoints(e);
  c.set_prefix("/cb-test/");
  core::ToProtoDuration(absl::Seconds(2), c.mutable_dial_timeout());
  core::ToProtoDuration(absl::Milliseconds(1500), c.mutable_request_timeout());
  core::ToProtoDuration(election_ttl, c.mutable_election_ttl());
  c.set_replica_name(name);
  return c;
}

std::unique_ptr<EtcdState> OpenLeader(const testing::EtcdCluster& cluster,
                                      absl::Duration retention = absl::Hours(1)) {
  absl::StatusOr<std::unique_ptr<EtcdState>> s =
      EtcdState::Open(Config(cluster.endpoints(), "only"), retention);
  EXPECT_THAT(s, IsOk());
  EXPECT_TRUE(Eventually([&] { return (*s)->leadership().IsLeader(); }));
  return *std::move(s);
}

class EtcdKeyStateFactory {
 public:
  rotation::KeyStateStore* Make() {
    state_ = OpenLeader(*cluster_);
    return &state_->key_states();
  }

 private:
  TempDir dir_;
  std::unique_ptr<testing::EtcdCluster> cluster_ = *testing::EtcdCluster::Start(dir_.path());
  std::unique_ptr<EtcdState> state_;
};

class EtcdFactsFactory {
 public:
  SharedFacts* Make(absl::Duration retention) {
    state_ = OpenLeader(*cluster_, retention);
    return &state_->facts();
  }

 private:
  TempDir dir_;
  std::unique_ptr<testing::EtcdCluster> cluster_ = *testing::EtcdCluster::Start(dir_.path());
  std::unique_ptr<EtcdState> state_;
};

}  // namespace
}  // namespace credbroker::state::etcd

namespace credbroker::rotation {
INSTANTIATE_TYPED_TEST_SUITE_P(Etcd, KeyStateStoreConformanceTest,
                               ::testing::Types<state::etcd::EtcdKeyStateFactory>);
}  // namespace credbroker::rotation
namespace credbroker::state {
INSTANTIATE_TYPED_TEST_SUITE_P(Etcd, SharedFactsConformanceTest,
                               ::testing::Types<etcd::EtcdFactsFactory>);
}  // namespace credbroker::state

namespace credbroker::state::etcd {
namespace {

TEST(EtcdStateTest, ExactlyOneReplicaLeadsAndACleanStopHandsOver) {
  TempDir dir;
  auto cluster = testing::EtcdCluster::Start(dir.path());
  ASSERT_THAT(cluster, IsOk());
  auto a = EtcdState::Open(Config((*cluster)->endpoints(), "a"));
  ASSERT_THAT(a, IsOk());
  ASSERT_TRUE(Eventually([&] { return (*a)->leadership().IsLeader(); }));
  auto b = EtcdState::Open(Config((*cluster)->endpoints(), "b"));
  ASSERT_THAT(b, IsOk());
  // B campaigned (its candidate key exists) and follows.
  etcdserverpb::RangeRequest candidates;
  candidates.set_key("/cb-test/leader/");
  candidates.set_range_end(PrefixEnd("/cb-test/leader/"));
  ASSERT_TRUE(Eventually([&] {
    EtcdClientOptions o;
    o.endpoints = (*cluster)->endpoints();
    auto client = *EtcdClient::Create(o);
    absl::StatusOr<etcdserverpb::RangeResponse> r = client->Range(candidates);
    return r.ok() && r->kvs_size() == 2;
  }));
  EXPECT_TRUE((*a)->leadership().IsLeader());
  EXPECT_FALSE((*b)->leadership().IsLeader());
  const int64_t epoch_a = (*a)->leadership().Epoch();

  // Only the leader writes decisions; the follower sees them through its watch.
  rotation::KeyStateRecorder on_b;
  auto listing = (*b)->key_states().List();
  ASSERT_THAT(listing, IsOk());
  auto watch = (*b)->key_states().Watch(listing->revision, on_b.Fn());
  ASSERT_THAT(watch, IsOk());
  absl::StatusOr<int64_t> written =
      (*a)->key_states().Write({{TestKeyVersion("v1", KeyState::kCurrent), 0}});
  ASSERT_THAT(written, IsOk());
  EXPECT_THAT((*b)->key_states().Write({{TestKeyVersion("v2", KeyState::kPending), 0}}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*b)->key_states().SaveMintedKeyId("lumenfall", "fp", "id"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_TRUE(Eventually([&] { return on_b.seen().size() == 1; }));
  EXPECT_EQ(on_b.seen()[0], absl::StrCat("v1:CURRENT@", *written));

  // A stops cleanly: its session is revoked and B leads at once (well before the 3 s TTL ends),
  // with a newer epoch.
  absl::Notification b_leads;
  const uint64_t sub = (*b)->leadership().Subscribe([&](bool leader, int64_t) {
    if (leader && !b_leads.HasBeenNotified()) b_leads.Notify();
  });
  a->reset();
  ASSERT_TRUE(b_leads.WaitForNotificationWithTimeout(absl::Seconds(30)));
  (*b)->leadership().Unsubscribe(sub);
  EXPECT_GT((*b)->leadership().Epoch(), epoch_a);
  rotation::PersistedKeyVersion v2 = TestKeyVersion("v2", KeyState::kPending);
  EXPECT_THAT((*b)->key_states().Write({{v2, 0}}), IsOk());
}

TEST(EtcdStateTest, ADeposedLeadersFencedWriteIsRefused) {
  TempDir dir;
  auto cluster = testing::EtcdCluster::Start(dir.path());
  ASSERT_THAT(cluster, IsOk());
  auto a = EtcdState::Open(Config((*cluster)->endpoints(), "a"));
  ASSERT_THAT(a, IsOk());
  ASSERT_TRUE(Eventually([&] { return (*a)->leadership().IsLeader(); }));
  const int64_t epoch = (*a)->leadership().Epoch();
  etcdserverpb::TxnRequest fenced;
  *fenced.add_compare() = (*a)->etcd_leadership().FenceCompare(epoch);
  etcdserverpb::PutRequest* put = fenced.add_success()->mutable_request_put();
  put->set_key("/cb-test/probe");
  put->set_value("x");
  EtcdClientOptions o;
  o.endpoints = (*cluster)->endpoints();
  auto client = *EtcdClient::Create(o);
  ASSERT_TRUE(client->Txn(fenced)->succeeded());

  // A's session ends in etcd (as when it expires behind a partition), whatever A believes.
  etcdserverpb::RangeRequest candidates;
  candidates.set_key("/cb-test/leader/");
  candidates.set_range_end(PrefixEnd("/cb-test/leader/"));
  absl::StatusOr<etcdserverpb::RangeResponse> r = client->Range(candidates);
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->kvs_size(), 1);
  ASSERT_THAT(client->RevokeLease(r->kvs(0).lease()), IsOk());
  // The write fenced by the old term is refused by etcd itself.
  absl::StatusOr<etcdserverpb::TxnResponse> late = client->Txn(fenced);
  ASSERT_THAT(late, IsOk());
  EXPECT_FALSE(late->succeeded());
  // And A notices: it stops leading, then campaigns again with a new session and epoch.
  ASSERT_TRUE(Eventually([&] { return (*a)->leadership().Epoch() != epoch; }));
  EXPECT_THAT((*a)->key_states().Write({{TestKeyVersion("v1", KeyState::kCurrent), 0}}).status(),
              ::testing::AnyOf(IsOk(), StatusIs(absl::StatusCode::kFailedPrecondition)));
  ASSERT_TRUE(Eventually([&] { return (*a)->leadership().Epoch() > epoch; }));
}

TEST(EtcdStateTest, APartitionedLeaderStopsLeadingAndAnotherTakesOver) {
  TempDir dir;
  auto cluster = testing::EtcdCluster::Start(dir.path(), 3);
  ASSERT_THAT(cluster, IsOk());
  // A reaches etcd only through member 0; B through members 1 and 2.
  auto a = EtcdState::Open(Config({(*cluster)->endpoint(0)}, "a"));
  ASSERT_THAT(a, IsOk());
  ASSERT_TRUE(Eventually([&] { return (*a)->leadership().IsLeader(); }));
  auto b = EtcdState::Open(Config({(*cluster)->endpoint(1), (*cluster)->endpoint(2)}, "b"));
  ASSERT_THAT(b, IsOk());
  // The order of the two events is the safety property: A must stop leading before etcd could
  // let B win, so there is never a moment with two leaders.
  std::atomic<int> sequence{0};
  std::atomic<int> a_lost_at{0};
  std::atomic<int> b_won_at{0};
  absl::Notification a_lost;
  absl::Notification b_won;
  const uint64_t sub_a = (*a)->leadership().Subscribe([&](bool leader, int64_t) {
    if (!leader && !a_lost.HasBeenNotified()) {
      a_lost_at = ++sequence;
      a_lost.Notify();
    }
  });
  const uint64_t sub_b = (*b)->leadership().Subscribe([&](bool leader, int64_t) {
    if (leader && !b_won.HasBeenNotified()) {
      b_won_at = ++sequence;
      b_won.Notify();
    }
  });
  (*cluster)->Pause(0);
  // A cannot renew its session: it stops leading, and B takes over once etcd ended A's session.
  ASSERT_TRUE(a_lost.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(b_won.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_LT(a_lost_at.load(), b_won_at.load()) << "A still led when B took over";
  EXPECT_FALSE((*a)->leadership().IsLeader());
  EXPECT_THAT((*b)->key_states().Write({{TestKeyVersion("v1", KeyState::kCurrent), 0}}), IsOk());
  (*cluster)->Resume(0);
  // Back in touch, exactly one of them leads. Usually B keeps the lead, but when the resumed
  // member was etcd's raft leader before the pause, its lessor may revoke the sessions as it
  // comes back (seen with etcd 3.4): both replicas then campaign again, and one wins.
  ASSERT_TRUE(Eventually([&] { return (*a)->key_states().List().ok(); }));
  EXPECT_TRUE(
      Eventually([&] { return (*a)->leadership().IsLeader() != (*b)->leadership().IsLeader(); }));
  (*a)->leadership().Unsubscribe(sub_a);
  (*b)->leadership().Unsubscribe(sub_b);
}

TEST(EtcdStateTest, OpenFailsClearlyWhenEtcdIsUnreachable) {
  auto port = credbroker::testing::FreeLoopbackPort();
  ASSERT_THAT(port, IsOk());
  absl::StatusOr<std::unique_ptr<EtcdState>> s =
      EtcdState::Open(Config({absl::StrCat("127.0.0.1:", *port)}, "x"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                          ::testing::HasSubstr("state.etcd: cannot reach etcd")));
}

TEST(EtcdStateTest, UnreadableFilesAreNamed) {
  v1::EtcdStoreConfig c = Config({"127.0.0.1:2379"}, "x");
  c.mutable_tls()->set_ca("/nonexistent/ca.pem");
  EXPECT_THAT(EtcdState::Open(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                           ::testing::HasSubstr("state.etcd.tls.ca")));
  c.clear_tls();
  c.set_username("broker");
  c.set_password_file("/nonexistent/password");
  EXPECT_THAT(EtcdState::Open(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                           ::testing::HasSubstr("state.etcd.password_file")));
}

}  // namespace
}  // namespace credbroker::state::etcd
