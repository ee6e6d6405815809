// Policy: which identity may lease which provider, for how long, how many at once and how often.
// Rules are matched in order; the first whose identity pattern and provider both match decides.
// Default deny: an identity no rule names may lease nothing, and without rules nobody may (the
// config validation refuses that for Kubernetes and mTLS identities).
//
// Errors: PERMISSION_DENIED with reason NO_RULE; RESOURCE_EXHAUSTED with reason RATE_LIMITED.
// Thread-safety: safe for concurrent use (rate-limit buckets are under a mutex).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "credbroker/core/clock.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::identity {

struct PolicyGrant {
  absl::Duration max_ttl = absl::InfiniteDuration();
  int32_t max_active_leases = 0;  // 0 = no limit
};

// True when `name` matches `pattern`: exact, "<ns>/*" or "*".
bool IdentityMatches(absl::string_view pattern, absl::string_view name);

class Policy {
 public:
  Policy(const v1::PolicyConfig& config, const core::Clock* clock);

  // For a new lease; takes one token from the identity×provider bucket.
  absl::StatusOr<PolicyGrant> AuthorizeAcquire(const Identity& who, absl::string_view provider);
  // For a renewal: the rule must still allow it; no rate limit.
  absl::StatusOr<PolicyGrant> AuthorizeRenew(const Identity& who, absl::string_view provider) const;

  bool IsAdmin(const Identity& who) const;
  // The `caller` label value: the identity when the policy knows it (a rule or the admin list
  // names it other than by "*"), else "unknown" — so label cardinality stays bounded.
  std::string MetricLabel(absl::string_view name) const;
  bool configured() const { return !rules_.empty(); }

 private:
  struct Rule {
    std::vector<std::string> identities;
    std::vector<std::string> providers;
    PolicyGrant grant;
    double per_second = 0;  // 0 = no rate limit
    double burst = 0;
  };
  struct Bucket {
    double tokens;
    absl::Time last;
  };
  const Rule* Find(absl::string_view name, absl::string_view provider) const;
  // The deciding rule; NO_RULE when none matches.
  absl::StatusOr<const Rule*> RuleFor(const Identity& who, absl::string_view provider) const;

  std::vector<Rule> rules_;
  std::vector<std::string> admins_;
  const core::Clock* const clock_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::identity
