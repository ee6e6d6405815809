// End to end: the gcp source, with the real broker, against the Secret Manager + metadata server
// stand-in (tests/fixtures/gcp_fixture.py): the access token from the metadata server, the newest
// ENABLED version served, a new version followed, a DISABLED one never served, a version whose
// checksum arrives wrong refused (DATA_LOSS) while the previous one serves, and an outage served
// from cache up to max_staleness.
#include "absl/strings/escaping.h"
#include "credbroker/core/log.h"
#include "e2e_fixture.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::e2e {
namespace {

constexpr char kProject[] = "credbroker-e2e";
constexpr char kToken[] = "ya29.e2e-broker-token-0001";

class GcpEndToEndTest : public EndToEndTest {
 protected:
  void SetUp() override {
    EndToEndTest::SetUp();
    auto gcp = testing::ChildProcess::Start(
        {"/usr/bin/python3", CB_GCP_FIXTURE, "--port-file", dir_.Join("gcp.port")},
        dir_.Join("gcp.port"), dir_.Join("gcp.log"));
    ASSERT_THAT(gcp.status(), testing::IsOk());
    gcp_.emplace(std::move(*gcp));
    gcp_host_ = absl::StrCat("127.0.0.1:", gcp_->port());
    gcp_address_ = absl::StrCat("http://", gcp_host_);

    // The broker's service account may read and list the versions of its secrets; the
    // metadata server hands out its token.
    PostJson(gcp_address_ + "/__fixture/identity",
             absl::StrCat(R"({"principal":"serviceAccount:credbroker@credbroker-e2e.iam.)",
                          R"(gserviceaccount.com","roles":[)",
                          R"({"role":"roles/secretmanager.secretAccessor","secret":"*"},)",
                          R"({"role":"roles/secretmanager.viewer","secret":"*"}],"token":")",
                          kToken, R"("})"));
    Versions({{kLmnV1, "ENABLED"}});
    WriteFile(dir_.Join("broker.yaml"), absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 1s
sources:
  - name: gcp
    gcp:
      project: )",
                                                     kProject, R"(
      endpoint: )",
                                                     gcp_address_, R"(
      name_prefix: credbroker-
      auth: {metadata_server: {host: ")",
                                                     gcp_host_, R"("}}
      max_attempts: 2
    refresh_interval: 200ms
    max_staleness: 2s
providers:
  - name: lumenfall
    probe: {disabled: true}
policy:
  rules: [{identities: [e2e-app], providers: ["*"]}]
identity:
  static_tokens:
    - service: e2e-app
      token: e2e-app-token-0123456789
    - service: e2e-admin
      token_file: admin.token
      admin: true
)"));
  }

  struct Version {
    std::string value;
    std::string state;
  };
  // Replaces the secret's versions (numbered 1.. oldest first, one second apart).
  void Versions(const std::vector<Version>& versions) {
    std::string list;
    int created = 0;
    for (const Version& v : versions) {
      absl::StrAppend(
          &list, list.empty() ? "" : ",", R"({"data_b64":")", absl::Base64Escape(v.value),
          R"(","state":")", v.state, R"(","create_time":")",
          absl::FormatTime(absl::RFC3339_full, absl::FromUnixSeconds(1'700'000'000 + ++created),
                           absl::UTCTimeZone()),
          R"("})");
    }
    PostJson(gcp_address_ + "/__fixture/secret",
             absl::StrCat(R"({"project_id":")", kProject,
                          R"(","project_number":"210987654321","secret":"credbroker-lumenfall",)",
                          R"("versions":[)", list, "]}"));
  }

  // How many times the fixture answered (or refused) `operation`.
  int Requests(const std::string& operation) {
    auto r = RunCommand({"/usr/bin/curl", "-sf", gcp_address_ + "/__fixture/state"});
    google::protobuf::Struct state;
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(r.output, &state, opts).ok()) return -1;
    auto requests = state.fields().find("requests");
    if (requests == state.fields().end()) return 0;
    const auto& ops = requests->second.struct_value().fields();
    auto it = ops.find(operation);
    return it == ops.end() ? 0 : static_cast<int>(it->second.number_value());
  }

  std::string CurrentVersion() {
    v1::Lease l;
    return Acquire("lumenfall", &l).ok() ? l.key_version() : "";
  }

  std::optional<testing::ChildProcess> gcp_;
  std::string gcp_host_;
  std::string gcp_address_;
};

