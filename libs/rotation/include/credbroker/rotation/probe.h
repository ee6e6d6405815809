// ProviderProbe asks a provider whether a key works, by sending the provider's probe request
// (e.g. fluximage `GET /api/usage`, lumenfall `GET /openai/v1/models`) with the key in the
// provider's header. The rotation engine probes a new version before promoting it and a
// suspect version before quarantining it.
//
// Probes can lie: some providers answer 200 to such endpoints even for a garbage key. So a probe
// is trusted only after it rejected a deliberately invalid key (CalibrationKey); see
// RotationEngine.
// Thread-safety: implementations are safe for concurrent use.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "credbroker/http/http_client.h"
#include "credbroker/providers/catalog.h"

namespace credbroker::rotation {

enum class ProbeVerdict {
  kAccepted,      // the expected status
  kRejected,      // 401 or 403: the provider refuses the key
  kInconclusive,  // anything else (429, 5xx, no answer): try again later
};
// "accepted", "rejected", "error" (the metric label).
absl::string_view ProbeVerdictName(ProbeVerdict verdict);

struct ProbeResult {
  ProbeVerdict verdict = ProbeVerdict::kInconclusive;
  int http_status = 0;  // 0 when no answer
  // Why, for logs: never contains the key or the response body.
  std::string detail;
};

class ProviderProbe {
 public:
  virtual ~ProviderProbe() = default;
  // Sends `spec.probe` with `key`. The spec must have a probe (spec.probe.enabled()).
  virtual ProbeResult Probe(const providers::ProviderSpec& spec, absl::string_view key) = 0;
};

class HttpProviderProbe final : public ProviderProbe {
 public:
  // `client` must outlive the probe.
  explicit HttpProviderProbe(http::HttpClient* client) : client_(client) {}
  ProbeResult Probe(const providers::ProviderSpec& spec, absl::string_view key) override;

 private:
  http::HttpClient* const client_;
};

// A random key the provider cannot know, shaped like `like`: the first half is kept and every
// later letter or digit is replaced by a random one of the same kind (hex stays hex), so a
// provider that checks the format before the key still gets to check the key. Never equal to
// `like` (without a letter or digit to vary it is "credbroker-invalid-" and random hex).
std::string CalibrationKey(absl::string_view like);

}  // namespace credbroker::rotation
