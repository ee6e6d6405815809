// The `aws` SecretSource: AWS Secrets Manager over its JSON 1.1 protocol (POST /, X-Amz-Target
// secretsmanager.<Operation>), every request signed with SigV4 (sigv4.h).
//
// Each provider's key is one secret, <name_prefix><secret_path>; its versions are the key
// versions. ListVersions uses ListSecretVersionIds with IncludeDeprecated (a version that lost its
// last staging label may still be the broker's PREVIOUS during its overlap) and maps the staging
// labels to secrets::BackendStage: AWSCURRENT → kCurrent, AWSPENDING → kPending, AWSPREVIOUS →
// kPrevious, none of them → kDeprecated. A version's content never changes in Secrets Manager,
// so its etag is its id. FetchVersion reads GetSecretValue (SecretString, or SecretBinary; with
// `field`, that member of the SecretString's JSON object). WriteVersion (minted keys) is
// PutSecretValue labelled AWSPENDING with a fresh ClientRequestToken; PromoteVersion moves
// AWSCURRENT (from its holder, found with DescribeSecret) with UpdateSecretVersionStage and
// takes AWSPENDING off the promoted version.
//
// Retries: ThrottlingException (counted in SourceStats::Throttled), 5xx and network errors are
// retried with jittered exponential backoff, re-signed each time. An answer that says the
// credentials are unknown, expired or signed wrong (UnrecognizedClientException,
// InvalidClientTokenId, ExpiredTokenException, InvalidSignatureException) drops the cached
// credentials and retries once with fresh ones.
//
// Errors: NOT_FOUND (ResourceNotFoundException), PERMISSION_DENIED (AccessDeniedException; or
// credentials refused twice: reason auth_failed), FAILED_PRECONDITION (InvalidRequestException,
// e.g. the secret is scheduled for deletion), INVALID_ARGUMENT (InvalidParameterException,
// ValidationException), UNAVAILABLE (throttled, 5xx, network, DecryptionFailure; retryable),
// DATA_LOSS (an answer that does not parse, a SecretString without `field`). Each carries a
// lowercase reason for credbroker_backend_errors_total. No message carries key material or
// credentials. Thread-safety: safe for concurrent use.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "credbroker/backends/aws/sigv4.h"
#include "credbroker/core/clock.h"
#include "credbroker/http/http_client.h"
#include "credbroker/http/token_source.h"
#include "credbroker/secrets/secret_source.h"
#include "google/protobuf/struct.pb.h"

namespace credbroker::backends::aws {

// What the source needs besides its config block: the transport, the credentials, and the
// context's clock, sleeper and stats.
struct AwsSourceDeps {
  std::unique_ptr<http::HttpClient> transport;
  // Cached: an answer that refuses the credentials drops them (Invalidate) and fetches anew.
  std::unique_ptr<http::CachingTokenSource<AwsCredentials>> credentials;
  const core::Clock* clock = nullptr;
  http::Sleeper* sleeper = nullptr;
  secrets::SourceStats* stats = nullptr;
  // Returns values in [0, 1) for backoff jitter; null: random.
  std::function<double()> jitter;
};

class AwsSecretSource final : public secrets::SecretSource {
 public:
  // INVALID_ARGUMENT when no region is configured (nor given by `region_from_env`).
  static absl::StatusOr<std::unique_ptr<AwsSecretSource>> Create(std::string name,
                                                                 v1::AwsSourceConfig config,
                                                                 AwsSourceDeps deps);

  absl::string_view type() const override { return "aws"; }
  const std::string& name() const override { return name_; }
  absl::StatusOr<std::vector<secrets::VersionInfo>> ListVersions(absl::string_view path) override;
  absl::StatusOr<secrets::SecretVersion> FetchVersion(absl::string_view path,
                                                      absl::string_view version_id) override;
  absl::StatusOr<secrets::VersionInfo> WriteVersion(absl::string_view path,
                                                    const core::SecretBytes& material) override;
  absl::Status PromoteVersion(absl::string_view path, absl::string_view version_id) override;

  // One signed Secrets Manager call: the parsed JSON answer of a 200, else the error mapped as
  // described above.
  absl::StatusOr<google::protobuf::Struct> Call(absl::string_view operation,
                                                const std::string& body);

 private:
  AwsSecretSource(std::string name, v1::AwsSourceConfig config, AwsSourceDeps deps);
  std::string SecretId(absl::string_view path) const;
  // One attempt: sign with `credentials` and send.
  absl::StatusOr<http::HttpResponse> SendSigned(absl::string_view operation,
                                                const std::string& body,
                                                const AwsCredentials& credentials);

  const std::string name_;
  const v1::AwsSourceConfig config_;
  AwsSourceDeps deps_;
  const std::string endpoint_;
};

// The factory registered as "aws"; it validates the `aws` block of a source.
std::unique_ptr<secrets::SourceFactory> MakeAwsSourceFactory();

}  // namespace credbroker::backends::aws
