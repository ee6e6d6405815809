// A configuration field that is wrong and why, named by its path in the config
// ("sources[0].vault.address"). Config validation collects these and reports them with the file
// and line of the field; code that validates one block (a backend's) returns them relative to it.
#pragma once

#include <string>

namespace credbroker::core {

struct FieldError {
  std::string field;
  std::string message;
};

}  // namespace credbroker::core
