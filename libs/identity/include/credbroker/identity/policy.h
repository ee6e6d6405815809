// Policy: which identity may lease which provider, for how long, how many at once and how often.
// Rules are matched in order; the first whose identity pattern and provider both match decides.
// Default deny: an identity no rule names may lease nothing, and without rules nobody may (the
// config validation refuses that for Kubernetes and mTLS identities).
//
// A rule may also limit the scopes (permissions at the provider) of the keys leased under it.
//
// Errors: PERMISSION_DENIED with reason NO_RULE or SCOPE_DENIED; RESOURCE_EXHAUSTED with reason
// RATE_LIMITED.
// Thread-safety: safe for concurrent use (rate-limit buckets are under a mutex).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "credbroker/core/clock.h"
#include "credbroker/identity/authenticator.h"
#include "credbroker/v1/config.pb.h"

namespace credbroker::identity {

struct PolicyGrant {
  absl::Duration max_ttl = absl::InfiniteDuration();
  int32_t max_active_leases = 0;  // 0 = no limit
};

// What a lease is for: a provider's key line and the permissions of its key.
struct LeaseTarget {
  absl::string_view provider;            // the key line (ProviderSpec::name)
  absl::string_view api;                 // the provider API it is a line of (often the same name)
  absl::Span<const std::string> scopes;  // sorted; empty: unknown
};

// True when `name` matches `pattern`: exact, "<ns>/*" or "*".
bool IdentityMatches(absl::string_view pattern, absl::string_view name);

class Policy {
 public:
  Policy(const v1::PolicyConfig& config, const core::Clock* clock);

  // For a new lease; takes one token from the identity×api bucket. A rule matches a target when
  // it names the line, its api or "*".
  absl::StatusOr<PolicyGrant> AuthorizeAcquire(const Identity& who, const LeaseTarget& target);
  // For a renewal: the rule must still allow it; no rate limit.
  absl::StatusOr<PolicyGrant> AuthorizeRenew(const Identity& who, const LeaseTarget& target) const;
  // The same for a line that is its own api, with unknown scopes.
  absl::StatusOr<PolicyGrant> AuthorizeAcquire(const Identity& who, absl::string_view provider) {
    return AuthorizeAcquire(who, LeaseTarget{provider, provider, {}});
  }
  absl::StatusOr<PolicyGrant> AuthorizeRenew(const Identity& who,
                                             absl::string_view provider) const {
    return AuthorizeRenew(who, LeaseTarget{provider, provider, {}});
  }
  // Whether a rule lets `who` hold the target's key (no rate limit taken): NO_RULE or
  // SCOPE_DENIED otherwise.
  absl::Status MayHold(const Identity& who, const LeaseTarget& target) const;

  bool IsAdmin(const Identity& who) const;
  // The `caller` label value: the identity when the policy knows it (a rule or the admin list
  // names it other than by "*"), else "unknown" — so label cardinality stays bounded.
  std::string MetricLabel(absl::string_view name) const;
  bool configured() const { return !rules_.empty(); }

 private:
  struct Rule {
    std::vector<std::string> identities;
    std::vector<std::string> providers;
    std::vector<std::string> scopes;  // sorted; empty: any
    PolicyGrant grant;
    double per_second = 0;  // 0 = no rate limit
    double burst = 0;
  };
  struct Bucket {
    double tokens;
    absl::Time last;
  };
  const Rule* Find(absl::string_view name, const LeaseTarget& target) const;
  // The deciding rule; NO_RULE when none matches, SCOPE_DENIED when it does not allow the
  // target's scopes.
  absl::StatusOr<const Rule*> RuleFor(const Identity& who, const LeaseTarget& target) const;

  std::vector<Rule> rules_;
  std::vector<std::string> admins_;
  const core::Clock* const clock_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace credbroker::identity
