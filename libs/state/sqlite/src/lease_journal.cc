#include "lease_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "credbroker/core/crc32c.h"
#include "credbroker/state/lease_value.h"
#include "credbroker/state/v1/records.pb.h"

namespace credbroker::state::sqlite {
namespace {

// A record longer than this is not one this store wrote (leases hold a few short strings).
constexpr uint32_t kMaxPayload = 1 << 20;
constexpr size_t kFrameHeader = 8;

uint32_t GetU32(absl::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  return v;
}

bool Decode(absl::string_view payload, JournalRecord* r) {
  v1::LeaseJournalRecord p;
  if (!p.ParseFromArray(payload.data(), static_cast<int>(payload.size())) || p.id().empty()) {
    return false;
  }
  r->op = p.deleted() ? JournalRecord::Op::kDelete : JournalRecord::Op::kPut;
  r->seq = p.seq();
  r->revision = p.revision();
  r->lease = FromLeaseValue(p.id(), p.lease());
  return true;
}

absl::Status Errno(absl::string_view what, const std::string& path, int err) {
  return absl::UnavailableError(
      absl::StrCat("state store: ", what, " ", path, ": ", std::strerror(err)));
}

}  // namespace

LeaseJournal::LeaseJournal(int fd, std::string path, uint64_t size)
    : fd_(fd), path_(std::move(path)), size_(size) {}

LeaseJournal::~LeaseJournal() { ::close(fd_); }

absl::StatusOr<std::unique_ptr<LeaseJournal>> LeaseJournal::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot open the lease journal", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno("cannot stat the lease journal", path, err);
  }
  return std::unique_ptr<LeaseJournal>(
      new LeaseJournal(fd, path, static_cast<uint64_t>(st.st_size)));
}

void LeaseJournal::Encode(const JournalRecord& r, std::string* out) {
  Encode(r.op, r.seq, r.revision, r.lease, out);
}

void LeaseJournal::Encode(JournalRecord::Op op, int64_t seq, int64_t revision,
                          const LeaseRecord& lease, std::string* out) {
  // Reused per thread: a cleared message keeps its strings' buffers, so encoding a record
  // allocates nothing once the thread has encoded one like it.
  thread_local v1::LeaseJournalRecord p;
  p.set_deleted(op == JournalRecord::Op::kDelete);
  p.set_seq(seq);
  p.set_revision(revision);
  p.set_id(lease.id);
  ToLeaseValue(lease, p.mutable_lease());
  const size_t length = p.ByteSizeLong();
  const size_t at = out->size();
  out->resize(at + kFrameHeader + length);
  auto* payload = reinterpret_cast<uint8_t*>(out->data() + at + kFrameHeader);
  p.SerializeWithCachedSizesToArray(payload);
  const uint32_t crc =
      core::Crc32c(absl::string_view(reinterpret_cast<const char*>(payload), length));
  for (int i = 0; i < 4; ++i) {
    (*out)[at + i] = static_cast<char>((length >> (8 * i)) & 0xFF);
    (*out)[at + 4 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  }
}

absl::StatusOr<std::vector<JournalRecord>> LeaseJournal::ReadAll(uint64_t* torn_bytes) {
  std::string data;
  data.resize(size_);
  size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::pread(fd_, data.data() + got, data.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read the lease journal", path_, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  std::vector<JournalRecord> out;
  absl::string_view rest(data);
  while (rest.size() >= kFrameHeader) {
    const uint32_t length = GetU32(rest);
    const uint32_t crc = GetU32(rest.substr(4));
    if (length > kMaxPayload || rest.size() - kFrameHeader < length) break;
    const absl::string_view payload = rest.substr(kFrameHeader, length);
    JournalRecord r;
    if (core::Crc32c(payload) != crc || !Decode(payload, &r)) break;
    out.push_back(std::move(r));
    rest.remove_prefix(kFrameHeader + length);
  }
  *torn_bytes = rest.size();
  return out;
}

absl::Status LeaseJournal::Append(absl::string_view frames) {
  size_t written = 0;
  while (written < frames.size()) {
    const ssize_t n = ::write(fd_, frames.data() + written, frames.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      // Leave no part of these frames behind: a later append must not follow half a record.
      if (written > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
        return Errno("cannot write (nor cut back) the lease journal", path_, err);
      }
      return Errno("cannot write the lease journal", path_, err);
    }
    written += static_cast<size_t>(n);
  }
  size_ += frames.size();
  return absl::OkStatus();
}

absl::Status LeaseJournal::Sync() {
  if (::fdatasync(fd_) != 0) return Errno("cannot fsync the lease journal", path_, errno);
  return absl::OkStatus();
}

absl::Status LeaseJournal::Rewrite(absl::string_view frames, bool durable) {
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", tmp, errno);
  auto fail = [&](absl::string_view what) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Errno(what, tmp, err);
  };
  size_t written = 0;
  while (written < frames.size()) {
    const ssize_t n = ::write(fd, frames.data() + written, frames.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ENOSPC;
      return fail("cannot write");
    }
    written += static_cast<size_t>(n);
  }
  if (durable && ::fdatasync(fd) != 0) return fail("cannot fsync");
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return fail("cannot rename");
  if (durable) {
    // The rename itself survives a power loss once the directory is synced.
    const size_t slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  ::close(fd_);
  fd_ = fd;
  size_ = frames.size();
  return absl::OkStatus();
}

absl::Status LeaseJournal::Reset() {
  if (::ftruncate(fd_, 0) != 0) return Errno("cannot empty the lease journal", path_, errno);
  size_ = 0;
  return absl::OkStatus();
}

}  // namespace credbroker::state::sqlite
