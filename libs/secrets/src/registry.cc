#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/secrets/secret_source.h"

namespace credbroker::secrets {

absl::string_view BackendStageName(BackendStage stage) {
  switch (stage) {
    case BackendStage::kNone:
      return "";
    case BackendStage::kCurrent:
      return "CURRENT";
    case BackendStage::kPrevious:
      return "PREVIOUS";
    case BackendStage::kPending:
      return "PENDING";
    case BackendStage::kDeprecated:
      return "DEPRECATED";
  }
  return "";
}

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
    if (f->type() != type) continue;
    std::vector<core::FieldError> errors = f->Validate(config);
    if (!errors.empty()) {
      std::string msg = absl::StrCat("source \"", config.name(), "\": invalid ", type, " block:");
      for (const core::FieldError& e : errors)
        absl::StrAppend(&msg, " ", e.field, ": ", e.message, ";");
      return absl::InvalidArgumentError(msg);
    }
    return f->Create(config, context);
  }
  return absl::NotFoundError(absl::StrCat("source \"", config.name(), "\": no backend \"", type,
                                          "\" (available: ", absl::StrJoin(types(), ", "), ")"));
}

std::vector<core::FieldError> SourceRegistry::Validate(const v1::BrokerConfig& config) const {
  std::vector<core::FieldError> out;
  for (int i = 0; i < config.sources_size(); ++i) {
    const v1::SourceConfig& source = config.sources(i);
    const std::string type = BackendType(source);
    if (type.empty()) continue;  // the config library reports a missing backend
    const SourceFactory* factory = nullptr;
    for (const auto& f : factories_) {
      if (f->type() == type) factory = f.get();
    }
    const std::string block = absl::StrCat("sources[", i, "].", type);
    if (factory == nullptr) {
      out.push_back({block, absl::StrCat("this build has no \"", type, "\" backend (available: ",
                                         absl::StrJoin(types(), ", "), ")")});
      continue;
    }
    for (core::FieldError& e : factory->Validate(source)) {
      out.push_back(
          {e.field.empty() ? block : absl::StrCat(block, ".", e.field), std::move(e.message)});
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<http::HttpClient>> SourceContext::MakeHttpClient(
    const http::TlsOptions& tls) const {
  if (http_client) return http_client(tls);
  absl::StatusOr<std::unique_ptr<http::CurlHttpClient>> curl = http::CurlHttpClient::Create(tls);
  if (!curl.ok()) return curl.status();
  return std::unique_ptr<http::HttpClient>(std::move(*curl));
}

http::Sleeper* SourceContext::SleeperOrReal() const {
  return sleeper != nullptr ? sleeper : http::Sleeper::Real();
}

std::optional<std::string> SourceContext::Env(absl::string_view name) const {
  if (env) return env(name);
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::vector<std::string> SourceRegistry::types() const {
  std::vector<std::string> out;
  for (const auto& f : factories_) out.emplace_back(f->type());
  return out;
}

}  // namespace credbroker::secrets
