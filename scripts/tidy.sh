#!/usr/bin/env bash
# clang-tidy over our own sources, tests and benchmarks included (configuration in .clang-tidy),
# using the dev build's compile_commands.json; the fuzz targets and the TSan annotations with the
# fuzz and tsan builds' databases when those builds exist. Fails when any warning is reported.
# Files found clean before with exactly the same preprocessed input, configuration and clang-tidy
# are not checked again (scripts/tidy_cached.py; the cache is ~/.cache/credbroker-tidy).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/dev/compile_commands.json ] || { echo "tidy: build the dev preset first" >&2; exit 1; }
# A failing run fails the check even when it printed no finding (a crash, a file it could not
# parse): exit status and findings are both checked.
rc=0
out=$(scripts/tidy_cached.py build/dev "^$PWD/(libs/.*/(src|tests)/.*\.cc|services/.*\.cc|tests/.*\.cc|bench/.*\.cc)$" 2>&1) || rc=$?
# Absolute paths: run-clang-tidy searches its pattern in absolute file names, and the generated
# sources under build/ must not match.
for extra in "build/fuzz $PWD/fuzz/[^/]*\.cc" "build/tsan $PWD/libs/testing/tsan/[^/]*\.cc"; do
  read -r db files <<<"$extra"
  [ -f "$db/compile_commands.json" ] || continue
  more=$(scripts/tidy_cached.py "$db" "^$files$" 2>&1) || rc=$?
  out=$(printf '%s\n%s' "$out" "$more")
done
warnings=$(printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -E "(warning|error):" | sort -u || true)
if [ -n "$warnings" ]; then
  printf 'clang-tidy findings:\n%s\n' "$warnings" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  printf 'clang-tidy failed (exit %d); its last output:\n%s\n' "$rc" "$(printf '%s\n' "$out" | tail -n 20)" >&2
  exit 1
fi
printf '%s\n' "$out" | grep '^tidy_cached:' || true
echo "clang-tidy: clean"
