// grpc_load: the gRPC-level load generator of shared/BENCHMARKS.md. It starts the real
// `credbroker` binary on a loopback port (file source, SQLite state, static token, audit log to a
// file: the embedded default's shape) and drives it with a callback client, `channels` × `inflight`
// calls in flight, closed loop. Each round measures the baselines and then each subject workload
// on the same server, so every figure is a ratio measured in one run; the report gives the median
// of the per-round ratios with min/max, QPS, latency percentiles, CPU steal and the server's CPU
// seconds per 1k requests. A ratio of a round counts only if neither of its two measurements lost
// more than `max_steal` percent of the machine's CPU to the hypervisor (the protocol's 5%); the
// report says how many rounds each ratio kept.
//
// Workloads: check (`grpc.health.v1.Health/Check`, empty messages, no authentication: gRPC's
// floor), ping (`LeaseService/Ping` with a 200-byte payload and the same bearer token as the
// lease calls: the baseline of shared/BENCHMARKS.md), acquire_release (AcquireLease then
// ReleaseLease, each RPC counted), renew (RenewLease over a pool of leases). Ratios are reported
// against Ping and against Check.
//
// With --etcd-members N the run also starts a real etcd cluster of N members (Debian's
// etcd-server, loopback ports, a temp dir) and a broker on `state.etcd`: its lease workloads are
// measured in the same rounds, against the same round's Check and Ping. With --visibility-samples
// M a second etcd-backed replica starts too, and after the rounds the run measures how long a
// write acknowledged by one replica takes to show in the other's lease cache (admin ListLeases,
// polled every 100 µs): an acquire on A seen by B, and a renew on B seen by A; p50/p90/p99/max.
//
//   grpc_load [--rounds 5] [--warmup 3] [--seconds 10] [--channels 2] [--inflight 32]
//             [--max-steal 5] [--broker PATH] [--synchronous normal|full] [--workloads
//             acquire_release,renew] [--etcd-members 3] [--visibility-samples 300]
//
// Bounded by construction: rounds × workloads × (warmup + seconds), then it stops the broker.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "credbroker/state/etcd/etcd_cluster.h"
#include "credbroker/testing/broker_process.h"
#include "credbroker/testing/temp_dir.h"
#include "credbroker/v1/admin.grpc.pb.h"
#include "credbroker/v1/lease.grpc.pb.h"

