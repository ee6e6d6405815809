#include "credbroker/identity/jwt_verifier.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "credbroker/core/ids.h"
#include "credbroker/core/log.h"
#include "credbroker/core/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace credbroker::identity {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::Duration kMinKidRefresh = absl::Seconds(10);
// How long a token with an unknown kid waits for the fetch it joined (real time).
constexpr absl::Duration kKidFetchWait = absl::Seconds(2);

absl::Status Unauth(absl::string_view msg, absl::string_view reason) {
  return core::WithReason(absl::UnauthenticatedError(msg), reason);
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

struct Jwk {
  std::string kid;
  std::string alg;  // "RS256" or "ES256"
  Pkey key;
};

std::string StringField(const Struct& s, const std::string& name) {
  auto it = s.fields().find(name);
  return it != s.fields().end() && it->second.kind_case() == Value::kStringValue
             ? it->second.string_value()
             : "";
}

bool Base64Url(absl::string_view in, std::string* out) {
  if (in.find_first_of("+/=") != absl::string_view::npos) return false;
  return absl::WebSafeBase64Unescape(in, out);
}

// Builds a public key of `type` ("RSA", "EC") from the parameters in `bld`; frees `bld`.
EVP_PKEY* PublicKeyFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* pkey = nullptr;
  bool ok = ctx != nullptr && params != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return ok ? pkey : nullptr;
}

absl::StatusOr<Pkey> RsaKey(const std::string& n_b64, const std::string& e_b64) {
  std::string n, e;
  if (!Base64Url(n_b64, &n) || !Base64Url(e_b64, &e) || n.empty() || e.empty()) {
    return absl::InvalidArgumentError("RSA key with bad n/e");
  }
  if (n.size() * 8 < 2048) return absl::InvalidArgumentError("RSA key shorter than 2048 bits");
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                           static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                           static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
  EVP_PKEY* pkey = PublicKeyFromParams("RSA", bld);
  BN_free(bn_n);
  BN_free(bn_e);
  if (pkey == nullptr) return absl::InvalidArgumentError("RSA key rejected by OpenSSL");
  return Pkey(pkey);
}

absl::StatusOr<Pkey> EcKey(const std::string& crv, const std::string& x_b64,
                           const std::string& y_b64) {
  if (crv != "P-256") return absl::InvalidArgumentError("EC key on a curve other than P-256");
  std::string x, y;
  if (!Base64Url(x_b64, &x) || !Base64Url(y_b64, &y) || x.size() != 32 || y.size() != 32) {
    return absl::InvalidArgumentError("EC key with bad x/y");
  }
  std::string point = "\x04" + x + y;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  EVP_PKEY* pkey = PublicKeyFromParams("EC", bld);
  if (pkey == nullptr) {
    return absl::InvalidArgumentError("EC key rejected by OpenSSL (not on the curve?)");
  }
  return Pkey(pkey);
}

absl::StatusOr<std::vector<Jwk>> ParseJwks(absl::string_view json) {
  Struct doc;
  if (!google::protobuf::util::JsonStringToMessage(std::string(json), &doc).ok()) {
    return absl::InvalidArgumentError("JWKS is not valid JSON");
  }
  auto keys = doc.fields().find("keys");
  if (keys == doc.fields().end() || keys->second.kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError("JWKS has no \"keys\" list");
  }
  std::vector<Jwk> out;
  for (const Value& v : keys->second.list_value().values()) {
    if (v.kind_case() != Value::kStructValue) continue;
    const Struct& k = v.struct_value();
    std::string use = StringField(k, "use");
    if (!use.empty() && use != "sig") continue;
    std::string kty = StringField(k, "kty");
    Jwk jwk;
    jwk.kid = StringField(k, "kid");
    absl::StatusOr<Pkey> key;
    if (kty == "RSA") {
      jwk.alg = "RS256";
      key = RsaKey(StringField(k, "n"), StringField(k, "e"));
    } else if (kty == "EC") {
      jwk.alg = "ES256";
      key = EcKey(StringField(k, "crv"), StringField(k, "x"), StringField(k, "y"));
    } else {
      continue;
    }
    std::string declared = StringField(k, "alg");
    if (!declared.empty() && declared != jwk.alg) continue;
    if (!key.ok()) {
      core::LogWarning("JWKS key skipped", {{"kid", jwk.kid}, {"error", key.status().ToString()}});
      continue;
    }
    jwk.key = std::move(*key);
    out.push_back(std::move(jwk));
  }
  return out;
}

