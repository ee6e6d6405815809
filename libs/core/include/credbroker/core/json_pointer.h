// RFC 6901 JSON pointers into documents the broker receives (key APIs' answers, providers'
// error bodies).
// Thread-safety: a pure function.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace credbroker::core {

// The string or number at `pointer` (RFC 6901, e.g. "/data/key") in the JSON document `json`.
// NOT_FOUND when absent; INVALID_ARGUMENT when `json` is not a JSON object or the value is not
// a string or number. Messages never quote the document.
absl::StatusOr<std::string> JsonPointerString(absl::string_view json, absl::string_view pointer);

}  // namespace credbroker::core
