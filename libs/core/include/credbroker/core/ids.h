// Identifiers and fingerprints.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace credbroker::core {

// A lease id: 128 bits from the OpenSSL CSPRNG as unpadded base64url (22 characters).
std::string NewLeaseId();

// True when `id` has the shape NewLeaseId produces; lets the service reject garbage early.
bool LooksLikeLeaseId(absl::string_view id);

// First 12 hex characters of SHA-256(material): identifies a key to humans without revealing it.
std::string Fingerprint(absl::string_view material);

// Lowercase hex SHA-256.
std::string Sha256Hex(absl::string_view data);

}  // namespace credbroker::core
