#include "credbroker/state/etcd/lease_store.h"

#include <thread>

#include "../../tests/lease_store_conformance.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/etcd/etcd_cluster.h"
#include "credbroker/testing/temp_dir.h"

namespace credbroker::state::etcd {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kPrefix[] = "/credbroker-test/";

// Polls `condition` until it holds or 30 s passed.
template <typename F>
bool Eventually(F condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

// One replica's view of the cluster: its own client, watcher and lease store.
struct Replica {
  std::unique_ptr<EtcdClient> client;
  std::unique_ptr<PrefixWatcher> watcher;
  std::unique_ptr<EtcdLeaseStore> store;

  static std::unique_ptr<Replica> Open(const std::vector<std::string>& endpoints,
                                       EtcdLeaseStoreOptions options = {},
                                       bool start_watch = true) {
    auto r = std::make_unique<Replica>();
    EtcdClientOptions client_options;
    client_options.endpoints = endpoints;
    client_options.request_timeout = absl::Milliseconds(1500);
    r->client = *EtcdClient::Create(client_options);
    etcdserverpb::RangeRequest now;
    now.set_key(kPrefix);
    now.set_count_only(true);
    const int64_t revision = r->client->Range(now)->header().revision();
    r->watcher = std::make_unique<PrefixWatcher>(r->client.get(), kPrefix, revision);
    absl::StatusOr<std::unique_ptr<EtcdLeaseStore>> store =
        EtcdLeaseStore::Open(r->client.get(), r->watcher.get(), kPrefix, revision, options);
    EXPECT_THAT(store, IsOk());
    r->store = *std::move(store);
    if (start_watch) r->watcher->Start();
    return r;
  }
  ~Replica() {
    store.reset();
    watcher.reset();
  }
};

// The store as the conformance suite sees it, with the replica that holds it.
class ReplicaStore final : public LeaseStore {
 public:
  explicit ReplicaStore(std::unique_ptr<Replica> r) : r_(std::move(r)) {}
  absl::StatusOr<int64_t> Create(const LeaseRecord& l) override { return s().Create(l); }
  absl::StatusOr<int64_t> Update(const LeaseRecord& l, int64_t r) override {
    return s().Update(l, r);
  }
  absl::StatusOr<LeaseRecord> Delete(const LeaseDelete& r) override { return s().Delete(r); }
  absl::StatusOr<std::vector<LeaseRecord>> DeleteAll(const std::vector<LeaseDelete>& r) override {
    return s().DeleteAll(r);
  }
  absl::StatusOr<std::vector<LeaseRecord>> DeleteExpired(absl::Time now) override {
    return s().DeleteExpired(now);
  }
  absl::StatusOr<VersionedLease> Get(const std::string& id) override { return s().Get(id); }
  absl::StatusOr<LeaseListing> List() override { return s().List(); }
  absl::StatusOr<std::unique_ptr<LeaseWatch>> Watch(int64_t after, LeaseWatchFn fn) override {
    return s().Watch(after, std::move(fn));
  }

 private:
  EtcdLeaseStore& s() { return *r_->store; }
  std::unique_ptr<Replica> r_;
};

struct EtcdFactory {
  TempDir dir;
  std::unique_ptr<testing::EtcdCluster> cluster = *testing::EtcdCluster::Start(dir.path());
  std::unique_ptr<LeaseStore> Make() const {
    return std::make_unique<ReplicaStore>(Replica::Open(cluster->endpoints()));
  }
};
INSTANTIATE_TYPED_TEST_SUITE_P(Etcd, LeaseStoreConformanceTest, ::testing::Types<EtcdFactory>);

class EtcdLeaseStoreTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::unique_ptr<testing::EtcdCluster> cluster_ = *testing::EtcdCluster::Start(dir_.path());
};

TEST_F(EtcdLeaseStoreTest, ALeaseWrittenOnOneReplicaIsSeenAndChangedOnAnother) {
  auto a = Replica::Open(cluster_->endpoints());
  auto b = Replica::Open(cluster_->endpoints());
  Recorder on_b;
  auto watch = b->store->Watch(b->store->List()->revision, on_b.Fn());
  ASSERT_THAT(watch, IsOk());

  const int64_t created = *a->store->Create(TestLease("x"));
  ASSERT_TRUE(Eventually([&] { return on_b.changes().size() == 1; }));
  EXPECT_THAT(on_b.Summary(), ElementsAre(absl::StrCat("put x@", created)));
  EXPECT_EQ(on_b.changes()[0].lease.caller, "billing/api");

  // B renews with the revision it saw; A's stale revision is then refused.
  LeaseRecord renewed = TestLease("x");
  renewed.renew_count = 4;
  absl::StatusOr<int64_t> r2 = b->store->Update(renewed, created);
  ASSERT_THAT(r2, IsOk());
  EXPECT_THAT(a->store->Update(TestLease("x"), created), StatusIs(absl::StatusCode::kAborted));
  absl::StatusOr<VersionedLease> got = a->store->Get("x");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->lease.renew_count, 4);
  EXPECT_EQ(got->revision, *r2);

