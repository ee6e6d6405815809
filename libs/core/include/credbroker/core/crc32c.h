// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), RFC 3720 §12.1 (test vectors in appendix
// B.4): GCP Secret Manager's dataCrc32c, and the checksum of the SQLite lease journal's records.
#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace credbroker::core {

// Uses the CPU's crc32 instruction where there is one (x86-64 with SSE 4.2).
uint32_t Crc32c(absl::string_view data);

namespace internal {
// The table-driven computation Crc32c falls back to (exposed so tests check both).
uint32_t Crc32cPortable(absl::string_view data);
}  // namespace internal

}  // namespace credbroker::core
