#include "credbroker/backends/file/file_source.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "credbroker/core/scopes.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::backends::file {
namespace {

namespace fs = std::filesystem;
constexpr size_t kMaxFileBytes = size_t{64} * 1024;
constexpr uint32_t kWatchMask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "<version>.scopes" holds the version's scopes.
constexpr absl::string_view kScopesSuffix = ".scopes";

std::string Etag(const struct stat& st) {
  return absl::StrCat(st.st_ino, ":", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, ":", st.st_size);
}

// The version's etag: its file's, and its scopes file's when there is one (a change of either
// makes the ring fetch the version again).
std::string VersionEtag(const std::string& file, const struct stat& st) {
  struct stat sst;
  const std::string scopes = absl::StrCat(file, kScopesSuffix);
  if (::stat(scopes.c_str(), &sst) != 0 || !S_ISREG(sst.st_mode)) return Etag(st);
  return absl::StrCat(Etag(st), "+", Etag(sst));
}

class FileSourceFactory final : public secrets::SourceFactory {
 public:
  absl::string_view type() const override { return "file"; }
  absl::StatusOr<std::unique_ptr<secrets::SecretSource>> Create(
      const v1::SourceConfig& config, const secrets::SourceContext&) override {
    auto source = FileSecretSource::Create(config.name(), config.file().root());
    if (!source.ok()) return source.status();
    return std::unique_ptr<secrets::SecretSource>(std::move(*source));
  }
};

}  // namespace

bool NaturalLess(absl::string_view a, absl::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (IsDigit(a[i]) && IsDigit(b[j])) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && IsDigit(a[i2])) ++i2;
      while (j2 < b.size() && IsDigit(b[j2])) ++j2;
      absl::string_view na = a.substr(i, i2 - i), nb = b.substr(j, j2 - j);
      // Compare numerically without overflow: strip leading zeros, then by length, then lexically.
      while (na.size() > 1 && na[0] == '0') na.remove_prefix(1);
      while (nb.size() > 1 && nb[0] == '0') nb.remove_prefix(1);
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  if ((a.size() - i) != (b.size() - j)) return (a.size() - i) < (b.size() - j);
  return a < b;
}

absl::StatusOr<std::unique_ptr<FileSecretSource>> FileSecretSource::Create(std::string name,
                                                                           std::string root) {
  if (root.empty()) return absl::InvalidArgumentError("file source: root is empty");
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  // Without inotify (limits reached) the source still works through periodic refresh.
  auto source =
      std::unique_ptr<FileSecretSource>(new FileSecretSource(std::move(name), std::move(root), fd));
  source->WatchFolder(source->root_);
  return source;
}

FileSecretSource::~FileSecretSource() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

void FileSecretSource::WatchFolder(const std::string& folder) const {
  // Adding a watch on an already watched inode returns the same descriptor: cheap to repeat, and
  // repeating it re-arms the watch when a folder was deleted and re-created.
  if (inotify_fd_ >= 0) ::inotify_add_watch(inotify_fd_, folder.c_str(), kWatchMask);
}

void FileSecretSource::DrainChanges() {
  if (inotify_fd_ < 0) return;
  alignas(inotify_event) char buf[4096];
  while (::read(inotify_fd_, buf, sizeof(buf)) > 0) {
  }
}

absl::StatusOr<std::string> FileSecretSource::FolderFor(absl::string_view path) const {
  if (path.empty() || path.find('/') != absl::string_view::npos || path[0] == '.') {
    return absl::InvalidArgumentError(
        absl::StrCat("file source ", name_, ": secret path \"", path,
                     "\" must be a single folder name not starting with '.'"));
  }
  return absl::StrCat(root_, "/", path);
}

absl::StatusOr<std::vector<secrets::VersionInfo>> FileSecretSource::ListVersions(
    absl::string_view path) {
  auto folder = FolderFor(path);
  if (!folder.ok()) return folder.status();
  struct stat root_st;
  if (::stat(root_.c_str(), &root_st) != 0 || !S_ISDIR(root_st.st_mode)) {
    return absl::UnavailableError(
        absl::StrCat("file source ", name_, ": root ", root_, " is not a readable directory"));
  }
  WatchFolder(root_);
  std::error_code ec;
  fs::directory_iterator it(*folder, ec);
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat("file source ", name_, ": cannot list ", *folder, ": ", ec.message()));
  }
  WatchFolder(*folder);
  std::vector<secrets::VersionInfo> versions;
  for (const fs::directory_entry& entry : it) {
    std::string fname = entry.path().filename().string();
    if (fname.empty() || fname[0] == '.' || absl::EndsWith(fname, kScopesSuffix)) continue;
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    secrets::VersionInfo info;
    info.version_id = fname;
    info.etag = VersionEtag(entry.path().string(), st);
    info.created_at = absl::TimeFromTimespec(st.st_mtim);
    versions.push_back(std::move(info));
  }
  std::sort(versions.begin(), versions.end(),
            [](const secrets::VersionInfo& a, const secrets::VersionInfo& b) {
              return NaturalLess(a.version_id, b.version_id);
            });
  return versions;
}

