// The bearer token a service presents to the broker. In Kubernetes it is a projected
// service-account token that the kubelet replaces before it expires (an atomic swap of the
// file's `..data` link): TokenFile re-reads the file whenever it changed, so a long-lived client
// never presents an expired token.
// Thread-safety: safe for concurrent use.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace credbroker::client {

class CallerToken {
 public:
  virtual ~CallerToken() = default;
  // The token to send now.
  virtual absl::StatusOr<std::string> Token() = 0;
};

// A fixed token (static tokens for development).
std::shared_ptr<CallerToken> StaticToken(std::string token);

// The token in `path` (surrounding whitespace trimmed), read again when the file changed (its
// inode, size or modification time). A file that cannot be read or is empty: UNAUTHENTICATED
// naming the path, never a stale token past a change.
class TokenFile final : public CallerToken {
 public:
  explicit TokenFile(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::string> Token() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Stamp {
    ino_t inode = 0;
    off_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  const std::string path_;
  absl::Mutex mu_;
  Stamp stamp_ ABSL_GUARDED_BY(mu_);
  std::string token_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::client
