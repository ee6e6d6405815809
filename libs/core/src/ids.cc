#include "credbroker/core/ids.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/lease_id_map.h"

namespace credbroker::core {

namespace {

// Random bytes drawn from OpenSSL's CSPRNG 4 KiB at a time per thread: one RAND_bytes call (a
// DRBG lock and a getpid(2) for its fork check) per 256 ids instead of one per id. The broker
// never forks, so no two processes can share a buffer.
class RandomBuffer {
 public:
  void Take(unsigned char* out, size_t n) {
    if (used_ + n > bytes_.size()) Refill();
    std::memcpy(out, bytes_.data() + used_, n);
    OPENSSL_cleanse(bytes_.data() + used_, n);  // handed out: not kept
    used_ += n;
  }

 private:
  void Refill() {
    if (RAND_bytes(bytes_.data(), static_cast<int>(bytes_.size())) != 1) {
      // The CSPRNG failing means the process cannot issue unguessable ids; continuing would hand
      // out predictable lease ids.
      std::abort();
    }
    used_ = 0;
  }
  std::array<unsigned char, 4096> bytes_{};
  size_t used_ = bytes_.size();
};

}  // namespace

std::string NewLeaseId() {
  thread_local RandomBuffer random;
  std::array<unsigned char, 16> bytes;
  random.Take(bytes.data(), bytes.size());
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

bool LooksLikeLeaseId(absl::string_view id) {
  if (id.size() != 22) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string Sha256Hex(absl::string_view data) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string Fingerprint(absl::string_view material) { return Sha256Hex(material).substr(0, 12); }

std::optional<LeaseKey> LeaseKey::Of(absl::string_view id) {
  if (!LooksLikeLeaseId(id)) return std::nullopt;
  std::string bytes;
  if (!absl::WebSafeBase64Unescape(id, &bytes) || bytes.size() != 16) return std::nullopt;
  LeaseKey key;
  std::copy(bytes.begin(), bytes.end(), key.bytes_.begin());
  // 22 characters carry 132 bits: only the encoding NewLeaseId produces maps back to `id`.
  if (key.Id() != id) return std::nullopt;
  return key;
}

std::string LeaseKey::Id() const {
  return absl::WebSafeBase64Escape(absl::string_view(bytes_.data(), bytes_.size()));
}

}  // namespace credbroker::core
