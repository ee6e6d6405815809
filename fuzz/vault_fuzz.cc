// Fuzzes the Vault source's response handling: login, KV v2 metadata (the version list), KV v2
// data (the key), token renewal and write answers, each from arbitrary bytes and HTTP statuses.
// The input is a sequence of answers separated by "%%\n"; an answer whose first line is a number
// is sent with that status, otherwise with 200. Every call must end in a value or a status.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "credbroker/backends/vault/vault_source.h"
#include "credbroker/core/clock.h"
#include "credbroker/core/secret_bytes.h"
#include "credbroker/testing/fake_http_client.h"
#include "credbroker/testing/temp_dir.h"
#include "fuzz_input.h"

namespace {

using namespace credbroker;

constexpr size_t kAnswers = 8;

class NoSleep final : public http::Sleeper {
 public:
  void Sleep(absl::Duration) override {}
};

http::HttpResponse AnswerOf(const std::string& part) {
  std::pair<std::string, std::string> head = absl::StrSplit(part, absl::MaxSplits('\n', 1));
  int status = 0;
  if (absl::SimpleAtoi(head.first, &status) && status >= 100 && status <= 599) {
    return testing::FakeHttpClient::Answer(status, head.second);
  }
  return testing::FakeHttpClient::Answer(200, part);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* const dir = new testing::TempDir();
  static const std::string jwt_file = [] {
    testing::WriteFile(dir->Join("jwt"), "projected-token-for-fuzzing\n");
    return dir->Join("jwt");
  }();
  static core::FakeClock clock;
  static NoSleep sleeper;

  std::vector<std::string> parts = fuzz::SplitParts(data, size, kAnswers);
  size_t next = 0;
  auto transport = std::make_unique<testing::FakeHttpClient>(
      [&](const http::HttpRequest&) -> absl::StatusOr<http::HttpResponse> {
        if (next >= parts.size()) return absl::UnavailableError("no more answers");
        return AnswerOf(parts[next++]);
      });
  v1::VaultSourceConfig config;
  config.set_address("http://127.0.0.1:8200");
  config.set_path_prefix("credbroker");
  config.set_max_attempts(2);
  config.mutable_auth()->mutable_kubernetes()->set_role("credbroker");
  config.mutable_auth()->mutable_kubernetes()->set_jwt_file(jwt_file);
  auto source = backends::vault::VaultSecretSource::Create("fuzz", config, std::move(transport),
                                                           &clock, &sleeper);
  if (!source.ok()) std::abort();  // the config above is valid
  auto versions = (*source)->ListVersions("lumenfall");
  if (versions.ok()) {
    for (const auto& v : *versions) {
      if (v.version_id.empty()) std::abort();
    }
  }
  (void)(*source)->FetchVersion("lumenfall", "1").ok();
  clock.Advance(absl::Hours(2));  // past half a typical token TTL: exercises renewal answers
  (void)(*source)->FetchVersion("lumenfall", "2").ok();
  (void)(*source)->WriteVersion("lumenfall", core::SecretBytes("lmnfl_fuzz.material")).ok();
  return 0;
}
