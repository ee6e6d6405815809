#include "credbroker/identity/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "credbroker/core/log.h"

namespace credbroker::identity {

namespace {

// Appends to a file descriptor with write(2), retrying interrupted and partial writes.
class FdWriter {
 public:
  FdWriter(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~FdWriter() {
    if (owned_) ::close(fd_);
  }
  FdWriter(const FdWriter&) = delete;
  FdWriter& operator=(const FdWriter&) = delete;

  absl::Status Write(absl::string_view bytes, size_t* written) const {
    *written = 0;
    while (*written < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + *written, bytes.size() - *written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::UnavailableError(std::strerror(n < 0 ? errno : EIO));
      *written += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

 private:
  const int fd_;
  const bool owned_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path,
                                                         const core::Clock* clock,
                                                         AuditStats* stats) {
  AuditLogOptions options;
  options.path = path;
  return Open(options, clock, stats);
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const AuditLogOptions& options,
                                                         const core::Clock* clock,
                                                         AuditStats* stats) {
  const std::string& path = options.path;
  std::shared_ptr<FdWriter> fd;
  if (path.empty() || path == "-") {
    fd = std::make_shared<FdWriter>(STDOUT_FILENO, false);
  } else {
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    const int f = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (f < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open audit log ", path, ": ", std::strerror(errno)));
    }
    fd = std::make_shared<FdWriter>(f, true);
  }
  return ToWriter(
      [fd](absl::string_view bytes, size_t* written) { return fd->Write(bytes, written); }, options,
      clock, stats);
}

std::unique_ptr<AuditLog> AuditLog::ToWriter(Writer writer, const AuditLogOptions& options,
                                             const core::Clock* clock, AuditStats* stats) {
  return std::unique_ptr<AuditLog>(new AuditLog(std::move(writer), nullptr, options, clock, stats));
}

std::unique_ptr<AuditLog> AuditLog::ToSink(std::function<void(absl::string_view)> sink,
                                           const core::Clock* clock) {
  return std::unique_ptr<AuditLog>(new AuditLog(nullptr, std::move(sink), {}, clock, nullptr));
}

AuditLog::AuditLog(Writer writer, std::function<void(absl::string_view)> sink,
                   const AuditLogOptions& options, const core::Clock* clock, AuditStats* stats)
    : writer_(std::move(writer)),
      sink_(std::move(sink)),
      max_queued_lines_(options.max_queued_lines == 0 ? AuditLogOptions::kDefaultMaxQueuedLines
                                                      : options.max_queued_lines),
      fail_closed_(options.fail_closed),
      retry_interval_(options.retry_interval),
      linger_(options.linger),
      clock_(clock),
      stats_(stats) {
  if (writer_) thread_ = std::thread([this] { Run(); });
}

AuditLog::~AuditLog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
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
  if (sink_) {
    absl::MutexLock lock(&mu_);
    sink_(line);
    return;
  }
  line += '\n';
  bool dropped = false;
  {
    absl::MutexLock lock(&mu_);
    if (queued_lines_ >= max_queued_lines_) {
      dropped = true;
    } else {
      queued_ += line;
      ++queued_lines_;
      ++recorded_;
      if (writer_idle_) wake_.Signal();
    }
    full_.store(queued_lines_ >= max_queued_lines_, std::memory_order_relaxed);
  }
  if (dropped && stats_ != nullptr) stats_->AuditLinesLost(1);
}

void AuditLog::Flush() {
  absl::MutexLock lock(&mu_);
  if (sink_) return;
  const uint64_t target = recorded_;
  const uint64_t attempts = attempts_;
  // Written; or a write attempted after this call failed (a failure seen before it may be over).
  auto settled = [this, target, attempts]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return settled_ >= target || (attempts_ > attempts && failing_.load(std::memory_order_acquire));
  };
  ++flushing_;  // the writer stops lingering
  mu_.Await(absl::Condition(&settled));
  --flushing_;
}

bool AuditLog::Accepting() const {
  return !fail_closed_ ||
         (!failing_.load(std::memory_order_acquire) && !full_.load(std::memory_order_relaxed));
}

void AuditLog::Run() {
  std::string batch;  // being written: what the last write left, then everything queued since
  absl::MutexLock lock(&mu_);
  while (true) {
    if (batch.empty()) {
      writer_idle_ = true;
      while (queued_.empty() && !stop_) wake_.Wait(&mu_);
      writer_idle_ = false;
      if (queued_.empty()) return;  // stopping, and everything is written
      // Up to half the queue's bound, so that lingering never makes a fail-closed log refuse.
      auto gathered = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || flushing_ > 0 ||
               queued_lines_ >= std::max<size_t>(1, max_queued_lines_ / 2);
      };
      if (linger_ > absl::ZeroDuration()) mu_.AwaitWithTimeout(absl::Condition(&gathered), linger_);
    }
    if (batch.empty()) {
      batch.swap(queued_);
    } else {
      batch += queued_;
      queued_.clear();
    }
    const bool stopping = stop_;
    size_t written = 0;
    mu_.Unlock();
    absl::Status status = writer_(batch, &written);
    mu_.Lock();
    ++attempts_;
    const auto lines_written = static_cast<size_t>(
        std::count(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(written), '\n'));
    batch.erase(0, written);  // a line cut by a partial write is finished by the next one
    queued_lines_ -= lines_written;
    settled_ += lines_written;
    if (status.ok()) {
      if (failing_.exchange(false, std::memory_order_acq_rel)) {
        core::LogInfo("audit log writable again", {});
      }
    } else {
      if (stats_ != nullptr) stats_->AuditWriteFailed();
      if (!failing_.exchange(true, std::memory_order_acq_rel)) {
        // Once per failure, not per retry. Never what the lines hold.
        core::LogError(fail_closed_
                           ? "audit log write failed: lines kept and retried; refusing requests "
                             "until it is written (audit.fail_closed)"
                           : "audit log write failed: lines kept and retried",
                       {{"error", std::string(status.message())},
                        {"queued_lines", absl::StrCat(queued_lines_)}});
      }
      if (stopping) {
        // The last attempt: whatever is left is lost.
        const uint64_t lost = queued_lines_;
        queued_lines_ = 0;
        settled_ += lost;
        if (lost > 0) {
          if (stats_ != nullptr) stats_->AuditLinesLost(lost);
          core::LogError("audit log closed with lines not written",
                         {{"lines", absl::StrCat(lost)}});
        }
        return;
      }
      if (!stop_) wake_.WaitWithTimeout(&mu_, retry_interval_);  // or until the log closes
    }
    full_.store(queued_lines_ >= max_queued_lines_, std::memory_order_relaxed);
  }
}

}  // namespace credbroker::identity
