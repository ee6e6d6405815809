#include "credbroker/core/crc32c.h"

#include <array>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace credbroker::core {
namespace {

constexpr uint32_t kCastagnoliReflected = 0x82F63B78u;

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 1u) != 0 ? (crc >> 1) ^ kCastagnoliReflected : crc >> 1;
    }
    table[i] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

#if defined(__x86_64__)
// SSE 4.2's crc32 instruction computes CRC-32C (it was added for iSCSI), eight bytes at a time:
// the lease journal checksums every record it appends, on the request's thread.
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(absl::string_view data) {
  const char* p = data.data();
  size_t n = data.size();
  uint64_t crc = 0xFFFFFFFFu;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word = 0;
    std::memcpy(&word, p, sizeof(word));
    crc = _mm_crc32_u64(crc, word);
  }
  auto crc32 = static_cast<uint32_t>(crc);
  for (; n > 0; ++p, --n) crc32 = _mm_crc32_u8(crc32, static_cast<unsigned char>(*p));
  return crc32 ^ 0xFFFFFFFFu;
}

const bool kHasSse42 = __builtin_cpu_supports("sse4.2") != 0;
#endif

}  // namespace

namespace internal {

uint32_t Crc32cPortable(absl::string_view data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char c : data) {
    crc = kTable[(crc ^ static_cast<unsigned char>(c)) & 0xFFu] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFFu;
}

}  // namespace internal

uint32_t Crc32c(absl::string_view data) {
#if defined(__x86_64__)
  if (kHasSse42) return Crc32cSse42(data);
#endif
  return internal::Crc32cPortable(data);
}

}  // namespace credbroker::core
