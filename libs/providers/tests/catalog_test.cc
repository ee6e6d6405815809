#include "credbroker/providers/catalog.h"

#include "credbroker/core/status_macros.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::providers {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;

const ProviderSpec& Builtin(const std::string& name) {
  for (const ProviderSpec& p : BuiltinProviders()) {
    if (p.name == name) return p;
  }
  ADD_FAILURE() << "no builtin " << name;
  return BuiltinProviders().front();
}

TEST(CatalogTest, ShipsTheFiveDocumentedProviders) {
  std::vector<std::string> names;
  for (const ProviderSpec& p : BuiltinProviders()) {
    names.push_back(p.name);
    EXPECT_EQ(p.header_name, "Authorization") << p.name;
    EXPECT_EQ(p.header_prefix, "Bearer ") << p.name;
    EXPECT_TRUE(p.builtin);
  }
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("firemoon", "example-ai", "fluximage",
                                                     "lumenfall", "magichour"));
  EXPECT_TRUE(Builtin("fluximage").single_key);
  EXPECT_FALSE(Builtin("lumenfall").single_key);
  EXPECT_EQ(Builtin("fluximage").probe.path, "/usage");
  EXPECT_EQ(Builtin("lumenfall").probe.path, "/models");
}

TEST(CatalogTest, FluximageKeysAreFlxLivePlus40Hex) {
  const ProviderSpec& flux = Builtin("fluximage");
  EXPECT_THAT(flux.ValidateKey("flx_live_" + std::string(40, 'a')), IsOk());
  EXPECT_THAT(flux.ValidateKey("flx_live_" + std::string(39, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(flux.ValidateKey("flx_live_" + std::string(40, 'g')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(flux.ValidateKey("flx_test_" + std::string(40, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A valid key with something appended is not a valid key (the match is anchored).
  EXPECT_THAT(flux.ValidateKey("flx_live_" + std::string(40, 'a') + "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CatalogTest, LumenfallKeysHaveIdDotSecret) {
  const ProviderSpec& lmn = Builtin("lumenfall");
  EXPECT_THAT(lmn.ValidateKey("lmnfl_abc123.xyz789"), IsOk());
  EXPECT_THAT(lmn.ValidateKey("lmnfl_abc123xyz789"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(lmn.ValidateKey("sk-abc123.xyz789"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(CatalogTest, RejectionsCarryAReasonAndNeverTheKey) {
  const ProviderSpec& mh = Builtin("magichour");
  absl::Status ws = mh.ValidateKey("secret with space");
  EXPECT_EQ(core::ReasonOf(ws), "whitespace");
  EXPECT_THAT(std::string(ws.message()), ::testing::Not(HasSubstr("secret")));
  EXPECT_EQ(core::ReasonOf(mh.ValidateKey("")), "empty");
  EXPECT_EQ(core::ReasonOf(mh.ValidateKey(std::string(kMaxKeyBytes + 1, 'a'))), "too_long");
  absl::Status fmt = Builtin("fluximage").ValidateKey("flx_live_hunter2hunter2");
  EXPECT_EQ(core::ReasonOf(fmt), "format");
  EXPECT_THAT(std::string(fmt.message()), ::testing::Not(HasSubstr("hunter2")));
}

TEST(CatalogTest, ConfigOverridesBuiltinFieldsAndAddsProviders) {
  v1::BrokerConfig config;
  config.add_sources()->set_name("local");
  v1::ProviderConfig* flux = config.add_providers();
  flux->set_name("fluximage");
  flux->set_base_url("https://proxy.internal/flux");
  v1::ProviderConfig* custom = config.add_providers();
  custom->set_name("acme-llm");
  custom->set_base_url("https://api.acme.test/v2");
  custom->set_key_format("acme_[0-9]{8}");
  custom->set_header_name("X-Api-Key");
  custom->set_header_prefix("");
  custom->set_secret_path("acme");

  auto catalog = ProviderCatalog::FromConfig(config);
  ASSERT_THAT(catalog, IsOk());
  ASSERT_EQ(catalog->providers().size(), 2u);
  const ProviderSpec* f = catalog->Find("fluximage");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->base_url, "https://proxy.internal/flux");
  EXPECT_TRUE(f->single_key);  // inherited
  EXPECT_EQ(f->source, "local");
  EXPECT_EQ(f->secret_path, "fluximage");
  const ProviderSpec* a = catalog->Find("acme-llm");
  ASSERT_NE(a, nullptr);
  EXPECT_FALSE(a->builtin);
  EXPECT_EQ(a->HeaderValue("acme_12345678"), "acme_12345678");
  EXPECT_EQ(a->header_name, "X-Api-Key");
  EXPECT_EQ(a->secret_path, "acme");
  EXPECT_THAT(a->ValidateKey("acme_12345678"), IsOk());
  EXPECT_EQ(catalog->Find("lumenfall"), nullptr);  // built in, but not configured
}

TEST(CatalogTest, NewProviderNeedsBaseUrlAndKeyFormat) {
  v1::BrokerConfig config;
  config.add_providers()->set_name("acme-llm");
  EXPECT_THAT(ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("providers[0].base_url")));
  config.mutable_providers(0)->set_base_url("https://x.test");
  EXPECT_THAT(ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("providers[0].key_format")));
}

// What each provider's dashboard shows of a key (reference/providers): fluximage a masked prefix,
// magichour the last 4 characters, the others nothing but the key's name.
TEST(CatalogTest, KeyHintsMatchTheDashboards) {
  EXPECT_EQ(Builtin("fluximage").HintOf("flx_live_a3b4c" + std::string(31, '0') + "f8e9"),
            "flx_live_a3b4c...f8e9");
  EXPECT_EQ(Builtin("magichour").HintOf("mh_secret_key_0123456789wxyz"), "...wxyz");
  for (const char* name : {"firemoon", "example-ai", "lumenfall"}) {
    EXPECT_EQ(Builtin(name).HintOf("lmnfl_abcdef.0123456789abcdef"), "") << name;
  }
  // Never half of a key or more: a short key gets no hint.
  EXPECT_EQ(Builtin("magichour").HintOf("abcdefgh"), "");
  EXPECT_EQ(Builtin("magichour").HintOf("abcdefghi"), "...fghi");
}

TEST(CatalogTest, AConfiguredHintNeverShowsMoreThanTheProvider) {
  v1::BrokerConfig config;
  v1::ProviderConfig* flux = config.add_providers();
  flux->set_name("fluximage");
  flux->mutable_key_hint()->set_suffix(4);  // narrower than the dashboard: allowed
  auto catalog = ProviderCatalog::FromConfig(config);
  ASSERT_THAT(catalog, IsOk());
  EXPECT_EQ(catalog->Find("fluximage")->HintOf("flx_live_" + std::string(36, 'a') + "f8e9"),
            "...f8e9");
  flux->mutable_key_hint()->set_prefix(15);
  EXPECT_THAT(ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("providers[0].key_hint: fluximage itself shows at most the first "
                                 "14 and the last 4 characters")));
  // lumenfall's dashboard shows nothing: `key_hint: {}` is all it may have.
  config.Clear();
  v1::ProviderConfig* lmn = config.add_providers();
  lmn->set_name("lumenfall");
  lmn->mutable_key_hint()->set_suffix(1);
  EXPECT_THAT(ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("providers[0].key_hint")));
  lmn->mutable_key_hint()->set_suffix(0);
  EXPECT_THAT(ProviderCatalog::FromConfig(config), IsOk());
  // A provider that is not built in: the operator says what its dashboard shows, within bounds.
  config.Clear();
  v1::ProviderConfig* acme = config.add_providers();
  acme->set_name("acme");
  acme->set_base_url("http://127.0.0.1:9/v1");
  acme->set_key_format("acme_[0-9a-z]{24}");
  acme->mutable_key_hint()->set_prefix(7);
  acme->mutable_key_hint()->set_suffix(2);
  catalog = ProviderCatalog::FromConfig(config);
  ASSERT_THAT(catalog, IsOk());
  EXPECT_EQ(catalog->Find("acme")->HintOf("acme_x" + std::string(22, '0') + "yz"), "acme_x0...yz");
  acme->mutable_key_hint()->set_suffix(5);
  EXPECT_THAT(ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("acme may show at most the first 16 and the last 4")));
}

TEST(CatalogTest, KeyLinesOfOneApiInheritItsBuiltinAndCarryScopes) {
  v1::BrokerConfig config;
  v1::ProviderConfig* read = config.add_providers();
  read->set_name("example-ai");
  read->add_scopes("read");
  v1::ProviderConfig* admin = config.add_providers();
  admin->set_name("example-ai-admin");
  admin->set_api("example-ai");
  admin->add_scopes("write");
  admin->add_scopes("admin");
  admin->add_scopes("read");
  config.add_providers()->set_name("lumenfall");
  auto catalog = ProviderCatalog::FromConfig(config);
  ASSERT_THAT(catalog, IsOk());
  const ProviderSpec* a = catalog->Find("example-ai-admin");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->api, "example-ai");
  EXPECT_EQ(a->base_url, Builtin("example-ai").base_url);  // inherited from the api's built-in
  EXPECT_EQ(a->scopes, (std::vector<std::string>{"admin", "read", "write"}));
  EXPECT_TRUE(a->shares_api);
  EXPECT_TRUE(catalog->Find("example-ai")->shares_api);
  EXPECT_FALSE(catalog->Find("lumenfall")->shares_api);
  EXPECT_EQ(catalog->Find("lumenfall")->api, "lumenfall");
  // example-ai documents four permissions; anything else is a typo or a different provider.
  admin->add_scopes("superuser");
  EXPECT_THAT(ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("providers[1].scopes: scope \"superuser\" is not a permission "
                                 "example-ai documents (admin, read, webhook, write)")));
  EXPECT_THAT(Builtin("example-ai").ValidateScopes({"read", "webhook"}), IsOk());
  // Providers that document no fixed set take any well-formed name.
  EXPECT_THAT(Builtin("magichour").ValidateScopes({"images", "videos"}), IsOk());
  admin->clear_scopes();
  admin->add_scopes("Read");
  EXPECT_THAT(ProviderCatalog::FromConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("providers[1].scopes")));
}

TEST(CatalogTest, BadRegexIsAnError) {
  EXPECT_THAT(CompileKeyFormat("([a-z]"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CompileKeyFormat(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace credbroker::providers
