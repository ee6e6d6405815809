// The audit log: one JSON object per line for every lease decision (allowed or denied) and every
// admin action — time, action, caller, provider, key version and fingerprint, lease id,
// decision, reason. Never key material. Written to stdout or appended to a file.
//
// Asynchronous and bounded: Record formats the line on the caller's thread and queues it; one
// writer thread appends everything queued with one write(2) (a request never waits for the disk).
// A line is in the file once the writer got to it: a crash loses the lines still queued. Woken by
// a line, the writer lets more gather for up to `linger` before it writes (Flush and closing cut
// that short): under load a line comes with every lease request, and waking the writer for each
// cost the broker a context switch per request (bench/RESULTS.md, fifteenth session). Each
// line is written whole. When a write fails (a full disk) the writer keeps the lines and tries
// again every `retry_interval`, so a passing failure loses nothing; while it fails new lines
// queue up to `max_queued_lines`, and a line past that bound is dropped and counted
// (AuditStats::AuditLinesLost), as are lines still unwritten when the log is closed.
//
// Fail closed (`fail_closed`, as Vault refuses requests it cannot audit): Accepting() turns false
// while the log cannot be written or its queue is full, and the gRPC edge then refuses every
// request with UNAVAILABLE (AUDIT_UNAVAILABLE) until a write succeeds again. A request admitted
// just before the failure still has its line queued (and kept, up to the bound).
// Thread-safety: safe for concurrent use.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"

namespace credbroker::identity {

// What the audit trail counts; metrics::BrokerMetrics implements it.
class AuditStats {
 public:
  virtual ~AuditStats() = default;
  // Lines dropped (the queue was full) or never written (the log closed while failing): they
  // are not in the audit log.
  virtual void AuditLinesLost(uint64_t lines) = 0;
  // A write the file system refused (each attempt; the lines stay queued for the next).
  virtual void AuditWriteFailed() = 0;
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

struct AuditLogOptions {
  // "-" or empty: stdout.
  std::string path;
  // Most lines waiting for the writer; 0 means the default.
  size_t max_queued_lines = 0;
  // Refuse requests while the log cannot be written (Accepting()).
  bool fail_closed = false;
  // How long the writer waits before trying a failed write again.
  absl::Duration retry_interval = absl::Seconds(1);
  // How long the writer lets lines gather once one is queued (zero: writes at once).
  absl::Duration linger = kDefaultLinger;

  static constexpr absl::Duration kDefaultLinger = absl::Milliseconds(5);

  static constexpr size_t kDefaultMaxQueuedLines = 65536;
};

class AuditLog {
 public:
  // Appends `bytes` somewhere and sets `written` to how many it appended (all of them, or fewer
  // with an error). The file writer wraps write(2); tests pass their own.
  using Writer = std::function<absl::Status(absl::string_view bytes, size_t* written)>;

  // FAILED_PRECONDITION when the file cannot be opened for appending.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const AuditLogOptions& options,
                                                        const core::Clock* clock,
                                                        AuditStats* stats = nullptr);
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path,
                                                        const core::Clock* clock,
                                                        AuditStats* stats = nullptr);
  // The asynchronous log over `writer` (tests: a writer that fails on demand).
  static std::unique_ptr<AuditLog> ToWriter(Writer writer, const AuditLogOptions& options,
                                            const core::Clock* clock, AuditStats* stats);
  // Each line goes to `sink` at once, on the recording thread, without the newline (tests).
  static std::unique_ptr<AuditLog> ToSink(std::function<void(absl::string_view)> sink,
                                          const core::Clock* clock);
  // Writes what is queued (one more attempt if the log is failing), then stops the writer.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  void Record(const AuditRecord& record) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns once every line recorded before the call was written, or a write attempted after
  // the call failed.
  void Flush() ABSL_LOCKS_EXCLUDED(mu_);
  // False when requests must be refused: fail_closed, and the log is failing or full.
  bool Accepting() const;
  // The last write failed and no write succeeded since.
  bool failing() const { return failing_.load(std::memory_order_acquire); }

 private:
  AuditLog(Writer writer, std::function<void(absl::string_view)> sink,
           const AuditLogOptions& options, const core::Clock* clock, AuditStats* stats);
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  const Writer writer_;
  const std::function<void(absl::string_view)> sink_;
  const size_t max_queued_lines_;
  const bool fail_closed_;
  const absl::Duration retry_interval_;
  const absl::Duration linger_;
  const core::Clock* const clock_;
  AuditStats* const stats_;  // may be null

  std::atomic<bool> failing_{false};
  std::atomic<bool> full_{false};
  absl::Mutex mu_;
  std::string queued_ ABSL_GUARDED_BY(mu_);
  // Lines queued and not yet written, those in the writer's hands included.
  size_t queued_lines_ ABSL_GUARDED_BY(mu_) = 0;
  // Lines recorded, and lines written or given up, since the start (Flush waits on them).
  uint64_t recorded_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t settled_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t attempts_ ABSL_GUARDED_BY(mu_) = 0;  // writes the writer finished (or failed)
  bool writer_idle_ ABSL_GUARDED_BY(mu_) = false;
  int flushing_ ABSL_GUARDED_BY(mu_) = 0;  // Flush calls waiting
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar wake_;
  std::thread thread_;  // absent for a sink
};

}  // namespace credbroker::identity