// JOSE ES256 signatures are r||s (32 bytes each); OpenSSL wants DER.
bool JoseToDer(const std::string& jose, std::string* der) {
  if (jose.size() != 64) return false;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(jose.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(jose.data()) + 32, 32, nullptr);
  ECDSA_SIG_set0(sig, r, s);
  unsigned char* buf = nullptr;
  int len = i2d_ECDSA_SIG(sig, &buf);
  ECDSA_SIG_free(sig);
  if (len <= 0) return false;
  der->assign(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
  OPENSSL_free(buf);
  return true;
}

bool VerifySignature(const Jwk& key, absl::string_view signed_part, const std::string& sig) {
  std::string der;
  const std::string* signature = &sig;
  if (key.alg == "ES256") {
    if (!JoseToDer(sig, &der)) return false;
    signature = &der;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key.key.get()) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature->data()),
                             signature->size(),
                             reinterpret_cast<const unsigned char*>(signed_part.data()),
                             signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

bool HasAudience(const Struct& claims, const std::string& audience) {
  auto it = claims.fields().find("aud");
  if (it == claims.fields().end()) return false;
  if (it->second.kind_case() == Value::kStringValue) return it->second.string_value() == audience;
  if (it->second.kind_case() != Value::kListValue) return false;
  for (const Value& a : it->second.list_value().values()) {
    if (a.kind_case() == Value::kStringValue && a.string_value() == audience) return true;
  }
  return false;
}

// NumericDate claim (RFC 7519 section 2: seconds since the epoch), or InfinitePast when absent.
// Beyond the year 5000 or before 1970 is no real token's date, and a double that large does not
// fit an int64 (found by fuzz/jwt_fuzz.cc): refused, not converted.
absl::StatusOr<absl::Time> TimeClaim(const Struct& claims, const std::string& name) {
  auto it = claims.fields().find(name);
  if (it == claims.fields().end()) return absl::InfinitePast();
  if (it->second.kind_case() != Value::kNumberValue) {
    return Unauth(absl::StrCat("token claim ", name, " is not a number"), "MALFORMED_CREDENTIALS");
  }
  constexpr double kMaxNumericDate = 95'617'584'000;  // 5000-01-01T00:00:00Z
  const double seconds = it->second.number_value();
  if (!(seconds >= 0 && seconds <= kMaxNumericDate)) {  // also false for NaN
    return Unauth(absl::StrCat("token claim ", name, " is not a date"), "MALFORMED_CREDENTIALS");
  }
  return absl::FromUnixSeconds(static_cast<int64_t>(seconds));
}

}  // namespace

struct JwtVerifier::Keys {
  std::vector<Jwk> keys;
};

absl::StatusOr<size_t> CountJwksKeys(absl::string_view jwks_json) {
  CB_ASSIGN_OR_RETURN(std::vector<Jwk> keys, ParseJwks(jwks_json));
  return keys.size();
}

JwtVerifier::JwtVerifier(JwtVerifierOptions options, JwksFetcher fetcher, const core::Clock* clock)
    : options_(std::move(options)), fetcher_(std::move(fetcher)), clock_(clock) {}

JwtVerifier::~JwtVerifier() {
  {
    absl::MutexLock lock(&fetch_mu_);
    stop_ = true;
  }
  if (fetch_thread_.joinable()) fetch_thread_.join();
}

void JwtVerifier::RunFetches() {
  while (true) {
    {
      absl::MutexLock lock(&fetch_mu_);
      fetch_mu_.Await(absl::Condition(
          +[](JwtVerifier* v) ABSL_EXCLUSIVE_LOCKS_REQUIRED(v->fetch_mu_) {
            return v->stop_ || v->fetch_requested_;
          },
          this));
      if (stop_) return;
      fetch_requested_ = false;
      ++fetches_started_;
    }
    // No lock held while fetching: tokens keep verifying against the keys already loaded.
    absl::Status s = Reload();
    if (!s.ok()) {
      core::LogWarning("JWKS refresh failed: keeping the old keys", {{"error", s.ToString()}});
    }
    absl::MutexLock lock(&fetch_mu_);
    ++fetches_done_;
  }
}

