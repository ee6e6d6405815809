#!/usr/bin/env bash
# Runs a command in a network namespace of its own with only loopback up, so that nothing it
# starts (tests, fixtures, the broker) can reach any other address: a test that tries fails
# instead of quietly depending on the network. Needs root (CI runs as root); elsewhere it runs
# the command unisolated with a warning, or fails when CB_REQUIRE_OFFLINE=1 (CI sets it).
#   scripts/offline.sh ctest --preset dev
set -euo pipefail
if unshare --net true 2>/dev/null; then
  exec unshare --net -- bash -c 'ip link set lo up && exec "$@"' offline "$@"
fi
if [ "${CB_REQUIRE_OFFLINE:-0}" = "1" ]; then
  echo "offline.sh: cannot create a network namespace (needs root or CAP_SYS_ADMIN)" >&2
  exit 1
fi
echo "offline.sh: WARNING: no network namespace (not root?); running with the host's network" >&2
exec "$@"
