#include "credbroker/state/etcd/watcher.h"

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "credbroker/state/etcd/etcd_cluster.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::state::etcd {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

TEST(PrefixEndTest, IsTheFirstKeyAfterEveryKeyWithThePrefix) {
  EXPECT_EQ(PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

class Collect final : public PrefixWatcher::Handler {
 public:
  void Apply(const std::vector<const mvccpb::Event*>& events) override {
    absl::MutexLock lock(&mu_);
    for (const mvccpb::Event* e : events) keys_.push_back(e->kv().key());
  }
  absl::Status Reload(int64_t) override { return absl::OkStatus(); }
  std::vector<std::string> keys() {
    absl::MutexLock lock(&mu_);
    return keys_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> keys_ ABSL_GUARDED_BY(mu_);
};

template <typename F>
bool Eventually(F condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return condition();
}

absl::StatusOr<int64_t> Put(EtcdClient& client, const std::string& key) {
  etcdserverpb::TxnRequest txn;
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value("v");
  absl::StatusOr<etcdserverpb::TxnResponse> r = client.Txn(txn);
  if (!r.ok()) return r.status();
  return r->header().revision();
}

TEST(PrefixWatcherTest, DispatchesByKeyRange) {
  credbroker::testing::TempDir dir;
  auto cluster = testing::EtcdCluster::Start(dir.path());
  ASSERT_THAT(cluster, IsOk());
  EtcdClientOptions options;
  options.endpoints = (*cluster)->endpoints();
  auto client = EtcdClient::Create(options);
  ASSERT_THAT(client, IsOk());
  PrefixWatcher watcher(client->get(), "/p/", 0);
  Collect leases;
  Collect keys;
  watcher.Register("/p/leases/", &leases);
  watcher.Register("/p/keys/", &keys);
  watcher.Start();
  ASSERT_THAT(Put(**client, "/p/leases/1"), IsOk());
  ASSERT_THAT(Put(**client, "/p/keys/a"), IsOk());
  ASSERT_THAT(Put(**client, "/p/other"), IsOk());
  const absl::StatusOr<int64_t> last = Put(**client, "/p/leases/2");
  ASSERT_THAT(last, IsOk());
  ASSERT_TRUE(Eventually([&] { return watcher.delivered() >= *last; }));
  EXPECT_THAT(leases.keys(), ::testing::ElementsAre("/p/leases/1", "/p/leases/2"));
  EXPECT_THAT(keys.keys(), ::testing::ElementsAre("/p/keys/a"));
}

}  // namespace
}  // namespace credbroker::state::etcd
