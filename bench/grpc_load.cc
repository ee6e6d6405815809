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
// With --open-loop each round ends with Check, then the lease workloads, at a fixed rate of
// --open-loop-fraction (0.5) of that round's closed-loop Check QPS on the SQLite broker: requests
// at fixed intervals, latency from the intended send time (no coordinated omission); the report
// gives p50/p90/p99/p99.9 and each workload's p99 over Check's p99 at the same rate.
//
// Scenarios, each on a fresh SQLite broker of its own after the rounds (--rounds 0: only them):
// - --scale-leases N: acquire_release QPS with 1k active leases, a fill to N (TTL 1h, bounded by
//   --scale-timeout seconds), the broker's VmRSS before and after (bytes per added lease), and
//   acquire_release QPS at N (sequential, not alternated: the lease count cannot alternate).
// - --mass-expiry N: acquire_release open loop at --mass-expiry-fraction (0.25) of Check before,
//   and while N leases of --mass-expiry-ttl seconds expire and the sweeper removes them (the
//   window found from the broker's /metrics); AcquireLease p99 during / before.
// - --watchers N: N WatchKeys streams over N / --watchers-per-channel channels, a v2 staged in
//   the K8s-secret key dir and AdminService/RotateKey; each stream's delay from the ROTATED event's
//   `at` to its receipt.
// Each figure of the BENCHMARKS.md target table is also written to stderr as
// "@figure|figure|target|measured|met" (bench/run-all.sh makes the table from them).
//
//   grpc_load [--rounds 5] [--warmup 3] [--seconds 10] [--channels 2] [--inflight 32]
//             [--max-steal 5] [--broker PATH] [--synchronous normal|full] [--workloads
//             acquire_release,renew] [--etcd-members 3] [--visibility-samples 300]
//             [--open-loop] [--open-loop-fraction 0.5] [--scale-leases 1000000]
//             [--scale-timeout 600] [--mass-expiry 100000] [--mass-expiry-fraction 0.25]
//             [--mass-expiry-ttl 15] [--watchers 10000] [--watchers-per-channel 1000]
//
// Bounded by construction: rounds × workloads × (warmup + seconds) (twice with --open-loop),
// then each scenario within its own time limits; it stops every broker it started.
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
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "credbroker/state/etcd/etcd_cluster.h"
#include "credbroker/testing/broker_process.h"
#include "credbroker/testing/grpc_status.h"
#include "credbroker/testing/temp_dir.h"
#include "credbroker/v1/admin.grpc.pb.h"
#include "credbroker/v1/lease.grpc.pb.h"

