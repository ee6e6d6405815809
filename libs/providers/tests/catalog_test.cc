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

TEST(CatalogTest, BadRegexIsAnError) {
  EXPECT_THAT(CompileKeyFormat("([a-z]"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CompileKeyFormat(""), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace credbroker::providers
