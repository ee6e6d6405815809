#include "credbroker/core/crc32c.h"

#include <string>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace credbroker::core {
namespace {

TEST(Crc32cTest, MatchesRfc3720AppendixB4) {
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  std::string descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(descending), 0x113FDB5Cu);
  // An iSCSI read command PDU (B.4's last vector).
  const unsigned char pdu[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(Crc32c(absl::string_view(reinterpret_cast<const char*>(pdu), sizeof(pdu))),
            0xD9963A56u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(Crc32cTest, TheInstructionAndTheTableAgree) {
  EXPECT_EQ(internal::Crc32cPortable("123456789"), 0xE3069283u);
  std::string data;
  for (int i = 0; i < 300; ++i) {
    // Every length up to 300, so each tail length after the eight-byte words is covered.
    EXPECT_EQ(Crc32c(data), internal::Crc32cPortable(data)) << "length " << data.size();
    data.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
  }
}

}  // namespace
}  // namespace credbroker::core
