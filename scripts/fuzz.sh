#!/usr/bin/env bash
# Runs every libFuzzer target of the fuzz preset over its committed seed corpus for a bounded
# time (FUZZ_SECONDS each, default 20), then replays the seeds and the regression inputs once.
# New interesting inputs go to a scratch folder, not into fuzz/corpus; a crash, leak or timeout
# fails the run and leaves the input in build/fuzz/artifacts/<target>/ (add it to
# fuzz/corpus/<target>/ with the fix, as a regression seed).
#   scripts/fuzz.sh [target...]        (after: cmake --preset fuzz && cmake --build --preset fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config_fuzz lease_id_fuzz jwks_fuzz jwt_fuzz vault_fuzz file_source_fuzz key_minter_fuzz)
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  bin=build/fuzz/fuzz/$t
  seeds=fuzz/corpus/$t
  [ -x "$bin" ] || { echo "fuzz: $bin is not built (cmake --build --preset fuzz)" >&2; exit 1; }
  [ -d "$seeds" ] || { echo "fuzz: no seed corpus $seeds" >&2; exit 1; }
  mkdir -p "$scratch/$t" "build/fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  echo "==> $t: ${seconds}s over $(find "$seeds" -type f | wc -l) seeds"
  "$bin" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t/" "$scratch/$t" "$seeds" \
    2> "$scratch/$t.log" || { tail -n 60 "$scratch/$t.log" >&2; echo "fuzz: $t failed" >&2; exit 1; }
  grep -E "^(stat::number_of_executed_units|stat::new_units_added)" "$scratch/$t.log" | tr '\n' ' '
  echo
done
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each without a finding"
