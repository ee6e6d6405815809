// Fuzzes what the broker reads from a provider's key API when it mints a key: the JSON answer
// (through the configured JSON pointers) with an arbitrary status, and JSON pointers themselves.
// The input is "status\nbody%%\npointer". A minted key is never empty.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/json_pointer.h"
#include "credbroker/rotation/key_minter.h"
#include "credbroker/testing/fake_http_client.h"
#include "fuzz_input.h"

namespace {

using namespace credbroker;

providers::ProviderSpec MintedSpec() {
  providers::ProviderSpec spec;
  for (const providers::ProviderSpec& s : providers::BuiltinProviders()) {
    if (s.name == "lumenfall") spec = s;
  }
  auto mint = std::make_shared<v1::MintConfig>();
  mint->set_base_url("http://127.0.0.1:1/admin");
  mint->mutable_create()->set_path("/keys");
  mint->mutable_create()->set_body(R"({"name":"credbroker-{provider}-{timestamp}"})");
  mint->mutable_revoke()->set_path("/keys/{key_id}");
  mint->set_key_pointer("/data/secret");
  mint->set_key_id_pointer("/data/id");
  spec.mint = mint;
  return spec;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const providers::ProviderSpec* const spec = new providers::ProviderSpec(MintedSpec());
  static core::FakeClock clock;
  std::vector<std::string> parts = fuzz::SplitParts(data, size, 2);
  std::pair<std::string, std::string> answer = absl::StrSplit(parts[0], absl::MaxSplits('\n', 1));
  int status = 201;
  if (!absl::SimpleAtoi(answer.first, &status) || status < 100 || status > 599) status = 201;
  testing::FakeHttpClient client([&](const http::HttpRequest&) {
    return testing::FakeHttpClient::Answer(status, answer.second);
  });
  rotation::HttpKeyMinter minter(&client, &clock);
  auto minted = minter.Create(*spec, "admin-token");
  if (minted.ok() && minted->material.reveal().empty()) std::abort();
  (void)core::JsonPointerString(answer.second, parts[1]).ok();
  return 0;
}
