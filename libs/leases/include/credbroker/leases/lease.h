// A lease: who holds which provider key version until when. Holds no key material (the key is
// looked up in the KeyRing by version when the lease is handed out).
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace credbroker::leases {

struct LeaseRecord {
  std::string id;
  std::string caller;
  std::string provider;
  std::string key_version;
  std::string key_fingerprint;
  std::string purpose;
  absl::Time issued_at;
  absl::Time expires_at;
  int64_t renew_count = 0;

  bool Expired(absl::Time now) const { return expires_at <= now; }
};

}  // namespace credbroker::leases
