#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/secrets/secret_source.h"

namespace credbroker::secrets {

std::string BackendType(const v1::SourceConfig& config) {
  const auto* oneof = v1::SourceConfig::descriptor()->FindOneofByName("backend");
  const auto* field = v1::SourceConfig::GetReflection()->GetOneofFieldDescriptor(config, oneof);
  return field == nullptr ? "" : field->name();
}

void SourceRegistry::Register(std::unique_ptr<SourceFactory> factory) {
  factories_.push_back(std::move(factory));
}

absl::StatusOr<std::unique_ptr<SecretSource>> SourceRegistry::Create(
    const v1::SourceConfig& config, const SourceContext& context) const {
  std::string type = BackendType(config);
  for (const auto& f : factories_) {
    if (f->type() == type) return f->Create(config, context);
  }
  return absl::NotFoundError(absl::StrCat("source \"", config.name(), "\": no backend \"", type,
                                          "\" (available: ", absl::StrJoin(types(), ", "), ")"));
}

std::vector<std::string> SourceRegistry::types() const {
  std::vector<std::string> out;
  for (const auto& f : factories_) out.emplace_back(f->type());
  return out;
}

}  // namespace credbroker::secrets