namespace credbroker::bench {
namespace {

constexpr char kToken[] = "bench-token-0123456789";
constexpr char kAdminToken[] = "bench-admin-token-0123456789";

enum class Workload { kCheck, kPing, kAcquireRelease, kRenew };
constexpr Workload kWorkloads[] = {Workload::kCheck, Workload::kPing, Workload::kAcquireRelease,
                                   Workload::kRenew};
struct Options {
  int rounds = 5;
  int warmup_s = 3;
  int seconds = 10;
  int channels = 2;
  int inflight = 32;
  int max_steal = 5;  // percent
  std::string broker = CREDBROKER_BIN;
  std::string synchronous = "normal";
  std::vector<Workload> workloads;  // always check and ping first
  int etcd_members = 0;             // 0: no etcd-backed broker
  int visibility_samples = 0;       // 0: no cross-replica visibility measurement
};

const char* Name(Workload w) {
  switch (w) {
    case Workload::kCheck:
      return "check";
    case Workload::kPing:
      return "ping";
    case Workload::kAcquireRelease:
      return "acquire_release";
    case Workload::kRenew:
      return "renew";
  }
  return "?";
}

// CPU ticks from /proc/stat: total and steal.
struct CpuTicks {
  uint64_t total = 0;
  uint64_t steal = 0;
};
CpuTicks ReadCpu() {
  std::ifstream in("/proc/stat");
  std::string line;
  std::getline(in, line);
  std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
  CpuTicks t;
  for (size_t i = 1; i < parts.size(); ++i) {
    uint64_t v = 0;
    if (!absl::SimpleAtoi(parts[i], &v)) continue;
    if (i <= 8) t.total += v;  // user nice system idle iowait irq softirq steal
    if (i == 8) t.steal = v;
  }
  return t;
}

// utime + stime of a process, in seconds.
double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = all.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> f = absl::StrSplit(all.substr(close + 2), ' ');
  // Fields after "(comm)": state is f[0]; utime is field 14 overall -> f[11], stime f[12].
  uint64_t ut = 0;
  uint64_t st = 0;
  if (f.size() < 13 || !absl::SimpleAtoi(f[11], &ut) || !absl::SimpleAtoi(f[12], &st)) return 0;
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

struct Result {
  Workload workload;
  double qps = 0;
  uint64_t requests = 0;
  uint64_t errors = 0;
  std::vector<int64_t> latencies_ns;  // sorted
  double steal_pct = 0;
  double server_cpu_per_1k = 0;
  double client_cpu_per_1k = 0;  // this load generator
  double Percentile(double p) const {
    if (latencies_ns.empty()) return 0;
    size_t i = std::min(latencies_ns.size() - 1,
                        static_cast<size_t>(p * static_cast<double>(latencies_ns.size())));
    return static_cast<double>(latencies_ns[i]) / 1e3;  // µs
  }
};

// One closed-loop caller: issues its next RPC from the completion of the previous one.
class Driver;
struct Slot {
  Driver* driver = nullptr;
  size_t index = 0;
  v1::LeaseService::Stub* stub = nullptr;
  grpc::GenericStub* generic = nullptr;
  std::unique_ptr<grpc::ClientContext> ctx;
  v1::AcquireLeaseRequest acquire;
  v1::Lease lease;
  v1::ReleaseLeaseRequest release;
  v1::ReleaseLeaseResponse released;
  v1::RenewLeaseRequest renew;
  v1::PingRequest ping;
  v1::PingResponse pong;
  grpc::ByteBuffer check_req;
  grpc::ByteBuffer check_resp;
  absl::Time sent;
  bool releasing = false;
  size_t renew_cursor = 0;
  std::vector<int64_t> latencies;
  uint64_t errors = 0;
  uint64_t done = 0;
};

class Driver {
 public:
  Driver(Workload w, std::vector<std::unique_ptr<v1::LeaseService::Stub>>& stubs,
         std::vector<std::unique_ptr<grpc::GenericStub>>& generics, int inflight,
         const std::vector<std::string>* renew_pool)
      : workload_(w), renew_pool_(renew_pool) {
    for (size_t c = 0; c < stubs.size(); ++c) {
      for (int i = 0; i < inflight; ++i) {
        auto s = std::make_unique<Slot>();
        s->driver = this;
        s->index = slots_.size();
        s->stub = stubs[c].get();
        s->generic = generics[c].get();
        s->acquire.set_provider("lumenfall");
        s->acquire.mutable_ttl()->set_seconds(600);
        s->renew.mutable_ttl()->set_seconds(600);
        s->ping.set_payload(std::string(200, 'p'));  // BENCHMARKS.md: a ~200-byte payload
        s->renew_cursor = s->index;
        slots_.push_back(std::move(s));
      }
    }
  }

  // Runs warmup then the measured window; returns what was measured.
  Result Run(absl::Duration warmup, absl::Duration window, pid_t server) {
    active_ = static_cast<int>(slots_.size());
    for (auto& s : slots_) Next(s.get());
    absl::SleepFor(warmup);
    const CpuTicks cpu0 = ReadCpu();
    const double server0 = ProcessCpuSeconds(server);
    const double client0 = ProcessCpuSeconds(getpid());
    const absl::Time t0 = absl::Now();
    measuring_.store(true);
    absl::SleepFor(window);
    measuring_.store(false);
    const absl::Time t1 = absl::Now();
    const double server1 = ProcessCpuSeconds(server);
    const double client1 = ProcessCpuSeconds(getpid());
    const CpuTicks cpu1 = ReadCpu();
    stop_.store(true);
    drained_.WaitForNotification();
    Result r;
    r.workload = workload_;
    for (auto& s : slots_) {
      r.requests += s->done;
      r.errors += s->errors;
      r.latencies_ns.insert(r.latencies_ns.end(), s->latencies.begin(), s->latencies.end());
    }
    std::sort(r.latencies_ns.begin(), r.latencies_ns.end());
    r.qps = static_cast<double>(r.requests) / absl::ToDoubleSeconds(t1 - t0);
    const uint64_t total = cpu1.total - cpu0.total;
    r.steal_pct = total == 0 ? 0
                             : 100.0 * static_cast<double>(cpu1.steal - cpu0.steal) /
                                   static_cast<double>(total);
    r.server_cpu_per_1k =
        r.requests == 0 ? 0 : (server1 - server0) * 1000.0 / static_cast<double>(r.requests);
    r.client_cpu_per_1k =
        r.requests == 0 ? 0 : (client1 - client0) * 1000.0 / static_cast<double>(r.requests);
    return r;
  }