namespace credbroker::bench {
namespace {

constexpr char kToken[] = "bench-token-0123456789";
constexpr char kAdminToken[] = "bench-admin-token-0123456789";
// Fake keys (never sent to a provider: probes are off); v2 is staged by the watchers scenario.
constexpr char kKeyV1[] = "lmnfl_bench.0123456789abcdef0123";
constexpr char kKeyV2[] = "lmnfl_bench.fedcba9876543210fedc";

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
  // Open loop in each round: Check, then the lease workloads, at a fraction of the round's Check.
  bool open_loop = false;
  double open_loop_fraction = 0.5;
  int scale_leases = 0;  // 0: no scale scenario
  int scale_timeout = 600;
  int mass_expiry = 0;  // 0: no mass-expiry scenario
  double mass_expiry_fraction = 0.25;
  int mass_expiry_ttl = 15;  // seconds
  int watchers = 0;          // 0: no rotation fan-out scenario
  int watchers_per_channel = 1000;
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

// What a scenario's broker changes in the rounds' config: lines added to `server:` (each
// starting "\n  "), the `leases:` map, and lines added to the source (each starting "\n    ").
struct ConfigExtras {
  std::string server;
  std::string leases = "{default_ttl: 10m, max_ttl: 1h}";
  std::string source;
};

std::string Config(const std::string& state, const ConfigExtras& extras = {}) {
  return absl::StrCat(R"(server:
  listen: 127.0.0.1:0
  metrics_listen: 127.0.0.1:0
  data_dir: data
  shutdown_grace: 2s)",
                      extras.server, R"(
sources:
  - name: local
    file: {root: keys})",
                      extras.source, R"(
providers:
  - name: lumenfall
    probe: {disabled: true}
leases: )",
                      extras.leases, R"(
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
    if (flag == "--open-loop") {
      o->open_loop = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    std::string value = argv[++i];
    int* num = flag == "--rounds"                 ? &o->rounds
               : flag == "--warmup"               ? &o->warmup_s
               : flag == "--seconds"              ? &o->seconds
               : flag == "--channels"             ? &o->channels
               : flag == "--inflight"             ? &o->inflight
               : flag == "--max-steal"            ? &o->max_steal
               : flag == "--etcd-members"         ? &o->etcd_members
               : flag == "--visibility-samples"   ? &o->visibility_samples
               : flag == "--scale-leases"         ? &o->scale_leases
               : flag == "--scale-timeout"        ? &o->scale_timeout
               : flag == "--mass-expiry"          ? &o->mass_expiry
               : flag == "--mass-expiry-ttl"      ? &o->mass_expiry_ttl
               : flag == "--watchers"             ? &o->watchers
               : flag == "--watchers-per-channel" ? &o->watchers_per_channel
                                                  : nullptr;
    double* fraction = flag == "--open-loop-fraction"     ? &o->open_loop_fraction
                       : flag == "--mass-expiry-fraction" ? &o->mass_expiry_fraction
                                                          : nullptr;
    if (num != nullptr) {
      // --rounds 0: only the scenarios (each on a broker of its own).
      if (!absl::SimpleAtoi(value, num) || *num < 0 || (*num == 0 && num != &o->rounds))
        return false;
    } else if (fraction != nullptr) {
      if (!absl::SimpleAtod(value, fraction) || *fraction <= 0 || *fraction > 1) return false;
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

// A figure of the BENCHMARKS.md target table, on stderr for bench/run-all.sh to collect:
// "@figure|<figure>|<target>|<measured>|<met>".
void Figure(absl::string_view figure, absl::string_view target, absl::string_view measured,
            std::optional<bool> met) {
  std::cerr << "@figure|" << figure << "|" << target << "|" << measured << "|"
            << (met.has_value() ? (*met ? "yes" : "no") : "-") << "\n";
}

// Leases for the open loop's renews: more than the calls it has in flight at any sane latency.
constexpr int kOpenPool = 8192;

// One broker under load: its process, its channels and its pool of leases to renew.
struct Target {
  std::string name;  // "sqlite" or "memory"
  testing::TempDir dir;
  std::optional<testing::BrokerProcess> broker;
  std::vector<std::unique_ptr<v1::LeaseService::Stub>> stubs;
  std::vector<std::unique_ptr<grpc::GenericStub>> generics;
  std::unique_ptr<v1::AdminService::Stub> admin;
  std::vector<std::string> pool;
  // The open loop's renew leases (--open-loop): each renewed by one call at a time.
  std::vector<std::string> open_pool;
};

absl::Status StartTarget(const Options& o, const std::string& state, Target& t,
                         const ConfigExtras& extras = {}) {
  testing::WriteK8sSecretDir(t.dir.Join("keys/lumenfall"), {{"v1", kKeyV1}});
  testing::WriteFile(t.dir.Join("broker.yaml"), Config(state, extras));
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
  // Only the SQLite broker runs the open loop.
  for (int i = 0; o.open_loop && t.name == "sqlite" && i < kOpenPool; ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    v1::AcquireLeaseRequest req;
    req.set_provider("lumenfall");
    req.mutable_ttl()->set_seconds(3600);
    v1::Lease lease;
    grpc::Status s = t.stubs[i % t.stubs.size()]->AcquireLease(&ctx, req, &lease);
    if (!s.ok()) return absl::InternalError("acquire for the open pool: " + s.error_message());
    t.open_pool.push_back(lease.lease_id());
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
  Figure("Renew on replica B of a lease acquired on replica A, visible after (p99)", "≤ 50 ms",
         absl::StrFormat("%.2f ms (n=%d)", pct(renewed_ms, 0.99), samples),
         pct(renewed_ms, 0.99) <= 50);
  return 0;
}

// The p-th percentile of sorted nanoseconds, in µs.
double Pct(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i =
      std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[i]) / 1e3;
}

std::string Percentiles(const std::vector<int64_t>& sorted) {
  return absl::StrFormat("p50 %.0f µs, p90 %.0f µs, p99 %.0f µs, p99.9 %.0f µs (n=%d)",
                         Pct(sorted, 0.5), Pct(sorted, 0.9), Pct(sorted, 0.99), Pct(sorted, 0.999),
                         sorted.size());
}

// Sum of a Prometheus metric's samples (every label set) in a /metrics body; -1 if absent.
double MetricSum(absl::string_view body, absl::string_view name) {
  double sum = -1;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (!absl::StartsWith(line, name) || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtod(line.substr(space + 1), &v)) continue;
    sum = (sum < 0 ? 0 : sum) + v;
  }
  return sum;
}

absl::StatusOr<double> ReadMetric(const Target& t, absl::string_view name) {
  absl::StatusOr<std::string> body = testing::HttpGet(t.broker->metrics_address(), "/metrics");
  if (!body.ok()) return body.status();
  return MetricSum(*body, name);
}

// VmRSS of a process, in bytes (0 if unreadable).
int64_t RssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "VmRSS:")) continue;
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kb = 0;
    if (f.size() >= 2 && absl::SimpleAtoi(f[1], &kb)) return kb * 1024;
  }
  return 0;
}

// Open loop: requests at fixed intervals, each timed from its intended send time, so a stall
// of the server (or of this generator) shows in the latencies instead of thinning the load. A
// request whose slot has passed is sent at once; acquire_release sends ReleaseLease when its
// AcquireLease returns, timed from that send. At most `kMaxInFlight` requests are outstanding
// (the scheduler waits; the waiting still counts in the latencies).
struct OpenLoopResult {
  Workload workload;
  double rate = 0;  // intended RPCs per second
  uint64_t requests = 0;
  uint64_t errors = 0;
  uint64_t late = 0;                  // sent more than 1 ms after their slot
  std::string first_error;            // the status of the first failed RPC, if any
  std::vector<int64_t> latencies_ns;  // every RPC of the window, sorted
  std::vector<int64_t> acquire_ns;    // AcquireLease only, sorted
  // AcquireLease by intended send time (mass expiry picks its window afterwards).
  std::vector<std::pair<absl::Time, int64_t>> acquire_timed;
  double steal_pct = 0;
  double load = 0;  // rate over the workload's closed-loop QPS in the same round (rounds only)
};

class OpenLoop {
 public:
  static constexpr int kMaxInFlight = 20000;

  OpenLoop(Workload w, Target& t) : workload_(w), target_(t) {}

  // `rate` RPCs per second for warmup + window (or until *stop), then waits for the replies.
  OpenLoopResult Run(double rate, absl::Duration warmup, absl::Duration window,
                     const std::atomic<bool>* stop = nullptr) {
    const int per_slot = workload_ == Workload::kAcquireRelease ? 2 : 1;
    const absl::Duration interval = absl::Seconds(per_slot / rate);
    const absl::Time t0 = absl::Now();
    const absl::Time measure_from = t0 + warmup;
    const absl::Time end = measure_from + window;
    CpuTicks cpu0;
    bool measuring = false;
    for (int64_t i = 0;; ++i) {
      const absl::Time slot = t0 + interval * i;
      if (slot >= end || (stop != nullptr && stop->load())) break;
      if (!measuring && slot >= measure_from) {
        measuring = true;
        cpu0 = ReadCpu();
      }
      absl::Time now = absl::Now();
      if (slot > now) {
        absl::SleepFor(slot - now);
        now = absl::Now();
      }
      while (in_flight_.load() >= kMaxInFlight) absl::SleepFor(absl::Microseconds(50));
      Issue(slot, measuring);
    }
    const CpuTicks cpu1 = ReadCpu();
    // Every call has a 10 s deadline: this ends.
    while (in_flight_.load() > 0) absl::SleepFor(absl::Milliseconds(1));
    absl::MutexLock lock(&mu_);
    r_.workload = workload_;
    r_.rate = rate;
    std::sort(r_.latencies_ns.begin(), r_.latencies_ns.end());
    std::sort(r_.acquire_ns.begin(), r_.acquire_ns.end());
    const uint64_t total = cpu1.total - cpu0.total;
    r_.steal_pct = total == 0 || !measuring ? 0
                                            : 100.0 * static_cast<double>(cpu1.steal - cpu0.steal) /
                                                  static_cast<double>(total);
    return std::move(r_);
  }

