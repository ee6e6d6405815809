#include "credbroker/client/caller_token.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace credbroker::client {
namespace {

class Static final : public CallerToken {
 public:
  explicit Static(std::string token) : token_(std::move(token)) {}
  absl::StatusOr<std::string> Token() override { return token_; }

 private:
  const std::string token_;
};

}  // namespace

std::shared_ptr<CallerToken> StaticToken(std::string token) {
  return std::make_shared<Static>(std::move(token));
}

absl::StatusOr<std::string> TokenFile::Token() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    return absl::UnauthenticatedError(
        absl::StrCat("cannot read the token file ", path_, ": ", std::strerror(errno)));
  }
  const Stamp now{st.st_ino, st.st_size,
                  static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
  absl::MutexLock lock(&mu_);
  if (now == stamp_ && !token_.empty()) return token_;
  std::ifstream in(path_);
  std::stringstream contents;
  contents << in.rdbuf();
  if (!in) {
    return absl::UnauthenticatedError(absl::StrCat("cannot read the token file ", path_));
  }
  std::string token(absl::StripAsciiWhitespace(contents.str()));
  if (token.empty()) {
    return absl::UnauthenticatedError(absl::StrCat("the token file ", path_, " is empty"));
  }
  stamp_ = now;
  token_ = std::move(token);
  return token_;
}

}  // namespace credbroker::client
