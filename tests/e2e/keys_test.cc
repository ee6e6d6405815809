// End to end: Key versions from a file source: rotation written as files, malformed keys, state
// across kill -9.
#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

TEST_F(EndToEndTest, WatchSeesAKeyRotationWrittenAsFiles) {
  StartBroker();
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchKeysRequest req;
  req.add_providers("lumenfall");
  auto reader = lease_->WatchKeys(&ctx, req);
  v1::KeyEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(e.type(), v1::KeyEvent::SNAPSHOT);
  EXPECT_EQ(e.key_version(), "v1");
  ASSERT_TRUE(reader->Read(&e));
  ASSERT_EQ(e.type(), v1::KeyEvent::SYNCED);

  v1::Lease old_lease;
  ASSERT_TRUE(Acquire("lumenfall", &old_lease).ok());

  // The kubelet-style atomic update adds v2.
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  bool rotated = false;
  while (!rotated && reader->Read(&e)) {
    rotated = e.type() == v1::KeyEvent::ROTATED && e.key_version() == "v2";
  }
  ASSERT_TRUE(rotated);
  EXPECT_EQ(e.key_fingerprint(), core::Fingerprint(kLmnV2));

  v1::Lease fresh;
  ASSERT_TRUE(Acquire("lumenfall", &fresh).ok());
  EXPECT_EQ(fresh.key_version(), "v2");
  EXPECT_EQ(core::Fingerprint(fresh.api_key()), core::Fingerprint(kLmnV2));
  // The old lease still renews on the now-PREVIOUS v1, and says when v1 retires.
  v1::Lease renewed;
  ASSERT_TRUE(Renew(old_lease.lease_id(), &renewed).ok());
  EXPECT_EQ(renewed.key_version(), "v1");
  EXPECT_EQ(renewed.key_state(), v1::KEY_STATE_PREVIOUS);
  EXPECT_TRUE(renewed.has_key_retires_at());
  ctx.TryCancel();
  (void)reader->Finish();
}

TEST_F(EndToEndTest, MalformedKeyIsRejectedCountedAndOldKeyKeepsServing) {
  StartBroker();
  const std::string bad = "sk-definitely-not-lumenfall";
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", bad}});
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(),
        R"(credbroker_key_versions_rejected_total{provider="lumenfall",reason="format"} 1)");
  })) << Metrics();
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok());
  EXPECT_EQ(lease.key_version(), "v1");
  std::string logs = broker_->Logs();
  EXPECT_THAT(logs, HasSubstr(core::Fingerprint(bad)));
  EXPECT_THAT(logs, Not(HasSubstr(bad)));
  EXPECT_THAT(Metrics(), Not(HasSubstr(bad)));
}

TEST_F(EndToEndTest, KeyVersionStateSurvivesKill9) {
  StartBroker();
  WriteK8sSecretDir(dir_.Join("keys/lumenfall"), {{"v1", kLmnV1}, {"v2", kLmnV2}});
  auto previous = [&]() -> std::optional<v1::KeyVersionInfo> {
    v1::ListKeyVersionsRequest req;
    req.set_provider("lumenfall");
    v1::ListKeyVersionsResponse resp;
    if (!admin_->ListKeyVersions(Ctx(kAdminToken).get(), req, &resp).ok()) return std::nullopt;
    for (const auto& v : resp.versions()) {
      if (v.key_version() == "v1" && v.state() == v1::KEY_STATE_PREVIOUS) return v;
    }
    return std::nullopt;
  };
  ASSERT_TRUE(Eventually([&] { return previous().has_value(); }));
  const v1::KeyVersionInfo before = *previous();
  broker_->Kill();
  broker_.reset();
  // The restart must come in a later second than the promotion (retires_at - the default 7 day
  // overlap), so that an overlap restarted by it would show in retires_at.
  const absl::Time promoted =
      absl::FromUnixSeconds(before.retires_at().seconds()) - absl::Hours(7 * 24);
  ASSERT_TRUE(Eventually([&] { return absl::Now() >= promoted + absl::Seconds(1); }));
  StartBroker();
  std::optional<v1::KeyVersionInfo> after = previous();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->retires_at().seconds(), before.retires_at().seconds());
  EXPECT_EQ(after->created_at().seconds(), before.created_at().seconds());
}

}  // namespace
}  // namespace credbroker::e2e
