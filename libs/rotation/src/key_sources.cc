#include "credbroker/rotation/key_sources.h"

#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::rotation {

absl::StatusOr<std::unique_ptr<KeySources>> KeySources::FromConfig(
    const v1::BrokerConfig& config, const providers::ProviderCatalog& catalog,
    const secrets::SourceRegistry& registry, const secrets::SourceContext& context) {
  auto out = std::make_unique<KeySources>();
  for (const v1::SourceConfig& sc : config.sources()) {
    Source s;
    CB_ASSIGN_OR_RETURN(s.source, registry.Create(sc, context));
    for (const providers::ProviderSpec& spec : catalog.providers()) {
      if (spec.source == sc.name()) s.providers.push_back(spec.name);
    }
    s.refresh_interval = core::FromProtoDuration(sc.refresh_interval());
    s.max_staleness = core::FromProtoDuration(sc.max_staleness());
    out->sources_.push_back(std::move(s));
  }
  return out;
}

absl::flat_hash_map<std::string, absl::Duration> KeySources::MaxStaleness() const {
  absl::flat_hash_map<std::string, absl::Duration> out;
  for (const Source& s : sources_) {
    for (const std::string& p : s.providers) out[p] = s.max_staleness;
  }
  return out;
}

absl::flat_hash_map<std::string, secrets::SecretSource*> KeySources::ByProvider() const {
  absl::flat_hash_map<std::string, secrets::SecretSource*> out;
  for (const Source& s : sources_) {
    for (const std::string& p : s.providers) out[p] = s.source.get();
  }
  return out;
}

std::vector<std::unique_ptr<KeyRefresher>> KeySources::MakeRefreshers(KeyRing* ring) const {
  std::vector<std::unique_ptr<KeyRefresher>> out;
  for (const Source& s : sources_) {
    out.push_back(
        std::make_unique<KeyRefresher>(ring, s.source.get(), s.providers, s.refresh_interval));
  }
  return out;
}

}  // namespace credbroker::rotation
