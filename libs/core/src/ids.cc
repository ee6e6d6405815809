#include "credbroker/core/ids.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstdint>
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

// base64url (RFC 4648 §5), the alphabet of lease ids.
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr uint8_t kNotBase64Url = 0x80;

constexpr std::array<uint8_t, 256> MakeBase64UrlValues() {
  std::array<uint8_t, 256> values{};
  values.fill(kNotBase64Url);
  for (int i = 0; i < 64; ++i)
    values[static_cast<unsigned char>(kBase64Url[i])] = static_cast<uint8_t>(i);
  return values;
}

// A character's 6-bit value, or kNotBase64Url outside the alphabet.
constexpr std::array<uint8_t, 256> kBase64UrlValue = MakeBase64UrlValues();

constexpr size_t kLeaseIdChars = 22;

}  // namespace

std::string NewLeaseId() {
  thread_local RandomBuffer random;
  std::array<unsigned char, 16> bytes;
  random.Take(bytes.data(), bytes.size());
  return absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

bool LooksLikeLeaseId(absl::string_view id) {
  if (id.size() != kLeaseIdChars) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return kBase64UrlValue[static_cast<unsigned char>(c)] != kNotBase64Url;
  });
}

std::string Sha256Hex(absl::string_view data) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string Fingerprint(absl::string_view material) { return Sha256Hex(material).substr(0, 12); }

// Decoded and encoded here rather than with absl's base64 functions: every lease write and lookup
// keys a LeaseIdMap, and those allocate a string each way.
std::optional<LeaseKey> LeaseKey::Of(absl::string_view id) {
  if (id.size() != kLeaseIdChars) return std::nullopt;
  // OR-ing every character's value leaves kNotBase64Url's bit set in `bad` when a character is
  // outside the alphabet: checked once at the end rather than per character.
  uint32_t bad = 0;
  auto value = [&](size_t i) {
    const uint32_t v = kBase64UrlValue[static_cast<unsigned char>(id[i])];
    bad |= v;
    return v & 0x3Fu;
  };
  LeaseKey key;
  size_t out = 0;
  for (size_t i = 0; i < 20; i += 4) {  // 20 characters → 15 bytes
    const uint32_t group =
        (value(i) << 18) | (value(i + 1) << 12) | (value(i + 2) << 6) | value(i + 3);
    key.bytes_[out++] = static_cast<char>(group >> 16);
    key.bytes_[out++] = static_cast<char>((group >> 8) & 0xFFu);
    key.bytes_[out++] = static_cast<char>(group & 0xFFu);
  }
  const uint32_t last = value(21);
  key.bytes_[out] = static_cast<char>(((value(20) << 2) | (last >> 4)) & 0xFFu);
  // 22 characters carry 132 bits for 128: the last character's low 4 bits are zero in what
  // NewLeaseId produces, so any other id with the same bytes is a different id.
  if ((bad & kNotBase64Url) != 0 || (last & 0x0Fu) != 0) return std::nullopt;
  return key;
}

std::string LeaseKey::Id() const {
  std::string id(kLeaseIdChars, '\0');
  auto byte = [this](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(bytes_[i]));
  };
  size_t out = 0;
  for (size_t i = 0; i + 3 <= 15; i += 3) {
    const uint32_t group = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    id[out++] = kBase64Url[group >> 18];
    id[out++] = kBase64Url[(group >> 12) & 0x3Fu];
    id[out++] = kBase64Url[(group >> 6) & 0x3Fu];
    id[out++] = kBase64Url[group & 0x3Fu];
  }
  id[out++] = kBase64Url[byte(15) >> 2];
  id[out] = kBase64Url[(byte(15) & 0x03u) << 4];
  return id;
}

}  // namespace credbroker::core