 private:
  struct Call {
    absl::Time intended;
    absl::Time sent;
    bool record = false;
    std::unique_ptr<grpc::ClientContext> ctx;
    grpc::ByteBuffer check_req;
    grpc::ByteBuffer check_resp;
    v1::AcquireLeaseRequest acquire;
    v1::Lease lease;
    v1::ReleaseLeaseRequest release;
    v1::ReleaseLeaseResponse released;
    v1::RenewLeaseRequest renew;
  };

  static std::unique_ptr<grpc::ClientContext> NewContext() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    static const std::string* const kAuthorization =
        new std::string(absl::StrCat("Bearer ", kToken));
    ctx->AddMetadata("authorization", *kAuthorization);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  void Issue(absl::Time intended, bool record) {
    auto* c = new Call;  // deleted by its last completion
    c->intended = intended;
    c->record = record;
    c->ctx = NewContext();
    c->sent = absl::Now();
    ++in_flight_;
    const size_t n = next_++;
    v1::LeaseService::Stub* stub = target_.stubs[n % target_.stubs.size()].get();
    switch (workload_) {
      case Workload::kCheck:
      case Workload::kPing: {  // ping has no open-loop use; it runs Check's request
        grpc::Slice empty("");
        c->check_req = grpc::ByteBuffer(&empty, 1);
        target_.generics[n % target_.generics.size()]->UnaryCall(
            c->ctx.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &c->check_req,
            &c->check_resp, [this, c](const grpc::Status& st) {
              Done(c, st, c->intended, false);
              Release(c);
            });
        return;
      }
      case Workload::kAcquireRelease:
        c->acquire.set_provider("lumenfall");
        c->acquire.mutable_ttl()->set_seconds(600);
        stub->async()->AcquireLease(
            c->ctx.get(), &c->acquire, &c->lease, [this, c, stub](const grpc::Status& st) {
              Done(c, st, c->intended, true);
              if (!st.ok()) {
                Release(c);
                return;
              }
              c->ctx = NewContext();
              c->release.set_lease_id(c->lease.lease_id());
              c->sent = absl::Now();
              stub->async()->ReleaseLease(c->ctx.get(), &c->release, &c->released,
                                          [this, c](const grpc::Status& st2) {
                                            Done(c, st2, c->sent, false);
                                            Release(c);
                                          });
            });
        return;
      case Workload::kRenew: {
        // A lease not being renewed right now (renews of one lease conflict: ABORTED); when
        // every one is busy, any lease (its conflicts count as errors).
        const std::string id = TakeLease(n);
        c->renew.set_lease_id(id);
        c->renew.mutable_ttl()->set_seconds(600);
        stub->async()->RenewLease(c->ctx.get(), &c->renew, &c->lease,
                                  [this, c](const grpc::Status& st) {
                                    Done(c, st, c->intended, false);
                                    ReturnLease(c->renew.lease_id());
                                    Release(c);
                                  });
        return;
      }
    }
  }

  std::string TakeLease(size_t n) {
    absl::MutexLock lock(&pool_mu_);
    if (!pool_init_) {
      free_ = target_.open_pool.empty() ? target_.pool : target_.open_pool;
      pool_init_ = true;
    }
    if (free_.empty()) {
      const std::vector<std::string>& all =
          target_.open_pool.empty() ? target_.pool : target_.open_pool;
      return all[n % all.size()];
    }
    std::string id = std::move(free_.back());
    free_.pop_back();
    return id;
  }
  void ReturnLease(const std::string& id) {
    absl::MutexLock lock(&pool_mu_);
    if (free_.size() < target_.open_pool.size() + target_.pool.size()) free_.push_back(id);
  }

  void Done(const Call* c, const grpc::Status& st, absl::Time from, bool acquire) {
    const absl::Time now = absl::Now();
    if (!c->record) return;
    const int64_t ns = absl::ToInt64Nanoseconds(now - from);
    absl::MutexLock lock(&mu_);
    ++r_.requests;
    if (!st.ok() && r_.errors++ == 0) {
      r_.first_error = absl::StrCat(st.error_code(), ": ", st.error_message());
    }
    if (from == c->intended && c->sent - c->intended > absl::Milliseconds(1)) ++r_.late;
    r_.latencies_ns.push_back(ns);
    if (acquire) {
      r_.acquire_ns.push_back(ns);
      r_.acquire_timed.emplace_back(c->intended, ns);
    }
  }

  void Release(Call* c) {
    delete c;
    --in_flight_;
  }

  const Workload workload_;
  Target& target_;
  std::atomic<int> in_flight_{0};
  std::atomic<size_t> next_{0};
  absl::Mutex mu_;
  OpenLoopResult r_ ABSL_GUARDED_BY(mu_);
  absl::Mutex pool_mu_;
  bool pool_init_ ABSL_GUARDED_BY(pool_mu_) = false;
  std::vector<std::string> free_ ABSL_GUARDED_BY(pool_mu_);  // renew leases not in flight
};

// Acquires up to `n` leases of `ttl` as fast as `slots` callers in flight allow, until `deadline`
// or 1000 errors; returns how many it got.
struct FillResult {
  int64_t acquired = 0;
  int64_t errors = 0;
  absl::Duration took;
};

