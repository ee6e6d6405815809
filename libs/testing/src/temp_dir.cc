#include "credbroker/testing/temp_dir.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace credbroker::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = absl::StrCat(base ? base : "/tmp", "/credbroker-test-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& contents) {
  fs::create_directories(fs::path(path).parent_path());
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << contents;
  }
  fs::rename(tmp, path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteK8sSecretDir(const std::string& dir, const std::map<std::string, std::string>& files) {
  static std::atomic<int> counter{0};
  fs::create_directories(dir);
  fs::path root(dir);
  std::string ts_name =
      absl::StrCat("..", absl::FormatTime("%Y_%m_%d_%H_%M_%S", absl::Now(), absl::UTCTimeZone()),
                   ".", ::getpid(), "_", counter.fetch_add(1));
  fs::path ts_dir = root / ts_name;
  fs::create_directory(ts_dir);
  for (const auto& [name, contents] : files) {
    std::ofstream out(ts_dir / name, std::ios::binary);
    out << contents;
  }
  std::string old_target;
  std::error_code ec;
  if (fs::is_symlink(root / "..data")) old_target = fs::read_symlink(root / "..data").string();
  fs::remove(root / "..data_tmp", ec);
  fs::create_directory_symlink(ts_name, root / "..data_tmp");
  fs::rename(root / "..data_tmp", root / "..data");
  for (const auto& [name, contents] : files) {
    if (!fs::is_symlink(root / name)) fs::create_symlink(fs::path("..data") / name, root / name);
  }
  for (const auto& entry : fs::directory_iterator(root)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("..", 0) == 0) continue;
    if (!files.contains(name)) fs::remove(entry.path(), ec);
  }
  if (!old_target.empty()) fs::remove_all(root / old_target, ec);
}

}  // namespace credbroker::testing
