// The `gcp` SecretSource: Google Cloud Secret Manager over REST v1 (protocols.md §3), with a
// bearer access token from the metadata server or from a workload identity federation exchange.
//
// Each provider's key is one secret, projects/<project>/secrets/<name_prefix><secret_path>; its
// versions are the key versions. ListVersions pages through .../versions (nextPageToken); a
// version's id is the number at the end of its `name`, `enabled` is state == ENABLED (DISABLED
// and DESTROYED versions are listed but never served), created_at is createTime, and since a
// version's content never changes its etag is the answer's `etag` or else its id. Secret Manager
// has no stages: every version is BackendStage::kNone and PromoteVersion has nothing to move.
// FetchVersion reads .../versions/<n>:access and checks payload.dataCrc32c (the CRC32C of the
// decoded bytes): a missing or wrong checksum fails the fetch with DATA_LOSS, so the key ring
// keeps the version it had. WriteVersion (minted keys) is :addVersion with the checksum.
//
// Retries: 429 (counted in SourceStats::Throttled), 5xx and network errors are retried with full
// jitter over an exponentially growing cap (200ms, doubling, at most 5s), max_attempts in all
// (default 4). A 401 drops the cached access token (CachingTokenSource::Invalidate) and retries
// once at once with a fresh one.
//
// Errors: NOT_FOUND (404), PERMISSION_DENIED (403: reason permission_denied; a 401 that persists
// or a token that cannot be had: auth_failed), FAILED_PRECONDITION (400 FAILED_PRECONDITION, e.g.
// accessing a disabled or destroyed version), INVALID_ARGUMENT (other 400s), UNAVAILABLE (429:
// throttled; 5xx and network: unavailable), DATA_LOSS (checksum_mismatch; an answer that does not
// parse: malformed_answer). Reasons are lowercase for credbroker_backend_errors_total. No message
// carries key material or tokens. Thread-safety: safe for concurrent use.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/crc32c.h"
#include "credbroker/core/secret_bytes.h"
#include "credbroker/http/http_client.h"
#include "credbroker/http/token_source.h"
#include "credbroker/secrets/secret_source.h"
#include "google/protobuf/struct.pb.h"

namespace credbroker::backends::gcp {

// Secret Manager's dataCrc32c is a CRC-32C (credbroker/core/crc32c.h).
using ::credbroker::core::Crc32c;

// An OAuth 2 access token for Google APIs.
struct GcpToken {
  core::SecretBytes access_token;
  absl::Time expires_at = absl::InfiniteFuture();
};

// The metadata server's token for the default service account:
// GET http://<host>/computeMetadata/v1/instance/service-accounts/default/token with
// `Metadata-Flavor: Google`. Errors: UNAVAILABLE (5xx, 429, network), PERMISSION_DENIED (403/404:
// no service account; reason auth_failed), DATA_LOSS (an answer without access_token).
std::unique_ptr<http::TokenSource<GcpToken>> MakeMetadataTokenSource(
    std::unique_ptr<http::HttpClient> transport, std::string host, const core::Clock* clock);

// Workload identity federation: the projected token in `token_file` (read again for every
// exchange) exchanged at <sts_endpoint>/v1/token (RFC 8693, form-encoded). Errors:
// FAILED_PRECONDITION (token file unreadable or empty), PERMISSION_DENIED (invalid_grant,
// invalid_target: reason auth_failed), INVALID_ARGUMENT (other OAuth errors), UNAVAILABLE (5xx,
// 429, network), DATA_LOSS (an answer without access_token).
std::unique_ptr<http::TokenSource<GcpToken>> MakeStsTokenSource(
    std::unique_ptr<http::HttpClient> transport, std::string sts_endpoint, std::string audience,
    std::string token_file, const core::Clock* clock);

// What the source needs besides its config block.
struct GcpSourceDeps {
  std::unique_ptr<http::HttpClient> transport;
  // Cached: a 401 drops the token (Invalidate) and fetches anew.
  std::unique_ptr<http::CachingTokenSource<GcpToken>> token;
  const core::Clock* clock = nullptr;
  http::Sleeper* sleeper = nullptr;
  secrets::SourceStats* stats = nullptr;
  // Returns values in [0, 1) for backoff jitter; null: random.
  std::function<double()> jitter;
};

class GcpSecretSource final : public secrets::SecretSource {
 public:
  // INVALID_ARGUMENT when no project is configured or a dependency is missing.
  static absl::StatusOr<std::unique_ptr<GcpSecretSource>> Create(std::string name,
                                                                 v1::GcpSourceConfig config,
                                                                 GcpSourceDeps deps);

  absl::string_view type() const override { return "gcp"; }
  const std::string& name() const override { return name_; }
  absl::StatusOr<std::vector<secrets::VersionInfo>> ListVersions(absl::string_view path) override;
  absl::StatusOr<secrets::SecretVersion> FetchVersion(absl::string_view path,
                                                      absl::string_view version_id) override;
  absl::StatusOr<secrets::VersionInfo> WriteVersion(absl::string_view path,
                                                    const core::SecretBytes& material) override;

  // One authorized Secret Manager call (`url_path` starts with /v1/): the parsed JSON answer of
  // a 200, else the error mapped as described above.
  absl::StatusOr<google::protobuf::Struct> Call(absl::string_view method,
                                                absl::string_view url_path,
                                                const std::string& body);

 private:
  GcpSecretSource(std::string name, v1::GcpSourceConfig config, GcpSourceDeps deps);
  std::string SecretPath(absl::string_view path) const;

  const std::string name_;
  const v1::GcpSourceConfig config_;
  GcpSourceDeps deps_;
  const std::string endpoint_;
};

// The factory registered as "gcp"; it validates the `gcp` block of a source.
std::unique_ptr<secrets::SourceFactory> MakeGcpSourceFactory();

}  // namespace credbroker::backends::gcp
