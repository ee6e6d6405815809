// Fuzzes lease-id recognition, the first check every lease RPC makes on caller input, and holds
// it to its contract: whatever it accepts has the exact shape NewLeaseId produces. It also holds
// LeaseKey (the 16-byte form every lease map keys on, decoded by hand) to absl's base64url codec:
// a key exists exactly for the ids that codec decodes to 16 bytes and encodes back unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/lease_id_map.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view id(reinterpret_cast<const char*>(data), size);
  const std::optional<credbroker::core::LeaseKey> key = credbroker::core::LeaseKey::Of(id);
  std::string bytes;
  const bool canonical = credbroker::core::LooksLikeLeaseId(id) &&
                         absl::WebSafeBase64Unescape(id, &bytes) && bytes.size() == 16 &&
                         absl::WebSafeBase64Escape(bytes) == id;
  if (key.has_value() != canonical) std::abort();
  if (key.has_value() && key->Id() != id) std::abort();
  if (!credbroker::core::LooksLikeLeaseId(id)) return 0;
  if (id.size() != 22) std::abort();
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') std::abort();
  }
  return 0;
}
