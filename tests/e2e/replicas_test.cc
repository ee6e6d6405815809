// Several real brokers sharing one real etcd (state.etcd): leases acquired on one replica are
// renewed and released on others, limits hold across replicas, key decisions made by the leader
// reach every replica's WatchKeys, a leader killed in the middle of a minted rotation is replaced
// by one that finishes it without minting twice, 401 reports received by different replicas add
// up to one revocation verdict, and etcd outages fail lease calls quickly and heal.
#include <map>
#include <thread>

#include "absl/strings/str_replace.h"
#include "credbroker/state/etcd/etcd_cluster.h"
#include "provider_fixture.h"

namespace credbroker::e2e {
namespace {

using state::etcd::testing::EtcdCluster;

// The fake provider runs for every test (ProbeEndToEndTest); tests that probe or mint write their
// config with WriteConfig and then UseWrittenConfig().
class ReplicasEndToEndTest : public ProbeEndToEndTest {
 protected:
  struct Replica {
    std::optional<BrokerProcess> broker;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::LeaseService::Stub> lease;
    std::unique_ptr<v1::AdminService::Stub> admin;
  };

  void StartEtcd(int members = 1) {
    auto cluster = EtcdCluster::Start(dir_.path(), members);
    ASSERT_THAT(cluster, testing::IsOk());
    etcd_ = *std::move(cluster);
  }

  // Replicas start from the config WriteConfig wrote (instead of the plain e2e one).
  void UseWrittenConfig() { base_config_ = testing::ReadFile(dir_.Join("broker.yaml")); }

  // The base config with `state.etcd` on the test's cluster and the given policy extras.
  std::string Config(const std::string& name, const std::string& rule_extra = "",
                     std::vector<std::string> endpoint_list = {}) {
    std::string yaml = base_config_;
    absl::StrReplaceAll({{"data_dir: data", absl::StrCat("data_dir: data-", name)}}, &yaml);
    if (!rule_extra.empty()) {
      absl::StrReplaceAll(
          {{"      providers: [\"*\"]\n", absl::StrCat("      providers: [\"*\"]\n", rule_extra)}},
          &yaml);
    }
    if (endpoint_list.empty()) endpoint_list = etcd_->endpoints();
    std::string endpoints;
    for (const std::string& e : endpoint_list) absl::StrAppend(&endpoints, "\"", e, "\", ");
    absl::StrAppend(&yaml, "state:\n  etcd:\n    endpoints: [", endpoints,
                    "]\n    prefix: /cb-e2e/\n    request_timeout: 2s\n    election_ttl: 3s\n",
                    "    replica_name: ", name, "\n");
    return yaml;
  }

  // `endpoints`: the etcd members this replica may reach (default: all).
  Replica& StartReplica(const std::string& name, const std::string& rule_extra = "",
                        const std::vector<std::string>& endpoints = {}) {
    const std::string path = dir_.Join(absl::StrCat("broker-", name, ".yaml"));
    WriteFile(path, Config(name, rule_extra, endpoints));
    auto proc = BrokerProcess::Start(binary_, {"--config", path}, dir_.path());
    EXPECT_THAT(proc.status(), testing::IsOk());
    Replica& r = replicas_[name];
    r.broker.emplace(std::move(*proc));
    r.channel = grpc::CreateChannel(r.broker->grpc_address(), grpc::InsecureChannelCredentials());
    r.lease = v1::LeaseService::NewStub(r.channel);
    r.admin = v1::AdminService::NewStub(r.channel);
    return r;
  }

  void TearDown() override {
    for (auto& [name, r] : replicas_) {
      if (!r.broker) continue;
      const int code = r.broker->Stop();
      const std::string logs = r.broker->Logs();
      EXPECT_THAT(logs, Not(HasSubstr("Sanitizer"))) << name;
      EXPECT_EQ(code, 0) << name << " did not exit cleanly on SIGTERM; log:\n" << logs;
    }
    EndToEndTest::TearDown();
  }

