#include "credbroker/core/json_pointer.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstdint>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace credbroker::core {

using google::protobuf::Value;

absl::StatusOr<std::string> JsonPointerString(absl::string_view json, absl::string_view pointer) {
  google::protobuf::Struct doc;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &doc).ok()) {
    return absl::InvalidArgumentError("answer is not a JSON object");
  }
  Value root;
  *root.mutable_struct_value() = std::move(doc);
  const Value* at = &root;
  if (!pointer.empty()) {
    if (pointer[0] != '/') return absl::InvalidArgumentError("JSON pointer must start with /");
    for (absl::string_view raw : absl::StrSplit(pointer.substr(1), '/')) {
      std::string token = absl::StrReplaceAll(raw, {{"~1", "/"}, {"~0", "~"}});
      if (at->has_struct_value()) {
        auto it = at->struct_value().fields().find(token);
        if (it == at->struct_value().fields().end()) {
          return absl::NotFoundError(absl::StrCat("no ", pointer, " in the answer"));
        }
        at = &it->second;
      } else if (at->has_list_value()) {
        size_t index = 0;
        if (!absl::SimpleAtoi(token, &index) ||
            index >= static_cast<size_t>(at->list_value().values_size())) {
          return absl::NotFoundError(absl::StrCat("no ", pointer, " in the answer"));
        }
        at = &at->list_value().values(static_cast<int>(index));
      } else {
        return absl::NotFoundError(absl::StrCat("no ", pointer, " in the answer"));
      }
    }
  }
  if (at->has_string_value()) return at->string_value();
  if (at->has_number_value()) {
    // Ids are usually integers: print them as such, when the double holds one exactly (a cast of
    // a larger or non-finite double would be undefined).
    const double n = at->number_value();
    if (std::abs(n) <= 9007199254740992.0 && n == std::floor(n)) {
      return absl::StrCat(static_cast<int64_t>(n));
    }
    return absl::StrCat(n);
  }
  return absl::InvalidArgumentError(absl::StrCat(pointer, " is not a string or number"));
}

}  // namespace credbroker::core
