#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs dependencies (Debian packages, and Helm, kubectl,
# bats and the manifest validator's npm packages), checks formatting, builds and runs every test in
# the dev build (unit, service, integration; the Kubernetes manifests too: Helm chart and kustomize
# overlays, checked with the real Helm and kubectl), builds the container image with buildah and
# checks it, builds and runs every test again under ASan+UBSan, runs the concurrency tests under
# ThreadSanitizer, runs each libFuzzer target for a bounded time (FUZZ_SECONDS, default 20), runs
# clang-tidy, and runs the README quick start in demo mode. Tests and the quick start run in a
# network namespace with only loopback (scripts/offline.sh): no test may reach any other address.
# SKIP_IMAGE, SKIP_ASAN, SKIP_TSAN, SKIP_FUZZ=1 leave a stage out (for local runs).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# Helm, kubectl, bats, yq and the manifest validator's npm packages (the deploy_manifests test).
scripts/install-k8s-tools.sh
# The Node client's npm dependencies (the node_client test).
scripts/install-clients.sh
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
if [ "${SKIP_IMAGE:-0}" != "1" ]; then
  # Needs the Debian archive (mmdebstrap, apt inside the build stage), so not in the namespace.
  echo "==> container image (buildah; base image made locally with mmdebstrap)"
  scripts/build-image.sh
fi

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
