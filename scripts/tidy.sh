#!/usr/bin/env bash
# clang-tidy over our own sources, tests and benchmarks included (configuration in .clang-tidy),
# using the dev build's compile_commands.json. Fails when any warning is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/dev/compile_commands.json ] || { echo "tidy: build the dev preset first" >&2; exit 1; }
# A failing run fails the check even when it printed no finding (a crash, a file it could not
# parse): exit status and findings are both checked.
rc=0
out=$(run-clang-tidy -p build/dev -j "$(nproc)" -quiet 'libs/.*/(src|tests)/.*\.cc|services/.*\.cc|tests/.*\.cc|bench/.*\.cc' 2>&1) || rc=$?
warnings=$(printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' | grep -E "(warning|error):" | sort -u || true)
if [ -n "$warnings" ]; then
  printf 'clang-tidy findings:\n%s\n' "$warnings" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  printf 'clang-tidy failed (exit %d); its last output:\n%s\n' "$rc" "$(printf '%s\n' "$out" | tail -n 20)" >&2
  exit 1
fi
echo "clang-tidy: clean"
