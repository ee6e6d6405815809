// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), RFC 3720 §12.1 (test vectors in appendix
// B.4): GCP Secret Manager's dataCrc32c, and the checksum of the SQLite lease journal's records.
#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"

namespace credbroker::core {

uint32_t Crc32c(absl::string_view data);

}  // namespace credbroker::core
