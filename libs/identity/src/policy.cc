#include "credbroker/identity/policy.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/scopes.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::identity {

bool IdentityMatches(absl::string_view pattern, absl::string_view name) {
  if (pattern == "*") return true;
  if (absl::EndsWith(pattern, "/*")) {
    return absl::StartsWith(name, pattern.substr(0, pattern.size() - 1)) &&
           name.size() > pattern.size() - 1;
  }
  return pattern == name;
}

Policy::Policy(const v1::PolicyConfig& config, const core::Clock* clock) : clock_(clock) {
  for (const v1::PolicyRule& r : config.rules()) {
    Rule rule;
    rule.identities.assign(r.identities().begin(), r.identities().end());
    rule.providers.assign(r.providers().begin(), r.providers().end());
    rule.scopes.assign(r.scopes().begin(), r.scopes().end());
    std::sort(rule.scopes.begin(), rule.scopes.end());
    if (r.has_max_ttl()) rule.grant.max_ttl = core::FromProtoDuration(r.max_ttl());
    rule.grant.max_active_leases = r.max_active_leases();
    if (r.has_rate_limit()) {
      rule.per_second = r.rate_limit().per_second();
      rule.burst = r.rate_limit().burst();
    }
    rules_.push_back(std::move(rule));
  }
  admins_.assign(config.admins().begin(), config.admins().end());
}

const Policy::Rule* Policy::Find(absl::string_view name, const LeaseTarget& target) const {
  for (const Rule& r : rules_) {
    bool id_ok = std::any_of(r.identities.begin(), r.identities.end(),
                             [&](const std::string& p) { return IdentityMatches(p, name); });
    bool provider_ok = std::any_of(
        r.providers.begin(), r.providers.end(),
        [&](const std::string& p) { return p == "*" || p == target.provider || p == target.api; });
    if (id_ok && provider_ok) return &r;
  }
  return nullptr;
}

absl::StatusOr<const Policy::Rule*> Policy::RuleFor(const Identity& who,
                                                    const LeaseTarget& target) const {
  // Default deny: without a rule naming the caller and the provider (or no rules at all), no
  // lease.
  const Rule* rule = Find(who.name, target);
  if (rule == nullptr) {
    return core::WithReason(
        absl::PermissionDeniedError(absl::StrCat(
            "no policy rule allows ", who.name, " to lease ", target.provider,
            rules_.empty() ? " (the broker has no policy.rules: every lease is denied)" : "")),
        "NO_RULE");
  }
  // A key whose scopes are unknown could carry any: under a rule that limits scopes, never.
  if (!rule->scopes.empty() &&
      (target.scopes.empty() || !core::ScopesWithin(target.scopes, rule->scopes))) {
    return core::WithReason(
        absl::PermissionDeniedError(absl::StrCat(
            "the policy lets ", who.name, " hold keys with scopes [",
            absl::StrJoin(rule->scopes, ", "), "] of ", target.api, "; the key of ",
            target.provider,
            target.scopes.empty()
                ? " has unknown scopes"
                : absl::StrCat(" carries [", absl::StrJoin(target.scopes, ", "), "]"))),
        "SCOPE_DENIED");
  }
  return rule;
}

absl::Status Policy::MayHold(const Identity& who, const LeaseTarget& target) const {
  return RuleFor(who, target).status();
}

absl::StatusOr<PolicyGrant> Policy::AuthorizeRenew(const Identity& who,
                                                   const LeaseTarget& target) const {
  CB_ASSIGN_OR_RETURN(const Rule* rule, RuleFor(who, target));
  return rule->grant;
}

absl::StatusOr<PolicyGrant> Policy::AuthorizeAcquire(const Identity& who,
                                                     const LeaseTarget& target) {
  CB_ASSIGN_OR_RETURN(const Rule* rule, RuleFor(who, target));
  const absl::string_view provider = target.api;
  if (rule->per_second > 0) {
    const absl::Time now = clock_->Now();
    absl::MutexLock lock(&mu_);
    auto [it, inserted] =
        buckets_.try_emplace(absl::StrCat(who.name, "\x1f", provider), Bucket{rule->burst, now});
    Bucket& b = it->second;
    b.tokens =
        std::min(rule->burst, b.tokens + absl::ToDoubleSeconds(now - b.last) * rule->per_second);
    b.last = now;
    if (b.tokens < 1.0) {
      double wait = (1.0 - b.tokens) / rule->per_second;
      return core::WithReason(
          absl::ResourceExhaustedError(absl::StrCat(
              "rate limit for ", who.name, " on ", provider, " (", rule->per_second, "/s, burst ",
              rule->burst, "); retry in ",
              absl::FormatDuration(absl::Milliseconds(static_cast<int64_t>(wait * 1000) + 1)))),
          "RATE_LIMITED");
    }
    b.tokens -= 1.0;
  }
  return rule->grant;
}

bool Policy::IsAdmin(const Identity& who) const {
  if (who.admin) return true;
  return std::any_of(admins_.begin(), admins_.end(),
                     [&](const std::string& p) { return IdentityMatches(p, who.name); });
}

std::string Policy::MetricLabel(absl::string_view name) const {
  for (const Rule& r : rules_) {
    for (const std::string& p : r.identities) {
      if (p != "*" && IdentityMatches(p, name)) return std::string(name);
    }
  }
  for (const std::string& p : admins_) {
    if (p != "*" && IdentityMatches(p, name)) return std::string(name);
  }
  return "unknown";
}

}  // namespace credbroker::identity
