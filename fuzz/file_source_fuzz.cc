// Fuzzes the file source's reader: a secret folder whose version files have arbitrary names and
// contents (what a mounted Kubernetes Secret or an operator's directory may hold). The input is
// "name1%%\ncontent1%%\nname2%%\ncontent2"; a name that is not a plain file name is replaced by a
// fixed one. Listing and fetching must end in versions or a status, never a crash, and every
// listed version must be fetchable or refused with a status.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "credbroker/backends/file/file_source.h"
#include "credbroker/testing/temp_dir.h"
#include "fuzz_input.h"

namespace {

using namespace credbroker;

std::string PlainName(const std::string& name, const char* fallback) {
  bool plain = !name.empty() && name.size() < 200 && name != "." && name != ".." &&
               !absl::StrContains(name, '/') && !absl::StrContains(name, '\0');
  return plain ? name : fallback;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* const dir = new testing::TempDir();
  std::vector<std::string> parts = fuzz::SplitParts(data, size, 4);
  const std::string folder = dir->Join("lumenfall");
  std::error_code ec;
  std::filesystem::remove_all(folder, ec);
  std::filesystem::create_directory(folder, ec);
  std::string first = PlainName(parts[0], "v1");
  std::string second = PlainName(parts[2], "v2");
  testing::WriteFile(folder + "/" + first, parts[1]);
  if (second != first) testing::WriteFile(folder + "/" + second, parts[3]);

  auto source = backends::file::FileSecretSource::Create("fuzz", dir->path());
  if (!source.ok()) std::abort();  // the root exists
  auto versions = (*source)->ListVersions("lumenfall");
  if (versions.ok()) {
    for (const auto& v : *versions) (void)(*source)->FetchVersion("lumenfall", v.version_id).ok();
  }
  (void)backends::file::NaturalLess(parts[0], parts[2]);
  return 0;
}
