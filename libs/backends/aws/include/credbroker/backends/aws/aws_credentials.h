// Where the aws backend gets its AWS credentials, in the order the AWS SDKs look
// (protocols.md 2.5):
//  1. static keys from the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the optional
//     AWS_SESSION_TOKEN (never expire as far as the broker knows);
//  2. IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (+ AWS_ROLE_SESSION_NAME) exchanged with
//     STS AssumeRoleWithWebIdentity (query protocol, unsigned form POST, XML answer); the token
//     file is read again for every exchange, because the kubelet rotates it;
//  3. EKS Pod Identity / container credentials: GET AWS_CONTAINER_CREDENTIALS_FULL_URI with the
//     contents of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read for every fetch) or
//     AWS_CONTAINER_AUTHORIZATION_TOKEN as the Authorization header, JSON answer. Plain http only
//     to loopback, 169.254.170.2, 169.254.170.23 and fd00:ec2::23, as botocore allows; https to
//     any host.
// AwsCredentialsFromEnvironment picks the first configured one and wraps it in
// http::CachingTokenSource (refresh before expiry, single flight, Invalidate after a 401/403).
// The environment is read only through SourceContext::Env.
//
// Errors (never carrying a key, a session token or a web identity token):
//  - FAILED_PRECONDITION: no provider configured (the message names the variables), a provider
//    half configured (AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY, a token file without
//    AWS_ROLE_ARN), a token file that is unreadable, empty or (container) holds CR/LF, or STS
//    not activated in the region (RegionDisabledException);
//  - INVALID_ARGUMENT: a malformed value (region, session name, endpoint, container URL, plain
//    http to a host that may not get it), or STS refusing the request itself (ValidationError);
//  - PERMISSION_DENIED: STS or the Pod Identity agent refused the identity (InvalidIdentityToken,
//    AccessDenied, IDPRejectedClaim, ExpiredTokenException; agent 400/401/403). An expired web
//    identity token is PERMISSION_DENIED, not UNAUTHENTICATED: it is the broker's own identity
//    that the backend refused (SecretSource's contract), and UNAUTHENTICATED is kept for the
//    broker's callers (STYLE.md). Its reason says "token_expired" so that operators can tell;
//  - UNAVAILABLE: IDPCommunicationError, throttling, 5xx (retryable); transport errors keep
//    HttpClient's code (UNAVAILABLE, DEADLINE_EXCEEDED, FAILED_PRECONDITION for TLS, ...);
//  - DATA_LOSS: a 200 answer without the four credential fields.
// Statuses carry a reason (core::WithReason): auth_failed, token_expired, bad_request,
// rate_limited, unavailable, transport, region_disabled, malformed_answer, not_configured.
// Thread-safety: the returned source is safe for concurrent use.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "credbroker/backends/aws/sigv4.h"
#include "credbroker/http/http_client.h"
#include "credbroker/http/token_source.h"
#include "credbroker/secrets/secret_source.h"

namespace credbroker::backends::aws {

using AwsCredentialSource = http::TokenSource<AwsCredentials>;

struct AwsCredentialOptions {
  // The configured source name: labels SourceStats and log lines.
  std::string source_name;
  // Region of the regional STS endpoint https://sts.<region>.amazonaws.com. Empty: AWS_REGION,
  // then AWS_DEFAULT_REGION; none of them: the global endpoint https://sts.amazonaws.com.
  std::string region;
  // Replaces the STS endpoint (scheme://host[:port], tests point it at a local fixture).
  std::string sts_endpoint;
  // The RoleSessionName. Empty: AWS_ROLE_SESSION_NAME, else "credbroker-<HOSTNAME>" (the pod's
  // name, so CloudTrail shows which replica assumed the role; no second prefix when the name
  // already starts with "credbroker"), else "credbroker-<source_name>"; characters STS refuses
  // become '-', cut at 64.
  std::string role_session_name;
  // The transport to STS and the container endpoint. Unset: one from
  // SourceContext::MakeHttpClient that trusts `ca_file` (empty: the system store).
  std::shared_ptr<http::HttpClient> http_client;
  std::string ca_file;
  // See http::CachingTokenSourceOptions.
  absl::Duration refresh_margin = absl::Minutes(5);
};

// The first configured provider in the SDK order, cached (see above). `ctx.clock` times the
// refreshes (SystemClock when unset); each fetch is reported to `ctx.stats` as TokenRefresh, and
// STS throttling as Throttled. Reads the environment only here, and does no I/O: token files and
// endpoints are first used by Fetch.
// The cache is returned as itself so that its owner can Invalidate credentials the backend refused
// (also reachable through AwsCredentialSource).
absl::StatusOr<std::unique_ptr<http::CachingTokenSource<AwsCredentials>>>
AwsCredentialsFromEnvironment(const secrets::SourceContext& ctx,
                              const AwsCredentialOptions& options);

// The pieces below are exposed for tests.

// The credentials in a successful AssumeRoleWithWebIdentity answer: the text of AccessKeyId,
// SecretAccessKey, SessionToken and Expiration (RFC 3339), each exactly once inside the one
// <Credentials> of the one <AssumeRoleWithWebIdentityResult>, plain text (no child elements,
// CDATA or comments) with only the five predefined entities. DATA_LOSS otherwise.
absl::StatusOr<AwsCredentials> ParseAssumeRoleWithWebIdentityResponse(absl::string_view xml);

// The status for a non-200 STS answer (<ErrorResponse><Error><Code>), its message prefixed with
// `context`; `redact` (the web identity token) is removed from anything STS sent back.
absl::Status StsErrorStatus(int http_status, absl::string_view body, absl::string_view context,
                            absl::string_view redact);

// OK when `url` may serve container credentials: https to any host, plain http only to
// loopback (127.0.0.0/8, ::1, localhost), 169.254.170.2, 169.254.170.23 or fd00:ec2::23.
// INVALID_ARGUMENT otherwise (and for a URL with user info, no host or another scheme).
absl::Status CheckContainerCredentialsUrl(absl::string_view url);

}  // namespace credbroker::backends::aws