absl::StatusOr<secrets::SecretVersion> FileSecretSource::FetchVersion(
    absl::string_view path, absl::string_view version_id) {
  auto folder = FolderFor(path);
  if (!folder.ok()) return folder.status();
  if (version_id.empty() || version_id[0] == '.' || version_id.find('/') != std::string::npos ||
      absl::EndsWith(version_id, kScopesSuffix)) {
    return absl::InvalidArgumentError(absl::StrCat("file source ", name_, ": bad version id"));
  }
  std::string file = absl::StrCat(*folder, "/", version_id);
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("file source ", name_, ": ", path, "/", version_id,
                                            ": ", std::strerror(errno)));
  }
  if (static_cast<size_t>(st.st_size) > kMaxFileBytes) {
    return absl::DataLossError(absl::StrCat("file source ", name_, ": ", path, "/", version_id,
                                            " is larger than ", kMaxFileBytes, " bytes"));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::DataLossError(
        absl::StrCat("file source ", name_, ": cannot read ", path, "/", version_id));
  }
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // `kubectl create secret --from-file` and editors often leave a trailing newline.
  while (!contents.empty() && absl::ascii_isspace(static_cast<unsigned char>(contents.back()))) {
    contents.pop_back();
  }
  secrets::SecretVersion out;
  const std::string scopes_file = absl::StrCat(file, kScopesSuffix);
  std::ifstream scopes_in(scopes_file, std::ios::binary);
  if (scopes_in) {
    std::string text;
    std::getline(scopes_in, text, '\0');
    if (text.size() > 4096) text.resize(4096);  // longer is refused by ParseScopes anyway
    absl::StatusOr<std::vector<std::string>> scopes = core::ParseScopes(text);
    if (!scopes.ok()) {
      return core::WithReason(
          absl::DataLossError(absl::StrCat("file source ", name_, ": ", path, "/", version_id,
                                           kScopesSuffix, ": ", scopes.status().message())),
          "bad_scopes");
    }
    out.scopes = *std::move(scopes);
  }
  out.info.version_id = std::string(version_id);
  out.info.etag = VersionEtag(file, st);
  out.info.created_at = absl::TimeFromTimespec(st.st_mtim);
  out.material = core::SecretBytes(std::move(contents));
  return out;
}

namespace {
// "v2" → "v3", "key-09" → "key-10", "" → "v1", "current" → "current2".
std::string NextVersionId(absl::string_view newest) {
  if (newest.empty()) return "v1";
  size_t digits = newest.size();
  while (digits > 0 && absl::ascii_isdigit(static_cast<unsigned char>(newest[digits - 1]))) {
    --digits;
  }
  uint64_t n = 1;
  if (digits < newest.size() && !absl::SimpleAtoi(newest.substr(digits), &n)) n = 1;
  return absl::StrCat(newest.substr(0, digits), n + 1);
}
}  // namespace

absl::StatusOr<secrets::VersionInfo> FileSecretSource::WriteVersion(
    absl::string_view path, const core::SecretBytes& material) {
  auto folder = FolderFor(path);
  if (!folder.ok()) return folder.status();
  std::error_code ec;
  if (fs::exists(absl::StrCat(*folder, "/..data"), ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "file source ", name_, ": ", *folder,
        " is a mounted Kubernetes Secret (it has ..data); the kubelet owns it, so minted "
        "rotation needs a writable source"));
  }
  fs::create_directories(*folder, ec);
  absl::StatusOr<std::vector<secrets::VersionInfo>> listed = ListVersions(path);
  if (!listed.ok() && !absl::IsNotFound(listed.status())) return listed.status();
  std::string newest = listed.ok() && !listed->empty() ? listed->back().version_id : "";
  const std::string version = NextVersionId(newest);
  const std::string tmp = absl::StrCat(*folder, "/.", version, ".tmp");
  const std::string final_path = absl::StrCat(*folder, "/", version);
  // A file (or a symlink someone planted to catch the key) left at the temporary name goes first;
  // then only a file this call creates is written: O_EXCL refuses an existing name, O_NOFOLLOW a
  // symlink put there since.
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("file source ", name_, ": cannot create ", tmp, ": ", std::strerror(errno)));
  }
  absl::string_view data = material.reveal();
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  // link() fails when the name exists: a concurrent writer never gets overwritten.
  if (!ok || ::link(tmp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    if (err == EEXIST) {
      return absl::AbortedError(
          absl::StrCat("file source ", name_, ": version ", version, " was written concurrently"));
    }
    return absl::UnavailableError(absl::StrCat("file source ", name_, ": cannot write ", final_path,
                                               ": ", std::strerror(err)));
  }
  ::unlink(tmp.c_str());
  int dir = ::open(folder->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  struct stat st;
  secrets::VersionInfo info;
  info.version_id = version;
  if (::stat(final_path.c_str(), &st) == 0) {
    info.etag =
        absl::StrCat(st.st_ino, ":", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, ":", st.st_size);
    info.created_at = absl::TimeFromTimespec(st.st_mtim);
  }
  return info;
}

std::unique_ptr<secrets::SourceFactory> MakeFileSourceFactory() {
  return std::make_unique<FileSourceFactory>();
}

}  // namespace credbroker::backends::file
