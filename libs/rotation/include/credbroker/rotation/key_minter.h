// KeyMinter creates and revokes keys through a provider's key API, for minted rotation. The
// HTTP implementation is driven by the provider's `mint` configuration (request templates and
// JSON pointers), so a provider with a key API needs no code.
//
// Errors: UNAVAILABLE (no answer; retry later), PERMISSION_DENIED (the key API refused the
// credential), FAILED_PRECONDITION (unexpected status), DATA_LOSS (the answer lacks the key).
// Error messages never contain key material or response bodies (which carry the new key).
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/secret_bytes.h"
#include "credbroker/http/http_client.h"
#include "credbroker/providers/catalog.h"

namespace credbroker::rotation {

struct MintedKey {
  core::SecretBytes material;
  // The provider's id for the key (for revocation), else the description it was created with
  // (mint.description: how its dashboard names it); empty when neither.
  std::string key_id;
};

class KeyMinter {
 public:
  virtual ~KeyMinter() = default;
  // `credential` authenticates to the key API (sent in the provider's header).
  virtual absl::StatusOr<MintedKey> Create(const providers::ProviderSpec& spec,
                                           absl::string_view credential) = 0;
  // OK also when the provider no longer knows the key (404): it is gone either way.
  virtual absl::Status Revoke(const providers::ProviderSpec& spec, absl::string_view key_id,
                              absl::string_view credential) = 0;
};

class HttpKeyMinter final : public KeyMinter {
 public:
  // `client` and `clock` must outlive the minter.
  HttpKeyMinter(http::HttpClient* client, const core::Clock* clock)
      : client_(client), clock_(clock) {}
  absl::StatusOr<MintedKey> Create(const providers::ProviderSpec& spec,
                                   absl::string_view credential) override;
  absl::Status Revoke(const providers::ProviderSpec& spec, absl::string_view key_id,
                      absl::string_view credential) override;

 private:
  http::HttpClient* const client_;
  const core::Clock* const clock_;
};

}  // namespace credbroker::rotation
