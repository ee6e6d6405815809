#include "credbroker/identity/auth_failure_folder.h"

#include <optional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::identity {
namespace {

class CountingStats final : public AuditStats {
 public:
  void AuditLinesLost(uint64_t lines) override { lost += lines; }
  void AuditLinesFolded(uint64_t lines) override { folded += lines; }
  void AuditWriteFailed() override {}
  uint64_t lost = 0;
  uint64_t folded = 0;
};

TEST(AuthFailureFolderTest, OneAuditedFailurePerPeerAndWindowTheRestCounted) {
  core::FakeClock clock;
  CountingStats stats;
  AuthFailureFolder folder({absl::Minutes(1), 100}, &clock, &stats);
  EXPECT_EQ(folder.Admit("ipv4:10.0.0.7"), std::optional<uint64_t>(0));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(folder.Admit("ipv4:10.0.0.7"), std::nullopt);
  // Another peer has a window of its own.
  EXPECT_EQ(folder.Admit("ipv4:10.0.0.8"), std::optional<uint64_t>(0));
  EXPECT_EQ(stats.folded, 3u);
  clock.Advance(absl::Seconds(59));
  EXPECT_EQ(folder.Admit("ipv4:10.0.0.7"), std::nullopt);
  // The window ended: audited again, saying how many were folded since the last audited one.
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(folder.Admit("ipv4:10.0.0.7"), std::optional<uint64_t>(4));
  EXPECT_EQ(folder.Admit("ipv4:10.0.0.7"), std::nullopt);
  EXPECT_EQ(stats.folded, 5u);
}

TEST(AuthFailureFolderTest, BeyondItsBoundEveryFailureIsAudited) {
  core::FakeClock clock;
  AuthFailureFolder folder({absl::Minutes(1), 2}, &clock, nullptr);
  ASSERT_TRUE(folder.Admit("a").has_value());
  ASSERT_TRUE(folder.Admit("b").has_value());
  // Two windows open: a third peer is not remembered, so none of its failures is folded.
  EXPECT_EQ(folder.Admit("c"), std::optional<uint64_t>(0));
  EXPECT_EQ(folder.Admit("c"), std::optional<uint64_t>(0));
  EXPECT_EQ(folder.Admit("a"), std::nullopt);
  // Once the windows ended they make room.
  clock.Advance(absl::Minutes(1));
  EXPECT_EQ(folder.Admit("c"), std::optional<uint64_t>(0));
  EXPECT_EQ(folder.Admit("c"), std::nullopt);
}

TEST(AuthFailureFolderTest, PeerAddressDropsThePort) {
  EXPECT_EQ(AuthFailureFolder::PeerAddress("ipv4:127.0.0.1:51234"), "ipv4:127.0.0.1");
  EXPECT_EQ(AuthFailureFolder::PeerAddress("ipv6:[::1]:443"), "ipv6:[::1]");
  EXPECT_EQ(AuthFailureFolder::PeerAddress("unix:/run/credbroker.sock"),
            "unix:/run/credbroker.sock");
}

}  // namespace
}  // namespace credbroker::identity
