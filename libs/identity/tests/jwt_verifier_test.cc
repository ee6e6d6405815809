#include "credbroker/identity/jwt_verifier.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/testing/jwt_signer.h"
#include "credbroker/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::identity {
namespace {

using ::credbroker::testing::IsOk;
using ::credbroker::testing::JwtKey;
using ::credbroker::testing::K8sClaims;
using ::credbroker::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kIssuer[] = "https://kubernetes.default.svc.cluster.local";
constexpr char kAudience[] = "credbroker";

class JwtVerifierTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = JwtKey::NewRsa("rsa-1").release();
    ec_ = JwtKey::NewEc("ec-1").release();
    other_ = JwtKey::NewRsa("rsa-1").release();  // same kid, different key
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
    delete other_;
  }

  void SetUp() override {
    jwks_ = testing::Jwks({rsa_, ec_});
    JwtVerifierOptions opts{kIssuer, kAudience, absl::Seconds(30), absl::Hours(1)};
    auto v = JwtVerifier::Create(
        opts,
        [this]() -> absl::StatusOr<std::string> {
          ++fetches_;
          if (hold_fetch_) {
            fetch_entered_.Notify();
            fetch_release_.WaitForNotification();
          }
          absl::MutexLock lock(&jwks_mu_);
          return jwks_;
        },
        &clock_);
    ASSERT_THAT(v, IsOk());
    verifier_ = std::move(*v);
  }

  int64_t Now() { return absl::ToUnixSeconds(clock_.Now()); }
  std::string Claims(int64_t exp_in = 3600, const std::string& aud = kAudience,
                     const std::string& iss = kIssuer) {
    return K8sClaims(iss, aud, "billing", "api", Now() + exp_in, Now() - 10);
  }
  static std::string Header(const JwtKey& k) {
    return absl::StrCat(R"({"alg":")", k.alg(), R"(","kid":")", k.kid(), R"("})");
  }
  std::string Reason(absl::string_view token) {
    return core::ReasonOf(verifier_->Verify(token).status());
  }

  static JwtKey* rsa_;
  static JwtKey* ec_;
  static JwtKey* other_;
  core::FakeClock clock_{absl::Now()};
  void SetJwks(std::string jwks) {
    absl::MutexLock lock(&jwks_mu_);
    jwks_ = std::move(jwks);
  }

  absl::Mutex jwks_mu_;
  std::string jwks_;
  std::atomic<int> fetches_{0};
  // When set, the next fetch announces itself and waits to be released.
  std::atomic<bool> hold_fetch_{false};
  absl::Notification fetch_entered_;
  absl::Notification fetch_release_;
  std::unique_ptr<JwtVerifier> verifier_;
};
JwtKey* JwtVerifierTest::rsa_ = nullptr;
JwtKey* JwtVerifierTest::ec_ = nullptr;
JwtKey* JwtVerifierTest::other_ = nullptr;

TEST_F(JwtVerifierTest, AcceptsRs256AndEs256ServiceAccountTokens) {
  auto r = verifier_->Verify(rsa_->Sign(Header(*rsa_), Claims()));
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->identity.name, "billing/api");
  EXPECT_FALSE(r->identity.admin);
  auto e = verifier_->Verify(ec_->Sign(Header(*ec_), Claims()));
  ASSERT_THAT(e, IsOk());
  EXPECT_EQ(e->identity.name, "billing/api");
  EXPECT_EQ(verifier_->key_count(), 2u);
}

TEST_F(JwtVerifierTest, RejectsExpiredAndNotYetValidWithLeeway) {
  EXPECT_THAT(verifier_->Verify(rsa_->Sign(Header(*rsa_), Claims(-20))), IsOk())
      << "20s past exp is within the 30s leeway";
  EXPECT_EQ(Reason(rsa_->Sign(Header(*rsa_), Claims(-31))), "TOKEN_EXPIRED");
  std::string future = K8sClaims(kIssuer, kAudience, "billing", "api", Now() + 7200, Now() + 600);
  EXPECT_EQ(Reason(rsa_->Sign(Header(*rsa_), future)), "NOT_YET_VALID");
}