 private:
  void Finish(Slot* s, const grpc::Status& status) {
    const absl::Time now = absl::Now();
    if (measuring_.load(std::memory_order_relaxed)) {
      ++s->done;
      if (!status.ok()) ++s->errors;
      s->latencies.push_back(absl::ToInt64Nanoseconds(now - s->sent));
    }
    if (stop_.load(std::memory_order_relaxed)) {
      if (--active_ == 0) drained_.Notify();
      return;
    }
    Next(s);
  }

  void Next(Slot* s) {
    s->ctx = std::make_unique<grpc::ClientContext>();
    s->ctx->AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    s->sent = absl::Now();
    switch (workload_) {
      case Workload::kCheck: {
        grpc::Slice empty("");
        s->check_req = grpc::ByteBuffer(&empty, 1);
        s->generic->UnaryCall(s->ctx.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                              &s->check_req, &s->check_resp,
                              [this, s](const grpc::Status& st) { Finish(s, st); });
        return;
      }
      case Workload::kPing:
        s->stub->async()->Ping(s->ctx.get(), &s->ping, &s->pong,
                               [this, s](const grpc::Status& st) { Finish(s, st); });
        return;
      case Workload::kAcquireRelease:
        if (s->releasing) {
          s->release.set_lease_id(s->lease.lease_id());
          s->releasing = false;
          s->stub->async()->ReleaseLease(s->ctx.get(), &s->release, &s->released,
                                         [this, s](const grpc::Status& st) { Finish(s, st); });
        } else {
          s->stub->async()->AcquireLease(s->ctx.get(), &s->acquire, &s->lease,
                                         [this, s](const grpc::Status& st) {
                                           s->releasing = st.ok();
                                           Finish(s, st);
                                         });
        }
        return;
      case Workload::kRenew:
        s->renew.set_lease_id((*renew_pool_)[s->renew_cursor % renew_pool_->size()]);
        s->renew_cursor += slots_.size();
        s->stub->async()->RenewLease(s->ctx.get(), &s->renew, &s->lease,
                                     [this, s](const grpc::Status& st) { Finish(s, st); });
        return;
    }
  }

  const Workload workload_;
  const std::vector<std::string>* const renew_pool_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::atomic<bool> measuring_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int> active_{0};
  absl::Notification drained_;
};

std::string Config(const std::string& state) {
  return absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 2s
sources:
  - name: local
    file: {root: keys}
providers:
  - name: lumenfall
    probe: {disabled: true}
leases: {default_ttl: 10m, max_ttl: 1h}
logging: {level: info}
audit: {path: audit.log}
state:
  )",
                      state, R"(
policy:
  rules: [{identities: [bench], providers: [lumenfall]}]
identity:
  static_tokens:
    - service: bench
      token: )",
                      kToken, R"(
    - service: bench-admin
      token: )",
                      kAdminToken, "\n      admin: true\n");
}

