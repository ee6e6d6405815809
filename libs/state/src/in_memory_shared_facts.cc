#include <algorithm>

#include "credbroker/state/shared_facts.h"

namespace credbroker::state {

void InMemorySharedFacts::AddAuthFailure(const AuthFailureReport& report,
                                         std::function<void(absl::Status)> done) {
  {
    absl::MutexLock lock(&mu_);
    while (!reports_.empty() && reports_.front().report.at < report.at - retention_) {
      reports_.pop_front();
    }
    Fact f;
    f.kind = Fact::Kind::kAuthFailure;
    f.revision = ++revision_;
    f.report = report;
    reports_.push_back(f);
    log_.Publish({std::move(f)});
  }
  done(absl::OkStatus());
}

absl::Status InMemorySharedFacts::Suspend(const Suspension& suspension) {
  absl::MutexLock lock(&mu_);
  Fact f;
  f.kind = Fact::Kind::kSuspension;
  f.revision = ++revision_;
  f.suspension = suspension;
  suspensions_[{suspension.caller, suspension.provider}] = f;
  log_.Publish({std::move(f)});
  return absl::OkStatus();
}

absl::StatusOr<FactListing> InMemorySharedFacts::List(absl::Time now) {
  absl::MutexLock lock(&mu_);
  FactListing out;
  for (const Fact& f : reports_) {
    if (f.report.at >= now - retention_) out.facts.push_back(f);
  }
  for (const auto& [key, f] : suspensions_) {
    if (f.suspension.until > now) out.facts.push_back(f);
  }
  std::sort(out.facts.begin(), out.facts.end(),
            [](const Fact& a, const Fact& b) { return a.revision < b.revision; });
  out.revision = revision_;
  return out;
}

absl::StatusOr<std::unique_ptr<Watch>> InMemorySharedFacts::Watch(int64_t after_revision,
                                                                  FactWatchFn fn) {
  absl::MutexLock lock(&mu_);
  return log_.Watch(after_revision, std::move(fn));
}

}  // namespace credbroker::state
