#include "credbroker/leasing/revocation_feed.h"

#include "credbroker/core/status_macros.h"
#include "credbroker/providers/auth_failure.h"

namespace credbroker::leasing {

absl::StatusOr<std::unique_ptr<RevocationFeed>> RevocationFeed::Start(
    state::SharedFacts* facts, const state::Leadership* leadership,
    rotation::RevocationDetector* detector, SuspectFn suspect, absl::Time now) {
  std::unique_ptr<RevocationFeed> feed(
      new RevocationFeed(leadership, detector, std::move(suspect)));
  RevocationFeed* f = feed.get();
  CB_ASSIGN_OR_RETURN(
      feed->watch_, facts->Follow(now, [f](const std::vector<state::Fact>& v) { f->OnFacts(v); }));
  return feed;
}

RevocationFeed::~RevocationFeed() { watch_.reset(); }

void RevocationFeed::OnFacts(const std::vector<state::Fact>& facts) {
  for (const state::Fact& fact : facts) {
    if (fact.kind != state::Fact::Kind::kAuthFailure) continue;
    const state::AuthFailureReport& r = fact.report;
    // "The key expired" from one caller is enough to check the key; a plain refusal needs
    // refusals from several callers (one caller's bad configuration proves nothing).
    const bool burst =
        r.kind == providers::AuthFailureKindName(providers::AuthFailureKind::kKeyExpired)
            ? detector_->RecordDecisive(r.provider, r.key_version, r.caller, r.at)
            : detector_->Record(r.provider, r.key_version, r.caller, r.http_status, r.at);
    if (burst && leadership_->IsLeader()) suspect_(r.provider, r.key_version);
  }
}

}  // namespace credbroker::leasing
