// Splits one fuzzer input into several parts, so a target can feed a sequence of answers (one
// per HTTP exchange, say) from a single byte string. Parts are separated by the line "%%\n"; a
// missing part is empty.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace credbroker::fuzz {

inline std::vector<std::string> SplitParts(const uint8_t* data, size_t size, size_t want) {
  absl::string_view all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts = absl::StrSplit(all, "%%\n");
  parts.resize(want);
  return parts;
}

}  // namespace credbroker::fuzz