bool ParseFlags(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return false;
    std::string value = argv[++i];
    int* num = flag == "--rounds"               ? &o->rounds
               : flag == "--warmup"             ? &o->warmup_s
               : flag == "--seconds"            ? &o->seconds
               : flag == "--channels"           ? &o->channels
               : flag == "--inflight"           ? &o->inflight
               : flag == "--max-steal"          ? &o->max_steal
               : flag == "--etcd-members"       ? &o->etcd_members
               : flag == "--visibility-samples" ? &o->visibility_samples
                                                : nullptr;
    if (num != nullptr) {
      if (!absl::SimpleAtoi(value, num) || *num <= 0) return false;
    } else if (flag == "--broker") {
      o->broker = value;
    } else if (flag == "--synchronous") {
      o->synchronous = value;
    } else if (flag == "--workloads") {
      // check and ping always run: every ratio is against them.
      o->workloads = {Workload::kCheck, Workload::kPing};
      for (absl::string_view name : absl::StrSplit(value, ',')) {
        bool known = false;
        for (Workload w : kWorkloads) {
          if (name == Name(w)) {
            if (w != Workload::kCheck && w != Workload::kPing) o->workloads.push_back(w);
            known = true;
          }
        }
        if (!known) return false;
      }
    } else {
      return false;
    }
  }
  return true;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// One broker under load: its process, its channels and its pool of leases to renew.
struct Target {
  std::string name;  // "sqlite" or "memory"
  testing::TempDir dir;
  std::optional<testing::BrokerProcess> broker;
  std::vector<std::unique_ptr<v1::LeaseService::Stub>> stubs;
  std::vector<std::unique_ptr<grpc::GenericStub>> generics;
  std::unique_ptr<v1::AdminService::Stub> admin;
  std::vector<std::string> pool;
};

absl::Status StartTarget(const Options& o, const std::string& state, Target& t) {
  testing::WriteK8sSecretDir(t.dir.Join("keys/lumenfall"),
                             {{"v1", "lmnfl_bench.0123456789abcdef0123"}});
  testing::WriteFile(t.dir.Join("broker.yaml"), Config(state));
  auto broker = testing::BrokerProcess::Start(o.broker, {"--config", t.dir.Join("broker.yaml")},
                                              t.dir.path());
  if (!broker.ok()) return broker.status();
  t.broker.emplace(*std::move(broker));
  for (int c = 0; c < o.channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("credbroker.bench.channel", c);  // a connection of its own
    auto ch = grpc::CreateCustomChannel(t.broker->grpc_address(),
                                        grpc::InsecureChannelCredentials(), args);
    t.stubs.push_back(v1::LeaseService::NewStub(ch));
    t.generics.push_back(std::make_unique<grpc::GenericStub>(ch));
    if (c == 0) t.admin = v1::AdminService::NewStub(ch);
  }
  // Leases to renew: one per caller slot and a few more.
  for (int i = 0; i < o.channels * o.inflight * 2; ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    v1::AcquireLeaseRequest req;
    req.set_provider("lumenfall");
    req.mutable_ttl()->set_seconds(3600);
    v1::Lease lease;
    grpc::Status s = t.stubs[0]->AcquireLease(&ctx, req, &lease);
    if (!s.ok()) return absl::InternalError("acquire for the renew pool: " + s.error_message());
    t.pool.push_back(lease.lease_id());
  }
  return absl::OkStatus();
}

std::unique_ptr<grpc::ClientContext> Context(const char* token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return ctx;
}

// Polls `t`'s lease cache (admin ListLeases) until `seen` holds for the lease `id`; the time from
// `since`, or an error after 10 s.
absl::StatusOr<absl::Duration> VisibleAfter(Target& t, const std::string& id, absl::Time since,
                                            const std::function<bool(const v1::LeaseInfo&)>& seen) {
  v1::ListLeasesRequest req;
  req.set_provider("lumenfall");
  req.set_caller("bench");
  while (absl::Now() - since < absl::Seconds(10)) {
    v1::ListLeasesResponse resp;
    grpc::Status s = t.admin->ListLeases(Context(kAdminToken).get(), req, &resp);
    if (!s.ok()) return absl::InternalError("ListLeases: " + s.error_message());
    for (const v1::LeaseInfo& l : resp.leases()) {
      if (l.lease_id() == id && seen(l)) return absl::Now() - since;
    }
    absl::SleepFor(absl::Microseconds(100));
  }
  return absl::DeadlineExceededError("not visible after 10 s");
}

