// YAML → protobuf by reflection, so errors can name the exact field and line.
#include <yaml-cpp/yaml.h>

#include <type_traits>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "credbroker/config/config.h"
#include "credbroker/core/duration.h"
#include "credbroker/core/proto_time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/reflection.h"

namespace credbroker::config {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

class Converter {
 public:
  Converter(absl::string_view filename, FieldLines* lines) : filename_(filename), lines_(lines) {}

  void Message(const YAML::Node& node, const std::string& path, google::protobuf::Message* msg) {
    Record(path, node);
    if (node.IsNull()) return;  // "sqlite:" with nothing under it selects the defaults.
    if (!node.IsMap()) {
      Error(node, path, "expected a mapping of fields");
      return;
    }
    const Descriptor* desc = msg->GetDescriptor();
    const Reflection* refl = msg->GetReflection();
    for (const auto& kv : node) {
      auto key = kv.first.as<std::string>("");
      std::string field_path = path.empty() ? key : absl::StrCat(path, ".", key);
      const FieldDescriptor* field = desc->FindFieldByName(key);
      if (field == nullptr) {
        std::vector<std::string> known;
        for (int i = 0; i < desc->field_count(); ++i) known.push_back(desc->field(i)->name());
        Error(kv.first, field_path,
              absl::StrCat("unknown field (known: ", absl::StrJoin(known, ", "), ")"));
        continue;
      }
      if (const auto* oneof = field->real_containing_oneof()) {
        const FieldDescriptor* set = refl->GetOneofFieldDescriptor(*msg, oneof);
        if (set != nullptr) {
          Error(kv.first, field_path,
                absl::StrCat("only one of the ", oneof->name(), " options may be set (",
                             set->name(), " is already set)"));
          continue;
        }
      }
      if (field->is_repeated()) {
        Repeated(kv.second, field_path, msg, field);
      } else {
        Singular(kv.second, field_path, msg, field);
      }
    }
  }

  std::vector<std::string>& errors() { return errors_; }

 private:
  void Record(const std::string& path, const YAML::Node& node) {
    if (!path.empty() && node.Mark().line >= 0) (*lines_)[path] = node.Mark().line + 1;
  }

  void Error(const YAML::Node& node, const std::string& path, const std::string& message) {
    std::string where = std::string(filename_);
    if (node.Mark().line >= 0) absl::StrAppend(&where, ":", node.Mark().line + 1);
    errors_.push_back(absl::StrCat(where, ": ", path, ": ", message));
  }

  void Repeated(const YAML::Node& node, const std::string& path, google::protobuf::Message* msg,
                const FieldDescriptor* field) {
    Record(path, node);
    if (node.IsNull()) return;
    if (!node.IsSequence()) {
      Error(node, path, "expected a list");
      return;
    }
    for (size_t i = 0; i < node.size(); ++i) {
      std::string item_path = absl::StrCat(path, "[", i, "]");
      Value(node[i], item_path, msg, field, /*repeated=*/true);
    }
  }

  void Singular(const YAML::Node& node, const std::string& path, google::protobuf::Message* msg,
                const FieldDescriptor* field) {
    Value(node, path, msg, field, /*repeated=*/false);
  }

  void Value(const YAML::Node& node, const std::string& path, google::protobuf::Message* msg,
             const FieldDescriptor* field, bool repeated) {
    Record(path, node);
    const Reflection* refl = msg->GetReflection();
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      google::protobuf::Message* sub =
          repeated ? refl->AddMessage(msg, field) : refl->MutableMessage(msg, field);
      if (field->message_type()->full_name() == "google.protobuf.Duration") {
        Duration(node, path, static_cast<google::protobuf::Duration*>(sub));
      } else {
        Message(node, path, sub);
      }
      return;
    }
    if (!node.IsScalar()) {
      Error(node, path, node.IsNull() ? "has no value" : "expected a single value");
      return;
    }
    const std::string& text = node.Scalar();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        repeated ? refl->AddString(msg, field, text) : refl->SetString(msg, field, text);
        return;
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool b;
        if (text == "true") {
          b = true;
        } else if (text == "false") {
          b = false;
        } else {
          Error(node, path, absl::StrCat("expected true or false, got \"", text, "\""));
          return;
        }
        repeated ? refl->AddBool(msg, field, b) : refl->SetBool(msg, field, b);
        return;
      }
      case FieldDescriptor::CPPTYPE_INT32:
        Integer<int32_t>(node, path, text, [&](int32_t v) {
          repeated ? refl->AddInt32(msg, field, v) : refl->SetInt32(msg, field, v);
        });
        return;
      case FieldDescriptor::CPPTYPE_INT64:
        Integer<int64_t>(node, path, text, [&](int64_t v) {
          repeated ? refl->AddInt64(msg, field, v) : refl->SetInt64(msg, field, v);
        });
        return;
      case FieldDescriptor::CPPTYPE_UINT32:
        Integer<uint32_t>(node, path, text, [&](uint32_t v) {
          repeated ? refl->AddUInt32(msg, field, v) : refl->SetUInt32(msg, field, v);
        });
        return;
      case FieldDescriptor::CPPTYPE_UINT64:
        Integer<uint64_t>(node, path, text, [&](uint64_t v) {
          repeated ? refl->AddUInt64(msg, field, v) : refl->SetUInt64(msg, field, v);
        });
        return;
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double v;
        if (!absl::SimpleAtod(text, &v)) {
          Error(node, path, absl::StrCat("expected a number, got \"", text, "\""));
          return;
        }
        repeated ? refl->AddDouble(msg, field, v) : refl->SetDouble(msg, field, v);
        return;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* value = field->enum_type()->FindValueByName(text);
        if (value == nullptr) {
          Error(node, path, absl::StrCat("unknown value \"", text, "\""));
          return;
        }
        repeated ? refl->AddEnum(msg, field, value) : refl->SetEnum(msg, field, value);
        return;
      }
      default:
        Error(node, path, "field type not supported in configuration");
    }
  }

  // Decimal text into an integer field of type T; a value out of T's range is an error too.
  template <typename T, typename Set>
  void Integer(const YAML::Node& node, const std::string& path, const std::string& text, Set set) {
    T v;
    if (!absl::SimpleAtoi(text, &v)) {
      Error(node, path,
            absl::StrCat(
                std::is_signed_v<T> ? "expected an integer" : "expected a non-negative integer",
                ", got \"", text, "\""));
      return;
    }
    set(v);
  }

  void Duration(const YAML::Node& node, const std::string& path, google::protobuf::Duration* out) {
    if (!node.IsScalar()) {
      Error(node, path, "expected a duration such as 90s, 15m, 1h30m or 7d");
      return;
    }
    auto d = core::ParseDuration(node.Scalar());
    if (!d.ok()) {
      Error(node, path, std::string(d.status().message()));
      return;
    }
    core::ToProtoDuration(*d, out);
  }

  absl::string_view filename_;
  FieldLines* lines_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<ParsedConfig> ParseYaml(absl::string_view yaml, absl::string_view filename) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename, ":", e.mark.line + 1, ": ", "not valid YAML: ", e.msg));
  }
  ParsedConfig parsed;
  if (root.IsNull()) {
    return absl::InvalidArgumentError(absl::StrCat(filename, ": the file is empty"));
  }
  Converter converter(filename, &parsed.lines);
  try {
    converter.Message(root, "", &parsed.config);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(filename, ":", e.mark.line + 1, ": not valid YAML: ", e.msg));
  }
  if (!converter.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(converter.errors(), "\n"));
  }
  return parsed;
}

}  // namespace credbroker::config
