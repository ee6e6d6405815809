#include "credbroker/rotation/key_minter.h"

#include "credbroker/testing/fake_http_client.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::rotation {
namespace {

using ::credbroker::testing::FakeHttpClient;
using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kNewKey = "lmnfl_k7.freshfreshfresh";

providers::ProviderSpec MintedSpec() {
  providers::ProviderSpec spec;
  for (const providers::ProviderSpec& s : providers::BuiltinProviders()) {
    if (s.name == "lumenfall") spec = s;
  }
  auto mint = std::make_shared<v1::MintConfig>();
  mint->set_base_url("http://127.0.0.1:1/admin");
  mint->mutable_create()->set_path("/keys");
  mint->mutable_create()->set_body(R"({"name":"credbroker-{provider}-{timestamp}"})");
  mint->mutable_revoke()->set_path("/keys/{key_id}");
  mint->set_key_pointer("/data/secret");
  mint->set_key_id_pointer("/data/id");
  spec.mint = mint;
  return spec;
}

TEST(HttpKeyMinterTest, CreatesAKeyFromTheTemplates) {
  core::FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  FakeHttpClient client([](const http::HttpRequest&) {
    return FakeHttpClient::Answer(201, R"({"data":{"id":"key_9","secret":")" + kNewKey + R"("}})");
  });
  HttpKeyMinter minter(&client, &clock);
  auto minted = minter.Create(MintedSpec(), "admin-token");
  ASSERT_THAT(minted, IsOk());
  EXPECT_EQ(minted->material.reveal(), kNewKey);
  EXPECT_EQ(minted->key_id, "key_9");
  ASSERT_EQ(client.requests().size(), 1u);
  const http::HttpRequest req = client.requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "http://127.0.0.1:1/admin/keys");
  EXPECT_EQ(req.body, R"({"name":"credbroker-lumenfall-1800000000"})");
  EXPECT_EQ(testing::HeaderOf(req, "Authorization"), "Bearer admin-token");
  EXPECT_EQ(testing::HeaderOf(req, "Content-Type"), "application/json");
}

TEST(HttpKeyMinterTest, ErrorsNeverQuoteTheAnswer) {
  core::FakeClock clock;
  int status = 201;
  std::string body = R"({"data":{"id":"key_9"},"leak":")" + kNewKey + R"("})";
  FakeHttpClient client(
      [&](const http::HttpRequest&) { return FakeHttpClient::Answer(status, body); });
  HttpKeyMinter minter(&client, &clock);
  auto missing = minter.Create(MintedSpec(), "admin-token");
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(missing.status().message(), Not(HasSubstr(kNewKey)));

  status = 401;
  EXPECT_THAT(minter.Create(MintedSpec(), "admin-token"),
              StatusIs(absl::StatusCode::kPermissionDenied));
  status = 503;
  EXPECT_THAT(minter.Create(MintedSpec(), "admin-token"), StatusIs(absl::StatusCode::kUnavailable));
  status = 400;
  auto bad = minter.Create(MintedSpec(), "admin-token");
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("admin-token")));
}

