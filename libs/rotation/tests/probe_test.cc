#include "credbroker/rotation/probe.h"

#include "credbroker/testing/fake_http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace credbroker::rotation {
namespace {

using ::credbroker::testing::FakeHttpClient;
using ::testing::HasSubstr;
using ::testing::Not;

const providers::ProviderSpec& Lumenfall() {
  for (const providers::ProviderSpec& s : providers::BuiltinProviders()) {
    if (s.name == "lumenfall") return s;
  }
  std::abort();
}

const std::string kGood = "lmnfl_abc123.secretsecretsecret";

TEST(HttpProviderProbeTest, SendsTheProviderRequestWithTheKeyAndClassifiesAnswers) {
  int status = 200;
  FakeHttpClient client([&](const http::HttpRequest&) { return FakeHttpClient::Answer(status); });
  HttpProviderProbe probe(&client);
  ProbeResult r = probe.Probe(Lumenfall(), kGood);
  EXPECT_EQ(r.verdict, ProbeVerdict::kAccepted);
  EXPECT_EQ(r.http_status, 200);
  ASSERT_EQ(client.requests().size(), 1u);
  const http::HttpRequest req = client.requests()[0];
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.url, "https://api.lumenfall.ai/openai/v1/models");
  EXPECT_EQ(testing::HeaderOf(req, "Authorization"), "Bearer " + kGood);
  // The detail goes to logs: never the key.
  EXPECT_THAT(r.detail, Not(HasSubstr(kGood)));

  status = 401;
  EXPECT_EQ(probe.Probe(Lumenfall(), kGood).verdict, ProbeVerdict::kRejected);
  status = 403;
  EXPECT_EQ(probe.Probe(Lumenfall(), kGood).verdict, ProbeVerdict::kRejected);
  for (int inconclusive : {429, 500, 502, 404}) {
    status = inconclusive;
    EXPECT_EQ(probe.Probe(Lumenfall(), kGood).verdict, ProbeVerdict::kInconclusive) << inconclusive;
  }
}

TEST(HttpProviderProbeTest, NoAnswerIsInconclusive) {
  FakeHttpClient client([](const http::HttpRequest&) -> absl::StatusOr<http::HttpResponse> {
    return absl::UnavailableError("connection refused");
  });
  HttpProviderProbe probe(&client);
  ProbeResult r = probe.Probe(Lumenfall(), kGood);
  EXPECT_EQ(r.verdict, ProbeVerdict::kInconclusive);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_THAT(r.detail, HasSubstr("connection refused"));
  EXPECT_EQ(ProbeVerdictName(r.verdict), "error");
}

TEST(CalibrationKeyTest, KeepsTheShapeButNeverTheKey) {
  for (int i = 0; i < 200; ++i) {
    const std::string flx = "flx_live_0123456789abcdef0123456789abcdef01234567";
    std::string fake = CalibrationKey(flx);
    EXPECT_NE(fake, flx);
    ASSERT_EQ(fake.size(), flx.size());
    EXPECT_EQ(fake.substr(0, flx.size() / 2), flx.substr(0, flx.size() / 2));
    for (size_t c = 0; c < fake.size(); ++c) {
      EXPECT_EQ(std::isxdigit(static_cast<unsigned char>(fake[c])) != 0,
                std::isxdigit(static_cast<unsigned char>(flx[c])) != 0);
    }
  }
  // Nothing to vary: a generic invalid key.
  EXPECT_THAT(CalibrationKey(""), HasSubstr("credbroker-invalid-"));
  EXPECT_THAT(CalibrationKey("____"), HasSubstr("credbroker-invalid-"));
}

TEST(CalibrationKeyTest, StillMatchesTheProviderFormat) {
  for (const providers::ProviderSpec& spec : providers::BuiltinProviders()) {
    if (spec.name != "fluximage" && spec.name != "lumenfall") continue;
    const std::string real = spec.name == "fluximage" ? "flx_live_" + std::string(40, 'a') : kGood;
    for (int i = 0; i < 50; ++i) {
      EXPECT_TRUE(spec.ValidateKey(CalibrationKey(real)).ok()) << spec.name;
    }
  }
}

}  // namespace
}  // namespace credbroker::rotation
