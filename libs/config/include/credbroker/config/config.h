// Loading and validating the broker's YAML configuration (schema: credbroker.v1.BrokerConfig).
// Every error names the file, the line (when yaml-cpp knows it) and the field path, e.g.
//   local.yaml:14: providers[1].rotation_period: must be between 30d and 90d, got 10d
// and all problems are reported at once, not only the first.
// Errors are INVALID_ARGUMENT (bad content) or NOT_FOUND (file missing).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/field_error.h"
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

// Checks of the blocks this library does not own (each backend validates its own: see
// secrets::SourceRegistry::Validate), with field paths from the config's root.
using ExtraChecks = std::function<std::vector<core::FieldError>(const v1::BrokerConfig&)>;

// Checks cross-field rules (ranges, references between sections, readable token files), then
// `extra` when given; every error names the field and its line.
absl::Status Validate(const ParsedConfig& parsed, absl::string_view filename,
                      const ExtraChecks& extra = nullptr);

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
                                                const Overrides& overrides = {},
                                                const ExtraChecks& extra = nullptr);

}  // namespace credbroker::config
