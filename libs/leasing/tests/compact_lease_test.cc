#include "credbroker/leasing/compact_lease.h"

#include <string>

#include "absl/time/clock.h"
#include "credbroker/core/ids.h"
#include "gtest/gtest.h"

namespace credbroker::leasing {
namespace {

state::LeaseRecord Record(const std::string& caller, const std::string& purpose = "") {
  state::LeaseRecord l;
  l.id = core::NewLeaseId();
  l.caller = caller;
  l.provider = "lumenfall";
  l.key_version = "v7";
  l.key_fingerprint = "0123456789ab";
  l.purpose = purpose;
  l.issued_at = absl::FromUnixNanos(1'780'000'000'123'456'789);
  l.expires_at = l.issued_at + absl::Minutes(10);
  l.renew_count = 3;
  return l;
}

TEST(LeaseClassesTest, OneClassPerDistinctStringsCountedAndFreedWithItsLastLease) {
  LeaseClasses classes;
  const LeaseClasses::Id a1 = classes.Ref(Record("svc-a"));
  const LeaseClasses::Id a2 = classes.Ref(Record("svc-a"));
  const LeaseClasses::Id b = classes.Ref(Record("svc-b"));
  const LeaseClasses::Id a_batch = classes.Ref(Record("svc-a", "nightly-batch"));
  EXPECT_EQ(a1, a2);
  EXPECT_NE(a1, b);
  EXPECT_NE(a1, a_batch);
  EXPECT_EQ(classes.size(), 3u);
  EXPECT_TRUE(classes.Is(a1, Record("svc-a")));
  EXPECT_FALSE(classes.Is(a1, Record("svc-a", "nightly-batch")));

  classes.Unref(a1);
  EXPECT_EQ(classes.size(), 3u) << "svc-a still has a lease";
  classes.Unref(a2);
  EXPECT_EQ(classes.size(), 2u);
  // The freed slot is reused for the next new class; the others are untouched.
  const LeaseClasses::Id c = classes.Ref(Record("svc-c"));
  EXPECT_EQ(c, a1);
  state::LeaseRecord filled;
  classes.Fill(b, &filled);
  EXPECT_EQ(filled.caller, "svc-b");
  classes.Fill(c, &filled);
  EXPECT_EQ(filled.caller, "svc-c");
  EXPECT_EQ(filled.purpose, "");
}

TEST(CompactLeaseTest, ExpandsToTheRecordItWasMadeOf) {
  LeaseClasses classes;
  const state::LeaseRecord l = Record("svc-a", "nightly-batch");
  const CompactLease c = CompactLease::Of(l, 42, classes.Ref(l));
  const state::VersionedLease v = c.Expand(l.id, classes);
  EXPECT_EQ(v.revision, 42);
  EXPECT_EQ(v.lease.id, l.id);
  EXPECT_EQ(v.lease.caller, l.caller);
  EXPECT_EQ(v.lease.provider, l.provider);
  EXPECT_EQ(v.lease.key_version, l.key_version);
  EXPECT_EQ(v.lease.key_fingerprint, l.key_fingerprint);
  EXPECT_EQ(v.lease.purpose, l.purpose);
  EXPECT_EQ(v.lease.issued_at, l.issued_at);
  EXPECT_EQ(v.lease.expires_at, l.expires_at);
  EXPECT_EQ(v.lease.renew_count, l.renew_count);
}

}  // namespace
}  // namespace credbroker::leasing
