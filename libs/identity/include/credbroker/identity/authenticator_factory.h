// Builds the broker's caller authentication from the validated `identity:` block: static tokens,
// Kubernetes service-account JWTs (JWKS from a file or from the API server, with its CA and a
// projected bearer token re-read at every fetch) and mTLS identities, chained as
// ChainAuthenticator describes. Errors name the config block (identity.kubernetes: ...).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "credbroker/core/clock.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::identity {

// `clock` must outlive the authenticator. Logs a warning when no identity is configured (every
// request would then be refused).
absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorFromConfig(
    const v1::IdentityConfig& config, const core::Clock* clock);

}  // namespace credbroker::identity
