// Access tokens for Azure Key Vault (scope https://vault.azure.net/.default), from AKS workload
// identity (the projected service-account token exchanged at Microsoft Entra ID as a client
// assertion, re-read at every exchange) or from the managed identity endpoint (IMDS).
//
// The providers only obtain a token; CachingTokenSource decides when (see token_source.h).
// Errors: PERMISSION_DENIED (Entra or IMDS refused the request: reason auth_failed; the message
// carries Entra's error code and the first line of its description, never the assertion or a
// token), FAILED_PRECONDITION (the token file cannot be read, or workload identity lacks a
// tenant or client id: reason not_configured), UNAVAILABLE (network, 5xx), DATA_LOSS (an answer
// that does not parse). Thread-safety: called by one thread at a time (CachingTokenSource
// serializes fetches).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/secret_bytes.h"
#include "credbroker/http/http_client.h"
#include "credbroker/http/token_source.h"
#include "credbroker/secrets/secret_source.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::backends::azure {

struct AzureToken {
  core::SecretBytes access_token;
  absl::Time expires_at = absl::InfiniteFuture();
};

inline constexpr char kVaultScope[] = "https://vault.azure.net/.default";
inline constexpr char kVaultResource[] = "https://vault.azure.net";
inline constexpr char kDefaultAuthorityHost[] = "https://login.microsoftonline.com/";
inline constexpr char kDefaultImdsEndpoint[] =
    "http://169.254.169.254/metadata/identity/oauth2/token";

// Workload identity with every field resolved (config, else the AZURE_* variable, else default).
struct WorkloadIdentityOptions {
  std::string tenant_id;
  std::string client_id;
  std::string token_file;
  std::string authority_host = kDefaultAuthorityHost;
  absl::Duration timeout = absl::Seconds(10);
};

// INVALID_ARGUMENT when a tenant, client id or token file is missing.
absl::StatusOr<std::unique_ptr<http::TokenSource<AzureToken>>> MakeWorkloadIdentityTokenSource(
    WorkloadIdentityOptions options, http::HttpClient* transport, const core::Clock* clock);

struct ManagedIdentityOptions {
  std::string client_id;  // empty: the system-assigned identity
  std::string endpoint = kDefaultImdsEndpoint;
  absl::Duration timeout = absl::Seconds(10);
};

std::unique_ptr<http::TokenSource<AzureToken>> MakeManagedIdentityTokenSource(
    ManagedIdentityOptions options, http::HttpClient* transport, const core::Clock* clock);

// The token source the `auth` block names, fields defaulted from `ctx.Env`, wrapped in a
// CachingTokenSource that reports fetches to ctx.stats->TokenRefresh(source_name, ...).
// `transport` must outlive the result. INVALID_ARGUMENT when no method is set or one is
// incomplete.
absl::StatusOr<std::unique_ptr<http::CachingTokenSource<AzureToken>>> AzureTokenFromConfig(
    const v1::AzureSourceConfig& config, const secrets::SourceContext& ctx,
    http::HttpClient* transport, const std::string& source_name);

}  // namespace credbroker::backends::azure
