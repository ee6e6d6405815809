// AWS Signature Version 4 (header-based) for requests sent through http::HttpClient. SignRequest
// adds X-Amz-Date, X-Amz-Security-Token (temporary credentials; signed) and Authorization to a
// request; CanonicalRequest and StringToSign are the intermediate steps, exposed so that the
// published AWS SigV4 test suite can check each one (tests/testdata/aws4_testsuite).
//
// The rules follow botocore's SigV4Auth: the canonical URI is normalized ("." and ".." segments
// and empty segments removed) and URI-encoded once more for every service but S3 (whose path is
// used as it is on the wire); the query is decoded, re-encoded with only unreserved characters
// kept and sorted; header values are trimmed with inner whitespace runs collapsed, repeated
// headers joined with ',' in their original order; every header is signed except the hop-by-hop
// and proxy headers botocore leaves out; the payload hash is the hex SHA-256 of the exact body (or
// the value of an x-amz-content-sha256 header the caller set, as AWS requires).
//
// Errors: INVALID_ARGUMENT when the URL has no scheme or host or a malformed port. The secret
// never appears in any output or error message; the Authorization header carries only the
// access key id and the signature. Thread-safety: free functions over their arguments only.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "credbroker/core/secret_bytes.h"
#include "credbroker/http/http_client.h"

namespace credbroker::backends::aws {

// An access key pair, long-term or temporary. Move-only because the secret is.
struct AwsCredentials {
  std::string access_key_id;
  core::SecretBytes secret_access_key;
  std::string session_token;  // empty for long-term keys
  absl::Time expires_at = absl::InfiniteFuture();
};

// Where a signature is valid: the region and the signing name of the service ("secretsmanager").
struct SigningScope {
  std::string region;
  std::string service;
};

// The canonical request of `request` as it stands (step 1 of the signing process). A missing
// Host header is derived from the URL. `service` decides the URI rules (S3 or not).
absl::StatusOr<std::string> CanonicalRequest(const http::HttpRequest& request,
                                             absl::string_view service);

// The string to sign for `canonical_request` at `now` in `scope` (step 2).
std::string StringToSign(absl::string_view canonical_request, const SigningScope& scope,
                         absl::Time now);

// Signs `request` in place for `now`: sets X-Amz-Date (replacing any present), adds Host when
// absent (host[:port], the port only when not the scheme's default) and, when the credentials
// carry a session token, X-Amz-Security-Token (replacing any present; it is signed); then replaces
// any Authorization header with the new signature. On error the request is left unchanged.
absl::Status SignRequest(http::HttpRequest& request, const AwsCredentials& credentials,
                         const SigningScope& scope, absl::Time now);

}  // namespace credbroker::backends::aws