FillResult Fill(Target& t, int64_t n, absl::Duration ttl, int slots, absl::Time deadline) {
  struct State {
    std::atomic<int64_t> issued{0};
    std::atomic<int64_t> acquired{0};
    std::atomic<int64_t> errors{0};
    std::atomic<int> active{0};
    absl::Notification drained;
  } st;
  struct Caller {
    std::unique_ptr<grpc::ClientContext> ctx;
    v1::AcquireLeaseRequest req;
    v1::Lease lease;
    v1::LeaseService::Stub* stub = nullptr;
  };
  std::vector<std::unique_ptr<Caller>> callers;
  std::function<void(Caller*)> next = [&](Caller* c) {
    if (st.errors.load() >= 1000 || absl::Now() >= deadline || st.issued.fetch_add(1) >= n) {
      if (--st.active == 0) st.drained.Notify();
      return;
    }
    c->ctx = std::make_unique<grpc::ClientContext>();
    c->ctx->AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
    c->ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    c->stub->async()->AcquireLease(c->ctx.get(), &c->req, &c->lease, [&, c](const grpc::Status& s) {
      if (s.ok()) {
        ++st.acquired;
      } else {
        ++st.errors;
        --st.issued;  // retried, up to the error limit
      }
      next(c);
    });
  };
  for (int i = 0; i < slots; ++i) {
    auto c = std::make_unique<Caller>();
    c->req.set_provider("lumenfall");
    c->req.mutable_ttl()->set_seconds(absl::ToInt64Seconds(ttl));
    c->stub = t.stubs[i % t.stubs.size()].get();
    callers.push_back(std::move(c));
  }
  const absl::Time t0 = absl::Now();
  st.active = slots;
  for (auto& c : callers) next(c.get());
  st.drained.WaitForNotification();
  return {st.acquired.load(), st.errors.load(), absl::Now() - t0};
}

Result ClosedLoop(const Options& o, Workload w, Target& t) {
  Driver d(w, t.stubs, t.generics, o.inflight, &t.pool);
  return d.Run(absl::Seconds(o.warmup_s), absl::Seconds(o.seconds), t.broker->pid());
}

// --scale-leases: acquire_release QPS with 1k active leases, then with N; RSS per lease.
int RunScale(const Options& o) {
  std::cout << "\n### Scale: " << o.scale_leases << " active leases (SQLite broker)\n\n";
  Target t;
  t.name = "scale";
  if (absl::Status s = StartTarget(o, "sqlite: {synchronous: " + o.synchronous + "}", t); !s.ok()) {
    std::cerr << "cannot start the scale broker: " << s << "\n";
    return 1;
  }
  const int64_t base = 1000;
  // The renew pool already holds some: top up to 1k.
  const absl::Duration ttl = absl::Hours(1);
  const int slots = o.channels * o.inflight;
  FillResult f0 = Fill(t, base - static_cast<int64_t>(t.pool.size()), ttl, slots,
                       absl::Now() + absl::Seconds(60));
  const int64_t held = static_cast<int64_t>(t.pool.size()) + f0.acquired;
  const Result check1k = ClosedLoop(o, Workload::kCheck, t);
  const Result ar1k = ClosedLoop(o, Workload::kAcquireRelease, t);
  std::cerr << absl::StrFormat(
      "scale: at %d leases: check %.0f rpc/s, acquire_release %.0f rpc/s\n", held, check1k.qps,
      ar1k.qps);
  const int64_t rss0 = RssBytes(t.broker->pid());
  const int64_t target = o.scale_leases - held;
  FillResult f = Fill(t, target, ttl, slots, absl::Now() + absl::Seconds(o.scale_timeout));
  const int64_t reached = held + f.acquired;
  absl::SleepFor(absl::Seconds(2));  // let the last commits and the allocator settle
  const int64_t rss1 = RssBytes(t.broker->pid());
  std::cerr << absl::StrFormat("scale: filled %d leases in %.1f s (%.0f/s), %d errors\n",
                               f.acquired, absl::ToDoubleSeconds(f.took),
                               static_cast<double>(f.acquired) / absl::ToDoubleSeconds(f.took),
                               f.errors);
  const Result checkN = ClosedLoop(o, Workload::kCheck, t);
  const Result arN = ClosedLoop(o, Workload::kAcquireRelease, t);
  std::cerr << absl::StrFormat(
      "scale: at %d leases: check %.0f rpc/s, acquire_release %.0f rpc/s\n", reached, checkN.qps,
      arN.qps);
  absl::StatusOr<double> active = ReadMetric(t, "credbroker_active_leases");
  t.broker->Stop();
  const bool hit_limit = f.acquired < target;
  const double per_lease =
      f.acquired > 0 ? static_cast<double>(rss1 - rss0) / static_cast<double>(f.acquired) : 0;
  const double ratio = ar1k.qps > 0 ? arN.qps / ar1k.qps : 0;
  const double check_ratio = check1k.qps > 0 ? checkN.qps / check1k.qps : 0;
  std::cout << absl::StrFormat(
      "- Filled %d of %d leases (TTL 1h) in %.1f s with %d callers in flight%s; %d errors; the "
      "broker's credbroker_active_leases gauge after: %s\n",
      f.acquired, target, absl::ToDoubleSeconds(f.took), slots,
      hit_limit ? absl::StrCat(" — **stopped by --scale-timeout ", o.scale_timeout, " s**") : "",
      f.errors, active.ok() ? absl::StrFormat("%.0f", *active) : active.status().ToString());
  std::cout << absl::StrFormat(
      "- Broker RSS (VmRSS): %.1f MB at %d leases, %.1f MB at %d: **%.0f B per added lease**\n",
      static_cast<double>(rss0) / 1e6, held, static_cast<double>(rss1) / 1e6, reached, per_lease);
  std::cout << "- The QPS at 1k and at N are sequential measurements on one broker (the lease "
               "count cannot alternate), so machine drift between them is in the ratio; Check "
               "measured right before each shows the drift.\n\n";
  std::cout << "| active leases | Check QPS | acquire_release QPS | acquire_release p99 µs | "
               "steal % |\n| --- | --- | --- | --- | --- |\n";
  for (const auto& [n, c, a] :
       {std::tuple<int64_t, const Result*, const Result*>{held, &check1k, &ar1k},
        {reached, &checkN, &arN}}) {
    std::cout << absl::StrFormat("| %d | %.0f | %.0f | %.0f | %.1f |\n", n, c->qps, a->qps,
                                 a->Percentile(0.99), std::max(c->steal_pct, a->steal_pct));
  }
  std::cout << absl::StrFormat(
      "\n- acquire_release QPS at %d / at 1k: **%.2f** (Check at %d / at 1k: %.2f; the ratio of "
      "the two ratios: %.2f)\n",
      reached, ratio, reached, check_ratio, check_ratio > 0 ? ratio / check_ratio : 0);
  const std::string at = hit_limit ? absl::StrCat(" (only ", reached, " reached)") : "";
  Figure(absl::StrCat("memory per active lease at ", o.scale_leases, " leases"), "≤ 128 B",
         absl::StrFormat("%.0f B%s", per_lease, at), per_lease <= 128 && !hit_limit);
  Figure(absl::StrCat("QPS with ", o.scale_leases, " active leases / QPS with 1k"), "≥ 0.9",
         absl::StrFormat("%.2f (Check drift %.2f; sequential, not alternated)%s", ratio,
                         check_ratio, at),
         ratio >= 0.9 && !hit_limit);
  return 0;
}

