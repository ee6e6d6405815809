#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies, checks formatting, builds and runs
# every test (unit, service, integration) in the dev build, runs clang-tidy, builds and runs every
# test again under ASan+UBSan, runs the concurrency tests under ThreadSanitizer, runs each libFuzzer
# target for a bounded time (FUZZ_SECONDS, default 20), and runs the README quick start in demo
# mode. Tests and the quick
# start run in a network namespace with only loopback (scripts/offline.sh): no test may reach any
# other address.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Paths below the checkout are hashed relative to it (and the build folder is not hashed), so a
# fresh clone elsewhere hits the cache that an earlier clone filled.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

echo "==> clang-format check"
scripts/format.sh --check

echo "==> dev build"
cmake --preset dev
cmake --build --preset dev
echo "==> dev tests (loopback only)"
scripts/offline.sh ctest --preset dev
if [ "${SKIP_ASAN:-0}" != "1" ]; then
  echo "==> asan+ubsan build"
  cmake --preset asan
  cmake --build --preset asan
  echo "==> asan+ubsan tests (loopback only)"
  scripts/offline.sh ctest --preset asan
fi

if [ "${SKIP_TSAN:-0}" != "1" ]; then
  echo "==> tsan build (tests labelled tsan)"
  cmake --preset tsan
  cmake --build --preset tsan
  echo "==> tsan tests (loopback only)"
  scripts/offline.sh ctest --preset tsan
fi

if [ "${SKIP_FUZZ:-0}" != "1" ]; then
  echo "==> fuzz build (clang, libFuzzer)"
  cmake --preset fuzz
  cmake --build --preset fuzz
  echo "==> fuzzing, ${FUZZ_SECONDS:-20}s per target (loopback only)"
  scripts/offline.sh scripts/fuzz.sh
fi

echo "==> clang-tidy"
scripts/tidy.sh

echo "==> quick start (demo mode, loopback only)"
scripts/offline.sh scripts/quickstart.sh --demo-only
