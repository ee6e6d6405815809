#!/usr/bin/env bash
# Quick start: installs dependencies, builds, runs credbroker on its embedded default
# (examples/local.yaml: file backend with fake demo keys, SQLite leases, loopback only) and shows
# it working with credctl. The broker keeps running until Ctrl-C; with --demo-only it stops after
# the demonstration (the test suite runs it that way).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEMO_ONLY=0
[ "${1:-}" = "--demo-only" ] && DEMO_ONLY=1

scripts/install-deps.sh
echo "==> building (cmake --preset dev)"
cmake --preset dev >/dev/null
cmake --build --preset dev --target credbroker credctl >/dev/null

BIN=$ROOT/build/dev/services/broker/credbroker
CTL=$ROOT/build/dev/services/credctl/credctl
STATE=$ROOT/.credbroker
mkdir -p "$STATE"
rm -f "$STATE/ports"

echo "==> starting credbroker --config examples/local.yaml (logs: .credbroker/broker.log)"
"$BIN" --config examples/local.yaml --port-file "$STATE/ports" 2>"$STATE/broker.log" &
BROKER=$!
trap 'kill $BROKER 2>/dev/null; wait $BROKER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$STATE/ports" ] && break
  kill -0 $BROKER 2>/dev/null || { cat "$STATE/broker.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$STATE/ports" ] || { echo "broker did not start" >&2; cat "$STATE/broker.log" >&2; exit 1; }

export CREDBROKER_ADDR=127.0.0.1:7443
APP=demo-app-token-change-me
ADMIN=demo-admin-token-change-me
run() { echo; echo "\$ $*"; "$@"; }

run "$CTL" --token $ADMIN providers
run "$CTL" --token $ADMIN keys
LEASE_JSON=$("$CTL" --token $APP --json lease acquire lumenfall --ttl 10m --purpose quickstart)
echo; echo "\$ credctl --token $APP --json lease acquire lumenfall --ttl 10m --purpose quickstart"
echo "$LEASE_JSON"
LEASE_ID=$(echo "$LEASE_JSON" | sed -n 's/.*"lease_id":"\([^"]*\)".*/\1/p')
run "$CTL" --token $APP lease renew "$LEASE_ID" --ttl 15m
run "$CTL" --token $APP watch lumenfall --count 3
echo; echo "\$ curl -s 127.0.0.1:9464/metrics | grep credbroker_leases_issued_total"
curl -s 127.0.0.1:9464/metrics | grep '^credbroker_leases_issued_total'
run "$CTL" --token $APP lease release "$LEASE_ID"
echo; echo "\$ credctl lease acquire no-such-provider   # errors say why, exit code 1"
"$CTL" --token $APP lease acquire no-such-provider || true
echo; echo "\$ tail -n 3 .credbroker/audit.log   # every decision, never a key"
tail -n 3 "$STATE/audit.log"

if [ $DEMO_ONLY -eq 1 ]; then
  echo; echo "quickstart: demo finished"
  exit 0
fi
echo
echo "credbroker is serving gRPC on 127.0.0.1:7443 and /metrics on 127.0.0.1:9464."
echo "Try: CREDBROKER_TOKEN=$APP $CTL lease acquire fluximage"
echo "Press Ctrl-C to stop."
wait $BROKER