uint64_t JwtVerifier::RequestFetch() {
  absl::MutexLock lock(&fetch_mu_);
  // Single flight: every request until the fetch thread takes them is served by one fetch, the
  // next to start (one running now may have read the keys before they changed).
  fetch_requested_ = true;
  return fetches_started_ + 1;
}

bool JwtVerifier::AwaitFetch(uint64_t fetch) {
  absl::MutexLock lock(&fetch_mu_);
  auto finished = [this, fetch]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(fetch_mu_) {
    return fetches_done_ >= fetch || stop_;
  };
  return fetch_mu_.AwaitWithTimeout(absl::Condition(&finished), kKidFetchWait) && !stop_;
}

absl::StatusOr<std::unique_ptr<JwtVerifier>> JwtVerifier::Create(JwtVerifierOptions options,
                                                                 JwksFetcher fetcher,
                                                                 const core::Clock* clock) {
  auto v =
      std::unique_ptr<JwtVerifier>(new JwtVerifier(std::move(options), std::move(fetcher), clock));
  CB_RETURN_IF_ERROR(v->Reload());
  {
    absl::MutexLock lock(&v->keys_mu_);
    v->last_fetch_ = clock->Now();
  }
  v->fetch_thread_ = std::thread([p = v.get()] { p->RunFetches(); });
  return v;
}

size_t JwtVerifier::key_count() const {
  absl::MutexLock lock(&keys_mu_);
  return keys_ ? keys_->keys.size() : 0;
}

absl::Status JwtVerifier::Reload() {
  absl::StatusOr<std::string> doc = fetcher_();
  if (!doc.ok()) return core::Annotate(doc.status(), "fetching JWKS");
  CB_ASSIGN_OR_RETURN(std::vector<Jwk> keys, ParseJwks(*doc));
  if (keys.empty()) return absl::InvalidArgumentError("JWKS holds no usable RS256/ES256 key");
  auto next = std::make_shared<Keys>();
  next->keys = std::move(keys);
  absl::MutexLock lock(&keys_mu_);
  keys_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<VerifiedToken> JwtVerifier::Verify(absl::string_view token) {
  const std::string cache_key = core::Sha256Hex(token);
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = cache_.find(cache_key);
    if (it != cache_.end()) {
      if (now <= it->second.expires_at + options_.leeway) return it->second;
      cache_.erase(it);
    }
  }
  CB_ASSIGN_OR_RETURN(VerifiedToken verified, VerifyUncached(token));
  absl::MutexLock lock(&cache_mu_);
  if (cache_.size() >= options_.max_cached_tokens) {
    absl::erase_if(cache_, [&](const auto& kv) { return now > kv.second.expires_at; });
    if (cache_.size() >= options_.max_cached_tokens) cache_.clear();
  }
  cache_.emplace(cache_key, verified);
  return verified;
}