// --mass-expiry: AcquireLease p99 at a fixed rate before, and while N short leases expire.
int RunMassExpiry(const Options& o) {
  std::cout << "\n### Mass expiry: " << o.mass_expiry << " leases of " << o.mass_expiry_ttl
            << " s (SQLite broker, default sweep_interval 10s)\n\n";
  Target t;
  t.name = "expiry";
  ConfigExtras extras;
  extras.leases = "{default_ttl: 10m, max_ttl: 1h, min_ttl: 1s}";
  if (absl::Status s = StartTarget(o, "sqlite: {synchronous: " + o.synchronous + "}", t, extras);
      !s.ok()) {
    std::cerr << "cannot start the mass-expiry broker: " << s << "\n";
    return 1;
  }
  const Result check = ClosedLoop(o, Workload::kCheck, t);
  const double rate = check.qps * o.mass_expiry_fraction;
  OpenLoopResult before =
      OpenLoop(Workload::kAcquireRelease, t).Run(rate, absl::Seconds(1), absl::Seconds(o.seconds));
  std::cerr << absl::StrFormat("mass expiry: check %.0f rpc/s; at %.0f rpc/s before: %s\n",
                               check.qps, rate, Percentiles(before.acquire_ns));
  absl::StatusOr<double> expired0 = ReadMetric(t, "credbroker_leases_expired_total");
  const double expired_base = expired0.ok() ? std::max(0.0, *expired0) : 0;
  FillResult f = Fill(t, o.mass_expiry, absl::Seconds(o.mass_expiry_ttl), o.channels * o.inflight,
                      absl::Now() + absl::Seconds(o.mass_expiry_ttl));
  const absl::Time filled = absl::Now();
  // Poll the broker's counters while the open loop runs; stop 1 s after all N expired.
  std::atomic<bool> stop{false};
  absl::Time first_rise = absl::InfiniteFuture();
  absl::Time all_expired = absl::InfiniteFuture();
  absl::Time last_quiet = filled;
  double expired_seen = 0;
  double active_min = -1;
  double active_max = -1;
  std::thread poller([&] {
    const absl::Time limit = filled + absl::Seconds(o.mass_expiry_ttl + 40);
    while (absl::Now() < limit) {
      const absl::Time before_poll = absl::Now();
      absl::StatusOr<std::string> body = testing::HttpGet(t.broker->metrics_address(), "/metrics");
      if (body.ok()) {
        expired_seen =
            std::max(0.0, MetricSum(*body, "credbroker_leases_expired_total")) - expired_base;
        const double active = MetricSum(*body, "credbroker_active_leases");
        active_min = active_min < 0 ? active : std::min(active_min, active);
        active_max = std::max(active_max, active);
        if (expired_seen <= 0) last_quiet = before_poll;
        if (expired_seen > 0 && first_rise == absl::InfiniteFuture()) first_rise = absl::Now();
        if (expired_seen >= static_cast<double>(f.acquired)) {
          all_expired = absl::Now();
          absl::SleepFor(absl::Seconds(2));
          break;
        }
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    stop = true;
  });
  OpenLoopResult during =
      OpenLoop(Workload::kAcquireRelease, t)
          .Run(rate, absl::ZeroDuration(), absl::Seconds(o.mass_expiry_ttl + 60), &stop);
  poller.join();
  t.broker->Stop();
  // The expiry window: from the last poll that saw none expired to 1 s after the one that saw
  // all (requests queued behind the sweep are answered in that second).
  const absl::Time from = last_quiet;
  const absl::Time to =
      all_expired == absl::InfiniteFuture() ? absl::Now() : all_expired + absl::Seconds(1);
  std::vector<int64_t> window;
  for (const auto& [when, ns] : during.acquire_timed) {
    if (when >= from && when <= to) window.push_back(ns);
  }
  std::sort(window.begin(), window.end());
  const bool expired_all = all_expired != absl::InfiniteFuture();
  const bool overlap = f.took >= absl::Seconds(o.mass_expiry_ttl);
  const double p99_before = Pct(before.acquire_ns, 0.99);
  const double p99_during = Pct(window, 0.99);
  const double ratio = p99_before > 0 ? p99_during / p99_before : 0;
  std::cout << absl::StrFormat(
      "- Filled %d leases (%d errors) in %.1f s%s. Expired (credbroker_leases_expired_total): %.0f "
      "of them, %s; credbroker_active_leases went from %.0f to %.0f.\n",
      f.acquired, f.errors, absl::ToDoubleSeconds(f.took),
      overlap ? " — **longer than the TTL: expiry began during the fill**" : "", expired_seen,
      expired_all ? absl::StrFormat("the first seen %.1f s and all %.1f s after the fill ended",
                                    absl::ToDoubleSeconds(first_rise - filled),
                                    absl::ToDoubleSeconds(all_expired - filled))
                  : "**not all within the time limit**",
      active_max, active_min);
  std::cout << absl::StrFormat(
      "- acquire_release open loop at %.0f RPC/s (%.0f%% of Check's %.0f), AcquireLease "
      "latency from the intended send time:\n  - before the fill: %s\n  - in the expiry window "
      "(%.1f s: from the last /metrics poll that saw none expired to 1 s after the one that saw "
      "all): %s\n  - p99 during / before: **%.2f**; sent >1 ms late: %d before, %d during; "
      "errors %d, %d\n",
      rate, 100 * o.mass_expiry_fraction, check.qps, Percentiles(before.acquire_ns),
      absl::ToDoubleSeconds(to - from), Percentiles(window), ratio, before.late, during.late,
      before.errors, during.errors);
  Figure(
      absl::StrCat("a mass expiry of ", o.mass_expiry, " leases: AcquireLease p99 during / before"),
      "≤ 2",
      absl::StrFormat("%.2f (%.0f µs / %.0f µs)%s", ratio, p99_during, p99_before,
                      expired_all ? "" : ", not all expired"),
      ratio <= 2 && expired_all && !window.empty());
  return expired_all ? 0 : 1;
}

// --watchers: N WatchKeys streams, then a rotation; each stream's delay from the decision.
class WatchFanout;
class Watcher : public grpc::ClientReadReactor<v1::KeyEvent> {
 public:
  Watcher(WatchFanout* f, v1::LeaseService::Stub* stub, absl::Duration bound);
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;
  void Cancel() { ctx_.TryCancel(); }

 private:
  WatchFanout* const f_;
  grpc::ClientContext ctx_;
  v1::WatchKeysRequest req_;
  v1::KeyEvent ev_;
  bool synced_ = false;
  bool rotated_ = false;
};

class WatchFanout {
 public:
  std::atomic<int> synced{0};
  std::atomic<int> done{0};
  std::atomic<int> failed{0};  // ended with an error before we cancelled
  std::atomic<bool> cancelling{false};
  void Rotated(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    delays_.push_back(absl::ToInt64Nanoseconds(d));
  }
  std::vector<int64_t> Delays() {
    absl::MutexLock lock(&mu_);
    return delays_;
  }
  int RotatedCount() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(delays_.size());
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> delays_ ABSL_GUARDED_BY(mu_);
};

Watcher::Watcher(WatchFanout* f, v1::LeaseService::Stub* stub, absl::Duration bound) : f_(f) {
  ctx_.AddMetadata("authorization", absl::StrCat("Bearer ", kToken));
  ctx_.set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(absl::ToInt64Seconds(bound)));
  req_.add_providers("lumenfall");
  stub->async()->WatchKeys(&ctx_, &req_, this);
  StartRead(&ev_);
  StartCall();
}

void Watcher::OnReadDone(bool ok) {
  if (!ok) return;
  const absl::Time now = absl::Now();
  if (ev_.type() == v1::KeyEvent::SYNCED && !synced_) {
    synced_ = true;
    ++f_->synced;
  } else if (ev_.type() == v1::KeyEvent::ROTATED && synced_ && !rotated_) {
    rotated_ = true;
    const absl::Time at =
        absl::FromUnixSeconds(ev_.at().seconds()) + absl::Nanoseconds(ev_.at().nanos());
    f_->Rotated(now - at);
  }
  StartRead(&ev_);
}

void Watcher::OnDone(const grpc::Status& s) {
  if (!s.ok() && !f_->cancelling.load()) {
    if (f_->failed++ == 0) std::cerr << "watchers: a stream ended: " << s.error_message() << "\n";
  }
  ++f_->done;
}

int RunWatchers(const Options& o) {
  std::cout << "\n### Rotation fan-out: " << o.watchers << " WatchKeys streams\n\n";
  Target t;
  t.name = "watchers";
  ConfigExtras extras;
  extras.server = absl::StrCat("\n  max_watch_streams: ", o.watchers + 16,
                               "\n  max_watch_streams_per_caller: ", o.watchers + 16);
  extras.source = "\n    refresh_interval: 1s";
  if (absl::Status s = StartTarget(o, "sqlite: {synchronous: " + o.synchronous + "}", t, extras);
      !s.ok()) {
    std::cerr << "cannot start the watchers broker: " << s << "\n";
    return 1;
  }
  const int channels = (o.watchers + o.watchers_per_channel - 1) / o.watchers_per_channel;
  std::vector<std::unique_ptr<v1::LeaseService::Stub>> stubs;
  for (int c = 0; c < channels; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("credbroker.bench.watch_channel", c);
    stubs.push_back(v1::LeaseService::NewStub(grpc::CreateCustomChannel(
        t.broker->grpc_address(), grpc::InsecureChannelCredentials(), args)));
  }
  // Every stream's deadline: the whole scenario's bound.
  const absl::Duration bound = absl::Seconds(120) + absl::Milliseconds(10) * o.watchers;
  const absl::Time t0 = absl::Now();
  WatchFanout fan;
  std::vector<std::unique_ptr<Watcher>> watchers;
  for (int i = 0; i < o.watchers; ++i) {
    watchers.push_back(std::make_unique<Watcher>(&fan, stubs[i % channels].get(), bound));
  }
  const absl::Time sync_limit = t0 + absl::Seconds(60) + absl::Milliseconds(5) * o.watchers;
  while (fan.synced.load() + fan.failed.load() < o.watchers && absl::Now() < sync_limit) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const absl::Duration sync_took = absl::Now() - t0;
  std::cerr << absl::StrFormat("watchers: %d of %d synced in %.1f s\n", fan.synced.load(),
                               o.watchers, absl::ToDoubleSeconds(sync_took));
  int rc = 0;
  std::string rotate_outcome;
  if (fan.synced.load() == o.watchers) {
    // Stage v2 (the K8s secret layout: an atomic symlink swap), then promote it.
    testing::WriteK8sSecretDir(t.dir.Join("keys/lumenfall"), {{"v1", kKeyV1}, {"v2", kKeyV2}});
    const absl::Time staged = absl::Now();
    v1::ListKeyVersionsRequest list;
    list.set_provider("lumenfall");
    for (;;) {
      v1::ListKeyVersionsResponse resp;
      if (t.admin->ListKeyVersions(Context(kAdminToken).get(), list, &resp).ok() &&
          resp.versions_size() == 2)
        break;
      if (absl::Now() - staged > absl::Seconds(30)) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    v1::RotateKeyRequest rotate;
    rotate.set_provider("lumenfall");
    v1::RotateKeyResponse rotated;
    grpc::Status s = t.admin->RotateKey(Context(kAdminToken).get(), rotate, &rotated);
    // With probes off the refresh may have promoted v2 already (NO_PENDING_VERSION); either
    // way the decision's time is the ROTATED event's `at`.
    rotate_outcome = s.ok() ? "RotateKey promoted v2"
                            : absl::StrCat("RotateKey: ", testing::ErrorReason(s),
                                           " (v2 promoted on the source's refresh)");
    if (!s.ok() && testing::ErrorReason(s) != "NO_PENDING_VERSION") {
      std::cerr << "watchers: RotateKey failed: " << s.error_message() << "\n";
      rc = 1;
    }
    const absl::Time limit = absl::Now() + absl::Seconds(30);
    while (fan.RotatedCount() + fan.failed.load() < o.watchers && absl::Now() < limit) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  } else {
    rc = 1;
  }
  fan.cancelling = true;
  for (auto& w : watchers) w->Cancel();
  const absl::Time done_limit = absl::Now() + absl::Seconds(30);
  while (fan.done.load() < o.watchers && absl::Now() < done_limit) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (fan.done.load() < o.watchers) {
    std::cerr << "watchers: " << o.watchers - fan.done.load()
              << " streams did not end; leaving them\n";
    for (auto& w : watchers) static_cast<void>(w.release());
  }
  watchers.clear();
  t.broker->Stop();
  std::vector<int64_t> d = fan.Delays();
  std::sort(d.begin(), d.end());
  const int got = static_cast<int>(d.size());
  const double p99_ms = Pct(d, 0.99) / 1e3;
  std::cout << absl::StrFormat(
      "- %d streams over %d channels, all SYNCED after %.1f s; %s; %d streams failed.\n- ROTATED "
      "received by **%d of %d** streams; delay from the event's `at` (the broker's decision) to "
      "receipt: p50 %.1f ms, p90 %.1f ms, p99 **%.1f ms**, max %.1f ms\n",
      fan.synced.load(), channels, absl::ToDoubleSeconds(sync_took), rotate_outcome,
      fan.failed.load(), got, o.watchers, Pct(d, 0.5) / 1e3, Pct(d, 0.9) / 1e3, p99_ms,
      d.empty() ? 0 : static_cast<double>(d.back()) / 1e6);
  Figure(absl::StrCat("rotation event delivered to ", o.watchers, " watchers, p99"), "≤ 100 ms",
         absl::StrFormat("%.1f ms (max %.1f ms), %d of %d streams got it", p99_ms,
                         d.empty() ? 0 : static_cast<double>(d.back()) / 1e6, got, o.watchers),
         got == o.watchers && p99_ms <= 100);
  return got == o.watchers ? rc : 1;
}

// The open-loop table: per workload, percentiles of the round with the median p99, and the
// ratio of p99 to the same round's Check p99 at the same rate.
void PrintOpenLoop(const Options& o, std::map<Workload, std::vector<OpenLoopResult>>& results,
                   std::map<Workload, std::vector<double>>& ratios) {
  std::cout << absl::StrFormat(
      "\n| open loop at %.0f%% of the round's Check QPS (SQLite broker) | rate RPC/s (median) | "
      "rate / the workload's closed-loop QPS (median) | p50 µs | p90 µs | p99 µs | p99.9 µs | "
      "p99 / Check's p99 (median [min, max], n) | sent >1 ms late | errors |\n| --- | --- | --- "
      "| --- | --- | --- | --- | --- | --- | --- |\n",
      100 * o.open_loop_fraction);
  for (auto& [w, rs] : results) {
    if (rs.empty()) continue;
    std::vector<const OpenLoopResult*> by_p99;
    std::vector<double> rates;
    std::vector<double> loads;
    uint64_t late = 0;
    uint64_t errors = 0;
    for (const OpenLoopResult& r : rs) {
      by_p99.push_back(&r);
      rates.push_back(r.rate);
      loads.push_back(r.load);
      late += r.late;
      errors += r.errors;
    }
    std::sort(by_p99.begin(), by_p99.end(), [](const OpenLoopResult* a, const OpenLoopResult* b) {
      return Pct(a->latencies_ns, 0.99) < Pct(b->latencies_ns, 0.99);
    });
    const OpenLoopResult& mid = *by_p99[by_p99.size() / 2];
    const std::vector<double>& rr = ratios[w];
    std::string ratio = w == Workload::kCheck ? "1 (baseline)" : "-";
    if (!rr.empty()) {
      ratio = absl::StrFormat("**%.2f** [%.2f, %.2f] n=%d", Median(rr),
                              *std::min_element(rr.begin(), rr.end()),
                              *std::max_element(rr.begin(), rr.end()), rr.size());
    }
    std::cout << absl::StrFormat(
        "| %s | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f | %s | %d | %d |\n", Name(w), Median(rates),
        Median(loads), Pct(mid.latencies_ns, 0.5), Pct(mid.latencies_ns, 0.9),
        Pct(mid.latencies_ns, 0.99), Pct(mid.latencies_ns, 0.999), ratio, late, errors);
    if (w != Workload::kCheck && !rr.empty()) {
      Figure(absl::StrFormat("p99 at %.0f%% of baseline saturation rate (%s / Check)",
                             100 * o.open_loop_fraction, Name(w)),
             "≤ 1.5",
             absl::StrFormat("%.2f [%.2f, %.2f], n=%d", Median(rr),
                             *std::min_element(rr.begin(), rr.end()),
                             *std::max_element(rr.begin(), rr.end()), rr.size()),
             Median(rr) <= 1.5);
    }
  }
}

int RunRounds(const Options& o) {
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
  // Open loop: each round's results, and the lease workloads' p99 over the round's Check p99.
  std::map<Workload, std::vector<OpenLoopResult>> open_results;
  std::map<Workload, std::vector<double>> open_ratios;
  for (int round = 0; round < o.rounds; ++round) {
    // 0 when the round's measurement was dropped for steal.
    double check = 0;
    double ping = 0;
    std::map<Workload, double> on_sqlite;
    double check_raw = 0;  // the round's saturation, for the open loop
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
      if (sub.target == &sqlite && sub.workload == Workload::kCheck) check_raw = r.qps;
      results[sub.name].push_back(std::move(r));
    }
    if (o.open_loop && check_raw > 0) {
      // Check first, then each lease workload, at the same fixed rate on the SQLite broker.
      const double rate = check_raw * o.open_loop_fraction;
      double check_p99 = 0;
      for (Workload w : o.workloads) {
        if (w == Workload::kPing) continue;
        OpenLoopResult r =
            OpenLoop(w, sqlite).Run(rate, absl::Seconds(o.warmup_s), absl::Seconds(o.seconds));
        const bool clean = r.steal_pct <= o.max_steal;
        if (!clean) {
          stolen.push_back(
              absl::StrFormat("round %d open loop %s (%.1f%%)", round + 1, Name(w), r.steal_pct));
        }
        const double p99 = Pct(r.latencies_ns, 0.99);
        const double saturation = results[Name(w)].back().qps;
        r.load = saturation > 0 ? rate / saturation : 0;
        if (w == Workload::kCheck) check_p99 = clean ? p99 : 0;
        if (w != Workload::kCheck && clean && check_p99 > 0)
          open_ratios[w].push_back(p99 / check_p99);
        std::cerr << absl::StrFormat(
            "round %d open loop %-16s at %7.0f rpc/s (%.2f of its saturation)  p50 %6.0f us  p99 "
            "%6.0f us  late %d  steal %4.1f%%%s\n",
            round + 1, Name(w), rate, r.load, Pct(r.latencies_ns, 0.5), p99, r.late, r.steal_pct,
            r.errors ? absl::StrCat("  ERRORS ", r.errors, " (first: ", r.first_error, ")") : "");
        open_results[w].push_back(std::move(r));
      }
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
  if (o.open_loop) {
    std::cout << absl::StrFormat("  with `--open-loop --open-loop-fraction %g`\n",
                                 o.open_loop_fraction);
  }
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
  if (o.open_loop) PrintOpenLoop(o, open_results, open_ratios);
  // The target table's figures (bench/run-all.sh).
  auto figure_ratio = [&](const std::string& sub, const char* figure, const char* target,
                          double min) {
    const std::vector<double>& rp = ratios_ping[sub];
    if (rp.empty()) return;
    const std::vector<double>& rc = ratios_check[sub];
    Figure(figure, target,
           absl::StrFormat("%.2f of Ping [%.2f, %.2f] (%.2f of Check), n=%d", Median(rp),
                           *std::min_element(rp.begin(), rp.end()),
                           *std::max_element(rp.begin(), rp.end()), Median(rc), rp.size()),
           Median(rp) >= min);
  };
  figure_ratio("acquire_release", "AcquireLease+Release QPS / baseline QPS", "≥ 0.9", 0.9);
  figure_ratio("renew", "RenewLease QPS / baseline", "≥ 0.9", 0.9);
  if (etcd != nullptr) {
    figure_ratio(absl::StrCat("acquire_release (etcd, ", o.etcd_members, " members)"),
                 "etcd-backed Acquire+Release / baseline", "≥ 0.3", 0.3);
  }
  if (!ratios_memory["acquire_release"].empty()) {
    const std::vector<double>& rm = ratios_memory["acquire_release"];
    Figure("sqlite-backed lease store / in-memory (acquire_release)", "≥ 0.5",
           absl::StrFormat("%.2f [%.2f, %.2f], n=%d", Median(rm),
                           *std::min_element(rm.begin(), rm.end()),
                           *std::max_element(rm.begin(), rm.end()), rm.size()),
           Median(rm) >= 0.5);
  }
  return visibility;
}

int Main(int argc, char** argv) {
  Options o;
  o.workloads.assign(std::begin(kWorkloads), std::end(kWorkloads));
  if (!ParseFlags(argc, argv, &o)) {
    std::cerr << "usage: grpc_load [--rounds N] [--warmup S] [--seconds S] [--channels N] "
                 "[--inflight N] [--max-steal PERCENT] [--broker PATH] [--synchronous normal|full] "
                 "[--workloads acquire_release,renew] [--etcd-members N] "
                 "[--visibility-samples M] [--open-loop] [--open-loop-fraction F] "
                 "[--scale-leases N] [--scale-timeout S] [--mass-expiry N] "
                 "[--mass-expiry-fraction F] [--mass-expiry-ttl S] [--watchers N] "
                 "[--watchers-per-channel N]\n";
    return 2;
  }
  if (o.visibility_samples > 0 && o.etcd_members == 0) {
    std::cerr << "--visibility-samples needs --etcd-members\n";
    return 2;
  }
  if (o.rounds == 0 && o.scale_leases == 0 && o.mass_expiry == 0 && o.watchers == 0) {
    std::cerr << "--rounds 0 needs a scenario (--scale-leases, --mass-expiry, --watchers)\n";
    return 2;
  }
  int rc = 0;
  if (o.rounds > 0) rc |= RunRounds(o);
  // The scenarios: each on a fresh broker of its own, after the rounds' brokers stopped.
  if (o.scale_leases > 0) rc |= RunScale(o);
  if (o.mass_expiry > 0) rc |= RunMassExpiry(o);
  if (o.watchers > 0) rc |= RunWatchers(o);
  return rc;
}

}  // namespace
}  // namespace credbroker::bench

int main(int argc, char** argv) { return credbroker::bench::Main(argc, argv); }
