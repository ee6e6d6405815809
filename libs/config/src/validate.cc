#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "credbroker/config/config.h"
#include "credbroker/core/duration.h"
#include "credbroker/core/log.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/scopes.h"
#include "credbroker/providers/catalog.h"

namespace credbroker::config {
namespace {

namespace fs = std::filesystem;

absl::Duration ToAbsl(const google::protobuf::Duration& d) { return core::FromProtoDuration(d); }

void SetDuration(google::protobuf::Duration* out, absl::Duration d) {
  core::ToProtoDuration(d, out);
}

class Errors {
 public:
  Errors(absl::string_view filename, const FieldLines& lines)
      : filename_(filename), lines_(lines) {}

  void Add(const std::string& path, const std::string& message) {
    // The line of the field, else of its closest parent that appears in the file.
    std::string p = path;
    int line = 0;
    while (!p.empty()) {
      auto it = lines_.find(p);
      if (it != lines_.end()) {
        line = it->second;
        break;
      }
      size_t cut = p.find_last_of(".[");
      p = cut == std::string::npos ? "" : p.substr(0, cut);
    }
    errors_.push_back(line > 0 ? absl::StrCat(filename_, ":", line, ": ", path, ": ", message)
                               : absl::StrCat(filename_, ": ", path, ": ", message));
  }
  absl::Status ToStatus() const {
    if (errors_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(errors_, "\n"));
  }

