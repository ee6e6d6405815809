// End to end: key scopes as lease scope. example-ai keys carry permissions (read, write, admin,
// webhook); the operator keeps one key line per permission set, callers ask for a scope, and the
// policy limits what each caller may hold.
#include <set>

#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

const std::string kReadKey = "exai-e2e-read-key-0000000001";
const std::string kReadKey2 = "exai-e2e-read-key-0000000002";
const std::string kAdminKey = "exai-e2e-admin-key-000000001";
const std::string kSearchToken = "e2e-search-token-0123456789";

class ScopesEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    // The read line's scopes come from the secret's metadata (a sibling file), the admin line's
    // from the configuration.
    WriteK8sSecretDir(dir_.Join("keys/example-ai"), {{"v1", kReadKey}, {"v1.scopes", "read"}});
    WriteK8sSecretDir(dir_.Join("keys/example-ai-admin"), {{"v1", kAdminKey}});
    WriteFile(dir_.Join("broker.yaml"), R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: local
    file: {root: keys}
    refresh_interval: 1s
providers:
  - name: example-ai
    probe: {disabled: true}
  - name: example-ai-admin
    api: example-ai
    scopes: [admin, read, write]
    probe: {disabled: true}
policy:
  rules:
    - identities: [e2e-app]
      providers: [example-ai]
    - identities: [search]
      providers: [example-ai]
      scopes: [read]
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: search
      token: e2e-search-token-0123456789
    - service: e2e-admin
      token_file: admin.token
      admin: true
)");
  }

  grpc::Status AcquireScoped(const std::string& scope, v1::Lease* out,
                             const std::string& token = kAppToken) {
    v1::AcquireLeaseRequest req;
    req.set_provider("example-ai");
    req.set_scope(scope);
    return lease_->AcquireLease(Ctx(token).get(), req, out);
  }
};

TEST_F(ScopesEndToEndTest, ACallerGetsTheLeastPrivilegedKeyThatCarriesItsScope) {
  StartBroker();
  v1::Lease read;
  grpc::Status s = AcquireScoped("read", &read);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(read.provider(), "example-ai");
  EXPECT_EQ(core::Fingerprint(read.api_key()), core::Fingerprint(kReadKey));
  EXPECT_THAT(read.scopes(), ::testing::ElementsAre("read"));
  v1::Lease admin;
  s = AcquireScoped("admin", &admin);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(admin.provider(), "example-ai-admin");
  EXPECT_EQ(core::Fingerprint(admin.api_key()), core::Fingerprint(kAdminKey));
  EXPECT_THAT(admin.scopes(), ::testing::ElementsAre("admin", "read", "write"));
  v1::Lease none;
  EXPECT_EQ(Reason(AcquireScoped("webhook", &none)), "UNKNOWN_SCOPE");
  // search may hold read keys only.
  v1::Lease search_read;
  ASSERT_TRUE(AcquireScoped("read", &search_read, kSearchToken).ok());
  EXPECT_EQ(search_read.provider(), "example-ai");
  grpc::Status denied = AcquireScoped("admin", &none, kSearchToken);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(denied), "SCOPE_DENIED");

  // search may watch only the line it may hold.
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + kSearchToken);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::WatchKeysRequest req;
    req.add_providers("example-ai-admin");
    auto reader = lease_->WatchKeys(&ctx, req);
    v1::KeyEvent e;
    EXPECT_FALSE(reader->Read(&e));
    EXPECT_EQ(Reason(reader->Finish()), "NO_RULE");
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + kSearchToken);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = lease_->WatchKeys(&ctx, v1::WatchKeysRequest());
    v1::KeyEvent e;
    std::set<std::string> seen;
    while (reader->Read(&e) && e.type() != v1::KeyEvent::SYNCED) seen.insert(e.provider());
    EXPECT_EQ(seen, std::set<std::string>{"example-ai"});
    ctx.TryCancel();
    (void)reader->Finish();
  }

  // credctl asks for a scope and shows each version's scopes.
  auto ctl = Credctl({"lease", "acquire", "example-ai", "--scope", "admin"});
  EXPECT_EQ(ctl.exit_code, 0) << ctl.output;
  EXPECT_THAT(ctl.output, HasSubstr("provider:     example-ai-admin"));
  EXPECT_THAT(ctl.output, HasSubstr("scopes:       admin, read, write"));
  EXPECT_THAT(ctl.output, Not(HasSubstr(kAdminKey)));
  auto keys = Credctl({"keys"}, kAdminToken);
  EXPECT_EQ(keys.exit_code, 0) << keys.output;
  EXPECT_THAT(keys.output, HasSubstr("admin,read,write"));
}

TEST_F(ScopesEndToEndTest, ANewVersionWithWiderScopesIsNoLongerHandedToAReadOnlyCaller) {
  StartBroker();
  v1::Lease lease;
  ASSERT_TRUE(AcquireScoped("read", &lease, kSearchToken).ok());
  // The operator stages v2 of the read line, created at the provider with write too.
  WriteK8sSecretDir(
      dir_.Join("keys/example-ai"),
      {{"v1", kReadKey}, {"v1.scopes", "read"}, {"v2", kReadKey2}, {"v2.scopes", "read,write"}});
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    return AcquireScoped("read", &l).ok() && l.key_version() == "v2";
  }));
  v1::Lease refused;
  grpc::Status s = AcquireScoped("read", &refused, kSearchToken);
  EXPECT_EQ(Reason(s), "SCOPE_DENIED") << s.error_message();
  // Its lease on v1 (read only) still renews through the overlap.
  v1::Lease renewed;
  v1::RenewLeaseRequest req;
  req.set_lease_id(lease.lease_id());
  EXPECT_TRUE(lease_->RenewLease(Ctx(kSearchToken).get(), req, &renewed).ok());
  EXPECT_EQ(renewed.key_version(), "v1");
}

}  // namespace
}  // namespace credbroker::e2e
