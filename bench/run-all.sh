#!/usr/bin/env bash
# The whole target table of shared/BENCHMARKS.md from grpc_load, in one command; builds nothing.
#
#   bench/run-all.sh [path/to/grpc_load]      (default: build/dev/bench/grpc_load)
#
# The figures without gRPC (the lease cache's fixed bytes per lease, metric recording, handler
# work) come from lease_path_bench next to it (LEASE_PATH_BENCH=0 skips it).
#
# Runs the closed-loop rounds with --open-loop (and etcd, and cross-replica visibility), then the
# scale, mass-expiry and rotation fan-out scenarios, each on a broker of its own, and prints a
# markdown table (figure | target | measured | met?) with the date, commit, gRPC version, machine
# and the command lines, followed by each run's own report. Sizes come from the table; override
# them for a quick smoke run, e.g.
#
#   ROUNDS=2 WARMUP=1 SECONDS_PER_ROUND=3 SCALE_LEASES=20000 MASS_EXPIRY=10000 WATCHERS=1000 \
#     ETCD_MEMBERS=0 bench/run-all.sh
#
# A size of 0 skips that part (ROUNDS=0 skips the rounds). Every run is bounded by grpc_load
# itself; the whole table at full size takes about half an hour on a 2-core machine.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

GRPC_LOAD=${1:-build/dev/bench/grpc_load}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-3}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-10}
CHANNELS=${CHANNELS:-2}
INFLIGHT=${INFLIGHT:-32}
OPEN_LOOP_FRACTION=${OPEN_LOOP_FRACTION:-0.5}
ETCD_MEMBERS=${ETCD_MEMBERS:-3}
VISIBILITY_SAMPLES=${VISIBILITY_SAMPLES:-300}
SCALE_LEASES=${SCALE_LEASES:-1000000}
SCALE_TIMEOUT=${SCALE_TIMEOUT:-600}
MASS_EXPIRY=${MASS_EXPIRY:-100000}
MASS_EXPIRY_TTL=${MASS_EXPIRY_TTL:-15}
WATCHERS=${WATCHERS:-10000}
LEASE_PATH_BENCH=${LEASE_PATH_BENCH:-1}
PATH_BENCH=$(dirname "$GRPC_LOAD")/lease_path_bench

if [ ! -x "$GRPC_LOAD" ]; then
  echo "run-all.sh: no grpc_load at $GRPC_LOAD (build it: cmake --build --preset dev --target grpc_load)" >&2
  exit 2
fi

logs=$(mktemp -d /tmp/cb-run-all.XXXXXX)
common=(--warmup "$WARMUP" --seconds "$SECONDS_PER_ROUND" --channels "$CHANNELS" --inflight "$INFLIGHT")
runs=()      # "name|command line"
failed=()

# run NAME ARGS...: one grpc_load invocation; its report to $logs/NAME.out, its progress and
# figures to $logs/NAME.err (the progress is echoed to stderr when it ends).
run() {
  local name=$1
  shift
  runs+=("$name|$GRPC_LOAD $*")
  echo "== $name: $GRPC_LOAD $* ($(date -u +%H:%M:%S))" >&2
  "$GRPC_LOAD" "$@" >"$logs/$name.out" 2>"$logs/$name.err"
  local rc=$?
  grep -v '^@figure|' "$logs/$name.err" >&2
  if [ $rc -ne 0 ]; then
    failed+=("$name (exit $rc)")
  fi
}

if [ "$ROUNDS" -gt 0 ]; then
  etcd=()
  if [ "$ETCD_MEMBERS" -gt 0 ]; then
    etcd=(--etcd-members "$ETCD_MEMBERS")
    [ "$VISIBILITY_SAMPLES" -gt 0 ] && etcd+=(--visibility-samples "$VISIBILITY_SAMPLES")
  fi
  run rounds --rounds "$ROUNDS" "${common[@]}" --open-loop --open-loop-fraction \
    "$OPEN_LOOP_FRACTION" "${etcd[@]}"
fi
[ "$SCALE_LEASES" -gt 0 ] && run scale --rounds 0 "${common[@]}" --scale-leases "$SCALE_LEASES" \
  --scale-timeout "$SCALE_TIMEOUT"
