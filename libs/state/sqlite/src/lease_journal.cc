#include "lease_journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "credbroker/core/crc32c.h"

namespace credbroker::state::sqlite {
namespace {

// A record longer than this is not one this store wrote (leases hold a few short strings).
constexpr uint32_t kMaxPayload = 1 << 20;
constexpr size_t kFrameHeader = 8;

void PutU32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void PutI64(int64_t v, std::string* out) {
  const auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
}
void PutString(absl::string_view s, std::string* out) {
  PutU32(static_cast<uint32_t>(s.size()), out);
  out->append(s.data(), s.size());
}

// Reads the payload's fields in order; any read past the end leaves ok() false.
class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}
  bool ok() const { return ok_; }
  bool done() const { return data_.empty(); }
  uint32_t U32() {
    uint32_t v = 0;
    if (!Take(4)) return 0;
    for (int i = 0; i < 4; ++i)
      v |= static_cast<uint32_t>(static_cast<uint8_t>(taken_[i])) << (8 * i);
    return v;
  }
  int64_t I64() {
    uint64_t v = 0;
    if (!Take(8)) return 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(taken_[i])) << (8 * i);
    return static_cast<int64_t>(v);
  }
  uint8_t U8() { return Take(1) ? static_cast<uint8_t>(taken_[0]) : 0; }
  std::string String() {
    const uint32_t n = U32();
    return ok_ && Take(n) ? std::string(taken_) : std::string();
  }

 private:
  bool Take(size_t n) {
    if (!ok_ || data_.size() < n) {
      ok_ = false;
      return false;
    }
    taken_ = data_.substr(0, n);
    data_.remove_prefix(n);
    return true;
  }
  absl::string_view data_;
  absl::string_view taken_;
  bool ok_ = true;
};

bool Decode(absl::string_view payload, JournalRecord* r) {
  Reader in(payload);
  const uint8_t op = in.U8();
  if (op != static_cast<uint8_t>(JournalRecord::Op::kPut) &&
      op != static_cast<uint8_t>(JournalRecord::Op::kDelete)) {
    return false;
  }
  r->op = static_cast<JournalRecord::Op>(op);
  r->seq = in.I64();
  r->revision = in.I64();
  LeaseRecord& l = r->lease;
  l.id = in.String();
  l.caller = in.String();
  l.provider = in.String();
  l.key_version = in.String();
  l.key_fingerprint = in.String();
  l.purpose = in.String();
  l.issued_at = absl::FromUnixMicros(in.I64());
  l.expires_at = absl::FromUnixMicros(in.I64());
  l.renew_count = in.I64();
  return in.ok() && in.done() && !l.id.empty();
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
  const size_t start = out->size();
  out->append(kFrameHeader, '\0');
  out->push_back(static_cast<char>(r.op));
  PutI64(r.seq, out);
  PutI64(r.revision, out);
  const LeaseRecord& l = r.lease;
  for (const std::string* s :
       {&l.id, &l.caller, &l.provider, &l.key_version, &l.key_fingerprint, &l.purpose}) {
    PutString(*s, out);
  }
  PutI64(absl::ToUnixMicros(l.issued_at), out);
  PutI64(absl::ToUnixMicros(l.expires_at), out);
  PutI64(l.renew_count, out);
  const absl::string_view payload = absl::string_view(*out).substr(start + kFrameHeader);
  std::string header;
  PutU32(static_cast<uint32_t>(payload.size()), &header);
  PutU32(core::Crc32c(payload), &header);
  out->replace(start, kFrameHeader, header);
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
    Reader header(rest.substr(0, kFrameHeader));
    const uint32_t length = header.U32();
    const uint32_t crc = header.U32();
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