absl::StatusOr<VerifiedToken> JwtVerifier::VerifyUncached(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  std::string header_json, payload_json, sig;
  if (parts.size() != 3 || !Base64Url(parts[0], &header_json) ||
      !Base64Url(parts[1], &payload_json) || !Base64Url(parts[2], &sig)) {
    return Unauth("bearer token is not a well-formed JWT", "MALFORMED_CREDENTIALS");
  }
  Struct header, claims;
  if (!google::protobuf::util::JsonStringToMessage(header_json, &header).ok() ||
      !google::protobuf::util::JsonStringToMessage(payload_json, &claims).ok()) {
    return Unauth("JWT header or payload is not JSON", "MALFORMED_CREDENTIALS");
  }
  const std::string alg = StringField(header, "alg");
  if (alg != "RS256" && alg != "ES256") {
    return Unauth(
        absl::StrCat("JWT algorithm \"", alg.substr(0, 16), "\" is not accepted (RS256, ES256)"),
        "UNSUPPORTED_ALG");
  }
  const std::string kid = StringField(header, "kid");
  const absl::Time now = clock_->Now();

  std::shared_ptr<const Keys> keys;
  bool refresh = false;
  {
    absl::MutexLock lock(&keys_mu_);
    if (now - last_fetch_ >= options_.refresh_interval) {
      last_fetch_ = now;
      refresh = true;
    }
    keys = keys_;
  }
  // The periodic re-read happens in the background; this token uses the keys loaded now.
  if (refresh) RequestFetch();
  auto find = [&](const Keys& ks) -> const Jwk* {
    const Jwk* only = nullptr;
    int candidates = 0;
    for (const Jwk& k : ks.keys) {
      if (k.alg != alg) continue;
      if (!kid.empty() && k.kid == kid) return &k;
      ++candidates;
      only = &k;
    }
    return kid.empty() && candidates == 1 ? only : nullptr;
  };
  const Jwk* key = find(*keys);
  if (key == nullptr) {
    // A key rotated in since the last fetch: have it re-read in the background (not more often
    // than every 10 s; requests in between join that fetch) and wait a moment for it. Only this
    // request waits, on no lock that other tokens need.
    bool fetch = false;
    {
      absl::MutexLock lock(&keys_mu_);
      if (now - last_kid_refresh_ >= kMinKidRefresh) {
        last_kid_refresh_ = now;
        fetch = true;
      }
    }
    if (fetch && AwaitFetch(RequestFetch())) {
      absl::MutexLock lock(&keys_mu_);
      keys = keys_;
    }
    key = find(*keys);
  }
  if (key == nullptr) {
    return Unauth(absl::StrCat("no ", alg, " key with kid \"", kid.substr(0, 64), "\" in the JWKS"),
                  "UNKNOWN_KID");
  }
  signature_checks_.fetch_add(1);
  absl::string_view signed_part = token.substr(0, parts[0].size() + 1 + parts[1].size());
  if (!VerifySignature(*key, signed_part, sig)) {
    return Unauth("JWT signature does not verify", "BAD_SIGNATURE");
  }
  if (StringField(claims, "iss") != options_.issuer) {
    return Unauth("JWT issuer is not the configured issuer", "UNKNOWN_ISSUER");
  }
  if (!HasAudience(claims, options_.audience)) {
    return Unauth(absl::StrCat("JWT audience does not include \"", options_.audience, "\""),
                  "WRONG_AUDIENCE");
  }
  CB_ASSIGN_OR_RETURN(absl::Time exp, TimeClaim(claims, "exp"));
  CB_ASSIGN_OR_RETURN(absl::Time nbf, TimeClaim(claims, "nbf"));
  if (exp == absl::InfinitePast()) return Unauth("JWT has no exp", "MALFORMED_CREDENTIALS");
  if (now > exp + options_.leeway) return Unauth("JWT has expired", "TOKEN_EXPIRED");
  if (nbf != absl::InfinitePast() && now + options_.leeway < nbf) {
    return Unauth("JWT is not valid yet", "NOT_YET_VALID");
  }
  // Kubernetes puts the service account in both `sub` and the kubernetes.io claim.
  std::string sub = StringField(claims, "sub");
  constexpr absl::string_view kPrefix = "system:serviceaccount:";
  std::vector<std::string> sub_parts;
  if (absl::StartsWith(sub, kPrefix)) {
    sub_parts = absl::StrSplit(absl::string_view(sub).substr(kPrefix.size()), ':');
  }
  if (sub_parts.size() != 2 || sub_parts[0].empty() || sub_parts[1].empty()) {
    return Unauth("JWT subject is not a Kubernetes service account", "MALFORMED_CREDENTIALS");
  }
  VerifiedToken out;
  out.identity.name = absl::StrCat(sub_parts[0], "/", sub_parts[1]);
  out.expires_at = exp;
  return out;
}

absl::StatusOr<Identity> KubernetesJwtAuthenticator::Authenticate(
    const RequestCredentials& creds) const {
  absl::string_view token = creds.authorization;
  if (absl::StartsWithIgnoreCase(token, "bearer ")) token.remove_prefix(7);
  CB_ASSIGN_OR_RETURN(VerifiedToken verified, verifier_->Verify(token));
  return verified.identity;
}

}  // namespace credbroker::identity
