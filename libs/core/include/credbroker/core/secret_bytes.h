// SecretBytes holds key material. It is move-only, wipes its buffer on destruction and prints
// as "<redacted>" (and cannot be passed to absl::StrCat at all), so a key cannot reach a log line
// by accident. Code that needs the bytes asks for them explicitly with reveal(). Thread-safety:
// like std::string (const methods are safe to call concurrently).
#pragma once

#include <ostream>
#include <string>

#include "absl/strings/string_view.h"

namespace credbroker::core {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string value) : value_(std::move(value)) {}
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  // An explicit deep copy, for the rare places that need two owners.
  SecretBytes Clone() const { return SecretBytes(value_); }

  absl::string_view reveal() const { return value_; }
  size_t size() const { return value_.size(); }
  bool empty() const { return value_.empty(); }

  friend bool operator==(const SecretBytes& a, const SecretBytes& b);

 private:
  void Wipe();
  std::string value_;
};

std::ostream& operator<<(std::ostream& os, const SecretBytes& s);

}  // namespace credbroker::core
