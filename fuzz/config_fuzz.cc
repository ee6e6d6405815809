// Fuzzes the configuration loader: YAML → BrokerConfig, the cross-field validation and the
// defaults, on arbitrary text. Any input must end in a status, never a crash.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "credbroker/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace credbroker;
  absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<config::ParsedConfig> parsed = config::ParseYaml(yaml, "fuzz.yaml");
  if (!parsed.ok()) return 0;
  if (!config::Validate(*parsed, "fuzz.yaml").ok()) return 0;
  config::ApplyDefaults(parsed->config, "/nonexistent-fuzz-base");
  return 0;
}
