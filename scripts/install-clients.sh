#!/usr/bin/env bash
# Installs what the client libraries' tests need beyond Debian's packages: the Node client's npm
# dependencies (clients/node: @grpc/grpc-js, @grpc/proto-loader, TypeScript), pinned by its
# package-lock.json. npm ci runs only when node_modules is missing or the lock changed (the stamp
# lives inside node_modules, so removing node_modules removes it too). Needs the npm registry;
# the tests themselves run offline. The Python client needs only Debian's python3-grpcio,
# python3-grpc-tools and python3-protobuf (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "install-clients: $*" >&2; exit 1; }
command -v npm >/dev/null || die "node and npm are needed (Node 20 or newer)"

dir=clients/node
stamp="$dir/node_modules/.credbroker-installed"
want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "install-clients: npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $dir failed"
  echo "$want" >"$stamp"
fi
