#include "credbroker/identity/audit_log.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::identity {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(AuditLogTest, OneJsonLinePerRecordWithOnlySetFields) {
  std::vector<std::string> lines;
  core::FakeClock clock(absl::FromUnixSeconds(1'800'000'000));
  auto log = AuditLog::ToSink([&](absl::string_view l) { lines.emplace_back(l); }, &clock);
  log->Record({"AcquireLease", "billing/api", "lumenfall", "v2", "3e0811e732f0", "",
               "ovQFr5IXZL0_g-Ly_4fSOA", "allow", ""});
  log->Record({"AcquireLease", "billing/api", "magichour", "", "", "", "", "deny", "NO_RULE"});
  log->Record({"RenewLease", "billing/api", "fluximage", "v3", "9a1b2c3d4e5f",
               "flx_live_a3b4c...f8e9", "ovQFr5IXZL0_g-Ly_4fSOA", "allow", ""});
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(
      lines[2],
      HasSubstr(
          R"("key_fingerprint":"9a1b2c3d4e5f","key_hint":"flx_live_a3b4c...f8e9","lease_id")"));
  EXPECT_THAT(lines[0], Not(HasSubstr("key_hint")));
  EXPECT_EQ(lines[0],
            R"({"ts":"2027-01-15T08:00:00.000000Z","action":"AcquireLease","caller":"billing/api",)"
            R"("provider":"lumenfall","key_version":"v2","key_fingerprint":"3e0811e732f0",)"
            R"("lease_id":"ovQFr5IXZL0_g-Ly_4fSOA","decision":"allow"})");
  EXPECT_THAT(lines[1], HasSubstr(R"("decision":"deny","reason":"NO_RULE"})"));
  EXPECT_THAT(lines[1], Not(HasSubstr("key_version")));
}

TEST(AuditLogTest, CallerChosenFieldsAreBounded) {
  std::vector<std::string> lines;
  core::FakeClock clock;
  auto log = AuditLog::ToSink([&](absl::string_view l) { lines.emplace_back(l); }, &clock);
  // 300 three-byte characters: byte 256 falls inside the 86th, so the cut backs off to its start.
  std::string provider;
  for (int i = 0; i < 300; ++i) provider += "\xe2\x82\xac";  // €
  log->Record({"AcquireLease", "billing/api", provider, "", "", "", std::string(100'000, 'x'),
               "deny", "NO_RULE"});
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_LT(lines[0].size(), 1000u);
  EXPECT_THAT(lines[0], HasSubstr("...[100000 bytes, truncated]"));
  EXPECT_THAT(lines[0], HasSubstr(R"("lease_id":")" + std::string(256, 'x') + "...["));
  // 85 whole characters (255 bytes), no part of the 86th.
  std::string kept;
  for (int i = 0; i < 85; ++i) kept += "\xe2\x82\xac";
  EXPECT_THAT(lines[0], HasSubstr(R"("provider":")" + kept + "...[900 bytes, truncated]"));
  EXPECT_THAT(lines[0], HasSubstr(R"("reason":"NO_RULE")"));
}

class CountingStats final : public AuditStats {
 public:
  void AuditLinesLost(uint64_t lines) override { lost += lines; }
  void AuditLinesFolded(uint64_t) override {}
  void AuditWriteFailed() override { ++write_failures; }
  std::atomic<uint64_t> lost{0};
  std::atomic<uint64_t> write_failures{0};
};

// A disk for the writer: it fails (writing `partial` bytes first) or blocks while told to, and
// keeps what it was given.
class FakeDisk {
 public:
  AuditLog::Writer Writer() {
    return [this](absl::string_view bytes, size_t* written) {
      absl::MutexLock lock(&mu_);
      ++calls_;
      auto unblocked = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !blocked_; };
      mu_.Await(absl::Condition(&unblocked));
      if (failing_) {
        *written = std::min(partial_, bytes.size());
        absl::StrAppend(&contents_, bytes.substr(0, *written));
        partial_ = 0;
        return absl::UnavailableError("No space left on device");
      }
      *written = bytes.size();
      absl::StrAppend(&contents_, bytes);
      writes_.emplace_back(bytes);
      return absl::OkStatus();
    };
  }
  void Fail(bool failing, size_t partial = 0) {
    absl::MutexLock lock(&mu_);
    failing_ = failing;
    partial_ = partial;
  }
  void Block(bool blocked) {
    absl::MutexLock lock(&mu_);
    blocked_ = blocked;
  }
  // Waits until the writer was called at least `n` times in all.
  void AwaitCalls(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_ >= n; };
    mu_.Await(absl::Condition(&reached));
  }
  // Waits until the disk holds `n` lines.
  std::string AwaitLines(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return std::count(contents_.begin(), contents_.end(), '\n') >= n;
    };
    mu_.Await(absl::Condition(&reached));
    return contents_;
  }
  std::vector<std::string> writes() {
    absl::MutexLock lock(&mu_);
    return writes_;
  }

 private:
  absl::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool failing_ ABSL_GUARDED_BY(mu_) = false;
  size_t partial_ ABSL_GUARDED_BY(mu_) = 0;
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  std::string contents_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> writes_ ABSL_GUARDED_BY(mu_);  // successful writes
};

AuditRecord Line(const std::string& lease_id) {
  return {"RenewLease", "billing/api", "lumenfall", "v1", "", "", lease_id, "allow", ""};
}

AuditLogOptions Options(size_t max_queued_lines = 0, bool fail_closed = false) {
  AuditLogOptions o;
  o.max_queued_lines = max_queued_lines;
  o.fail_closed = fail_closed;
  o.retry_interval = absl::Milliseconds(1);
  return o;
}

// Record never waits for the disk: with the writer stuck in a write, lines still queue, and
// those recorded meanwhile go out together in the next write.
TEST(AuditLogTest, RecordDoesNotWaitForTheDiskAndLinesQueuedMeanwhileShareAWrite) {
  FakeDisk disk;
  core::FakeClock clock;
  auto log = AuditLog::ToWriter(disk.Writer(), Options(), &clock, nullptr);
  disk.Block(true);
  log->Record(Line("first"));
  disk.AwaitCalls(1);  // the writer holds "first"
  for (int i = 0; i < 3; ++i) log->Record(Line(absl::StrCat("queued-", i)));
  disk.Block(false);
  log->Flush();
  const std::vector<std::string> writes = disk.writes();
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_THAT(writes[0], HasSubstr("first"));
  EXPECT_EQ(std::count(writes[1].begin(), writes[1].end(), '\n'), 3);
}

// Woken by a line, the writer lets more gather before it writes: under load that is one wake-up
// and one write(2) for many requests. A Flush cuts the wait short.
TEST(AuditLogTest, LinesRecordedWhileTheWriterLingersShareOneWrite) {
  FakeDisk disk;
  core::FakeClock clock;
  AuditLogOptions options = Options();
  options.linger = absl::Minutes(1);
  auto log = AuditLog::ToWriter(disk.Writer(), options, &clock, nullptr);
  for (int i = 0; i < 100; ++i) log->Record(Line(absl::StrCat("l", i)));
  log->Flush();
  const std::vector<std::string> writes = disk.writes();
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(std::count(writes[0].begin(), writes[0].end(), '\n'), 100);
}

// Lingering is bounded: a line is written once the linger is over, with no Flush; and closing
// the log writes what is lingering.
TEST(AuditLogTest, ALingeringLineIsWrittenWithoutAFlushAndWhenTheLogCloses) {
  FakeDisk disk;
  core::FakeClock clock;
  {
    AuditLogOptions options = Options();
    options.linger = absl::Milliseconds(1);
    auto log = AuditLog::ToWriter(disk.Writer(), options, &clock, nullptr);
    log->Record(Line("alone"));
    EXPECT_THAT(disk.AwaitLines(1), HasSubstr("alone"));
  }
  FakeDisk closing;
  {
    AuditLogOptions options = Options();
    options.linger = absl::Minutes(1);
    auto log = AuditLog::ToWriter(closing.Writer(), options, &clock, nullptr);
    log->Record(Line("at-close"));
  }
  const std::vector<std::string> writes = closing.writes();
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_THAT(writes[0], HasSubstr("at-close"));
}

// A full disk loses nothing that fits in the queue: the lines are kept and written once the
// disk takes them again, a partly written line finished; each failed attempt is counted.
TEST(AuditLogTest, AFailedWriteKeepsItsLinesAndTriesAgain) {
  FakeDisk disk;
  CountingStats stats;
  core::FakeClock clock;
  auto log = AuditLog::ToWriter(disk.Writer(), Options(), &clock, &stats);
  disk.Fail(true, /*partial=*/10);
  log->Record(Line("a"));
  log->Record(Line("b"));
  disk.AwaitCalls(3);  // failed, and tried again
  EXPECT_TRUE(log->failing());
  EXPECT_TRUE(log->Accepting());  // fail open (the default): requests go on
  log->Record(Line("c"));
  disk.Fail(false);
  const std::string contents = disk.AwaitLines(3);
  log->Flush();
  EXPECT_FALSE(log->failing());
  EXPECT_GE(stats.write_failures.load(), 2u);
  EXPECT_EQ(stats.lost.load(), 0u);
  const std::vector<std::string> lines = absl::StrSplit(contents, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_THAT(lines[i], ::testing::StartsWith("{\"ts\":"));
    EXPECT_THAT(lines[i], ::testing::EndsWith("}"));
    EXPECT_THAT(lines[i], HasSubstr(absl::StrCat("\"lease_id\":\"", std::string(1, 'a' + i))));
  }
}

// While the disk refuses, the queue holds at most max_queued_lines; a line past it is dropped
// and counted, and so are the lines still queued when the log closes.
TEST(AuditLogTest, PastTheBoundLinesAreDroppedAndCounted) {
  FakeDisk disk;
  CountingStats stats;
  core::FakeClock clock;
  {
    auto log = AuditLog::ToWriter(disk.Writer(), Options(/*max_queued_lines=*/2), &clock, &stats);
    disk.Fail(true);
    for (int i = 0; i < 5; ++i) log->Record(Line(absl::StrCat("l", i)));
    EXPECT_EQ(stats.lost.load(), 3u);
  }
  EXPECT_EQ(stats.lost.load(), 5u);
}

// Fail closed: requests are refused while the log cannot be written, or while its queue is
// full, and served again once it can.
TEST(AuditLogTest, FailClosedRefusesWhileTheLogCannotBeWritten) {
  FakeDisk disk;
  CountingStats stats;
  core::FakeClock clock;
  auto log =
      AuditLog::ToWriter(disk.Writer(), Options(/*max_queued_lines=*/2, true), &clock, &stats);
  EXPECT_TRUE(log->Accepting());
  disk.Fail(true);
  log->Record(Line("a"));
  disk.AwaitCalls(1);
  log->Flush();  // returns once the write failed
  EXPECT_TRUE(log->failing());
  EXPECT_FALSE(log->Accepting());
  disk.Fail(false);
  disk.AwaitLines(1);
  log->Flush();
  EXPECT_TRUE(log->Accepting());
  // A slow disk: two lines waiting fill the queue.
  disk.Block(true);
  log->Record(Line("b"));
  log->Record(Line("c"));
  EXPECT_FALSE(log->Accepting());
  disk.Block(false);
  disk.AwaitLines(3);
  log->Flush();
  EXPECT_TRUE(log->Accepting());
  EXPECT_EQ(stats.lost.load(), 0u);
}

// A real full disk: /dev/full refuses every write with ENOSPC.
TEST(AuditLogTest, ARefusingFileIsCountedAndItsLinesLostWhenTheLogCloses) {
  CountingStats stats;
  core::FakeClock clock;
  {
    AuditLogOptions options = Options();
    options.path = "/dev/full";
    auto log = AuditLog::Open(options, &clock, &stats);
    ASSERT_THAT(log, testing::IsOk());
    (*log)->Record(Line("a"));
    (*log)->Flush();
    EXPECT_TRUE((*log)->failing());
  }
  EXPECT_GE(stats.write_failures.load(), 1u);
  EXPECT_EQ(stats.lost.load(), 1u);
}

TEST(AuditLogTest, AppendsToAFile) {
  testing::TempDir dir;
  core::FakeClock clock;
  {
    auto log = AuditLog::Open(dir.Join("audit.log"), &clock);
    ASSERT_THAT(log, testing::IsOk());
    (*log)->Record({"RevokeLeases", "ops/oncall", "", "", "", "", "", "allow", "2 leases"});
  }
  {
    auto log = AuditLog::Open(dir.Join("audit.log"), &clock);
    (*log)->Record({"RevokeLeases", "ops/oncall", "", "", "", "", "", "allow", "0 leases"});
  }
  std::string contents = testing::ReadFile(dir.Join("audit.log"));
  EXPECT_EQ(std::count(contents.begin(), contents.end(), '\n'), 2);
  EXPECT_THAT(contents, HasSubstr("2 leases"));
  EXPECT_THAT(AuditLog::Open(dir.Join("new/dir/audit.log"), &clock), testing::IsOk());
  testing::WriteFile(dir.Join("blocker"), "x");
  EXPECT_FALSE(AuditLog::Open(dir.Join("blocker/audit.log"), &clock).ok());
}

}  // namespace
}  // namespace credbroker::identity