TEST_F(JwtVerifierTest, RejectsWrongAudienceAndIssuer) {
  EXPECT_EQ(Reason(rsa_->Sign(Header(*rsa_), Claims(3600, "vault"))), "WRONG_AUDIENCE");
  EXPECT_EQ(Reason(rsa_->Sign(Header(*rsa_), Claims(3600, kAudience, "https://evil"))),
            "UNKNOWN_ISSUER");
}

TEST_F(JwtVerifierTest, RejectsUnknownKidAndRefetchesOnceForIt) {
  auto stranger = JwtKey::NewEc("ec-unknown");
  int before = fetches_;
  EXPECT_EQ(Reason(stranger->Sign(Header(*stranger), Claims())), "UNKNOWN_KID");
  EXPECT_EQ(fetches_, before + 1) << "an unknown kid triggers one JWKS fetch";
  EXPECT_EQ(Reason(stranger->Sign(Header(*stranger), Claims())), "UNKNOWN_KID");
  EXPECT_EQ(fetches_, before + 1) << "not more often than every 10s";
  // The cluster rotated its signing key: after the pause the new kid is picked up.
  SetJwks(testing::Jwks({rsa_, ec_, stranger.get()}));
  clock_.Advance(absl::Seconds(11));
  EXPECT_THAT(verifier_->Verify(stranger->Sign(Header(*stranger), Claims())), IsOk());
}

TEST_F(JwtVerifierTest, AFetchForAnUnknownKidBlocksNoOtherToken) {
  auto rotated = JwtKey::NewEc("ec-rotated");
  SetJwks(testing::Jwks({rsa_, ec_, rotated.get()}));
  const int before = fetches_;
  hold_fetch_ = true;
  absl::StatusOr<VerifiedToken> waited;
  std::thread first([&] { waited = verifier_->Verify(rotated->Sign(Header(*rotated), Claims())); });
  fetch_entered_.WaitForNotification();
  // While that fetch hangs: a token of a known key verifies (a fresh one: no cache), and another
  // unknown kid starts no second fetch.
  EXPECT_THAT(verifier_->Verify(rsa_->Sign(Header(*rsa_), Claims(1800))), IsOk());
  auto stranger = JwtKey::NewEc("ec-stranger");
  EXPECT_EQ(Reason(stranger->Sign(Header(*stranger), Claims())), "UNKNOWN_KID");
  EXPECT_EQ(fetches_, before + 1);
  hold_fetch_ = false;
  fetch_release_.Notify();
  first.join();
  // The first caller got the key if the fetch ended within its wait; either way the fetch ran
  // once and the rotated key now verifies without another.
  if (!waited.ok()) {
    EXPECT_EQ(core::ReasonOf(waited.status()), "UNKNOWN_KID");
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (verifier_->key_count() != 3 && absl::Now() < deadline)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_THAT(verifier_->Verify(rotated->Sign(Header(*rotated), Claims(1700))), IsOk());
  EXPECT_EQ(fetches_, before + 1);
}

TEST_F(JwtVerifierTest, RejectsAlgNone) {
  std::string claims = Claims();
  std::string token = absl::StrCat(testing::Base64Url(R"({"alg":"none","kid":"rsa-1"})"), ".",
                                   testing::Base64Url(claims), ".");
  EXPECT_EQ(Reason(token), "UNSUPPORTED_ALG");  // unsigned
  token = absl::StrCat(testing::Base64Url(R"({"alg":"none","kid":"rsa-1"})"), ".",
                       testing::Base64Url(claims), ".", testing::Base64Url("x"));
  EXPECT_EQ(Reason(token), "UNSUPPORTED_ALG");
}

TEST_F(JwtVerifierTest, RejectsHs256KeyConfusion) {
  EXPECT_EQ(Reason(rsa_->SignHs256WithPublicKey(Claims())), "UNSUPPORTED_ALG");
}

TEST_F(JwtVerifierTest, RejectsTamperedPayloadAndForeignSignature) {
  std::string token = rsa_->Sign(Header(*rsa_), Claims());
  size_t first = token.find('.');
  size_t second = token.find('.', first + 1);
  std::string evil = K8sClaims(kIssuer, kAudience, "kube-system", "admin", Now() + 3600, Now());
  std::string tampered =
      absl::StrCat(token.substr(0, first + 1), testing::Base64Url(evil), token.substr(second));
  EXPECT_EQ(Reason(tampered), "BAD_SIGNATURE");
  // Signed by a different key that claims the trusted kid.
  EXPECT_EQ(Reason(other_->Sign(Header(*other_), Claims())), "BAD_SIGNATURE");
  // An RS256 header pointing at the EC key's kid finds no RS256 key with that kid.
  EXPECT_EQ(Reason(rsa_->Sign(R"({"alg":"RS256","kid":"ec-1"})", Claims())), "UNKNOWN_KID");
}

TEST_F(JwtVerifierTest, RejectsGarbageAndNonServiceAccountSubjects) {
  EXPECT_EQ(Reason("not-a-jwt"), "MALFORMED_CREDENTIALS");
  EXPECT_EQ(Reason("a.b.c"), "MALFORMED_CREDENTIALS");
  std::string user = absl::StrCat(R"({"aud":"credbroker","exp":)", Now() + 60, R"(,"iss":")",
                                  kIssuer, R"(","sub":"alice"})");
  EXPECT_EQ(Reason(rsa_->Sign(Header(*rsa_), user)), "MALFORMED_CREDENTIALS");
}