// The cross-replica visibility figures: `samples` leases acquired on `a` (seen by `b`) and
// renewed on `b` (seen by `a`), one at a time, each released afterwards.
int MeasureVisibility(Target& a, Target& b, int samples) {
  std::vector<double> acquired_ms;
  std::vector<double> renewed_ms;
  for (int i = 0; i < samples; ++i) {
    v1::AcquireLeaseRequest acquire;
    acquire.set_provider("lumenfall");
    v1::Lease lease;
    grpc::Status s = a.stubs[0]->AcquireLease(Context(kToken).get(), acquire, &lease);
    if (!s.ok()) {
      std::cerr << "acquire on A: " << s.error_message() << "\n";
      return 1;
    }
    absl::StatusOr<absl::Duration> d =
        VisibleAfter(b, lease.lease_id(), absl::Now(), [](const v1::LeaseInfo&) { return true; });
    if (!d.ok()) {
      std::cerr << "acquire on A seen by B: " << d.status() << "\n";
      return 1;
    }
    acquired_ms.push_back(absl::ToDoubleMilliseconds(*d));
    v1::RenewLeaseRequest renew;
    renew.set_lease_id(lease.lease_id());
    v1::Lease renewed;
    s = b.stubs[0]->RenewLease(Context(kToken).get(), renew, &renewed);
    if (!s.ok()) {
      std::cerr << "renew on B: " << s.error_message() << "\n";
      return 1;
    }
    d = VisibleAfter(a, lease.lease_id(), absl::Now(),
                     [](const v1::LeaseInfo& l) { return l.renew_count() == 1; });
    if (!d.ok()) {
      std::cerr << "renew on B seen by A: " << d.status() << "\n";
      return 1;
    }
    renewed_ms.push_back(absl::ToDoubleMilliseconds(*d));
    v1::ReleaseLeaseRequest release;
    release.set_lease_id(lease.lease_id());
    v1::ReleaseLeaseResponse released;
    (void)a.stubs[0]->ReleaseLease(Context(kToken).get(), release, &released);
  }
  auto pct = [](std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
  };
  std::cout << "\n| visibility across replicas (etcd), " << samples
            << " samples | p50 ms | p90 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |\n";
  for (const auto& [name, v] :
       {std::pair<const char*, std::vector<double>*>{"acquire on A, in B's cache", &acquired_ms},
        {"renew on B, in A's cache", &renewed_ms}}) {
    std::cout << absl::StrFormat("| %s | %.2f | %.2f | %.2f | %.2f |\n", name, pct(*v, 0.5),
                                 pct(*v, 0.9), pct(*v, 0.99), pct(*v, 1.0));
  }
  return 0;
}

