// LeaseJournal: the SQLite lease store's append-only log of lease writes that are not yet in the
// lease table (the file `<state file>-leases.journal`, next to the state file and its WAL).
//
// Why it exists (bench/RESULTS.md, 2026-12-03): a gRPC 1.51 callback RPC answered from another
// thread than its handler costs about as much again as the RPC, so a lease write must be durable
// before its handler returns. A SQLite commit per request is too slow for that; one write(2) of a
// ~150-byte record is not. The store appends each write here on the request's thread and applies
// the records to the lease table later, in batches (one transaction each), then empties the file.
//
// A record is framed [u32 payload length][u32 CRC-32C of the payload][payload], little-endian; the
// payload is a v1::LeaseJournalRecord (records.proto, with the lease as the etcd store stores it).
// ReadAll stops at the first record that is cut short or fails its checksum: a write interrupted
// by a crash, never acknowledged to anyone.
// Thread-safety: not safe for concurrent use (the store calls it under its mutex, except Sync on
// the committer thread, the only thread that calls Rewrite).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "credbroker/state/lease_store.h"

namespace credbroker::state::sqlite {

struct JournalRecord {
  enum class Op : uint8_t { kPut = 1, kDelete = 2 };
  Op op = Op::kPut;
  int64_t seq = 0;       // the lease's row in lease_rows
  int64_t revision = 0;  // the store revision of this write
  LeaseRecord lease;     // kPut: the lease as written; kDelete: the lease as it was
};

class LeaseJournal {
 public:
  // Opens (creating it, mode 0600) the journal at `path`.
  static absl::StatusOr<std::unique_ptr<LeaseJournal>> Open(const std::string& path);
  ~LeaseJournal();
  LeaseJournal(const LeaseJournal&) = delete;
  LeaseJournal& operator=(const LeaseJournal&) = delete;

  // Appends `record`'s frame to `out`.
  static void Encode(const JournalRecord& record, std::string* out);
  // The same, from the record's parts.
  static void Encode(JournalRecord::Op op, int64_t seq, int64_t revision, const LeaseRecord& lease,
                     std::string* out);

  // Every whole record from the start of the file; `torn_bytes` gets the size of what follows
  // the last good one (0 for a clean file).
  absl::StatusOr<std::vector<JournalRecord>> ReadAll(uint64_t* torn_bytes);
  // Writes encoded frames with one write(2): once it returns OK they survive a crash of this
  // process. On error the file is cut back to where it was (nothing was appended).
  absl::Status Append(absl::string_view frames);
  // fdatasync: what was appended survives a power loss.
  absl::Status Sync();
  // Empties the file (every record in it is in the lease table).
  absl::Status Reset();
  // Replaces the file with one holding only `frames` (the records not yet in the lease table:
  // under steady load the journal is never all applied at once, so it is rewritten instead of
  // emptied): written to a temporary file and renamed over the journal, so a crash leaves one or
  // the other whole. `durable`: fsynced (the file, then the directory) before it counts.
  absl::Status Rewrite(absl::string_view frames, bool durable);

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  LeaseJournal(int fd, std::string path, uint64_t size);
  int fd_;
  const std::string path_;
  uint64_t size_;
};

}  // namespace credbroker::state::sqlite
