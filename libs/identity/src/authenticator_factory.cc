#include "credbroker/identity/authenticator_factory.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/http/http_client.h"
#include "credbroker/identity/jwt_verifier.h"

namespace credbroker::identity {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", what, " ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<JwksFetcher> MakeJwksFetcher(const v1::KubernetesJwtConfig& k) {
  if (!k.jwks_file().empty()) {
    return JwksFetcher([path = k.jwks_file()] { return ReadFile(path, "JWKS file"); });
  }
  CB_ASSIGN_OR_RETURN(std::unique_ptr<http::CurlHttpClient> client,
                      http::CurlHttpClient::Create(http::TlsOptions{k.jwks_ca_file(), "", ""}));
  std::shared_ptr<http::CurlHttpClient> shared = std::move(client);
  return JwksFetcher([shared, url = k.jwks_url(),
                      token_file = k.jwks_bearer_token_file()]() -> absl::StatusOr<std::string> {
    http::HttpRequest req;
    req.url = url;
    req.headers.emplace_back("Accept", "application/json");
    if (!token_file.empty()) {
      // Projected tokens rotate: read the file at every fetch.
      CB_ASSIGN_OR_RETURN(std::string token, ReadFile(token_file, "JWKS bearer token file"));
      req.headers.emplace_back("Authorization",
                               "Bearer " + std::string(absl::StripAsciiWhitespace(token)));
    }
    CB_ASSIGN_OR_RETURN(http::HttpResponse resp, shared->Send(req));
    if (resp.status != 200) {
      return absl::UnavailableError(absl::StrCat("GET ", url, ": HTTP ", resp.status));
    }
    return resp.body;
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<Authenticator>> AuthenticatorFromConfig(
    const v1::IdentityConfig& config, const core::Clock* clock) {
  CB_ASSIGN_OR_RETURN(auto static_tokens, StaticTokenAuthenticator::Create(config));
  std::unique_ptr<Authenticator> jwt;
  if (config.has_kubernetes()) {
    const v1::KubernetesJwtConfig& k = config.kubernetes();
    absl::StatusOr<JwksFetcher> fetcher = MakeJwksFetcher(k);
    if (!fetcher.ok()) return core::Annotate(fetcher.status(), "identity.kubernetes");
    JwtVerifierOptions options{k.issuer(), k.audience(), core::FromProtoDuration(k.leeway()),
                               core::FromProtoDuration(k.jwks_refresh_interval())};
    auto verifier = JwtVerifier::Create(options, *std::move(fetcher), clock);
    if (!verifier.ok()) return core::Annotate(verifier.status(), "identity.kubernetes");
    jwt = std::make_unique<KubernetesJwtAuthenticator>(std::move(*verifier));
  }
  std::unique_ptr<Authenticator> mtls;
  if (config.has_mtls()) mtls = std::make_unique<MtlsAuthenticator>(config.mtls().trust_domain());
  if (static_tokens->size() == 0 && !jwt && !mtls) {
    core::LogWarning("no caller identities are configured: every request will be rejected");
  }
  return std::make_unique<ChainAuthenticator>(std::move(static_tokens), std::move(jwt),
                                              std::move(mtls));
}

}  // namespace credbroker::identity