// Found by fuzz/jwt_fuzz.cc (its input is in fuzz/corpus/jwt_fuzz/regression-huge-nbf): a date
// claim too large for an int64 was converted anyway, which is undefined behaviour.
TEST_F(JwtVerifierTest, RejectsDateClaimsNoTokenCanHave) {
  const std::string good_exp = absl::StrCat(Now() + 60);
  for (const std::string& bad :
       {std::string("1e30"), std::string("-1e30"), std::string("-5"), std::string("95617584001")}) {
    for (const char* claim : {"exp", "nbf"}) {
      std::string exp = std::string(claim) == "exp" ? bad : good_exp;
      std::string nbf = std::string(claim) == "nbf" ? bad : absl::StrCat(Now() - 10);
      std::string claims =
          absl::StrCat(R"({"aud":["credbroker"],"exp":)", exp, R"(,"nbf":)", nbf, R"(,"iss":")",
                       kIssuer, R"(","sub":"system:serviceaccount:billing:api"})");
      EXPECT_EQ(Reason(ec_->Sign(Header(*ec_), claims)), "MALFORMED_CREDENTIALS")
          << claim << "=" << bad;
    }
  }
}

TEST_F(JwtVerifierTest, VerifiedTokensAreCachedUntilExpiry) {
  std::string token = rsa_->Sign(Header(*rsa_), Claims(120));
  ASSERT_THAT(verifier_->Verify(token), IsOk());
  ASSERT_THAT(verifier_->Verify(token), IsOk());
  ASSERT_THAT(verifier_->Verify(token), IsOk());
  EXPECT_EQ(verifier_->signature_checks(), 1) << "RSA is done once per token";
  clock_.Advance(absl::Seconds(151));
  EXPECT_EQ(Reason(token), "TOKEN_EXPIRED") << "the cache does not outlive the token";
}

TEST_F(JwtVerifierTest, ErrorsNeverContainTheToken) {
  std::string token = rsa_->Sign(Header(*rsa_), Claims(-100));
  auto r = verifier_->Verify(token);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnauthenticated, Not(HasSubstr(token.substr(0, 20)))));
}

TEST(JwksTest, ParsesKeysAndSkipsUnusableOnes) {
  auto rsa = JwtKey::NewRsa("a");
  EXPECT_EQ(*CountJwksKeys(testing::Jwks({rsa.get()})), 1u);
  EXPECT_EQ(*CountJwksKeys(
                R"({"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"RSA","n":"AQAB","e":"AQAB"}]})"),
            0u);
  EXPECT_FALSE(CountJwksKeys("not json").ok());
  EXPECT_FALSE(CountJwksKeys(R"({"nokeys":[]})").ok());
}

TEST(JwtVerifierCreateTest, FailsWhenKeysCannotBeLoaded) {
  core::FakeClock clock;
  EXPECT_THAT(JwtVerifier::Create(
                  {kIssuer, kAudience},
                  []() -> absl::StatusOr<std::string> {
                    return absl::UnavailableError("connection refused");
                  },
                  &clock),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(
      JwtVerifier::Create(
          {kIssuer, kAudience},
          []() -> absl::StatusOr<std::string> { return std::string(R"({"keys":[]})"); }, &clock),
      StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace credbroker::identity
