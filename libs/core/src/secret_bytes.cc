#include "credbroker/core/secret_bytes.h"

#include <openssl/crypto.h>

namespace credbroker::core {

SecretBytes::~SecretBytes() { Wipe(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : value_(std::move(other.value_)) {
  other.Wipe();
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    value_ = std::move(other.value_);
    other.Wipe();
  }
  return *this;
}

void SecretBytes::Wipe() {
  // OPENSSL_cleanse is not optimised away, unlike a plain memset before free.
  if (!value_.empty()) OPENSSL_cleanse(value_.data(), value_.size());
  value_.clear();
}

bool operator==(const SecretBytes& a, const SecretBytes& b) {
  return a.value_.size() == b.value_.size() &&
         CRYPTO_memcmp(a.value_.data(), b.value_.data(), a.value_.size()) == 0;
}

std::ostream& operator<<(std::ostream& os, const SecretBytes&) { return os << "<redacted>"; }

}  // namespace credbroker::core
