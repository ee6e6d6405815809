// The audit log: one JSON object per line for every lease decision (allowed or denied) and every
// admin action — time, action, caller, provider, key version and fingerprint, lease id,
// decision, reason. Never key material. Written to stdout or appended to a file.
// Lines recorded while another thread is writing are appended to a buffer that this writer
// writes next, so concurrent requests share write() calls instead of taking one each; a line is
// in the file once the writer that took it returned (a crash loses at most the lines of one
// write in flight). Each line is written whole. Lines recorded inside a core::BatchScope (the
// completions of one group commit) are written together when the scope ends; the log must outlive
// such a scope (the committer thread stops before the log is destroyed). Lines the file system
// refuses (a full disk) are lost: each is counted (AuditStats) and the failure logged.
// Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/core/clock.h"

namespace credbroker::identity {

// What the audit trail counts; metrics::BrokerMetrics implements it.
class AuditStats {
 public:
  virtual ~AuditStats() = default;
  // Lines the file system refused: they are not in the audit log.
  virtual void AuditLinesLost(uint64_t lines) = 0;
  // Authentication failures not written one by one (AuthFailureFolder).
  virtual void AuditLinesFolded(uint64_t lines) = 0;
};

struct AuditRecord {
  std::string action;  // "AcquireLease", "RevokeLeases", ...
  std::string caller;
  std::string provider;
  std::string key_version;
  std::string key_fingerprint;
  // What the provider's dashboard shows of the key; the field is left out when empty.
  std::string key_hint;
  std::string lease_id;
  std::string decision;  // "allow" or "deny"
  std::string reason;    // the error reason for denials, or a short note
};

class AuditLog {
 public:
  // "-" means stdout. FAILED_PRECONDITION when the file cannot be opened for appending.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path,
                                                        const core::Clock* clock,
                                                        AuditStats* stats = nullptr);
  // Lines go to `sink` instead (tests).
  static std::unique_ptr<AuditLog> ToSink(std::function<void(absl::string_view)> sink,
                                          const core::Clock* clock);
  ~AuditLog();

  void Record(const AuditRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  // Writes the lines recorded and not yet written.
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  AuditLog(int fd, bool owned, std::function<void(absl::string_view)> sink,
           const core::Clock* clock, AuditStats* stats)
      : fd_(fd), owned_(owned), sink_(std::move(sink)), clock_(clock), stats_(stats) {}
  // Writes pending_ until it stays empty; the lock is released around each write(2).
  void WritePending() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const int fd_;
  const bool owned_;
  std::function<void(absl::string_view)> sink_;
  const core::Clock* const clock_;
  AuditStats* const stats_;  // may be null
  absl::Mutex mu_;
  std::string pending_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace credbroker::identity