TEST_F(GcpEndToEndTest, ServesEnabledVersionsRefusesBadChecksumsAndFailsClosedAfterAnOutage) {
  ASSERT_NO_FATAL_FAILURE(StartBroker());
  v1::Lease lease;
  ASSERT_TRUE(Acquire("lumenfall", &lease).ok()) << broker_->Logs();
  EXPECT_EQ(lease.key_version(), "1");
  EXPECT_EQ(core::Fingerprint(lease.api_key()), core::Fingerprint(kLmnV1));

  // A new version (gcloud secrets versions add) is followed.
  Versions({{kLmnV1, "ENABLED"}, {kLmnV2, "ENABLED"}});
  ASSERT_TRUE(Eventually([&] { return CurrentVersion() == "2"; })) << broker_->Logs();

  // A newer DISABLED version is never served: after two more listings the broker still serves 2.
  Versions({{kLmnV1, "ENABLED"}, {kLmnV2, "ENABLED"}, {kLmnV1 + "d", "DISABLED"}});
  const int listed = Requests("ListSecretVersions");
  ASSERT_TRUE(Eventually([&] { return Requests("ListSecretVersions") >= listed + 2; }));
  EXPECT_EQ(CurrentVersion(), "2");

  // A version whose payload arrives with a wrong dataCrc32c is refused (DATA_LOSS, counted by
  // reason) and 2 keeps serving; the fixture corrupts one access only, so the next refresh reads
  // it intact and follows it.
  PostJson(gcp_address_ + "/__fixture/corrupt-crc",
           R"({"secret":"credbroker-lumenfall","version":4})");
  Versions({{kLmnV1, "ENABLED"},
            {kLmnV2, "ENABLED"},
            {kLmnV1 + "d", "DISABLED"},
            {kLmnV1 + "x", "ENABLED"}});
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(), R"(credbroker_backend_errors_total{backend="gcp",reason="checksum_mismatch"})");
  })) << Metrics();
  ASSERT_TRUE(Eventually([&] { return CurrentVersion() == "4"; })) << broker_->Logs();
  EXPECT_THAT(broker_->Logs(), HasSubstr("dataCrc32c"));

  // Secret Manager unreachable: cached keys serve until max_staleness, then UNAVAILABLE.
  PostJson(gcp_address_ + "/__fixture/outage", R"({"on":true})");
  ASSERT_TRUE(Eventually([&] {
    return absl::StrContains(
        Metrics(), R"(credbroker_backend_errors_total{backend="gcp",reason="unavailable"})");
  }));
  EXPECT_EQ(CurrentVersion(), "4");
  grpc::Status stale;
  ASSERT_TRUE(Eventually([&] {
    v1::Lease l;
    stale = Acquire("lumenfall", &l);
    return stale.error_code() == grpc::StatusCode::UNAVAILABLE;
  }));
  EXPECT_EQ(Reason(stale), "BACKEND_STALE");
  PostJson(gcp_address_ + "/__fixture/outage", R"({"on":false})");
  ASSERT_TRUE(Eventually([&] { return CurrentVersion() == "4"; })) << broker_->Logs();

  const std::string logs = broker_->Logs();
  EXPECT_THAT(logs, Not(HasSubstr(kLmnV2)));
  EXPECT_THAT(logs, Not(HasSubstr(kToken)));
  EXPECT_THAT(Requests("AccessSecretVersion"), ::testing::Gt(0));
}

}  // namespace
}  // namespace credbroker::e2e
