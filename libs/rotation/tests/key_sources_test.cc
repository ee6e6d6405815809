#include "credbroker/rotation/key_sources.h"

#include "credbroker/testing/fake_secret_source.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::rotation {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// Builds fake sources for `file:` blocks and remembers them.
class FakeFileFactory final : public secrets::SourceFactory {
 public:
  explicit FakeFileFactory(std::vector<testing::FakeSecretSource*>* made) : made_(made) {}
  absl::string_view type() const override { return "file"; }
  absl::StatusOr<std::unique_ptr<secrets::SecretSource>> Create(
      const v1::SourceConfig&, const secrets::SourceContext&) override {
    auto s = std::make_unique<testing::FakeSecretSource>();
    made_->push_back(s.get());
    return s;
  }

 private:
  std::vector<testing::FakeSecretSource*>* made_;
};

class KeySourcesTest : public ::testing::Test {
 protected:
  KeySourcesTest() {
    registry_.Register(std::make_unique<FakeFileFactory>(&made_));
    for (const char* name : {"mounted", "archive"}) {
      v1::SourceConfig* s = config_.add_sources();
      s->set_name(name);
      s->mutable_file()->set_root("/keys");
      s->mutable_refresh_interval()->set_seconds(30);
    }
    config_.mutable_sources(0)->mutable_max_staleness()->set_seconds(3600);
    config_.mutable_sources(1)->mutable_max_staleness()->set_seconds(600);
    for (auto [provider, source] :
         {std::pair{"lumenfall", "mounted"}, std::pair{"fluximage", "mounted"},
          std::pair{"magichour", "archive"}}) {
      v1::ProviderConfig* p = config_.add_providers();
      p->set_name(provider);
      p->set_source(source);
    }
  }
  v1::BrokerConfig config_;
  secrets::SourceRegistry registry_;
  std::vector<testing::FakeSecretSource*> made_;
  core::FakeClock clock_;

  secrets::SourceContext Context() {
    secrets::SourceContext context;
    context.clock = &clock_;
    return context;
  }
};

TEST_F(KeySourcesTest, EachProviderGetsItsSourcesStalenessAndRefresher) {
  auto catalog = providers::ProviderCatalog::FromConfig(config_);
  ASSERT_THAT(catalog, IsOk());
  auto sources = KeySources::FromConfig(config_, *catalog, registry_, Context());
  ASSERT_THAT(sources, IsOk());
  ASSERT_EQ(made_.size(), 2u);
  EXPECT_THAT(
      (*sources)->MaxStaleness(),
      UnorderedElementsAre(Pair("lumenfall", absl::Hours(1)), Pair("fluximage", absl::Hours(1)),
                           Pair("magichour", absl::Minutes(10))));
  EXPECT_THAT((*sources)->ByProvider(),
              UnorderedElementsAre(Pair("lumenfall", made_[0]), Pair("fluximage", made_[0]),
                                   Pair("magichour", made_[1])));
  KeyRing ring(&*catalog, &clock_, nullptr);
  EXPECT_EQ((*sources)->MakeRefreshers(&ring).size(), 2u);
}

TEST_F(KeySourcesTest, ASourceWithoutAFactoryIsAnError) {
  config_.mutable_sources(1)->mutable_vault();  // no vault factory registered here
  auto catalog = providers::ProviderCatalog::FromConfig(config_);
  ASSERT_THAT(catalog, IsOk());
  EXPECT_THAT(KeySources::FromConfig(config_, *catalog, registry_, Context()).status(),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace credbroker::rotation
