#include "credbroker/backends/file/file_source.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::backends::file {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::StatusIs;
using ::credbroker::testing::TempDir;
using ::credbroker::testing::WriteFile;
using ::credbroker::testing::WriteK8sSecretDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Ids(const std::vector<secrets::VersionInfo>& v) {
  std::vector<std::string> out;
  for (const auto& i : v) out.push_back(i.version_id);
  return out;
}

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

TEST(NaturalLessTest, OrdersNumbersNumerically) {
  EXPECT_TRUE(NaturalLess("v2", "v10"));
  EXPECT_FALSE(NaturalLess("v10", "v2"));
  EXPECT_TRUE(NaturalLess("1", "2"));
  EXPECT_TRUE(NaturalLess("9", "10"));
  EXPECT_TRUE(NaturalLess("2026-01-05", "2026-11-01"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_FALSE(NaturalLess("v1", "v1"));
  EXPECT_TRUE(NaturalLess("v1", "v01") != NaturalLess("v01", "v1"));  // strict weak order
}

TEST(FileSecretSourceTest, ScopesFilesNameAVersionsPermissionsAndAreNotVersions) {
  TempDir dir;
  WriteK8sSecretDir(dir.Join("example-ai"), {{"v1", "exai-key-0000000001"},
                                             {"v2", "exai-key-0000000002"},
                                             {"v2.scopes", "read, webhook\n"}});
  auto source = FileSecretSource::Create("files", dir.path());
  ASSERT_THAT(source, IsOk());
  auto listed = (*source)->ListVersions("example-ai");
  ASSERT_THAT(listed, IsOk());
  EXPECT_THAT(Ids(*listed), ElementsAre("v1", "v2"));
  auto v1 = (*source)->FetchVersion("example-ai", "v1");
  ASSERT_THAT(v1, IsOk());
  EXPECT_TRUE(v1->scopes.empty());
  auto v2 = (*source)->FetchVersion("example-ai", "v2");
  ASSERT_THAT(v2, IsOk());
  EXPECT_THAT(v2->scopes, ElementsAre("read", "webhook"));
  EXPECT_EQ(v2->info.etag, (*listed)[1].etag);
  EXPECT_THAT((*source)->FetchVersion("example-ai", "v2.scopes"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Changing the scopes changes the version's etag (the ring fetches it again).
  WriteFile(dir.Join("example-ai/v1.scopes"), "Admin!");
  auto relisted = (*source)->ListVersions("example-ai");
  ASSERT_THAT(relisted, IsOk());
  EXPECT_NE((*relisted)[0].etag, (*listed)[0].etag);
  EXPECT_THAT((*source)->FetchVersion("example-ai", "v1"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("v1.scopes")));
}

TEST(FileSecretSourceTest, ListsAMountedSecretLikeTheKubeletWritesIt) {
  TempDir dir;
  WriteK8sSecretDir(dir.Join("lumenfall"),
                    {{"v10", "lmnfl_a.b\n"}, {"v2", "lmnfl_c.d"}, {"v9", "x"}});
  auto source = FileSecretSource::Create("local", dir.path());
  ASSERT_THAT(source, IsOk());
  auto versions = (*source)->ListVersions("lumenfall");
  ASSERT_THAT(versions, IsOk());
  // "..data" and the timestamped folder are skipped; order is natural.
  EXPECT_THAT(Ids(*versions), ElementsAre("v2", "v9", "v10"));
  auto v = (*source)->FetchVersion("lumenfall", "v10");
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->material.reveal(), "lmnfl_a.b");  // trailing newline stripped
  EXPECT_EQ(v->info.etag, (*versions)[2].etag);
}

TEST(FileSecretSourceTest, EtagChangesWhenTheSecretIsRewritten) {
  TempDir dir;
  WriteK8sSecretDir(dir.Join("p"), {{"v1", "one"}});
  auto source = FileSecretSource::Create("local", dir.path());
  ASSERT_THAT(source, IsOk());
  auto before = (*source)->ListVersions("p");
  WriteK8sSecretDir(dir.Join("p"), {{"v1", "one"}, {"v2", "two"}});
  auto after = (*source)->ListVersions("p");
  ASSERT_THAT(before, IsOk());
  ASSERT_THAT(after, IsOk());
  EXPECT_THAT(Ids(*after), ElementsAre("v1", "v2"));
  EXPECT_NE((*before)[0].etag, (*after)[0].etag);
}

TEST(FileSecretSourceTest, PlainFilesWorkToo) {
  TempDir dir;
  WriteFile(dir.Join("p/1"), "k1");
  WriteFile(dir.Join("p/.hidden"), "no");
  auto source = FileSecretSource::Create("local", dir.path());
  auto versions = (*source)->ListVersions("p");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(Ids(*versions), ElementsAre("1"));
}

TEST(FileSecretSourceTest, WritesTheNextVersionPrivatelyAndAtomically) {
  TempDir dir;
  WriteFile(dir.Join("p/v9"), "k9");
  auto source = FileSecretSource::Create("local", dir.path());
  auto written = (*source)->WriteVersion("p", core::SecretBytes("k10"));
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->version_id, "v10");
  auto versions = (*source)->ListVersions("p");
  ASSERT_THAT(versions, IsOk());
  EXPECT_THAT(Ids(*versions), ElementsAre("v9", "v10"));  // no temporary file left behind
  auto fetched = (*source)->FetchVersion("p", "v10");
  ASSERT_THAT(fetched, IsOk());
  EXPECT_EQ(fetched->material.reveal(), "k10");
  struct stat st;
  ASSERT_EQ(::stat(dir.Join("p/v10").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A new folder starts at v1.
  auto first = (*source)->WriteVersion("q", core::SecretBytes("k1"));
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->version_id, "v1");
}

TEST(FileSecretSourceTest, NeverWritesAKeyThroughAPlantedSymlink) {
  TempDir dir;
  WriteFile(dir.Join("p/v1"), "k1");
  WriteFile(dir.Join("elsewhere/readable"), "");
  // Planted at the temporary name the next write uses.
  ASSERT_EQ(::symlink(dir.Join("elsewhere/readable").c_str(), dir.Join("p/.v2.tmp").c_str()), 0);
  auto source = FileSecretSource::Create("local", dir.path());
  auto written = (*source)->WriteVersion("p", core::SecretBytes("k2-secret"));
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(written->version_id, "v2");
  std::ifstream target(dir.Join("elsewhere/readable"));
  std::string leaked((std::istreambuf_iterator<char>(target)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(leaked.empty());
  struct stat st;
  ASSERT_EQ(::lstat(dir.Join("p/v2").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ((*source)->FetchVersion("p", "v2")->material.reveal(), "k2-secret");
}

TEST(FileSecretSourceTest, RefusesToWriteIntoAMountedSecret) {
  TempDir dir;
  WriteK8sSecretDir(dir.Join("p"), {{"v1", "k1"}});
  auto source = FileSecretSource::Create("local", dir.path());
  EXPECT_THAT((*source)->WriteVersion("p", core::SecretBytes("k2")),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("..data")));
  EXPECT_THAT((*source)->WriteVersion("../x", core::SecretBytes("k2")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FileSecretSourceTest, ErrorsDistinguishOutageFromAbsence) {
  TempDir dir;
  auto source = FileSecretSource::Create("local", dir.Join("not-mounted"));
  ASSERT_THAT(source, IsOk());
  EXPECT_THAT((*source)->ListVersions("p"), StatusIs(absl::StatusCode::kUnavailable));
  auto mounted = FileSecretSource::Create("local", dir.path());
  EXPECT_THAT((*mounted)->ListVersions("absent"), StatusIs(absl::StatusCode::kNotFound));
  WriteFile(dir.Join("p/v1"), "x");
  EXPECT_THAT((*mounted)->FetchVersion("p", "v2"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(FileSecretSourceTest, RejectsPathsThatEscapeTheRoot) {
  TempDir dir;
  WriteFile(dir.Join("secret"), "x");
  auto source = FileSecretSource::Create("local", dir.Join("root"));
  for (const char* bad : {"../x", "a/b", "..", ".data", ""}) {
    EXPECT_THAT((*source)->ListVersions(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  std::filesystem::create_directories(dir.Join("root/p"));
  EXPECT_THAT((*source)->FetchVersion("p", "../../secret"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*source)->FetchVersion("p", "..data"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FileSecretSourceTest, OversizedFileIsDataLoss) {
  TempDir dir;
  WriteFile(dir.Join("p/v1"), std::string(size_t{65} * 1024, 'a'));
  auto source = FileSecretSource::Create("local", dir.path());
  EXPECT_THAT((*source)->FetchVersion("p", "v1"), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(FileSecretSourceTest, InotifySignalsTheAtomicDataSwap) {
  TempDir dir;
  WriteK8sSecretDir(dir.Join("p"), {{"v1", "one"}});
  auto source = FileSecretSource::Create("local", dir.path());
  ASSERT_THAT(source, IsOk());
  ASSERT_GE((*source)->change_fd(), 0);
  ASSERT_THAT((*source)->ListVersions("p"), IsOk());  // arms the folder watch
  (*source)->DrainChanges();
  EXPECT_FALSE(Readable((*source)->change_fd(), 0));
  WriteK8sSecretDir(dir.Join("p"), {{"v1", "one"}, {"v2", "two"}});
  EXPECT_TRUE(Readable((*source)->change_fd(), 2000));
  (*source)->DrainChanges();
  EXPECT_FALSE(Readable((*source)->change_fd(), 0));
}

TEST(FileSourceFactoryTest, BuildsFromConfig) {
  TempDir dir;
  auto factory = MakeFileSourceFactory();
  EXPECT_EQ(factory->type(), "file");
  v1::SourceConfig config;
  config.set_name("local");
  config.mutable_file()->set_root(dir.path());
  auto source = factory->Create(config, secrets::SourceContext{});
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ((*source)->type(), "file");
  EXPECT_EQ((*source)->name(), "local");
}

}  // namespace
}  // namespace credbroker::backends::file
