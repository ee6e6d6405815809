#include "credbroker/rotation/revocation_detector.h"

#include "absl/strings/str_cat.h"

namespace credbroker::rotation {

void RevocationDetector::Prune(Burst& burst, absl::Time now) const {
  absl::erase_if(burst.last_report,
                 [&](const auto& entry) { return now - entry.second > window_; });
}

bool RevocationDetector::Record(absl::string_view provider, absl::string_view version,
                                absl::string_view caller, int http_status, absl::Time now) {
  if (http_status != 401) return false;
  return Add(provider, version, caller, now, min_callers_);
}

bool RevocationDetector::RecordDecisive(absl::string_view provider, absl::string_view version,
                                        absl::string_view caller, absl::Time now) {
  return Add(provider, version, caller, now, 1);
}

bool RevocationDetector::Add(absl::string_view provider, absl::string_view version,
                             absl::string_view caller, absl::Time now, int min_callers) {
  absl::MutexLock lock(&mu_);
  // Forget bursts that went quiet so the map only holds versions with recent 401s.
  absl::erase_if(bursts_, [&](auto& entry) {
    Prune(entry.second, now);
    return entry.second.last_report.empty() && now - entry.second.triggered_at > window_;
  });
  Burst& burst = bursts_[absl::StrCat(provider, "\x1f", version)];
  burst.last_report[std::string(caller)] = now;
  if (static_cast<int>(burst.last_report.size()) < min_callers) return false;
  if (now - burst.triggered_at < window_) return false;
  burst.triggered_at = now;
  return true;
}

int RevocationDetector::DistinctCallers(absl::string_view provider, absl::string_view version,
                                        absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = bursts_.find(absl::StrCat(provider, "\x1f", version));
  if (it == bursts_.end()) return 0;
  Prune(it->second, now);
  return static_cast<int>(it->second.last_report.size());
}

}  // namespace credbroker::rotation
