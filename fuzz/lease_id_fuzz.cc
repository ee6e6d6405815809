// Fuzzes lease-id recognition, the first check every lease RPC makes on caller input, and holds
// it to its contract: whatever it accepts has the exact shape NewLeaseId produces.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/ids.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view id(reinterpret_cast<const char*>(data), size);
  if (!credbroker::core::LooksLikeLeaseId(id)) return 0;
  if (id.size() != 22) std::abort();
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') std::abort();
  }
  return 0;
}