  grpc::Status AcquireOn(Replica& r, const std::string& provider, v1::Lease* out) {
    v1::AcquireLeaseRequest req;
    req.set_provider(provider);
    return r.lease->AcquireLease(Ctx().get(), req, out);
  }
  grpc::Status RenewOn(Replica& r, const std::string& id, v1::Lease* out) {
    v1::RenewLeaseRequest req;
    req.set_lease_id(id);
    return r.lease->RenewLease(Ctx().get(), req, out);
  }
  grpc::Status ReleaseOn(Replica& r, const std::string& id) {
    v1::ReleaseLeaseRequest req;
    req.set_lease_id(id);
    v1::ReleaseLeaseResponse resp;
    return r.lease->ReleaseLease(Ctx().get(), req, &resp);
  }
  // Leases the replica knows of (admin ListLeases).
  int LeasesSeenBy(Replica& r) {
    v1::ListLeasesRequest req;
    v1::ListLeasesResponse resp;
    if (!r.admin->ListLeases(Ctx(kAdminToken).get(), req, &resp).ok()) return -1;
    return resp.leases_size();
  }

  // The value of an unlabelled series on the replica's /metrics; -1 when absent.
  static double Metric(Replica& r, const std::string& name) {
    auto body = HttpGet(r.broker->metrics_address(), "/metrics");
    if (!body.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(*body, '\n')) {
      double value = 0;
      if (absl::ConsumePrefix(&line, name + " ") && absl::SimpleAtod(line, &value)) return value;
    }
    return -1;
  }

  // The replica that leads, once exactly one of `candidates` says so (nullptr on timeout).
  Replica* LeaderOf(const std::vector<Replica*>& candidates) {
    Replica* leader = nullptr;
    Eventually([&] {
      int leading = 0;
      for (Replica* r : candidates) {
        if (Metric(*r, "credbroker_state_leader") == 1) {
          leader = r;
          ++leading;
        }
      }
      return leading == 1;
    });
    return leader;
  }

