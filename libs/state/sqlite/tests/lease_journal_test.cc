#include "../src/lease_journal.h"

#include <fstream>

#include "credbroker/testing/status_matchers.h"
#include "credbroker/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::state::sqlite {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::TempDir;

JournalRecord Put(const std::string& id, int64_t seq, int64_t revision) {
  JournalRecord r{JournalRecord::Op::kPut, seq, revision, {}};
  r.lease.id = id;
  r.lease.caller = "billing/api";
  r.lease.provider = "lumenfall";
  r.lease.key_version = "v2";
  r.lease.key_fingerprint = "sha256:0f3a";
  r.lease.purpose = "nightly \"batch\"\n";
  r.lease.issued_at = absl::FromUnixMicros(1'800'000'000'123'456);
  r.lease.expires_at = absl::FromUnixMicros(1'800'000'900'000'001);
  r.lease.renew_count = 7;
  return r;
}

std::string Frames(const std::vector<JournalRecord>& records) {
  std::string out;
  for (const JournalRecord& r : records) LeaseJournal::Encode(r, &out);
  return out;
}

void AppendRaw(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::app | std::ios::binary) << bytes;
}

TEST(LeaseJournalTest, RecordsReadBackWithEveryField) {
  TempDir dir;
  auto j = LeaseJournal::Open(dir.Join("j"));
  ASSERT_THAT(j, IsOk());
  JournalRecord del{JournalRecord::Op::kDelete, 3, 12, Put("b", 3, 11).lease};
  ASSERT_THAT((*j)->Append(Frames({Put("a", 1, 10), Put("b", 3, 11)})), IsOk());
  ASSERT_THAT((*j)->Append(Frames({del})), IsOk());
  // Another open (the next start) reads the same.
  auto again = LeaseJournal::Open(dir.Join("j"));
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ((*again)->size(), (*j)->size());
  uint64_t torn = 99;
  auto got = (*again)->ReadAll(&torn);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(torn, 0u);
  ASSERT_EQ(got->size(), 3u);
  const JournalRecord want = Put("a", 1, 10);
  const JournalRecord& a = (*got)[0];
  EXPECT_EQ(a.op, JournalRecord::Op::kPut);
  EXPECT_EQ(a.seq, 1);
  EXPECT_EQ(a.revision, 10);
  EXPECT_EQ(a.lease.id, want.lease.id);
  EXPECT_EQ(a.lease.caller, want.lease.caller);
  EXPECT_EQ(a.lease.provider, want.lease.provider);
  EXPECT_EQ(a.lease.key_version, want.lease.key_version);
  EXPECT_EQ(a.lease.key_fingerprint, want.lease.key_fingerprint);
  EXPECT_EQ(a.lease.purpose, want.lease.purpose);
  EXPECT_EQ(a.lease.issued_at, want.lease.issued_at);
  EXPECT_EQ(a.lease.expires_at, want.lease.expires_at);
  EXPECT_EQ(a.lease.renew_count, 7);
  EXPECT_EQ((*got)[2].op, JournalRecord::Op::kDelete);
  EXPECT_EQ((*got)[2].lease.id, "b");
  EXPECT_EQ((*got)[2].revision, 12);
}

// A crash in the middle of an append leaves part of a frame: it is not a record.
TEST(LeaseJournalTest, ATornLastRecordIsDropped) {
  TempDir dir;
  const std::string whole = Frames({Put("a", 1, 1)});
  const std::string next = Frames({Put("b", 2, 2)});
  for (size_t cut : {size_t{1}, size_t{7}, size_t{8}, next.size() - 1}) {
    const std::string path = dir.Join("j" + std::to_string(cut));
    AppendRaw(path, whole + next.substr(0, cut));
    auto j = LeaseJournal::Open(path);
    ASSERT_THAT(j, IsOk());
    uint64_t torn = 0;
    auto got = (*j)->ReadAll(&torn);
    ASSERT_THAT(got, IsOk());
    ASSERT_EQ(got->size(), 1u) << cut;
    EXPECT_EQ((*got)[0].lease.id, "a");
    EXPECT_EQ(torn, cut);
  }
}

// A damaged record (a flipped byte, or zeros where a power loss left a hole) ends the journal
// there: nothing after it is trusted.
TEST(LeaseJournalTest, ReadingStopsAtTheFirstDamagedRecord) {
  TempDir dir;
  std::string bytes = Frames({Put("a", 1, 1), Put("b", 2, 2), Put("c", 3, 3)});
  const size_t first = Frames({Put("a", 1, 1)}).size();
  bytes[first + 20] ^= 0x40;  // inside b's payload
  AppendRaw(dir.Join("flipped"), bytes);
  AppendRaw(dir.Join("zeros"), Frames({Put("a", 1, 1)}) + std::string(64, '\0'));
  for (const char* name : {"flipped", "zeros"}) {
    auto j = LeaseJournal::Open(dir.Join(name));
    ASSERT_THAT(j, IsOk());
    uint64_t torn = 0;
    auto got = (*j)->ReadAll(&torn);
    ASSERT_THAT(got, IsOk());
    ASSERT_EQ(got->size(), 1u) << name;
    EXPECT_EQ((*got)[0].lease.id, "a");
    EXPECT_GT(torn, 0u);
  }
}

TEST(LeaseJournalTest, ResetEmptiesTheFileAndAppendsStartOver) {
  TempDir dir;
  auto j = LeaseJournal::Open(dir.Join("j"));
  ASSERT_THAT(j, IsOk());
  ASSERT_THAT((*j)->Append(Frames({Put("a", 1, 1)})), IsOk());
  ASSERT_THAT((*j)->Sync(), IsOk());
  ASSERT_THAT((*j)->Reset(), IsOk());
  EXPECT_EQ((*j)->size(), 0u);
  ASSERT_THAT((*j)->Append(Frames({Put("b", 2, 2)})), IsOk());
  uint64_t torn = 0;
  auto got = (*j)->ReadAll(&torn);
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].lease.id, "b");
}

}  // namespace
}  // namespace credbroker::state::sqlite