  // A releases what B renewed; both see it gone.
  absl::StatusOr<LeaseRecord> gone = a->store->Delete({"x", *r2});
  ASSERT_THAT(gone, IsOk());
  EXPECT_EQ(gone->renew_count, 4);
  ASSERT_TRUE(Eventually([&] { return on_b.changes().size() == 3; }));
  EXPECT_EQ(on_b.changes()[2].type, LeaseChange::Type::kDelete);
  EXPECT_EQ(on_b.changes()[2].lease.renew_count, 4);
  EXPECT_THAT(b->store->Get("x"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EtcdLeaseStoreTest, ConcurrentWritesShareTxns) {
  auto a = Replica::Open(cluster_->endpoints());
  constexpr int kWriters = 32;
  constexpr int kEach = 20;
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&a, t] {
      for (int i = 0; i < kEach; ++i) {
        EXPECT_THAT(a->store->Create(TestLease(absl::StrCat("w", t, "-", i))), IsOk());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(a->store->writes(), kWriters * kEach);
  // 32 writers waiting on one committer: batches hold more than one write.
  EXPECT_LT(a->store->commits(), a->store->writes());
  EXPECT_EQ(a->store->List()->leases.size(), static_cast<size_t>(kWriters * kEach));
}

TEST_F(EtcdLeaseStoreTest, EtcdRemovesALeaseNobodySweptAfterItExpired) {
  EtcdLeaseStoreOptions options;
  options.bucket = absl::Seconds(1);
  auto a = Replica::Open(cluster_->endpoints(), options);
  Recorder rec;
  auto watch = a->store->Watch(a->store->List()->revision, rec.Fn());
  ASSERT_THAT(watch, IsOk());
  ASSERT_THAT(a->store->Create(TestLease("short", absl::Now())), IsOk());
  ASSERT_THAT(a->store->Create(TestLease("long")), IsOk());
  // The short lease's etcd lease ends one bucket after its expiry: etcd deletes the key.
  ASSERT_TRUE(Eventually([&] { return rec.changes().size() == 3; }));
  EXPECT_EQ(rec.changes()[2].type, LeaseChange::Type::kDelete);
  EXPECT_EQ(rec.changes()[2].lease.id, "short");
  EXPECT_THAT(a->store->Get("long"), IsOk());
}

TEST_F(EtcdLeaseStoreTest, EtcdDownFailsWritesWithinTheTimeoutAndRecovers) {
  auto a = Replica::Open(cluster_->endpoints());
  auto b = Replica::Open(cluster_->endpoints());
  ASSERT_THAT(a->store->Create(TestLease("before")), IsOk());
  cluster_->Kill(0);
  const absl::Time start = absl::Now();
  absl::StatusOr<int64_t> down = a->store->Create(TestLease("during"));
  EXPECT_THAT(down, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("etcd")));
  EXPECT_EQ(core::ReasonOf(down.status()), "STATE_UNAVAILABLE");
  // Bounded by the request timeout (1.5 s) and the queue, not hanging.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_THAT(a->store->Get("before"), StatusIs(absl::StatusCode::kUnavailable));

  ASSERT_THAT(cluster_->Restart(0), IsOk());
  Recorder on_b;
  // B's watch reconnects by itself and resumes: it sees what A writes after the outage.
  absl::StatusOr<LeaseListing> listing;
  ASSERT_TRUE(Eventually([&] {
    listing = b->store->List();
    return listing.ok();
  }));
  auto watch = b->store->Watch(listing->revision, on_b.Fn());
  ASSERT_THAT(watch, IsOk());
  absl::StatusOr<int64_t> after;
  ASSERT_TRUE(Eventually([&] {
    after = a->store->Create(TestLease("after"));
    return after.ok();
  }));
  ASSERT_TRUE(Eventually([&] { return !on_b.changes().empty(); }));
  EXPECT_THAT(on_b.Summary(), ElementsAre(absl::StrCat("put after@", *after)));
}

TEST_F(EtcdLeaseStoreTest, AWatchThatFellBehindACompactionReloads) {
  auto a = Replica::Open(cluster_->endpoints());
  ASSERT_THAT(a->store->Create(TestLease("kept")), IsOk());
  ASSERT_THAT(a->store->Create(TestLease("dropped")), IsOk());
  // B reads the leases now but follows them only after A changed them and etcd compacted.
  auto b = Replica::Open(cluster_->endpoints(), {}, /*start_watch=*/false);
  Recorder on_b;
  auto watch = b->store->Watch(b->watcher->delivered(), on_b.Fn());
  ASSERT_THAT(watch, IsOk());
  ASSERT_THAT(a->store->Delete({"dropped", 0}), IsOk());
  const int64_t added = *a->store->Create(TestLease("added"));
  etcdserverpb::CompactionRequest compact;
  compact.set_revision(added);
  etcdserverpb::CompactionResponse compacted;
  grpc::ClientContext context;
  auto channel = grpc::CreateChannel(cluster_->endpoint(0), grpc::InsecureChannelCredentials());
  ASSERT_TRUE(etcdserverpb::KV::NewStub(channel)->Compact(&context, compact, &compacted).ok());

  b->watcher->Start();
  ASSERT_TRUE(Eventually([&] { return on_b.changes().size() == 2; }));
  std::vector<std::string> summary = on_b.Summary();
  std::sort(summary.begin(), summary.end());
  EXPECT_THAT(summary, ElementsAre(absl::StrCat("delete dropped@", added),
                                   absl::StrCat("put added@", added)));
  // Changes from before the reload are no longer remembered: a new follower must list.
  EXPECT_THAT(b->store->Watch(added - 1, on_b.Fn()), StatusIs(absl::StatusCode::kOutOfRange));
}

}  // namespace
}  // namespace credbroker::state::etcd
