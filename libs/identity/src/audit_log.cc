#include "credbroker/identity/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "credbroker/core/batch_scope.h"
#include "credbroker/core/log.h"

namespace credbroker::identity {

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path,
                                                         const core::Clock* clock,
                                                         AuditStats* stats) {
  if (path.empty() || path == "-") {
    return std::unique_ptr<AuditLog>(new AuditLog(STDOUT_FILENO, false, nullptr, clock, stats));
  }
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open audit log ", path, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<AuditLog>(new AuditLog(fd, true, nullptr, clock, stats));
}

std::unique_ptr<AuditLog> AuditLog::ToSink(std::function<void(absl::string_view)> sink,
                                           const core::Clock* clock) {
  return std::unique_ptr<AuditLog>(new AuditLog(-1, false, std::move(sink), clock, nullptr));
}

AuditLog::~AuditLog() {
  Flush();
  if (owned_) ::close(fd_);
}

namespace {

// Callers choose much of what is audited (a provider name, a lease id, a reason built from them):
// no field may make a line long enough to flood the log. Cut at a UTF-8 boundary and say so.
constexpr size_t kMaxFieldBytes = 256;

void AppendBounded(std::string& line, absl::string_view value) {
  if (value.size() <= kMaxFieldBytes) {
    core::AppendJsonString(line, value);
    return;
  }
  size_t cut = kMaxFieldBytes;
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  core::AppendJsonString(
      line, absl::StrCat(value.substr(0, cut), "...[", value.size(), " bytes, truncated]"));
}

}  // namespace

void AuditLog::Record(const AuditRecord& r) {
  std::string line = "{\"ts\":\"";
  core::AppendUtcTimestamp(line, clock_->Now(), 6);
  line += '"';
  auto field = [&line](absl::string_view name, absl::string_view value) {
    if (value.empty()) return;
    line += ",";
    core::AppendJsonString(line, name);
    line += ":";
    AppendBounded(line, value);
  };
  field("action", r.action);
  field("caller", r.caller);
  field("provider", r.provider);
  field("key_version", r.key_version);
  field("key_fingerprint", r.key_fingerprint);
  field("key_hint", r.key_hint);
  field("lease_id", r.lease_id);
  field("decision", r.decision);
  field("reason", r.reason);
  line += "}";
  absl::MutexLock lock(&mu_);
  if (sink_) {
    sink_(line);
    return;
  }
  line += "\n";
  pending_ += line;
  if (writing_) return;  // the thread writing now takes this line with its next write
  // Completing a batch of requests (group commit): one write for the whole batch, at its end.
  if (core::BatchScope::AtEnd(this, [this] { Flush(); })) return;
  WritePending();
}

void AuditLog::Flush() {
  absl::MutexLock lock(&mu_);
  if (!writing_) WritePending();
}

void AuditLog::WritePending() {
  writing_ = true;
  std::string batch;
  while (!pending_.empty()) {
    batch.clear();
    batch.swap(pending_);
    mu_.Unlock();
    size_t off = 0;
    int error = 0;
    while (off < batch.size()) {
      const ssize_t n = ::write(fd_, batch.data() + off, batch.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = n < 0 ? errno : EIO;
        break;
      }
      off += static_cast<size_t>(n);
    }
    if (off < batch.size()) {
      // The lines not (wholly) written are lost: say how many, never what they held.
      const auto lost = static_cast<uint64_t>(
          std::count(batch.begin() + static_cast<std::ptrdiff_t>(off), batch.end(), '\n'));
      if (stats_ != nullptr) stats_->AuditLinesLost(lost);
      core::LogError("audit log write failed: lines lost",
                     {{"lines", absl::StrCat(lost)}, {"error", std::strerror(error)}});
    }
    mu_.Lock();
  }
  writing_ = false;
}

}  // namespace credbroker::identity