[ "$MASS_EXPIRY" -gt 0 ] && run mass-expiry --rounds 0 "${common[@]}" --mass-expiry \
  "$MASS_EXPIRY" --mass-expiry-ttl "$MASS_EXPIRY_TTL"
[ "$WATCHERS" -gt 0 ] && run watchers --rounds 0 "${common[@]}" --watchers "$WATCHERS"

# lease_path_bench: Google Benchmark's JSON, turned into the same @figure lines.
if [ "$LEASE_PATH_BENCH" != "0" ] && [ -x "$PATH_BENCH" ]; then
  filter='BytesPerLease/1000000|MetricRecord_PerRequest/|AcquireRelease_(InMemory|Sqlite)$|Renew_(InMemory|Sqlite)$'
  runs+=("lease_path_bench|$PATH_BENCH --benchmark_filter='$filter' --benchmark_format=json")
  echo "== lease_path_bench ($(date -u +%H:%M:%S))" >&2
  if "$PATH_BENCH" --benchmark_filter="$filter" --benchmark_format=json >"$logs/path.json" \
    2>"$logs/path.log"; then
    python3 - "$logs/path.json" >"$logs/lease_path_bench.err" <<'PY'
import json, sys
runs = {b["name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]}
def ns(b):
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    return b["real_time"] * scale
for name, b in runs.items():
    if name.startswith("BM_LeaseCacheBytesPerLease/1000000"):
        v = b["bytes_per_lease"]
        print(f"@figure|memory per active lease at 1 M leases, fixed part (the lease cache and its counts; allocator's live bytes)|≤ 128 B|{v:.0f} B|{'yes' if v <= 128 else 'no'}")
    if name.startswith("BM_MetricRecord_PerRequest/") and "threads:1" in name:
        v = ns(b)
        print(f"@figure|metric recording per RPC (one thread)|≤ 200 ns|{v:.0f} ns|{'yes' if v <= 200 else 'no'}")
for op in ("AcquireRelease", "Renew"):
    for store in ("InMemory", "Sqlite"):
        b = runs.get(f"BM_{op}_{store}")
        if b:
            print(f"@figure|handler work alone (no gRPC), {op} with {store} store: mean (Google Benchmark gives no p99)|≤ 5 µs p99|{ns(b) / 1e3:.1f} µs mean|-")
PY
  else
    failed+=("lease_path_bench")
  fi
  cp "$logs/path.json" "$logs/lease_path_bench.out" 2>/dev/null || true
fi

grpc_version=$(pkg-config --modversion grpc++ 2>/dev/null ||
  dpkg-query -W -f='${Version}' libgrpc++-dev 2>/dev/null || echo unknown)
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')

echo "## $(date -u +%Y-%m-%d\ %H:%M\ UTC) — bench/run-all.sh"
echo
echo "- Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')"
echo "- gRPC: $grpc_version; machine: $(nproc) CPUs, $model; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- Commands:"
for r in "${runs[@]}"; do
  echo "  - ${r%%|*}: \`${r#*|}\`"
done
if [ -f "$logs/rounds.out" ]; then
  grep -h 'Dropped for CPU steal' "$logs/rounds.out" | sed 's/^- /- Rounds: /'
fi
echo
echo "| figure | target | measured | met? |"
echo "| --- | --- | --- | --- |"
for r in "${runs[@]}"; do
  name=${r%%|*}
  grep -h '^@figure|' "$logs/$name.err" | while IFS='|' read -r _ figure target measured met; do
    echo "| $figure | $target | $measured | $met |"
  done
done
echo "| ReportAuthFailure QPS / baseline | ≥ 0.9 | not measured by grpc_load | - |"
if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "- **Failed runs**: ${failed[*]} (their figures may be missing; see below)"
fi
for r in "${runs[@]}"; do
  name=${r%%|*}
  [ "$name" = lease_path_bench ] && continue
  echo
  echo "### Report of the $name run"
  cat "$logs/$name.out"
done
rm -rf "$logs"
[ ${#failed[@]} -eq 0 ]
