#include "credbroker/state/etcd/anomaly_baseline_store.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "credbroker/core/status_macros.h"
#include "credbroker/state/v1/records.pb.h"

namespace credbroker::state::etcd {

EtcdAnomalyBaselineStore::EtcdAnomalyBaselineStore(EtcdClient* client, const std::string& prefix)
    : client_(client),
      baselines_key_(absl::StrCat(prefix, "anomaly/baselines")),
      learning_key_(absl::StrCat(prefix, "anomaly/learning_until")) {}

absl::StatusOr<absl::Time> EtcdAnomalyBaselineStore::LearningUntil(absl::Time if_new) {
  // Stored by the first replica ever started; every later one reads it.
  etcdserverpb::TxnRequest txn;
  etcdserverpb::Compare* c = txn.add_compare();
  c->set_key(learning_key_);
  c->set_target(etcdserverpb::Compare::CREATE);
  c->set_result(etcdserverpb::Compare::EQUAL);
  c->set_create_revision(0);
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(learning_key_);
  put->set_value(absl::StrCat(absl::ToUnixMicros(if_new)));
  txn.add_failure()->mutable_request_range()->set_key(learning_key_);
  CB_ASSIGN_OR_RETURN(etcdserverpb::TxnResponse response, client_->Txn(txn));
  if (response.succeeded()) return if_new;
  const auto& kvs = response.responses(0).response_range().kvs();
  int64_t us = 0;
  if (kvs.empty() || !absl::SimpleAtoi(kvs[0].value(), &us)) {
    return absl::DataLossError(absl::StrCat("etcd: ", learning_key_, ": unreadable value"));
  }
  return absl::FromUnixMicros(us);
}

absl::StatusOr<std::vector<anomaly::AnomalyBaseline>> EtcdAnomalyBaselineStore::Load() {
  etcdserverpb::RangeRequest request;
  request.set_key(baselines_key_);
  CB_ASSIGN_OR_RETURN(etcdserverpb::RangeResponse response, client_->Range(request));
  std::vector<anomaly::AnomalyBaseline> out;
  if (response.kvs().empty()) return out;
  v1::AnomalyBaselinesValue v;
  if (!v.ParseFromString(response.kvs(0).value())) {
    return absl::DataLossError(absl::StrCat("etcd: ", baselines_key_, ": unreadable value"));
  }
  for (const auto& b : v.baselines()) {
    anomaly::AnomalyBaseline a;
    a.caller = b.caller();
    a.provider = b.provider();
    a.rate_mean = b.rate_mean();
    a.rate_var = b.rate_var();
    a.fail_mean = b.fail_mean();
    a.fail_var = b.fail_var();
    a.buckets = b.buckets();
    a.suspended_until = b.suspended_until_us() == 0 ? absl::InfinitePast()
                                                    : absl::FromUnixMicros(b.suspended_until_us());
    out.push_back(std::move(a));
  }
  return out;
}

absl::Status EtcdAnomalyBaselineStore::Save(
    const std::vector<anomaly::AnomalyBaseline>& baselines) {
  v1::AnomalyBaselinesValue v;
  for (const anomaly::AnomalyBaseline& a : baselines) {
    auto* b = v.add_baselines();
    b->set_caller(a.caller);
    b->set_provider(a.provider);
    b->set_rate_mean(a.rate_mean);
    b->set_rate_var(a.rate_var);
    b->set_fail_mean(a.fail_mean);
    b->set_fail_var(a.fail_var);
    b->set_buckets(a.buckets);
    b->set_suspended_until_us(
        a.suspended_until == absl::InfinitePast() ? 0 : absl::ToUnixMicros(a.suspended_until));
  }
  etcdserverpb::TxnRequest txn;
  etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(baselines_key_);
  put->set_value(v.SerializeAsString());
  return client_->Txn(txn).status();
}

}  // namespace credbroker::state::etcd
