// Loading and validating the broker's YAML configuration (schema: credbroker.v1.BrokerConfig).
// Every error names the file, the line (when yaml-cpp knows it) and the field path, e.g.
//   local.yaml:14: providers[1].rotation_period: must be between 30d and 90d, got 10d
// and all problems are reported at once, not only the first.
// Errors are INVALID_ARGUMENT (bad content) or NOT_FOUND (file missing).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::config {

// Field path ("providers[1].key_format") → 1-based line in the YAML file.
using FieldLines = std::map<std::string, int>;

struct ParsedConfig {
  v1::BrokerConfig config;
  FieldLines lines;
};

// YAML text → BrokerConfig, strictly: unknown keys, wrong types, two members of one oneof and
// malformed durations are errors. `filename` is used only in messages.
absl::StatusOr<ParsedConfig> ParseYaml(absl::string_view yaml, absl::string_view filename);

// Checks cross-field rules (ranges, references between sections, readable token files).
absl::Status Validate(const ParsedConfig& parsed, absl::string_view filename);

// Fills in defaults and makes relative paths absolute against `base_dir`.
void ApplyDefaults(v1::BrokerConfig& config, const std::string& base_dir);

// Command-line values that replace the file's (empty = keep the file's).
struct Overrides {
  std::string listen;
  std::string metrics_listen;
  std::string data_dir;
};

// Reads, parses, validates and applies overrides and defaults. The result is ready for the
// broker.
absl::StatusOr<v1::BrokerConfig> LoadConfigFile(const std::string& path,
                                                const Overrides& overrides = {});

}  // namespace credbroker::config
