// End to end: Running the broker: graceful stop, health, reflection, credctl, bad config, ports,
// the example.
#include "e2e_fixture.h"

namespace credbroker::e2e {
namespace {

TEST_F(EndToEndTest, GracefulStopExitsZeroEvenWithAWatcherOpen) {
  StartBroker();
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + kAppToken);
  auto reader = lease_->WatchKeys(&ctx, v1::WatchKeysRequest());
  v1::KeyEvent e;
  ASSERT_TRUE(reader->Read(&e));
  EXPECT_EQ(broker_->Stop(), 0);
  EXPECT_THAT(broker_->Logs(), HasSubstr("credbroker stopped"));
  broker_.reset();
  while (reader->Read(&e)) {
  }
  // Watchers are told at once, so they can reconnect to another replica.
  grpc::Status end = reader->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE) << end.error_message();
}

TEST_F(EndToEndTest, HealthCheckAnswersWithoutAToken) {
  StartBroker();
  for (const char* service : {"", "readiness", "liveness", "credbroker.v1.LeaseService"}) {
    grpc::health::v1::HealthCheckResponse::ServingStatus status;
    grpc::Status s = CheckHealth(channel_, service, &status);
    ASSERT_TRUE(s.ok()) << service << ": " << s.error_message();
    EXPECT_EQ(status, grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  // Without server.health_listen there is no second listener.
  EXPECT_EQ(broker_->health_port(), 0);
}

// ServerReflectionInfo{list_services: ""}: the raw answer, or the status the call ended with.
absl::StatusOr<std::string> ListServicesByReflection(
    const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  bool started = cq.Next(&tag, &ok) && ok;
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer req(&slice, 1);
  grpc::ByteBuffer resp;
  bool answered = false;
  if (started) {
    call->Write(req, reinterpret_cast<void*>(2));
    if (cq.Next(&tag, &ok) && ok) {
      call->Read(&resp, reinterpret_cast<void*>(3));
      answered = cq.Next(&tag, &ok) && ok;
    }
  }
  std::string bytes;
  if (answered) {
    std::vector<grpc::Slice> slices;
    if (resp.Dump(&slices).ok()) {
      for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    ctx.TryCancel();
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(4)) {
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (answered) return bytes;
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

TEST_F(EndToEndTest, ReflectionIsOffUnlessConfigured) {
  StartBroker();
  // Off by default: what the broker serves is no caller's business.
  EXPECT_THAT(ListServicesByReflection(channel_),
              testing::StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_EQ(broker_->Stop(), 0);
  broker_.reset();
  std::string config = kConfig;
  config.replace(config.find("  shutdown_grace: 1s\n"), 0, "  reflection: true\n");
  WriteFile(dir_.Join("broker.yaml"), config);
  StartBroker();
  absl::StatusOr<std::string> listed = ListServicesByReflection(channel_);
  ASSERT_THAT(listed, testing::IsOk());
  EXPECT_THAT(*listed, HasSubstr("credbroker.v1.LeaseService"));
  EXPECT_THAT(*listed, HasSubstr("credbroker.v1.AdminService"));
}

TEST_F(EndToEndTest, CredctlWorksForHumansAndScripts) {
  StartBroker();
  auto acquired = Credctl({"--json", "lease", "acquire", "lumenfall", "--ttl", "5m"});
  ASSERT_EQ(acquired.exit_code, 0) << acquired.output;
  EXPECT_THAT(acquired.output, HasSubstr("\"key_version\":\"v1\""));
  EXPECT_THAT(acquired.output, Not(HasSubstr(kLmnV1))) << "no key without --reveal-key";
  std::string id = acquired.output.substr(acquired.output.find("\"lease_id\":\"") + 12, 22);
  auto renewed = Credctl({"lease", "renew", id});
  ASSERT_EQ(renewed.exit_code, 0) << renewed.output;
  EXPECT_THAT(renewed.output, HasSubstr("renew_count:  1"));
  auto revealed = Credctl({"--json", "--reveal-key", "lease", "renew", id});
  ASSERT_EQ(revealed.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(revealed.output, kLmnV1)) << "--reveal-key prints the key";
  auto released = Credctl({"lease", "release", id});
  EXPECT_EQ(released.exit_code, 0);
  auto again = Credctl({"lease", "release", id});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.output, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(again.output, HasSubstr("LEASE_NOT_FOUND"));

  auto keys = Credctl({"keys"}, kAdminToken);
  ASSERT_EQ(keys.exit_code, 0) << keys.output;
  // v1's row: CURRENT, and its DUE column holds the due date the admin API reports.
  std::vector<std::string> row;
  for (absl::string_view line : absl::StrSplit(keys.output, '\n')) {
    if (absl::StrContains(line, core::Fingerprint(kLmnV1))) {
      row = absl::StrSplit(line, ' ', absl::SkipEmpty());
    }
  }
  ASSERT_EQ(row.size(), 10u) << keys.output;
  EXPECT_EQ(row[3], "-");  // lumenfall's dashboard shows no part of a key
  EXPECT_EQ(row[4], "CURRENT");
  EXPECT_EQ(row[9], "-");  // no scopes named for lumenfall's key
  v1::ListKeyVersionsRequest list;
  list.set_provider("lumenfall");
  v1::ListKeyVersionsResponse versions;
  ASSERT_TRUE(admin_->ListKeyVersions(Ctx(kAdminToken).get(), list, &versions).ok());
  ASSERT_EQ(versions.versions_size(), 1);
  ASSERT_TRUE(versions.versions(0).has_due_at());
  EXPECT_EQ(row[7], absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                     absl::FromUnixSeconds(versions.versions(0).due_at().seconds()),
                                     absl::UTCTimeZone()));
  // fluximage's dashboard shows a masked prefix: the same hint in credctl keys, the admin API,
  // WatchKeys and the audit lines.
  const std::string flx_hint = "flx_live_ccccc...cccc";
  EXPECT_THAT(keys.output, HasSubstr(flx_hint));
  list.set_provider("fluximage");
  ASSERT_TRUE(admin_->ListKeyVersions(Ctx(kAdminToken).get(), list, &versions).ok());
  ASSERT_EQ(versions.versions_size(), 1);
  EXPECT_EQ(versions.versions(0).key_hint(), flx_hint);
  auto watched = Credctl({"watch", "--count", "1", "fluximage"});
  EXPECT_THAT(watched.output, HasSubstr(flx_hint));
  auto providers = Credctl({"--json", "providers"}, kAdminToken);
  ASSERT_EQ(providers.exit_code, 0);
  EXPECT_THAT(providers.output, HasSubstr("\"name\":\"fluximage\""));
  EXPECT_THAT(providers.output, HasSubstr("\"single_key\":true"));
  auto denied = Credctl({"providers"});
  EXPECT_NE(denied.exit_code, 0);
  EXPECT_THAT(denied.output, HasSubstr("PERMISSION_DENIED"));

  auto not_admin = Credctl({"quarantine", "lumenfall", "v1"});
  EXPECT_NE(not_admin.exit_code, 0);
  auto quarantined =
      Credctl({"quarantine", "fluximage", "v1", "--reason", "leaked in CI logs"}, kAdminToken);
  ASSERT_EQ(quarantined.exit_code, 0) << quarantined.output;
  auto gone = Credctl({"lease", "acquire", "fluximage"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_THAT(gone.output, HasSubstr("NO_KEY")) << "its only key is quarantined";
  EXPECT_THAT(broker_->Logs(), HasSubstr("key version quarantined"));

  auto watch = Credctl({"--json", "watch", "lumenfall", "--count", "2"});
  ASSERT_EQ(watch.exit_code, 0) << watch.output;
  EXPECT_THAT(watch.output, HasSubstr("\"type\":\"SNAPSHOT\""));
  EXPECT_THAT(watch.output, HasSubstr("\"type\":\"SYNCED\""));
}

// credctl on the client library: the token from a file (as a pod's projected token), a clear
// error naming a token file it cannot read, and a provider's 401 reported with a lease.
TEST_F(EndToEndTest, CredctlTakesItsTokenFromAFileAndReportsAuthFailures) {
  StartBroker();
  WriteFile(dir_.Join("app.token"), kAppToken + "\n");
  auto ctl = [&](std::vector<std::string> args, const std::string& token_file) {
    std::vector<std::string> argv = {credctl_, "--addr", broker_->grpc_address(), "--token-file",
                                     token_file};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  };
  auto acquired = ctl({"--json", "lease", "acquire", "lumenfall"}, dir_.Join("app.token"));
  ASSERT_EQ(acquired.exit_code, 0) << acquired.output;
  const std::string id = acquired.output.substr(acquired.output.find("\"lease_id\":\"") + 12, 22);
  auto keys = ctl({"keys"}, dir_.Join("admin.token"));
  EXPECT_EQ(keys.exit_code, 0) << keys.output;
  auto missing = ctl({"lease", "acquire", "lumenfall"}, dir_.Join("no.token"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.output, HasSubstr(dir_.Join("no.token")));

  auto reported =
      ctl({"lease", "report", id, "401", "--reason", "invalid_api_key"}, dir_.Join("app.token"));
  ASSERT_EQ(reported.exit_code, 0) << reported.output;
  EXPECT_THAT(reported.output, HasSubstr("classification: "));
  EXPECT_THAT(Metrics(), HasSubstr("credbroker_auth_failure_reports_total{"));
  auto unknown = ctl({"lease", "report", "AAAAAAAAAAAAAAAAAAAAAA", "401"}, dir_.Join("app.token"));
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.output, HasSubstr("LEASE_NOT_FOUND"));
}

TEST_F(EndToEndTest, BadConfigExitsNonZeroNamingTheField) {
  WriteFile(dir_.Join("bad.yaml"), std::string(kConfig) + "      rotation_period: 7d\n");
  // The appended line lands under the last static token: an unknown field there.
  const int line = static_cast<int>(std::count(kConfig, kConfig + sizeof(kConfig), '\n')) + 1;
  auto r = RunCommand({binary_, "--config", dir_.Join("bad.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("bad.yaml:", line, ":")));
  EXPECT_THAT(r.output, HasSubstr("identity.static_tokens[1].rotation_period"));

  WriteFile(dir_.Join("bad2.yaml"), R"(sources: [{name: local, file: {root: keys}}]
providers:
  - name: lumenfall
    rotation_period: 120d
)");
  auto check = RunCommand({binary_, "--check-config", dir_.Join("bad2.yaml")});
  EXPECT_EQ(check.exit_code, 2);
  EXPECT_THAT(check.output,
              HasSubstr("bad2.yaml:4: providers[0].rotation_period: must be between 30d and 90d"));
  auto ok = RunCommand({binary_, "--check-config", dir_.Join("broker.yaml")});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  auto ctl = RunCommand({credctl_, "check-config", dir_.Join("bad2.yaml")});
  EXPECT_NE(ctl.exit_code, 0);
  EXPECT_THAT(ctl.output, HasSubstr("rotation_period"));
  auto missing = RunCommand({binary_, "--config", dir_.Join("nope.yaml")});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output, HasSubstr("nope.yaml"));
  auto flag = RunCommand({binary_, "--bogus"});
  EXPECT_EQ(flag.exit_code, 2);
}

TEST_F(EndToEndTest, PortInUseIsAClearStartupError) {
  StartBroker();
  auto second = RunCommand({binary_, "--config", dir_.Join("broker.yaml"), "--listen",
                            broker_->grpc_address(), "--data-dir", dir_.Join("data2")});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.output, HasSubstr("cannot listen"));
}

// One broker owns a SQLite data dir: a second one started on it (a stray replica, a restart that
// overlaps the old process) stops at once, says why, and leaves the first one serving.
TEST_F(EndToEndTest, ASecondBrokerOnTheSameDataDirIsAClearStartupError) {
  StartBroker();
  auto second = RunCommand({binary_, "--config", dir_.Join("broker.yaml")});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.output, HasSubstr("state.db"));
  EXPECT_THAT(second.output, HasSubstr("locked by another process"));
  v1::Lease lease;
  EXPECT_TRUE(Acquire("lumenfall", &lease).ok());
}

TEST_F(EndToEndTest, ShippedExampleConfigServesDemoKeys) {
  const std::string src = CB_SOURCE_DIR;
  auto proc = BrokerProcess::Start(
      binary_,
      {"--config", src + "/examples/local.yaml", "--listen", "127.0.0.1:0", "--metrics-listen",
       "127.0.0.1:0", "--data-dir", dir_.Join("demo-data")},
      dir_.path());
  ASSERT_THAT(proc.status(), testing::IsOk());
  auto channel = grpc::CreateChannel(proc->grpc_address(), grpc::InsecureChannelCredentials());
  auto stub = v1::LeaseService::NewStub(channel);
  for (const char* provider : {"fluximage", "lumenfall", "firemoon", "magichour", "example-ai"}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer demo-app-token-change-me");
    v1::AcquireLeaseRequest req;
    req.set_provider(provider);
    v1::Lease lease;
    grpc::Status s = stub->AcquireLease(&ctx, req, &lease);
    EXPECT_TRUE(s.ok()) << provider << ": " << s.error_message();
  }
}

// audit.fail_closed, as Vault does: while the audit log cannot be written (/dev/full refuses
// every write, as a full disk does) every request is refused with AUDIT_UNAVAILABLE, and each
// failed write is counted. (Recovery once the disk takes writes again: AuditLogTest.)
TEST_F(EndToEndTest, AFailClosedAuditLogThatCannotBeWrittenRefusesRequests) {
  WriteFile(dir_.Join("broker.yaml"),
            std::string(kConfig) + "audit: {path: /dev/full, fail_closed: true}\n");
  StartBroker();
  v1::Lease lease;
  grpc::Status s;
  // The first line written (of a request, or of the keys loaded at start) fails.
  ASSERT_TRUE(Eventually([&] {
    s = Acquire("lumenfall", &lease);
    return s.error_code() == grpc::StatusCode::UNAVAILABLE;
  })) << s.error_message();
  EXPECT_EQ(Reason(s), "AUDIT_UNAVAILABLE");
  EXPECT_EQ(Renew("any", &lease).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(Metrics(), ::testing::ContainsRegex("credbroker_audit_write_failures_total [1-9]"));
  EXPECT_THAT(broker_->Logs(), HasSubstr("refusing requests until it is written"));
}

}  // namespace
}  // namespace credbroker::e2e