  testing::ProcessResult CredctlOn(Replica& r, std::vector<std::string> args) {
    std::vector<std::string> argv = {credctl_, "--addr", r.broker->grpc_address(), "--token",
                                     kAdminToken};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  grpc::Status ReportOn(Replica& r, const std::string& lease_id, int status,
                        const std::string& token) {
    v1::ReportAuthFailureRequest req;
    req.set_lease_id(lease_id);
    req.set_http_status(status);
    v1::ReportAuthFailureResponse resp;
    return r.lease->ReportAuthFailure(Ctx(token).get(), req, &resp);
  }

  // The fake provider's "created" or "revoked" key ids, as JSON text (`["key_1"]`).
  std::string ProviderIds(const std::string& field) {
    google::protobuf::Struct state;
    if (!google::protobuf::util::JsonStringToMessage(ProviderState(), &state).ok()) return "?";
    auto it = state.fields().find(field);
    if (it == state.fields().end()) return "?";
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(it->second, &out);
    return out;
  }

  // Reads the stream until an event of `type` arrives; false when the stream ends first.
  static bool ReadUntilType(grpc::ClientReader<v1::KeyEvent>& reader, v1::KeyEvent::Type type) {
    v1::KeyEvent e;
    while (reader.Read(&e)) {
      if (e.type() == type) return true;
    }
    return false;
  }

  std::string base_config_ = kConfig;
  std::unique_ptr<EtcdCluster> etcd_;
  std::map<std::string, Replica> replicas_;
};

TEST_F(ReplicasEndToEndTest, OneReplicaLeadsAndTheMetricsSaySo) {
  StartEtcd();
  Replica& a = StartReplica("a");
  Replica& b = StartReplica("b");
  ASSERT_TRUE(Eventually([&] {
    return Metric(a, "credbroker_state_leader") + Metric(b, "credbroker_state_leader") == 1;
  }));
  EXPECT_TRUE(Eventually([&] {
    return Metric(a, "credbroker_state_watch_connected") == 1 &&
           Metric(b, "credbroker_state_watch_connected") == 1;
  }));
  // The leader stops: the other one takes over (its session is revoked on a clean stop).
  Replica& leader = Metric(a, "credbroker_state_leader") == 1 ? a : b;
  Replica& follower = &leader == &a ? b : a;
  EXPECT_EQ(leader.broker->Stop(), 0);
  leader.broker.reset();
  EXPECT_TRUE(Eventually([&] { return Metric(follower, "credbroker_state_leader") == 1; }));
  v1::Lease lease;
  EXPECT_TRUE(AcquireOn(follower, "lumenfall", &lease).ok());
}

TEST_F(ReplicasEndToEndTest, ALeaseAcquiredOnOneReplicaIsRenewedAndReleasedOnOthers) {
  StartEtcd();
  Replica& a = StartReplica("a");
  Replica& b = StartReplica("b");
  Replica& c = StartReplica("c");

  v1::Lease lease;
  ASSERT_TRUE(AcquireOn(a, "lumenfall", &lease).ok());
  EXPECT_EQ(lease.api_key(), kLmnV1);
  // B renews at once: the lease may not be in its cache yet, so it reads it from etcd.
  v1::Lease renewed;
  grpc::Status s = RenewOn(b, lease.lease_id(), &renewed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(renewed.lease_id(), lease.lease_id());
  EXPECT_EQ(renewed.api_key(), kLmnV1);
  EXPECT_GE(renewed.expires_at().seconds(), lease.expires_at().seconds());
  // C releases it; then no replica knows it.
  s = ReleaseOn(c, lease.lease_id());
  ASSERT_TRUE(s.ok()) << s.error_message();
  for (Replica* r : {&a, &b, &c}) {
    ASSERT_TRUE(Eventually([&] {
      v1::Lease gone;
      return RenewOn(*r, lease.lease_id(), &gone).error_code() == grpc::StatusCode::NOT_FOUND;
    }));
  }
  // Another caller's lease id is as unknown on every replica as a made-up one.
  v1::Lease other;
  ASSERT_TRUE(AcquireOn(b, "fluximage", &other).ok());
  EXPECT_TRUE(Eventually([&] { return LeasesSeenBy(a) == 1 && LeasesSeenBy(c) == 1; }));
}

TEST_F(ReplicasEndToEndTest, MaxActiveLeasesHoldsAcrossReplicas) {
  StartEtcd();
  Replica& a = StartReplica("a", "      max_active_leases: 2\n");
  Replica& b = StartReplica("b", "      max_active_leases: 2\n");
  v1::Lease first;
  v1::Lease second;
  ASSERT_TRUE(AcquireOn(a, "lumenfall", &first).ok());
  ASSERT_TRUE(AcquireOn(b, "lumenfall", &second).ok());
  // Once each replica has seen both leases (the counts come from the shared lease data), a third
  // is refused on either.
  ASSERT_TRUE(Eventually([&] { return LeasesSeenBy(a) == 2 && LeasesSeenBy(b) == 2; }));
  v1::Lease third;
  EXPECT_EQ(AcquireOn(a, "lumenfall", &third).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(AcquireOn(b, "lumenfall", &third).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A release on B frees a slot on A.
  ASSERT_TRUE(ReleaseOn(b, first.lease_id()).ok());
  ASSERT_TRUE(Eventually([&] { return LeasesSeenBy(a) == 1; }));
  EXPECT_TRUE(AcquireOn(a, "lumenfall", &third).ok());
}

TEST_F(ReplicasEndToEndTest, AStagedKeyRotatesOnEveryReplica) {
  StartEtcd();
  Replica& a = StartReplica("a");
  Replica& b = StartReplica("b");
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::KeyEvent>>> readers;
  for (Replica* r : {&a, &b}) {
    contexts.push_back(Ctx());
    contexts.back()->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::WatchKeysRequest req;
    req.add_providers("lumenfall");
    readers.push_back(r->lease->WatchKeys(contexts.back().get(), req));
  }
  // The operator stages v2 where every replica reads keys; the leader promotes it (probes are
  // off here) and every replica pushes the rotation.
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1 + "\n"}, {"v2", kLmnV2 + "\n"}});
  for (auto& reader : readers) {
    EXPECT_TRUE(ReadUntil(*reader, v1::KeyEvent::ROTATED, "v2"));
  }
  for (Replica* r : {&a, &b}) {
    ASSERT_TRUE(Eventually([&] {
      v1::Lease l;
      return AcquireOn(*r, "lumenfall", &l).ok() && l.key_version() == "v2";
    }));
  }
  for (auto& c : contexts) c->TryCancel();
  for (auto& reader : readers) reader->Finish();
}

TEST_F(ReplicasEndToEndTest, AnEtcdOutageFailsLeaseCallsQuicklyAndHeals) {
  StartEtcd();
  Replica& a = StartReplica("a");
  v1::Lease held;
  ASSERT_TRUE(AcquireOn(a, "lumenfall", &held).ok());
  auto watch_ctx = Ctx();
  watch_ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::WatchKeysRequest watch_req;
  watch_req.add_providers("lumenfall");
  auto reader = a.lease->WatchKeys(watch_ctx.get(), watch_req);
  ASSERT_TRUE(ReadUntilType(*reader, v1::KeyEvent::SYNCED));
  etcd_->Kill(0);
  v1::Lease lease;
  grpc::Status down = AcquireOn(a, "lumenfall", &lease);  // the client's deadline is 10 s
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  EXPECT_EQ(Reason(down), "STATE_UNAVAILABLE");
  down = RenewOn(a, held.lease_id(), &lease);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  // Listings keep serving what this replica knows, and say it may be behind; so does WatchKeys.
  EXPECT_EQ(LeasesSeenBy(a), 1);
  EXPECT_TRUE(ReadUntilType(*reader, v1::KeyEvent::STATE_STALE));
  v1::ListLeasesResponse listed;
  ASSERT_TRUE(a.admin->ListLeases(Ctx(kAdminToken).get(), {}, &listed).ok());
  EXPECT_TRUE(listed.has_stale_since());
  auto keys = CredctlOn(a, {"keys"});
  EXPECT_EQ(keys.exit_code, 0);
  EXPECT_THAT(keys.output, HasSubstr("may be behind"));
  ASSERT_THAT(etcd_->Restart(0), testing::IsOk());
  // No restart of the broker: it reconnects, and says so.
  ASSERT_TRUE(
      Eventually([&] { return AcquireOn(a, "lumenfall", &lease).ok(); }, absl::Seconds(30)));
  EXPECT_TRUE(RenewOn(a, held.lease_id(), &lease).ok());
  EXPECT_TRUE(ReadUntilType(*reader, v1::KeyEvent::STATE_FRESH));
  listed.Clear();
  ASSERT_TRUE(a.admin->ListLeases(Ctx(kAdminToken).get(), {}, &listed).ok());
  EXPECT_FALSE(listed.has_stale_since());
  watch_ctx->TryCancel();
  (void)reader->Finish();
}

TEST_F(ReplicasEndToEndTest, LeasesSurviveOneEtcdMemberOfThreeAndRecoverWhenAllReturn) {
  StartEtcd(3);
  Replica& a = StartReplica("a");
  Replica& b = StartReplica("b");
  v1::Lease before;
  ASSERT_TRUE(AcquireOn(a, "lumenfall", &before).ok());
  // Member 0 is the first endpoint of both replicas: the one they talk to. If it led the etcd
  // cluster, the other two elect a new leader first (writes meanwhile time out, as with any etcd
  // client); once they have one, the replicas' next calls must work at the first attempt.
  etcd_->Kill(0);
  ASSERT_THAT(etcd_->WaitServing(1), testing::IsOk());
  v1::Lease lease;
  grpc::Status s = AcquireOn(a, "lumenfall", &lease);
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = RenewOn(b, before.lease_id(), &lease);
  EXPECT_TRUE(s.ok()) << s.error_message();
  s = ReleaseOn(b, before.lease_id());
  EXPECT_TRUE(s.ok()) << s.error_message();
  // The watch moved too: B sees A's new lease.
  EXPECT_TRUE(Eventually([&] { return LeasesSeenBy(b) == 1; }));

  // All members stop: calls fail UNAVAILABLE within the request timeout (2 s here; the client
  // waits up to 10 s), the replicas stay up, and they recover when etcd is back.
  etcd_->Kill(1);
  etcd_->Kill(2);
  grpc::Status down = AcquireOn(a, "lumenfall", &lease);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  EXPECT_EQ(Reason(down), "STATE_UNAVAILABLE");
  down = AcquireOn(b, "lumenfall", &lease);
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  EXPECT_EQ(LeasesSeenBy(b), 1);  // listings serve what the replica knows
  ASSERT_THAT(etcd_->RestartKilled(), testing::IsOk());
  for (Replica* r : {&a, &b}) {
    EXPECT_TRUE(
        Eventually([&] { return AcquireOn(*r, "lumenfall", &lease).ok(); }, absl::Seconds(30)));
  }
  EXPECT_TRUE(Eventually([&] { return LeasesSeenBy(a) == 3 && LeasesSeenBy(b) == 3; }));
}

// The leader's only etcd member stops answering (SIGSTOP: its port accepts nothing more): the
// leader stops acting as one within its session TTL, while the cluster keeps its quorum and the
// other replica, which reaches the other members, takes over.
TEST_F(ReplicasEndToEndTest, ALeaderCutOffFromEtcdStopsLeadingAndAnotherTakesOver) {
  StartEtcd(3);
  Replica& a = StartReplica("a", "", {etcd_->endpoint(0)});
  ASSERT_TRUE(Eventually([&] { return Metric(a, "credbroker_state_leader") == 1; }));
  Replica& b = StartReplica("b", "", {etcd_->endpoint(1), etcd_->endpoint(2)});
  ASSERT_TRUE(Eventually([&] { return Metric(b, "credbroker_state_watch_connected") == 1; }));
  EXPECT_EQ(Metric(b, "credbroker_state_leader"), 0);

  etcd_->Pause(0);
  EXPECT_TRUE(Eventually([&] { return Metric(a, "credbroker_state_leader") == 0; }));
  EXPECT_TRUE(Eventually([&] { return Metric(b, "credbroker_state_leader") == 1; }));
  auto refused = CredctlOn(a, {"rotate", "lumenfall"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.output, HasSubstr("NOT_LEADER"));
  v1::Lease lease;
  EXPECT_TRUE(AcquireOn(b, "lumenfall", &lease).ok());
  etcd_->Resume(0);
  // Back in touch, one leader (B, unless etcd ended both sessions as the paused member returned:
  // see EtcdStateTest.APartitionedLeaderStopsLeadingAndAnotherTakesOver).
  EXPECT_TRUE(Eventually([&] {
    return Metric(a, "credbroker_state_leader") + Metric(b, "credbroker_state_leader") == 1;
  }));
}

TEST_F(ReplicasEndToEndTest, ALeaderKilledInTheMiddleOfAMintedRotationIsReplacedWithoutASecondKey) {
  // Both replicas read and write the same folder (as they would share a Vault path).
  WriteFile(dir_.Join("minted/lumenfall/v1"), kLmnV1);
  WriteConfig("minted", MintBlock());
  UseWrittenConfig();
  StartEtcd();
  Replica& a = StartReplica("a");
  Replica& b = StartReplica("b");
  Replica* leader = LeaderOf({&a, &b});
  ASSERT_NE(leader, nullptr);
  Replica* follower = leader == &a ? &b : &a;

  // Key decisions are the leader's: a follower refuses and names it.
  auto refused = CredctlOn(*follower, {"rotate", "lumenfall"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.output, HasSubstr("NOT_LEADER"));
  EXPECT_THAT(refused.output, HasSubstr(leader == &a ? "\"a\"" : "\"b\""));
  // A first rotation on the leader mints v2 (key_1 at the provider): a key the broker may revoke.
  auto rotated = CredctlOn(*leader, {"rotate", "lumenfall"});
  ASSERT_EQ(rotated.exit_code, 0) << rotated.output << leader->broker->Logs();
  EXPECT_THAT(rotated.output, HasSubstr("rotated lumenfall: v2"));
  ASSERT_EQ(ProviderIds("created"), R"(["key_1"])");
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    const bool v2 = AcquireOn(*follower, "lumenfall", &l).ok() && l.key_version() == "v2";
    if (!l.lease_id().empty()) {
      EXPECT_TRUE(ReleaseOn(*follower, l.lease_id()).ok());
    }
    return v2;  // and no lease holds v2 back from retiring later
  }));

