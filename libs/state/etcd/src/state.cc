#include "credbroker/state/etcd/state.h"

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "credbroker/core/proto_time.h"
#include "credbroker/core/status_macros.h"

namespace credbroker::state::etcd {
namespace {

absl::StatusOr<std::string> ReadConfigFile(const std::string& path, const std::string& field) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": cannot read \"", path, "\""));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "credbroker";
  return name;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdState>> EtcdState::Open(const v1::EtcdStoreConfig& config,
                                                           absl::Duration report_retention,
                                                           StateStats* stats,
                                                           const core::Clock* clock) {
  EtcdClientOptions options;
  options.stats = stats;
  options.endpoints.assign(config.endpoints().begin(), config.endpoints().end());
  options.dial_timeout = core::FromProtoDuration(config.dial_timeout());
  options.request_timeout = core::FromProtoDuration(config.request_timeout());
  if (!config.tls().ca().empty()) {
    CB_ASSIGN_OR_RETURN(options.tls_ca, ReadConfigFile(config.tls().ca(), "state.etcd.tls.ca"));
  }
  if (!config.tls().cert().empty()) {
    CB_ASSIGN_OR_RETURN(options.tls_cert,
                        ReadConfigFile(config.tls().cert(), "state.etcd.tls.cert"));
    CB_ASSIGN_OR_RETURN(options.tls_key, ReadConfigFile(config.tls().key(), "state.etcd.tls.key"));
  }
  if (!config.username().empty()) {
    options.username = config.username();
    CB_ASSIGN_OR_RETURN(std::string password,
                        ReadConfigFile(config.password_file(), "state.etcd.password_file"));
    options.password = std::string(absl::StripTrailingAsciiWhitespace(password));
  }
  std::unique_ptr<EtcdState> state(new EtcdState());
  state->config_ = config;
  state->replica_ = config.replica_name().empty() ? HostName() : config.replica_name();
  CB_ASSIGN_OR_RETURN(state->client_, EtcdClient::Create(options));

  // Where every store starts: one revision, read once, so their watch misses nothing.
  etcdserverpb::RangeRequest now;
  now.set_key(config.prefix());
  now.set_range_end(PrefixEnd(config.prefix()));
  now.set_count_only(true);
  absl::StatusOr<etcdserverpb::RangeResponse> r = state->client_->Range(now);
  if (!r.ok()) {
    return absl::UnavailableError(absl::StrCat("state.etcd: cannot reach etcd at ",
                                               absl::StrJoin(options.endpoints, ","), ": ",
                                               r.status().message()));
  }
  const int64_t revision = r->header().revision();
  state->watcher_ =
      std::make_unique<PrefixWatcher>(state->client_.get(), config.prefix(), revision);
  EtcdLeadershipOptions election;
  election.replica_name = state->replica_;
  election.ttl = core::FromProtoDuration(config.election_ttl());
  state->leadership_ =
      EtcdLeadership::Start(state->client_.get(), state->watcher_.get(), config.prefix(), election);
  EtcdLeaseStoreOptions lease_options;
  lease_options.clock = clock;
  CB_ASSIGN_OR_RETURN(state->leases_,
                      EtcdLeaseStore::Open(state->client_.get(), state->watcher_.get(),
                                           config.prefix(), revision, lease_options));
  state->key_states_ =
      std::make_unique<EtcdKeyStateStore>(state->client_.get(), state->watcher_.get(),
                                          state->leadership_.get(), config.prefix(), revision);
  state->facts_ =
      std::make_unique<EtcdSharedFacts>(state->client_.get(), state->watcher_.get(),
                                        config.prefix(), revision, report_retention, clock);
  state->anomaly_ =
      std::make_unique<EtcdAnomalyBaselineStore>(state->client_.get(), config.prefix());
  state->watcher_->Start();
  return state;
}

EtcdState::~EtcdState() {
  anomaly_.reset();
  facts_.reset();
  key_states_.reset();
  leases_.reset();
  leadership_.reset();
  if (watcher_) watcher_->Stop();
}

Stores::Fields EtcdState::Describe() const {
  return {{"store", "etcd"},
          {"endpoints", absl::StrJoin(config_.endpoints(), ",")},
          {"prefix", config_.prefix()},
          {"replica", replica_}};
}

Stores::Fields EtcdState::Summary() const {
  return {{"lease_writes", absl::StrCat(leases_->writes())},
          {"lease_commits", absl::StrCat(leases_->commits())}};
}

}  // namespace credbroker::state::etcd
