#include "credbroker/testing/jwt_signer.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <stdexcept>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace credbroker::testing {

struct JwtKey::Impl {
  EVP_PKEY* key = nullptr;
  ~Impl() { EVP_PKEY_free(key); }
};

std::string Base64Url(absl::string_view data) { return absl::WebSafeBase64Escape(data); }

std::string JwtKey::PublicKeyPem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  std::string pem;
  if (bio != nullptr && PEM_write_bio_PUBKEY(bio, impl_->key) == 1) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);  // NOLINT(google-runtime-int): OpenSSL's type
    if (len > 0) pem.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  return pem;
}

namespace {

std::string BnParam(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) throw std::runtime_error("bn param");
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

}  // namespace

std::unique_ptr<JwtKey> JwtKey::NewRsa(std::string kid) {
  auto k = std::unique_ptr<JwtKey>(new JwtKey());
  k->impl_ = std::make_unique<Impl>();
  k->impl_->key = EVP_RSA_gen(2048);
  k->kid_ = std::move(kid);
  k->alg_ = "RS256";
  return k;
}

std::unique_ptr<JwtKey> JwtKey::NewEc(std::string kid) {
  auto k = std::unique_ptr<JwtKey>(new JwtKey());
  k->impl_ = std::make_unique<Impl>();
  k->impl_->key = EVP_EC_gen("P-256");
  k->kid_ = std::move(kid);
  k->alg_ = "ES256";
  return k;
}

JwtKey::~JwtKey() = default;

std::string JwtKey::JwkJson() const {
  if (alg_ == "RS256") {
    return absl::StrCat(R"({"use":"sig","kty":"RSA","alg":"RS256","kid":")", kid_, R"(","n":")",
                        Base64Url(BnParam(impl_->key, OSSL_PKEY_PARAM_RSA_N)), R"(","e":")",
                        Base64Url(BnParam(impl_->key, OSSL_PKEY_PARAM_RSA_E)), R"("})");
  }
  unsigned char pub[65];
  size_t len = 0;
  EVP_PKEY_get_octet_string_param(impl_->key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len);
  std::string point(reinterpret_cast<char*>(pub), len);
  return absl::StrCat(R"({"use":"sig","kty":"EC","crv":"P-256","kid":")", kid_, R"(","x":")",
                      Base64Url(point.substr(1, 32)), R"(","y":")", Base64Url(point.substr(33, 32)),
                      R"("})");
}

std::string JwtKey::Sign(absl::string_view header_json, absl::string_view claims_json) const {
  std::string signing_input = absl::StrCat(Base64Url(header_json), ".", Base64Url(claims_json));
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, impl_->key);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(signing_input.data()),
                 signing_input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(signing_input.data()),
                 signing_input.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  if (alg_ == "ES256") {
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(es, &r, &s);
    std::string jose(64, '\0');
    BN_bn2binpad(r, reinterpret_cast<unsigned char*>(jose.data()), 32);
    BN_bn2binpad(s, reinterpret_cast<unsigned char*>(jose.data()) + 32, 32);
    ECDSA_SIG_free(es);
    sig = jose;
  }
  return absl::StrCat(signing_input, ".", Base64Url(sig));
}

std::string JwtKey::SignHs256WithPublicKey(absl::string_view claims_json) const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, impl_->key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  std::string header = absl::StrCat(R"({"alg":"HS256","kid":")", kid_, R"("})");
  std::string signing_input = absl::StrCat(Base64Url(header), ".", Base64Url(claims_json));
  unsigned char mac[32];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), pem.data(), static_cast<int>(pem.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_len);
  return absl::StrCat(signing_input, ".",
                      Base64Url(std::string(reinterpret_cast<char*>(mac), mac_len)));
}

std::string Jwks(std::initializer_list<const JwtKey*> keys) {
  std::vector<std::string> parts;
  for (const JwtKey* k : keys) parts.push_back(k->JwkJson());
  return absl::StrCat(R"({"keys":[)", absl::StrJoin(parts, ","), "]}");
}

std::string K8sClaims(absl::string_view issuer, absl::string_view audience, absl::string_view ns,
                      absl::string_view sa, int64_t exp, int64_t nbf) {
  return absl::StrCat(R"({"aud":[")", audience, R"("],"exp":)", exp, R"(,"iat":)", nbf,
                      R"(,"nbf":)", nbf, R"(,"iss":")", issuer,
                      R"(","sub":"system:serviceaccount:)", ns, ":", sa,
                      R"(","kubernetes.io":{"namespace":")", ns, R"(","serviceaccount":{"name":")",
                      sa, R"(","uid":"u-1"}}})");
}

}  // namespace credbroker::testing