  // The second rotation: the leader creates key_2 and stores it as v3, then probes it; the probe
  // hangs at the provider, and the leader is killed there.
  ControlJson("/__fixture/hang", R"({"on": true, "paths": ["/openai/v1/models"]})");
  std::thread second([&] { (void)CredctlOn(*leader, {"rotate", "lumenfall"}); });
  const bool held = Eventually([&] { return ProviderCount("hanging") >= 1; });
  leader->broker->Kill();
  leader->broker.reset();
  second.join();
  ControlJson("/__fixture/hang", R"({"on": false})");
  ASSERT_TRUE(held) << "the rotation never reached its probe";
  ASSERT_EQ(ProviderIds("created"), R"(["key_1","key_2"])");

  // The other replica takes over, probes and promotes v3, and once the 2 s overlap of v2 is over
  // with no lease on it, revokes key_1 at the provider: once, and without minting again.
  ASSERT_TRUE(Eventually([&] { return Metric(*follower, "credbroker_state_leader") == 1; }));
  ASSERT_TRUE(
      Eventually([&] { return ProviderIds("revoked") == R"(["key_1"])"; }, absl::Seconds(30)))
      << ProviderState() << follower->broker->Logs();
  v1::Lease lease;
  ASSERT_TRUE(AcquireOn(*follower, "lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v3");
  EXPECT_EQ(ProviderIds("created"), R"(["key_1","key_2"])");
  google::protobuf::Struct state;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(ProviderState(), &state).ok());
  const auto& requests = state.fields().at("requests").struct_value().fields();
  EXPECT_EQ(requests.at("/v1/keys").number_value(), 2) << "key API create calls";
  EXPECT_EQ(requests.at("/v1/keys/key_1").number_value(), 1) << "revoke calls for key_1";
}

// Revocation detection counts distinct callers across replicas: each replica receives one
// caller's 401, and together they make the burst that gets the key probed and quarantined.
TEST_F(ReplicasEndToEndTest, FourOhOneReportsSpreadOverReplicasQuarantineTheKey) {
  Control("/__fixture/issue", kLmnV2);
  WriteConfig("keys");
  UseWrittenConfig();
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  StartEtcd();
  std::vector<Replica*> replicas = {&StartReplica("a"), &StartReplica("b"), &StartReplica("c")};
  for (Replica* r : replicas) {
    ASSERT_TRUE(Eventually([&] {
      v1::Lease l;
      return AcquireOn(*r, "lumenfall", &l).ok() && l.key_version() == "v2";
    }));
  }
  const std::vector<std::string> tokens = {kAppToken, "billing-token-0123456789",
                                           "search-token-0123456789"};
  std::vector<std::string> leases;
  for (size_t i = 0; i < tokens.size(); ++i) {
    v1::AcquireLeaseRequest req;
    req.set_provider("lumenfall");
    v1::Lease l;
    ASSERT_TRUE(replicas[i]->lease->AcquireLease(Ctx(tokens[i]).get(), req, &l).ok());
    leases.push_back(l.lease_id());
  }
  grpc::ClientContext watch_ctx;
  watch_ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchKeysRequest watch_req;
  auto reader = replicas[0]->lease->WatchKeys(&watch_ctx, watch_req);

  Control("/__fixture/revoke", kLmnV2);
  // One caller per replica; no replica has more than one report of its own.
  for (size_t i = 0; i < tokens.size(); ++i) {
    ASSERT_TRUE(ReportOn(*replicas[i], leases[i], 401, tokens[i]).ok());
  }
  ASSERT_TRUE(ReadUntil(*reader, v1::KeyEvent::QUARANTINED, "v2"));
  for (Replica* r : replicas) {
    EXPECT_TRUE(Eventually([&] {
      v1::Lease l;
      return AcquireOn(*r, "lumenfall", &l).ok() && l.key_version() == "v1";
    }));
  }
  watch_ctx.TryCancel();
}

}  // namespace
}  // namespace credbroker::e2e
