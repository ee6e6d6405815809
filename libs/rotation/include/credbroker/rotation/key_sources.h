// KeySources are the configured secret sources, which provider reads its keys from which, and how
// each is refreshed: built once from the config (FromConfig), so the composition root only wires.
// Thread-safety: immutable after FromConfig; the sources themselves are safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "credbroker/providers/catalog.h"
#include "credbroker/rotation/key_refresher.h"
#include "credbroker/rotation/key_ring.h"
#include "credbroker/secrets/secret_source.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::rotation {

class KeySources {
 public:
  // Builds every source of `config.sources` with `registry` (errors name the source).
  static absl::StatusOr<std::unique_ptr<KeySources>> FromConfig(
      const v1::BrokerConfig& config, const providers::ProviderCatalog& catalog,
      const secrets::SourceRegistry& registry, const secrets::SourceContext& context);

  // Per provider: how long its cached keys keep serving while its source cannot be read.
  absl::flat_hash_map<std::string, absl::Duration> MaxStaleness() const;
  // Per provider: its source (the rotation engine stores minted keys there).
  absl::flat_hash_map<std::string, secrets::SecretSource*> ByProvider() const;
  // One refresher per source that holds providers, loading them into `ring`.
  std::vector<std::unique_ptr<KeyRefresher>> MakeRefreshers(KeyRing* ring) const;

 private:
  struct Source {
    std::unique_ptr<secrets::SecretSource> source;
    std::vector<std::string> providers;
    absl::Duration refresh_interval;
    absl::Duration max_staleness;
  };
  std::vector<Source> sources_;
};

}  // namespace credbroker::rotation
