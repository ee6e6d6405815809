// Each provider's documented refusals (reference/providers/*-auth.txt), as callers report them.
#include "credbroker/providers/auth_failure.h"

#include "gtest/gtest.h"

namespace credbroker::providers {
namespace {

const ProviderSpec& Builtin(const std::string& name) {
  for (const ProviderSpec& p : BuiltinProviders()) {
    if (p.name == name) return p;
  }
  ADD_FAILURE() << "no builtin " << name;
  return BuiltinProviders().front();
}

AuthFailureKind Classify(const std::string& provider, int status, const std::string& code,
                         const std::string& body = "") {
  return ClassifyAuthFailure(Builtin(provider), {status, code, body});
}

TEST(AuthFailureTest, ExampleAiCodesFromTheCodeOrTheBody) {
  EXPECT_EQ(Classify("example-ai", 401, "INVALID_API_KEY"), AuthFailureKind::kKeyRejected);
  EXPECT_EQ(Classify("example-ai", 401, "EXPIRED_API_KEY"), AuthFailureKind::kKeyExpired);
  EXPECT_EQ(Classify("example-ai", 401, "MISSING_API_KEY"), AuthFailureKind::kKeyMissing);
  // The documented bodies, sent as they came.
  EXPECT_EQ(
      Classify("example-ai", 401, "",
               R"({"success":false,"error":{"code":"EXPIRED_API_KEY","message":)"
               R"("The API key has expired","details":{"expired_at":"2024-01-01T00:00:00Z"}}})"),
      AuthFailureKind::kKeyExpired);
  EXPECT_EQ(Classify("example-ai", 401, "",
                     R"({"success":false,"error":{"code":"MISSING_API_KEY","message":)"
                     R"("API key is required","details":{"header":"Authorization"}}})"),
            AuthFailureKind::kKeyMissing);
  // What the caller read wins over the body.
  EXPECT_EQ(Classify("example-ai", 401, "INVALID_API_KEY",
                     R"({"success":false,"error":{"code":"MISSING_API_KEY"}})"),
            AuthFailureKind::kKeyRejected);
  // 403: "Access denied. Check your API key permissions." — the key works, it may not do this.
  EXPECT_EQ(Classify("example-ai", 403, ""), AuthFailureKind::kForbidden);
  EXPECT_EQ(Classify("example-ai", 429, ""), AuthFailureKind::kRateLimited);
}

TEST(AuthFailureTest, FluximageHasOneAnswerForEveryBadKey) {
  EXPECT_EQ(Classify("fluximage", 401, "", R"({ "error": "Unauthorized" })"),
            AuthFailureKind::kKeyRejected);
  EXPECT_EQ(ErrorCodeInBody(Builtin("fluximage"), R"({ "error": "Unauthorized" })"),
            "Unauthorized");
  EXPECT_EQ(Classify("fluximage", 429, ""), AuthFailureKind::kRateLimited);
}

TEST(AuthFailureTest, FiremoonsForbiddenSaysNothingAboutTheKey) {
  EXPECT_EQ(Classify("firemoon", 403, ""), AuthFailureKind::kAmbiguous);
  EXPECT_EQ(Classify("firemoon", 401, ""), AuthFailureKind::kKeyRejected);
  EXPECT_FALSE(IsEvidenceAgainstTheKey(AuthFailureKind::kAmbiguous));
}

TEST(AuthFailureTest, StatusOnlyProvidersAndGarbageBodies) {
  for (const char* p : {"lumenfall", "magichour"}) {
    EXPECT_EQ(Classify(p, 401, ""), AuthFailureKind::kKeyRejected) << p;
    EXPECT_EQ(Classify(p, 403, ""), AuthFailureKind::kForbidden) << p;
    EXPECT_EQ(Classify(p, 429, ""), AuthFailureKind::kRateLimited) << p;
  }
  // A body that is not JSON, or an unknown code: the status decides.
  EXPECT_EQ(Classify("example-ai", 401, "", "<html>bad gateway</html>"),
            AuthFailureKind::kKeyRejected);
  EXPECT_EQ(Classify("example-ai", 401, "SOMETHING_NEW"), AuthFailureKind::kKeyRejected);
}

TEST(AuthFailureTest, OnlyRejectedAndExpiredAreEvidenceAndNamesRoundTrip) {
  for (AuthFailureKind k :
       {AuthFailureKind::kKeyRejected, AuthFailureKind::kKeyExpired, AuthFailureKind::kKeyMissing,
        AuthFailureKind::kForbidden, AuthFailureKind::kAmbiguous, AuthFailureKind::kRateLimited}) {
    AuthFailureKind back = AuthFailureKind::kRateLimited;
    ASSERT_TRUE(ParseAuthFailureKind(AuthFailureKindName(k), &back));
    EXPECT_EQ(back, k);
    EXPECT_EQ(IsEvidenceAgainstTheKey(k),
              k == AuthFailureKind::kKeyRejected || k == AuthFailureKind::kKeyExpired);
  }
  AuthFailureKind unused = AuthFailureKind::kKeyRejected;
  EXPECT_FALSE(ParseAuthFailureKind("no_such_kind", &unused));
}

}  // namespace
}  // namespace credbroker::providers
