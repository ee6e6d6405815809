#!/usr/bin/env bash
# The soak test against the real broker, for longer than CI runs it (tests/e2e/soak_test.cc):
# three callers at 150 calls/s in all (acquire, renew, release, 429 reports), a minted rotation
# every 8 s, the provider revoking the CURRENT key half-way; checks no lease lost or issued twice
# and a flat RSS. Loopback only (scripts/offline.sh); stops by itself.
#   scripts/soak.sh [seconds]   (default 300; CI runs 60 through ctest)
#   BUILD=build/asan scripts/soak.sh 120
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
build="${BUILD:-build/dev}"
if [ ! -x "$build/tests/e2e_test" ]; then
  echo "soak.sh: $build/tests/e2e_test is not built (cmake --build --preset dev)" >&2
  exit 1
fi
cd "$build"
CB_SOAK_SECONDS="$seconds" exec ../../scripts/offline.sh ./tests/e2e_test \
  --gtest_filter='SoakTest.*'
