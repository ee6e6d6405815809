#include "credbroker/rotation/probe.h"

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace credbroker::rotation {

absl::string_view ProbeVerdictName(ProbeVerdict verdict) {
  switch (verdict) {
    case ProbeVerdict::kAccepted:
      return "accepted";
    case ProbeVerdict::kRejected:
      return "rejected";
    case ProbeVerdict::kInconclusive:
      return "error";
  }
  return "error";
}

ProbeResult HttpProviderProbe::Probe(const providers::ProviderSpec& spec, absl::string_view key) {
  http::HttpRequest req;
  req.method = spec.probe.method;
  req.url = absl::StrCat(spec.base_url, spec.probe.path);
  req.headers.emplace_back(spec.header_name, spec.HeaderValue(key));
  req.timeout = spec.probe.timeout;
  absl::StatusOr<http::HttpResponse> resp = client_->Send(req);
  ProbeResult out;
  if (!resp.ok()) {
    out.detail = absl::StrCat(spec.probe.method, " ", req.url, ": ", resp.status().ToString());
    return out;
  }
  out.http_status = resp->status;
  out.detail = absl::StrCat(spec.probe.method, " ", req.url, " answered ", resp->status);
  if (resp->status == spec.probe.expected_status) {
    out.verdict = ProbeVerdict::kAccepted;
  } else if (resp->status == 401 || resp->status == 403) {
    out.verdict = ProbeVerdict::kRejected;
  }
  return out;
}

std::string CalibrationKey(absl::string_view like) {
  static constexpr absl::string_view kDigits = "0123456789";
  static constexpr absl::string_view kLowerHex = "abcdef";
  static constexpr absl::string_view kUpperHex = "ABCDEF";
  static constexpr absl::string_view kLower = "abcdefghijklmnopqrstuvwxyz";
  static constexpr absl::string_view kUpper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  absl::BitGen gen;
  std::string out(like);
  auto alphabet = [](char c) -> absl::string_view {
    if (absl::ascii_isdigit(c)) return kDigits;
    if (c >= 'a' && c <= 'f') return kLowerHex;
    if (c >= 'A' && c <= 'F') return kUpperHex;
    if (absl::ascii_islower(c)) return kLower;
    if (absl::ascii_isupper(c)) return kUpper;
    return "";
  };
  int last = -1;
  for (size_t i = out.size() / 2; i < out.size(); ++i) {
    absl::string_view a = alphabet(out[i]);
    if (a.empty()) continue;
    out[i] = a[absl::Uniform<size_t>(gen, 0, a.size())];
    last = static_cast<int>(i);
  }
  if (last < 0) {
    // Nothing to vary: a key no provider issued.
    std::string random = "credbroker-invalid-";
    for (int i = 0; i < 32; ++i) random += kLowerHex[absl::Uniform<size_t>(gen, 0, 6)];
    return random;
  }
  if (out == like) {
    // Every random pick matched: change the last one for sure.
    absl::string_view a = alphabet(out[last]);
    out[last] = a[(a.find(out[last]) + 1) % a.size()];
  }
  return out;
}

}  // namespace credbroker::rotation