int Main(int argc, char** argv) {
  Options o;
  o.workloads.assign(std::begin(kWorkloads), std::end(kWorkloads));
  if (!ParseFlags(argc, argv, &o)) {
    std::cerr << "usage: grpc_load [--rounds N] [--warmup S] [--seconds S] [--channels N] "
                 "[--inflight N] [--max-steal PERCENT] [--broker PATH] [--synchronous normal|full] "
                 "[--workloads acquire_release,renew] [--etcd-members N] "
                 "[--visibility-samples M]\n";
    return 2;
  }
  if (o.visibility_samples > 0 && o.etcd_members == 0) {
    std::cerr << "--visibility-samples needs --etcd-members\n";
    return 2;
  }
  // The broker as deployed (SQLite) and the same broker on `state: {memory: {}}`: the lease
  // workloads run on both in every round, so what the durable store costs is a ratio too.
  Target sqlite;
  sqlite.name = "sqlite";
  Target memory;
  memory.name = "memory";
  for (auto [target, state] :
       {std::pair<Target*, std::string>{&sqlite, "sqlite: {synchronous: " + o.synchronous + "}"},
        {&memory, "memory: {}"}}) {
    if (absl::Status s = StartTarget(o, state, *target); !s.ok()) {
      std::cerr << "cannot start the " << target->name << " broker: " << s << "\n";
      return 1;
    }
  }
  // etcd: a real cluster on loopback ports and one broker on it (two with --visibility-samples).
  testing::TempDir etcd_dir;
  std::unique_ptr<state::etcd::testing::EtcdCluster> etcd;
  Target etcd_a;
  etcd_a.name = "etcd";
  Target etcd_b;
  etcd_b.name = "etcd-b";
  if (o.etcd_members > 0) {
    auto cluster = state::etcd::testing::EtcdCluster::Start(etcd_dir.path(), o.etcd_members);
    if (!cluster.ok()) {
      std::cerr << "cannot start etcd: " << cluster.status() << "\n";
      return 1;
    }
    etcd = *std::move(cluster);
    std::string endpoints;
    for (const std::string& e : etcd->endpoints()) absl::StrAppend(&endpoints, "\"", e, "\", ");
    for (Target* t : {&etcd_a, &etcd_b}) {
      if (t == &etcd_b && o.visibility_samples == 0) continue;
      const std::string state = absl::StrCat("etcd: {endpoints: [", endpoints,
                                             "], prefix: /bench/, replica_name: ", t->name, "}");
      if (absl::Status s = StartTarget(o, state, *t); !s.ok()) {
        std::cerr << "cannot start the " << t->name << " broker: " << s << "\n";
        return 1;
      }
    }
  }
  struct Subject {
    Workload workload;
    Target* target;
    std::string name;
  };
  std::vector<Subject> subjects;
  for (Workload w : o.workloads) subjects.push_back({w, &sqlite, Name(w)});
  for (Workload w : o.workloads) {
    if (w == Workload::kAcquireRelease || w == Workload::kRenew) {
      subjects.push_back({w, &memory, absl::StrCat(Name(w), " (memory)")});
    }
  }
  if (etcd != nullptr) {
    for (Workload w : o.workloads) {
      if (w == Workload::kAcquireRelease || w == Workload::kRenew) {
        subjects.push_back(
            {w, &etcd_a, absl::StrCat(Name(w), " (etcd, ", o.etcd_members, " members)")});
      }
    }
  }

  std::map<std::string, std::vector<Result>> results;
  // Per round, each subject's QPS over the round's Check and Ping (on the SQLite broker), and
  // the SQLite broker's over the memory broker's for the same workload.
  std::map<std::string, std::vector<double>> ratios_check;
  std::map<std::string, std::vector<double>> ratios_ping;
  std::map<std::string, std::vector<double>> ratios_memory;
  // Measurements that lost more CPU to steal than the protocol allows: their ratios are dropped.
  std::vector<std::string> stolen;
  for (int round = 0; round < o.rounds; ++round) {
    // 0 when the round's measurement was dropped for steal.
    double check = 0;
    double ping = 0;
    std::map<Workload, double> on_sqlite;
    for (const Subject& sub : subjects) {
      Driver d(sub.workload, sub.target->stubs, sub.target->generics, o.inflight,
               &sub.target->pool);
      Result r =
          d.Run(absl::Seconds(o.warmup_s), absl::Seconds(o.seconds), sub.target->broker->pid());
      const bool clean = r.steal_pct <= o.max_steal;
      if (!clean)
        stolen.push_back(absl::StrFormat("round %d %s (%.1f%%)", round + 1, sub.name, r.steal_pct));
      const double qps = clean ? r.qps : 0;
      if (sub.target == &sqlite) {
        if (sub.workload == Workload::kCheck) check = qps;
        if (sub.workload == Workload::kPing) ping = qps;
        on_sqlite[sub.workload] = qps;
      } else if (sub.target == &memory && qps > 0 && on_sqlite[sub.workload] > 0) {
        ratios_memory[Name(sub.workload)].push_back(on_sqlite[sub.workload] / qps);
      }
      if (qps > 0 && check > 0) ratios_check[sub.name].push_back(qps / check);
      if (qps > 0 && ping > 0) ratios_ping[sub.name].push_back(qps / ping);
      std::cerr << absl::StrFormat("round %d %-26s %9.0f rpc/s  p99 %8.0f us  steal %4.1f%%%s\n",
                                   round + 1, sub.name, r.qps, r.Percentile(0.99), r.steal_pct,
                                   r.errors ? absl::StrCat("  ERRORS ", r.errors) : "");
      results[sub.name].push_back(std::move(r));
    }
  }
  int visibility = 0;
  if (o.visibility_samples > 0)
    visibility = MeasureVisibility(etcd_a, etcd_b, o.visibility_samples);
  memory.broker->Stop();
  for (Target* t : {&etcd_a, &etcd_b}) {
    if (t->broker) t->broker->Stop();
  }
  std::optional<testing::BrokerProcess>& broker = sqlite.broker;
  broker->Stop();
  const std::string logs = broker->Logs();
  if (getenv("GRPC_LOAD_SHOW_LOGS") != nullptr) std::cerr << logs;
  // The broker's own account of group commit (writes per commit) over the whole run.
  for (absl::string_view line : absl::StrSplit(logs, '\n')) {
    if (absl::StrContains(line, "group commit")) std::cout << "- Broker: `" << line << "`\n";
  }

  std::cout << absl::StrFormat(
      "- Command: `grpc_load --rounds %d --warmup %d --seconds %d --channels %d --inflight %d "
      "--max-steal %d --synchronous %s --etcd-members %d --visibility-samples %d`\n",
      o.rounds, o.warmup_s, o.seconds, o.channels, o.inflight, o.max_steal, o.synchronous,
      o.etcd_members, o.visibility_samples);
  if (etcd != nullptr) {
    std::cout << "- etcd: " << o.etcd_members
              << " members of Debian's etcd on this machine's loopback (their CPU is not in the "
                 "broker's CPU column); the etcd rows' ratios are to the same round's Check and "
                 "Ping on the SQLite broker.\n";
  }
  std::cout << "- Dropped for CPU steal above " << o.max_steal
            << "% (with every ratio they are in): "
            << (stolen.empty() ? "none" : absl::StrJoin(stolen, ", ")) << "\n\n";
  std::cout << "| workload | median QPS | ratio to Ping (median [min, max] of the rounds kept, n) "
               "| ratio to "
               "Check | p50 µs | p90 µs | p99 µs | p99.9 µs | server CPU s / 1k req | client CPU "
               "s / 1k req | steal % (max) | errors |\n"
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  auto ratio = [](const std::vector<double>& rr) -> std::string {
    if (rr.empty()) return "-";
    return absl::StrFormat("**%.2f** [%.2f, %.2f] n=%d", Median(rr),
                           *std::min_element(rr.begin(), rr.end()),
                           *std::max_element(rr.begin(), rr.end()), rr.size());
  };
  for (const Subject& sub : subjects) {
    const Workload w = sub.workload;
    const std::vector<Result>& rs = results[sub.name];
    std::vector<double> qps;
    std::vector<double> cpu;
    std::vector<double> client_cpu;
    double steal = 0;
    uint64_t errors = 0;
    for (const Result& r : rs) {
      qps.push_back(r.qps);
      cpu.push_back(r.server_cpu_per_1k);
      client_cpu.push_back(r.client_cpu_per_1k);
      steal = std::max(steal, r.steal_pct);
      errors += r.errors;
    }
    // Percentiles from the median round (by QPS).
    std::vector<const Result*> by_qps;
    for (const Result& r : rs) by_qps.push_back(&r);
    std::sort(by_qps.begin(), by_qps.end(),
              [](const Result* a, const Result* b) { return a->qps < b->qps; });
    const Result& mid = *by_qps[by_qps.size() / 2];
    std::cout << absl::StrFormat(
        "| %s | %.0f | %s | %s | %.0f | %.0f | %.0f | %.0f | %.3f | %.3f | %.1f | %d |\n", sub.name,
        Median(qps),
        w == Workload::kPing && sub.target == &sqlite ? "1 (baseline)"
                                                      : ratio(ratios_ping[sub.name]),
        w == Workload::kCheck && sub.target == &sqlite ? "1" : ratio(ratios_check[sub.name]),
        mid.Percentile(0.5), mid.Percentile(0.9), mid.Percentile(0.99), mid.Percentile(0.999),
        Median(cpu), Median(client_cpu), steal, errors);
  }
  if (!ratios_memory.empty()) {
    std::cout
        << "\n| workload | SQLite-backed broker / memory-backed broker, QPS (median [min, max] "
           "of the rounds kept, n) |\n| --- | --- |\n";
    for (const auto& [name, rr] : ratios_memory) {
      std::cout << "| " << name << " | " << ratio(rr) << " |\n";
    }
  }
  return visibility;
}

}  // namespace
}  // namespace credbroker::bench

int main(int argc, char** argv) { return credbroker::bench::Main(argc, argv); }