 private:
  absl::string_view filename_;
  const FieldLines& lines_;
  std::vector<std::string> errors_;
};

// True for addresses only this machine can reach: localhost, 127.0.0.0/8, ::1 (with or without
// brackets). Anything else, names included, may be reachable from the network.
bool IsLoopbackHost(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// An identity pattern of identity::IdentityMatches: exact (no '*'), "<namespace>/*" or "*".
bool IsIdentityPattern(const std::string& id) {
  const size_t star = id.find('*');
  return !id.empty() && (star == std::string::npos || id == "*" ||
                         (star == id.size() - 1 && id.size() >= 3 && id[id.size() - 2] == '/'));
}

bool ValidHostPort(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int port = 0;
  return absl::SimpleAtoi(s.substr(colon + 1), &port) && port >= 0 && port <= 65535;
}

const std::regex& NameRegex() {
  static const std::regex* const kRe = new std::regex("[a-z0-9][a-z0-9-]{0,62}");
  return *kRe;
}

void ValidateEtcd(const v1::EtcdStoreConfig& e, Errors& errors) {
  if (e.endpoints().empty()) {
    errors.Add("state.etcd.endpoints", "at least one HOST:PORT is required");
  }
  for (int i = 0; i < e.endpoints_size(); ++i) {
    const std::string& ep = e.endpoints(i);
    if (absl::StrContains(ep, "://")) {
      errors.Add(absl::StrCat("state.etcd.endpoints[", i, "]"),
                 "HOST:PORT without a scheme (TLS is state.etcd.tls), got \"" + ep + "\"");
    } else if (!ValidHostPort(ep) || absl::EndsWith(ep, ":0")) {
      errors.Add(absl::StrCat("state.etcd.endpoints[", i, "]"),
                 "must be HOST:PORT, got \"" + ep + "\"");
    }
  }
  if (!e.prefix().empty() && e.prefix()[0] != '/') {
    errors.Add("state.etcd.prefix", "must start with '/', got \"" + e.prefix() + "\"");
  }
  auto positive = [&](bool has, const google::protobuf::Duration& d, const char* field,
                      absl::Duration at_least) {
    if (has && ToAbsl(d) < at_least) {
      errors.Add(absl::StrCat("state.etcd.", field),
                 absl::StrCat("must be at least ", absl::FormatDuration(at_least)));
    }
  };
  positive(e.has_dial_timeout(), e.dial_timeout(), "dial_timeout", absl::Milliseconds(100));
  positive(e.has_request_timeout(), e.request_timeout(), "request_timeout",
           absl::Milliseconds(100));
  positive(e.has_election_ttl(), e.election_ttl(), "election_ttl", absl::Seconds(3));
  if (e.tls().cert().empty() != e.tls().key().empty()) {
    errors.Add("state.etcd.tls", "cert and key go together");
  }
  if (!e.tls().cert().empty() && e.tls().ca().empty()) {
    errors.Add("state.etcd.tls.ca", "required with a client certificate");
  }
  if (e.username().empty() != e.password_file().empty()) {
    errors.Add("state.etcd", "username and password_file go together");
  }
}

void ValidateTtl(const v1::LeaseConfig& l, Errors& errors) {
  absl::Duration min_ttl = l.has_min_ttl() ? ToAbsl(l.min_ttl()) : absl::Seconds(30);
  absl::Duration def_ttl = l.has_default_ttl() ? ToAbsl(l.default_ttl()) : absl::Minutes(15);
  absl::Duration max_ttl = l.has_max_ttl() ? ToAbsl(l.max_ttl()) : absl::Hours(1);
  if (min_ttl <= absl::ZeroDuration()) errors.Add("leases.min_ttl", "must be positive");
  if (def_ttl < min_ttl || def_ttl > max_ttl) {
    errors.Add(
        "leases.default_ttl",
        absl::StrCat("must be between min_ttl (", core::HumanDuration(min_ttl), ") and max_ttl (",
                     core::HumanDuration(max_ttl), "), got ", core::HumanDuration(def_ttl)));
  }
  if (l.has_sweep_interval() && ToAbsl(l.sweep_interval()) <= absl::ZeroDuration()) {
    errors.Add("leases.sweep_interval", "must be positive");
  }
}

}  // namespace

absl::Status Validate(const ParsedConfig& parsed, absl::string_view filename,
                      const ExtraChecks& extra) {
  const v1::BrokerConfig& c = parsed.config;
  Errors errors(filename, parsed.lines);

  if (!c.server().listen().empty() && !ValidHostPort(c.server().listen())) {
    errors.Add("server.listen", "expected HOST:PORT, got \"" + c.server().listen() + "\"");
  }
  if (!c.server().metrics_listen().empty() && !ValidHostPort(c.server().metrics_listen())) {
    errors.Add("server.metrics_listen",
               "expected HOST:PORT, got \"" + c.server().metrics_listen() + "\"");
  }
  if (!c.server().health_listen().empty()) {
    if (!ValidHostPort(c.server().health_listen())) {
      errors.Add("server.health_listen",
                 "expected HOST:PORT, got \"" + c.server().health_listen() + "\"");
    } else if (c.server().health_listen() == c.server().listen() &&
               !absl::EndsWith(c.server().listen(), ":0")) {
      errors.Add("server.health_listen", "must differ from server.listen");
    }
  }
  // Leases carry provider keys: in plaintext they may leave this machine only when the operator
  // says something else encrypts them.
  if (ValidHostPort(c.server().listen()) && !c.server().has_tls() &&
      !c.server().insecure_plaintext()) {
    const std::string& listen = c.server().listen();
    const std::string host = listen.substr(0, listen.rfind(':'));
    if (!IsLoopbackHost(host)) {
      errors.Add("server.listen",
                 absl::StrCat("\"", listen,
                              "\" is not a loopback address and server.tls is not set: leases "
                              "would carry keys in plaintext (set server.tls, or "
                              "server.insecure_plaintext: true when a mesh encrypts the traffic)"));
    }
  }

  std::set<std::string> source_names;
  for (int i = 0; i < c.sources_size(); ++i) {
    const v1::SourceConfig& s = c.sources(i);
    std::string f = absl::StrCat("sources[", i, "]");
    if (s.name().empty()) {
      errors.Add(f + ".name", "required");
    } else if (!source_names.insert(s.name()).second) {
      errors.Add(f + ".name", "duplicate source name \"" + s.name() + "\"");
    }
    if (s.backend_case() == v1::SourceConfig::BACKEND_NOT_SET) {
      errors.Add(f, "one backend must be set (file, vault, aws, gcp, azure)");
    }
    if (s.has_file() && s.file().root().empty()) errors.Add(f + ".file.root", "required");
    if (s.has_max_staleness() && ToAbsl(s.max_staleness()) <= absl::ZeroDuration()) {
      errors.Add(f + ".max_staleness", "must be positive");
    }
    if (s.has_refresh_interval() && ToAbsl(s.refresh_interval()) < absl::Milliseconds(100)) {
      errors.Add(f + ".refresh_interval", "must be at least 100ms");
    }
  }
  if (c.sources_size() == 0) errors.Add("sources", "at least one source is required");

  if (c.providers_size() == 0) errors.Add("providers", "at least one provider is required");
  std::set<std::string> provider_names;
  for (int i = 0; i < c.providers_size(); ++i) {
    const v1::ProviderConfig& p = c.providers(i);
    std::string f = absl::StrCat("providers[", i, "]");
    if (!std::regex_match(p.name(), NameRegex())) {
      errors.Add(f + ".name",
                 "must be lowercase letters, digits and '-', got \"" + p.name() + "\"");
    } else if (!provider_names.insert(p.name()).second) {
      errors.Add(f + ".name", "duplicate provider \"" + p.name() + "\"");
    }
    if (!p.api().empty() && !std::regex_match(p.api(), NameRegex())) {
      errors.Add(f + ".api", "must be lowercase letters, digits and '-', got \"" + p.api() + "\"");
    }
    for (int j = 0; j < p.scopes_size(); ++j) {
      if (!core::IsScopeName(p.scopes(j))) {
        errors.Add(absl::StrCat(f, ".scopes[", j, "]"),
                   "must be a scope name (lowercase letters, digits, '_', '-', '.', ':'), got \"" +
                       p.scopes(j) + "\"");
      }
    }
    if (!p.source().empty() && !source_names.contains(p.source())) {
      errors.Add(f + ".source", "no source named \"" + p.source() + "\"");
    }
    if (p.source().empty() && c.sources_size() > 1) {
      errors.Add(f + ".source", "required when more than one source is configured");
    }
    if (!p.key_format().empty()) {
      auto re = providers::CompileKeyFormat(p.key_format());
      if (!re.ok()) errors.Add(f + ".key_format", std::string(re.status().message()));
    }
    if (!p.base_url().empty() && p.base_url().rfind("https://", 0) != 0 &&
        p.base_url().rfind("http://", 0) != 0) {
      errors.Add(f + ".base_url", "must start with https:// or http://");
    }
    absl::Duration period =
        p.has_rotation_period() ? ToAbsl(p.rotation_period()) : absl::Hours(24 * 90);
    absl::Duration overlap = p.has_overlap() ? ToAbsl(p.overlap()) : absl::Hours(24 * 7);
    if (period < absl::Hours(24 * 30) || period > absl::Hours(24 * 90)) {
      errors.Add(f + ".rotation_period",
                 "must be between 30d and 90d, got " + core::HumanDuration(period));
    }
    if (overlap <= absl::ZeroDuration() || overlap >= period) {
      errors.Add(f + ".overlap", absl::StrCat("must be positive and shorter than rotation_period (",
                                              core::HumanDuration(period), "), got ",
                                              core::HumanDuration(overlap)));
    }
    if (p.has_probe()) {
      const v1::ProbeConfig& pr = p.probe();
      if (!pr.disabled() && pr.path().empty()) {
        errors.Add(f + ".probe.path", "required unless the probe is disabled");
      }
      if (pr.expected_status() != 0 && (pr.expected_status() < 100 || pr.expected_status() > 599)) {
        errors.Add(f + ".probe.expected_status", "must be an HTTP status (100-599)");
      }
      if (pr.has_timeout() && ToAbsl(pr.timeout()) <= absl::ZeroDuration()) {
        errors.Add(f + ".probe.timeout", "must be positive");
      }
    }
    if (p.has_mint()) {
      const v1::MintConfig& m = p.mint();
      // A preset fills create and key_pointer (ProviderCatalog checks the preset itself).
      const bool preset = !m.preset().empty();
      if (!preset && m.create().path().empty()) errors.Add(f + ".mint.create.path", "required");
      if ((!preset || !m.key_pointer().empty()) &&
          (m.key_pointer().empty() || m.key_pointer()[0] != '/')) {
        errors.Add(f + ".mint.key_pointer", "required: a JSON pointer such as /key");
      }
      if (m.preset() == "firemoon" && m.admin_key_file().empty()) {
        errors.Add(f + ".mint.admin_key_file",
                   "required by the firemoon preset: firemoon creates keys only with a user "
                   "session token (POST /api/keys), never with an API key");
      }
      if (m.has_revoke()) {
        if (m.revoke().path().empty()) errors.Add(f + ".mint.revoke.path", "required");
        if (m.key_id_pointer().empty() || m.key_id_pointer()[0] != '/') {
          errors.Add(f + ".mint.key_id_pointer",
                     "required with mint.revoke: a JSON pointer such as /id");
        }
      }
      if (!m.base_url().empty() && m.base_url().rfind("https://", 0) != 0 &&
          m.base_url().rfind("http://", 0) != 0) {
        errors.Add(f + ".mint.base_url", "must start with https:// or http://");
      }
      if (!m.admin_key_file().empty() && ::access(m.admin_key_file().c_str(), R_OK) != 0) {
        errors.Add(f + ".mint.admin_key_file", "cannot read \"" + m.admin_key_file() + "\"");
      }
    }
  }
  if (c.audit().max_queued_lines() > 10'000'000) {
    errors.Add("audit.max_queued_lines", "must be at most 10000000");
  }
  {
    const v1::AnomalyConfig& a = c.anomaly_detection();
    const std::pair<const char*, const std::string*> actions[] = {
        {"rate_spike_action", &a.rate_spike_action()},
        {"failure_spike_action", &a.failure_spike_action()},
        {"new_caller_action", &a.new_caller_action()},
        {"retired_key_use_action", &a.retired_key_use_action()}};
    for (const auto& [field, value] : actions) {
      if (!value->empty() && *value != "log" && *value != "alert" && *value != "suspend") {
        errors.Add(absl::StrCat("anomaly_detection.", field),
                   "must be \"log\", \"alert\" or \"suspend\", got \"" + *value + "\"");
      }
    }
    if (a.has_bucket() && ToAbsl(a.bucket()) < absl::Seconds(1)) {
      errors.Add("anomaly_detection.bucket", "must be at least 1s");
    }
    if (a.has_baseline_window() &&
        ToAbsl(a.baseline_window()) < (a.has_bucket() ? ToAbsl(a.bucket()) : absl::Minutes(1))) {
      errors.Add("anomaly_detection.baseline_window", "must be at least one bucket");
    }
    if (a.threshold() < 0) errors.Add("anomaly_detection.threshold", "must be positive");
    if (a.warmup_buckets() < 0 || a.min_leases() < 0 || a.min_failures() < 0) {
      errors.Add("anomaly_detection", "warmup_buckets, min_leases and min_failures must be >= 0");
    }
  }
  {
    const v1::RotationConfig& r = c.rotation();
    if (r.has_check_interval() && ToAbsl(r.check_interval()) < absl::Milliseconds(100)) {
      errors.Add("rotation.check_interval", "must be at least 100ms");
    }
    if (r.has_probe_retry_interval() && ToAbsl(r.probe_retry_interval()) < absl::Seconds(1)) {
      errors.Add("rotation.probe_retry_interval", "must be at least 1s");
    }
    if (r.revocation_detection().min_callers() < 0) {
      errors.Add("rotation.revocation_detection.min_callers", "must be positive");
    }
    if (r.revocation_detection().has_window() &&
        ToAbsl(r.revocation_detection().window()) <= absl::ZeroDuration()) {
      errors.Add("rotation.revocation_detection.window", "must be positive");
    }
  }
  // Built-in/new provider merge rules (base_url/key_format required for new providers).
  if (auto catalog = providers::ProviderCatalog::FromConfig(c); !catalog.ok()) {
    std::string msg(catalog.status().message());
    size_t colon = msg.find(": ");
    errors.Add(msg.substr(0, colon), colon == std::string::npos ? msg : msg.substr(colon + 2));
  }

  ValidateTtl(c.leases(), errors);

  if (c.has_lease_store()) {
    errors.Add("lease_store",
               "replaced by state.sqlite (path, synchronous): one state file, default "
               "<data_dir>/state.db");
  }
  if (c.state().has_sqlite()) {
    const std::string& sync = c.state().sqlite().synchronous();
    if (!sync.empty() && sync != "normal" && sync != "full") {
      errors.Add("state.sqlite.synchronous",
                 "must be \"normal\" or \"full\", got \"" + sync + "\"");
    }
  }

  if (c.state().has_etcd()) ValidateEtcd(c.state().etcd(), errors);

  std::set<std::string> services;
  for (int i = 0; i < c.identity().static_tokens_size(); ++i) {
    const v1::StaticTokenConfig& t = c.identity().static_tokens(i);
    std::string f = absl::StrCat("identity.static_tokens[", i, "]");
    if (t.service().empty()) errors.Add(f + ".service", "required");
    int sources = !t.token().empty() + !t.token_file().empty() + !t.token_env().empty();
    if (sources != 1) {
      errors.Add(f, "set exactly one of token, token_file, token_env");
      continue;
    }
    if (!t.token().empty() && t.token().size() < 16) {
      errors.Add(f + ".token", "must be at least 16 characters");
    }
    if (!t.token_file().empty()) {
      std::string path = t.token_file();
      if (::access(path.c_str(), R_OK) != 0) {
        errors.Add(f + ".token_file", "cannot read \"" + path + "\"");
      }
    }
    if (!t.token_env().empty() && std::getenv(t.token_env().c_str()) == nullptr) {
      errors.Add(f + ".token_env", "environment variable " + t.token_env() + " is not set");
    }
  }

  if (c.server().has_tls()) {
    const v1::ServerTlsConfig& t = c.server().tls();
    for (auto [name, value] :
         {std::pair{"cert_file", t.cert_file()}, std::pair{"key_file", t.key_file()}}) {
      if (value.empty()) {
        errors.Add(absl::StrCat("server.tls.", name), "required");
      } else if (::access(value.c_str(), R_OK) != 0) {
        errors.Add(absl::StrCat("server.tls.", name), "cannot read \"" + value + "\"");
      }
    }
    if (!t.client_ca_file().empty() && ::access(t.client_ca_file().c_str(), R_OK) != 0) {
      errors.Add("server.tls.client_ca_file", "cannot read \"" + t.client_ca_file() + "\"");
    }
    if (t.require_client_cert() && t.client_ca_file().empty()) {
      errors.Add("server.tls.require_client_cert", "needs client_ca_file");
    }
  }
  if (c.identity().has_kubernetes()) {
    const v1::KubernetesJwtConfig& k = c.identity().kubernetes();
    if (k.issuer().empty()) errors.Add("identity.kubernetes.issuer", "required");
    if (k.audience().empty()) errors.Add("identity.kubernetes.audience", "required");
    if (k.jwks_file().empty() == k.jwks_url().empty()) {
      errors.Add("identity.kubernetes", "set exactly one of jwks_file, jwks_url");
    }
    if (!k.jwks_url().empty() && k.jwks_url().rfind("https://", 0) != 0 &&
        k.jwks_url().rfind("http://", 0) != 0) {
      errors.Add("identity.kubernetes.jwks_url", "must be an http(s) URL");
    }
  }
  if (c.identity().has_mtls()) {
    if (c.identity().mtls().trust_domain().empty()) {
      errors.Add("identity.mtls.trust_domain", "required");
    }
    if (c.server().tls().client_ca_file().empty()) {
      errors.Add("identity.mtls", "needs server.tls.client_ca_file to verify client certificates");
    }
  }
  // Policy rules may name a line or the api several lines share.
  std::set<std::string> lease_names = provider_names;
  for (const v1::ProviderConfig& p : c.providers()) {
    if (!p.api().empty()) lease_names.insert(p.api());
  }
  for (int i = 0; i < c.policy().rules_size(); ++i) {
    const v1::PolicyRule& r = c.policy().rules(i);
    std::string f = absl::StrCat("policy.rules[", i, "]");
    if (r.identities_size() == 0) errors.Add(f + ".identities", "at least one identity pattern");
    for (int j = 0; j < r.identities_size(); ++j) {
      const std::string& id = r.identities(j);
      if (!IsIdentityPattern(id)) {
        errors.Add(absl::StrCat(f, ".identities[", j, "]"),
                   "must be exact, \"<namespace>/*\" or \"*\", got \"" + id + "\"");
      }
    }
    if (r.providers_size() == 0) errors.Add(f + ".providers", "at least one provider or \"*\"");
    for (int j = 0; j < r.providers_size(); ++j) {
      if (r.providers(j) != "*" && !lease_names.contains(r.providers(j))) {
        errors.Add(absl::StrCat(f, ".providers[", j, "]"),
                   "no configured provider \"" + r.providers(j) + "\"");
      }
    }
    if (r.has_max_ttl() && ToAbsl(r.max_ttl()) <= absl::ZeroDuration()) {
      errors.Add(f + ".max_ttl", "must be positive");
    }
    for (int j = 0; j < r.scopes_size(); ++j) {
      if (!core::IsScopeName(r.scopes(j))) {
        errors.Add(absl::StrCat(f, ".scopes[", j, "]"),
                   "must be a scope name (lowercase letters, digits, '_', '-', '.', ':'), got \"" +
                       r.scopes(j) + "\"");
      }
    }
    if (r.max_active_leases() < 0) errors.Add(f + ".max_active_leases", "must not be negative");
    if (r.has_rate_limit() && (r.rate_limit().per_second() <= 0 || r.rate_limit().burst() < 1)) {
      errors.Add(f + ".rate_limit", "needs per_second > 0 and burst >= 1");
    }
  }

  // Default deny (identity::Policy): with identities the operator does not list one by one, a
  // broker without rules would answer every lease with NO_RULE; refuse it at start instead.
  if (c.policy().rules_size() == 0 && (c.identity().has_kubernetes() || c.identity().has_mtls())) {
    errors.Add("policy.rules",
               "required with identity.kubernetes or identity.mtls: leases are denied unless a "
               "rule allows them");
  }
  for (int i = 0; i < c.policy().admins_size(); ++i) {
    const std::string& id = c.policy().admins(i);
    const std::string f = absl::StrCat("policy.admins[", i, "]");
    if (id == "*") {
      errors.Add(f, "\"*\" would make every caller an admin; name the admins");
    } else if (!IsIdentityPattern(id)) {
      errors.Add(f, "must be exact or \"<namespace>/*\", got \"" + id + "\"");
    }
  }

  if (!c.logging().level().empty()) {
    core::LogLevel level;
    if (!core::ParseLogLevel(c.logging().level(), &level)) {
      errors.Add("logging.level", "must be debug, info, warning or error");
    }
  }
  if (extra) {
    for (const core::FieldError& e : extra(c)) errors.Add(e.field, e.message);
  }
  return errors.ToStatus();
}

void ApplyDefaults(v1::BrokerConfig& c, const std::string& base_dir) {
  auto resolve = [&base_dir](std::string* path) {
    if (!path->empty() && (*path)[0] != '/') {
      *path = (fs::path(base_dir) / *path).lexically_normal().string();
    }
  };
  v1::AnomalyConfig* anomaly = c.mutable_anomaly_detection();
  if (!anomaly->has_bucket()) SetDuration(anomaly->mutable_bucket(), absl::Minutes(1));
  if (!anomaly->has_baseline_window())
    SetDuration(anomaly->mutable_baseline_window(), absl::Hours(1));
  if (anomaly->threshold() == 0) anomaly->set_threshold(4);
  if (anomaly->warmup_buckets() == 0) anomaly->set_warmup_buckets(30);
  if (anomaly->min_leases() == 0) anomaly->set_min_leases(20);
  if (anomaly->min_failures() == 0) anomaly->set_min_failures(5);
  if (!anomaly->has_learning_period())
    SetDuration(anomaly->mutable_learning_period(), absl::Hours(1));
  if (!anomaly->has_suspend_for()) SetDuration(anomaly->mutable_suspend_for(), absl::Minutes(15));
  for (std::string* action :
       {anomaly->mutable_rate_spike_action(), anomaly->mutable_failure_spike_action(),
        anomaly->mutable_new_caller_action(), anomaly->mutable_retired_key_use_action()}) {
    if (action->empty()) *action = "alert";
  }
  v1::RotationConfig* rotation = c.mutable_rotation();
  if (!rotation->has_check_interval())
    SetDuration(rotation->mutable_check_interval(), absl::Seconds(30));
  if (!rotation->has_probe_retry_interval())
    SetDuration(rotation->mutable_probe_retry_interval(), absl::Minutes(5));
  v1::RevocationDetectionConfig* rd = rotation->mutable_revocation_detection();
  if (rd->min_callers() == 0) rd->set_min_callers(3);
  if (!rd->has_window()) SetDuration(rd->mutable_window(), absl::Minutes(5));
  v1::ServerConfig* server = c.mutable_server();
  if (server->listen().empty()) server->set_listen("127.0.0.1:7443");
  if (server->metrics_listen().empty()) server->set_metrics_listen("127.0.0.1:9464");
  if (server->data_dir().empty()) server->set_data_dir("credbroker-data");
  resolve(server->mutable_data_dir());
  if (!server->has_shutdown_grace())
    SetDuration(server->mutable_shutdown_grace(), absl::Seconds(5));
  if (server->max_watch_streams() == 0) server->set_max_watch_streams(10000);
  if (server->max_watch_streams_per_caller() == 0) server->set_max_watch_streams_per_caller(1000);

  for (v1::SourceConfig& s : *c.mutable_sources()) {
    if (!s.has_max_staleness()) SetDuration(s.mutable_max_staleness(), absl::Hours(24));
    if (!s.has_refresh_interval()) SetDuration(s.mutable_refresh_interval(), absl::Seconds(30));
    if (s.has_file()) resolve(s.mutable_file()->mutable_root());
    if (s.has_vault()) {
      v1::VaultSourceConfig* v = s.mutable_vault();
      if (v->mount().empty()) v->set_mount("secret");
      if (v->field().empty()) v->set_field("api_key");
      if (!v->has_request_timeout()) SetDuration(v->mutable_request_timeout(), absl::Seconds(10));
      if (v->max_attempts() == 0) v->set_max_attempts(4);
      resolve(v->mutable_ca_file());
      resolve(v->mutable_client_cert_file());
      resolve(v->mutable_client_key_file());
      v1::VaultAuthConfig* a = v->mutable_auth();
      if (a->has_token()) resolve(a->mutable_token()->mutable_token_file());
      if (a->has_kubernetes()) {
        v1::VaultKubernetesAuth* k = a->mutable_kubernetes();
        if (k->jwt_file().empty()) {
          k->set_jwt_file("/var/run/secrets/kubernetes.io/serviceaccount/token");
        }
        if (k->mount().empty()) k->set_mount("kubernetes");
        resolve(k->mutable_jwt_file());
      }
      if (a->has_approle()) {
        if (a->approle().mount().empty()) a->mutable_approle()->set_mount("approle");
        resolve(a->mutable_approle()->mutable_secret_id_file());
      }
    }
    if (s.has_aws()) resolve(s.mutable_aws()->mutable_ca_file());
    if (s.has_gcp()) {
      resolve(s.mutable_gcp()->mutable_ca_file());
      if (s.gcp().auth().has_workload_identity_federation()) {
        resolve(s.mutable_gcp()
                    ->mutable_auth()
                    ->mutable_workload_identity_federation()
                    ->mutable_token_file());
      }
    }
    if (s.has_azure()) {
      resolve(s.mutable_azure()->mutable_ca_file());
      if (s.azure().auth().has_workload_identity()) {
        resolve(
            s.mutable_azure()->mutable_auth()->mutable_workload_identity()->mutable_token_file());
      }
    }
  }
  v1::LeaseConfig* l = c.mutable_leases();
  if (!l->has_default_ttl()) SetDuration(l->mutable_default_ttl(), absl::Minutes(15));
  if (!l->has_max_ttl()) SetDuration(l->mutable_max_ttl(), absl::Hours(1));
  if (!l->has_min_ttl()) SetDuration(l->mutable_min_ttl(), absl::Seconds(30));
  if (!l->has_sweep_interval()) SetDuration(l->mutable_sweep_interval(), absl::Seconds(10));

  if (c.state().store_case() == v1::StateConfig::STORE_NOT_SET) c.mutable_state()->mutable_sqlite();
  if (c.state().has_etcd()) {
    v1::EtcdStoreConfig* e = c.mutable_state()->mutable_etcd();
    if (e->prefix().empty()) e->set_prefix("/credbroker/");
    if (e->prefix().back() != '/') e->set_prefix(e->prefix() + "/");
    if (!e->has_dial_timeout()) SetDuration(e->mutable_dial_timeout(), absl::Seconds(5));
    if (!e->has_request_timeout()) SetDuration(e->mutable_request_timeout(), absl::Seconds(2));
    if (!e->has_election_ttl()) SetDuration(e->mutable_election_ttl(), absl::Seconds(10));
    resolve(e->mutable_tls()->mutable_ca());
    resolve(e->mutable_tls()->mutable_cert());
    resolve(e->mutable_tls()->mutable_key());
    resolve(e->mutable_password_file());
  }
  if (c.state().has_sqlite()) {
    v1::SqliteStoreConfig* sq = c.mutable_state()->mutable_sqlite();
    if (sq->path().empty()) {
      sq->set_path((fs::path(server->data_dir()) / "state.db").string());
    } else {
      resolve(sq->mutable_path());
    }
    if (sq->synchronous().empty()) sq->set_synchronous("normal");
  }

  for (v1::StaticTokenConfig& t : *c.mutable_identity()->mutable_static_tokens()) {
    resolve(t.mutable_token_file());
  }
  if (server->has_tls()) {
    v1::ServerTlsConfig* t = server->mutable_tls();
    resolve(t->mutable_cert_file());
    resolve(t->mutable_key_file());
    resolve(t->mutable_client_ca_file());
    if (!t->has_reload_interval()) SetDuration(t->mutable_reload_interval(), absl::Seconds(60));
  }
  if (c.identity().has_kubernetes()) {
    v1::KubernetesJwtConfig* k = c.mutable_identity()->mutable_kubernetes();
    resolve(k->mutable_jwks_file());
    resolve(k->mutable_jwks_ca_file());
    resolve(k->mutable_jwks_bearer_token_file());
    if (!k->has_jwks_refresh_interval()) {
      SetDuration(k->mutable_jwks_refresh_interval(), absl::Hours(1));
    }
    if (!k->has_leeway()) SetDuration(k->mutable_leeway(), absl::Seconds(30));
  }
  if (c.audit().path().empty()) c.mutable_audit()->set_path("-");
  if (c.audit().path() != "-") resolve(c.mutable_audit()->mutable_path());
  if (c.logging().level().empty()) c.mutable_logging()->set_level("info");
}

absl::StatusOr<v1::BrokerConfig> LoadConfigFile(const std::string& path, const Overrides& overrides,
                                                const ExtraChecks& extra) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the configuration file"));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<ParsedConfig> parsed = ParseYaml(ss.str(), path);
  if (!parsed.ok()) return parsed.status();
  std::string base_dir = fs::absolute(fs::path(path)).parent_path().string();
  v1::ServerConfig* server = parsed->config.mutable_server();
  if (!overrides.listen.empty()) server->set_listen(overrides.listen);
  if (!overrides.metrics_listen.empty()) server->set_metrics_listen(overrides.metrics_listen);
  if (!overrides.data_dir.empty()) {
    // Relative to the working directory, like any command-line path.
    server->set_data_dir(fs::absolute(overrides.data_dir).lexically_normal().string());
  }
  // Files are checked for readability during validation: resolve them first.
  if (parsed->config.server().has_tls()) {
    v1::ServerTlsConfig* t = parsed->config.mutable_server()->mutable_tls();
    for (std::string* f :
         {t->mutable_cert_file(), t->mutable_key_file(), t->mutable_client_ca_file()}) {
      if (!f->empty() && (*f)[0] != '/') *f = (fs::path(base_dir) / *f).lexically_normal().string();
    }
  }
  for (v1::StaticTokenConfig& t : *parsed->config.mutable_identity()->mutable_static_tokens()) {
    if (!t.token_file().empty() && t.token_file()[0] != '/') {
      t.set_token_file((fs::path(base_dir) / t.token_file()).lexically_normal().string());
    }
  }
  for (v1::ProviderConfig& p : *parsed->config.mutable_providers()) {
    if (!p.has_mint()) continue;
    std::string* f = p.mutable_mint()->mutable_admin_key_file();
    if (!f->empty() && (*f)[0] != '/') *f = (fs::path(base_dir) / *f).lexically_normal().string();
  }
  if (absl::Status s = Validate(*parsed, path, extra); !s.ok()) return s;
  ApplyDefaults(parsed->config, base_dir);
  return std::move(parsed->config);
}

}  // namespace credbroker::config