// The invariant fuzz/key_minter_fuzz.cc holds the minter to: an answer whose key field is ""
// used to come back as a minted key with no material.
TEST(HttpKeyMinterTest, AnEmptyKeyIsNoKey) {
  core::FakeClock clock;
  FakeHttpClient client([](const http::HttpRequest&) {
    return FakeHttpClient::Answer(201, R"({"data":{"id":"key_9","secret":""}})");
  });
  HttpKeyMinter minter(&client, &clock);
  auto minted = minter.Create(MintedSpec(), "admin-token");
  EXPECT_THAT(minted, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(minted.status().message(), HasSubstr("/data/secret is empty"));
}

TEST(HttpKeyMinterTest, RevokesByEscapedIdAndTreatsUnknownAsGone) {
  core::FakeClock clock;
  int status = 204;
  FakeHttpClient client([&](const http::HttpRequest&) { return FakeHttpClient::Answer(status); });
  HttpKeyMinter minter(&client, &clock);
  EXPECT_THAT(minter.Revoke(MintedSpec(), "key 9/x", "admin-token"), IsOk());
  EXPECT_EQ(client.requests().back().method, "DELETE");
  EXPECT_EQ(client.requests().back().url, "http://127.0.0.1:1/admin/keys/key%209%2Fx");
  status = 404;
  EXPECT_THAT(minter.Revoke(MintedSpec(), "key_9", "admin-token"), IsOk());
  status = 403;
  EXPECT_THAT(minter.Revoke(MintedSpec(), "key_9", "admin-token"),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace credbroker::rotation

namespace credbroker::rotation {
namespace {

// The firemoon preset against firemoon's documented key API: POST /api/keys with the session
// token and {"description","scope"} (firemoon-auth, API Key Management).
TEST(HttpKeyMinterTest, FiremoonPresetCreatesAKeyNamedByItsDescription) {
  v1::BrokerConfig config;
  v1::ProviderConfig* p = config.add_providers();
  p->set_name("firemoon");
  p->mutable_mint()->set_preset("firemoon");
  p->mutable_mint()->set_base_url("http://127.0.0.1:1");  // never the real firemoon.studio
  auto catalog = providers::ProviderCatalog::FromConfig(config);
  ASSERT_THAT(catalog, IsOk());
  const providers::ProviderSpec& spec = *catalog->Find("firemoon");
  EXPECT_FALSE(spec.mint->has_revoke());  // firemoon documents no delete endpoint
  EXPECT_EQ(spec.scopes, std::vector<std::string>{"full_access"});
  core::FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  FakeHttpClient client([](const http::HttpRequest&) {
    return FakeHttpClient::Answer(201,
                                  R"({"key":"fm_live_0123456789abcdef","scope":"full_access"})");
  });
  HttpKeyMinter minter(&client, &clock);
  auto minted = minter.Create(spec, "session-token");
  ASSERT_THAT(minted, IsOk());
  EXPECT_EQ(minted->material.reveal(), "fm_live_0123456789abcdef");
  // No id in the answer: the dashboard knows the key by its description.
  EXPECT_EQ(minted->key_id, "credbroker firemoon 1800000000");
  ASSERT_EQ(client.requests().size(), 1u);
  const http::HttpRequest req = client.requests()[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "http://127.0.0.1:1/api/keys");
  EXPECT_EQ(req.body, R"({"description":"credbroker firemoon 1800000000","scope":"full_access"})");
  EXPECT_EQ(testing::HeaderOf(req, "Authorization"), "Bearer session-token");
}

TEST(HttpKeyMinterTest, PresetsAreCheckedByName) {
  v1::BrokerConfig config;
  v1::ProviderConfig* p = config.add_providers();
  p->set_name("lumenfall");
  p->mutable_mint()->set_preset("firemoon");
  EXPECT_THAT(providers::ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("providers[0].mint.preset: the firemoon preset calls firemoon's "
                                 "key API; lumenfall is a line of lumenfall")));
  p->mutable_mint()->set_preset("openai");
  EXPECT_THAT(providers::ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown preset \"openai\"")));
  // A custom description and scope, and the operator's key_pointer, win over the preset's.
  p->set_name("firemoon");
  p->mutable_mint()->set_preset("firemoon");
  p->mutable_mint()->set_description("ci {provider}");
  p->mutable_mint()->set_scope("read_only");
  p->mutable_mint()->set_key_pointer("/data/key");
  auto catalog = providers::ProviderCatalog::FromConfig(config);
  ASSERT_THAT(catalog, IsOk());
  const providers::ProviderSpec& spec = *catalog->Find("firemoon");
  EXPECT_EQ(spec.mint->key_pointer(), "/data/key");
  EXPECT_EQ(spec.mint->create().body(), R"({"description":"{description}","scope":"read_only"})");
  EXPECT_EQ(spec.scopes, std::vector<std::string>{"read_only"});
}

}  // namespace
}  // namespace credbroker::rotation
