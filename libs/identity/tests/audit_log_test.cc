#include "credbroker/identity/audit_log.h"

#include <algorithm>

#include "credbroker/core/batch_scope.h"
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

TEST(AuditLogTest, LinesTheFileSystemRefusesAreCountedAsLost) {
  class Lost final : public AuditStats {
   public:
    void AuditLinesLost(uint64_t lines) override { lost += lines; }
    void AuditLinesFolded(uint64_t) override {}
    uint64_t lost = 0;
  } stats;
  core::FakeClock clock;
  // /dev/full refuses every write with ENOSPC, as a full disk does.
  auto log = AuditLog::Open("/dev/full", &clock, &stats);
  ASSERT_THAT(log, testing::IsOk());
  (*log)->Record({"AcquireLease", "billing/api", "lumenfall", "", "", "", "", "allow", ""});
  {
    core::BatchScope batch;  // two lines, one write
    (*log)->Record({"RenewLease", "billing/api", "lumenfall", "", "", "", "", "allow", ""});
    (*log)->Record({"ReleaseLease", "billing/api", "lumenfall", "", "", "", "", "allow", ""});
  }
  EXPECT_EQ(stats.lost, 3u);
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

// The group-commit thread completes a batch of requests inside a BatchScope: their lines reach the
// file together when the scope ends (one write), and none is lost.
TEST(AuditLogTest, LinesOfABatchAreWrittenWhenTheBatchEnds) {
  testing::TempDir dir;
  core::FakeClock clock;
  auto log = AuditLog::Open(dir.Join("audit.log"), &clock);
  ASSERT_THAT(log, testing::IsOk());
  {
    core::BatchScope batch;
    for (int i = 0; i < 3; ++i) {
      (*log)->Record({"RenewLease", "billing/api", "lumenfall", "v1", "", "", "", "allow", ""});
    }
    EXPECT_EQ(testing::ReadFile(dir.Join("audit.log")), "");
  }
  std::string contents = testing::ReadFile(dir.Join("audit.log"));
  EXPECT_EQ(std::count(contents.begin(), contents.end(), '\n'), 3);
  // Outside a batch a line is written before Record returns.
  (*log)->Record({"ReleaseLease", "billing/api", "lumenfall", "v1", "", "", "", "allow", ""});
  EXPECT_THAT(testing::ReadFile(dir.Join("audit.log")), HasSubstr("ReleaseLease"));
}

}  // namespace
}  // namespace credbroker::identity
