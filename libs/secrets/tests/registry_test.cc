#include "credbroker/secrets/secret_source.h"
#include "credbroker/testing/fake_secret_source.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::secrets {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;

class FakeFactory final : public SourceFactory {
 public:
  absl::string_view type() const override { return "file"; }
  absl::StatusOr<std::unique_ptr<SecretSource>> Create(const v1::SourceConfig& config,
                                                       const SourceContext&) override {
    ++created;
    return std::unique_ptr<SecretSource>(new testing::FakeSecretSource(config.name()));
  }
  int created = 0;
};

TEST(SourceRegistryTest, PicksTheFactoryByBackendType) {
  SourceRegistry registry;
  auto factory = std::make_unique<FakeFactory>();
  FakeFactory* raw = factory.get();
  registry.Register(std::move(factory));
  v1::SourceConfig config;
  config.set_name("local");
  config.mutable_file()->set_root("/keys");
  EXPECT_EQ(BackendType(config), "file");
  auto source = registry.Create(config, SourceContext{});
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ((*source)->name(), "local");
  EXPECT_EQ(raw->created, 1);
}

TEST(SourceRegistryTest, UnsetBackendIsNotFoundAndListsAvailable) {
  SourceRegistry registry;
  registry.Register(std::make_unique<FakeFactory>());
  v1::SourceConfig config;
  config.set_name("x");
  EXPECT_EQ(BackendType(config), "");
  EXPECT_THAT(registry.Create(config, SourceContext{}),
              StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("available: file")));
}

// A source that overrides only what it must.
class ReadOnlySource final : public SecretSource {
 public:
  absl::string_view type() const override { return "readonly"; }
  const std::string& name() const override { return name_; }
  absl::StatusOr<std::vector<VersionInfo>> ListVersions(absl::string_view) override {
    return std::vector<VersionInfo>{};
  }
  absl::StatusOr<SecretVersion> FetchVersion(absl::string_view, absl::string_view) override {
    return absl::NotFoundError("none");
  }

 private:
  std::string name_ = "ro";
};

TEST(SecretSourceTest, WriteVersionIsUnimplementedByDefault) {
  ReadOnlySource source;
  EXPECT_THAT(source.WriteVersion("p", core::SecretBytes("x")),
              StatusIs(absl::StatusCode::kUnimplemented, ::testing::HasSubstr("readonly")));
  EXPECT_EQ(source.change_fd(), -1);
}

}  // namespace
}  // namespace credbroker::secrets
