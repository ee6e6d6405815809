#!/usr/bin/env bash
# Builds the credbroker container image from deploy/Dockerfile with buildah, without a Docker
# daemon and without pulling anything from a container registry, then checks it. Run as root from
# any directory; idempotent (a second run reuses the base tarball, the imported base and buildah's
# layer cache). deploy/IMAGE.md describes the image.
#
#   scripts/build-image.sh [--base-only] [--refresh-base] [--no-cache]
#
#   --base-only     only make and import the base image (debian:bookworm-slim), then stop
#   --refresh-base  make a new base tarball even if the cached one is younger than 7 days
#   --no-cache      rebuild every Dockerfile step (ccache still applies) in this run; later runs
#                   may reuse older cached layers. New Debian packages come with each new base.
#
# Environment:
#   CB_IMAGE_CACHE          cache folder (default $HOME/.cache/credbroker-image): the base tarball
#                           and the ccache directory; CI keeps it between runs
#   CB_IMAGE                image name (default localhost/credbroker), tagged <git short sha> and dev
#   CB_DEBIAN_MIRROR        Debian archive (default http://deb.debian.org/debian)
#   CB_DEBIAN_SECURITY_MIRROR  (default http://deb.debian.org/debian-security)
#   CB_STORAGE_DRIVER       buildah storage driver (default vfs; overlay is faster where it works)
#
# Images live in buildah's default storage (/var/lib/containers/storage).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

BASE_ONLY=0
REFRESH_BASE=0
NO_CACHE=0
for arg in "$@"; do
  case "$arg" in
    --base-only) BASE_ONLY=1 ;;
    --refresh-base) REFRESH_BASE=1 ;;
    --no-cache) NO_CACHE=1 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

CACHE=${CB_IMAGE_CACHE:-${HOME:-/root}/.cache/credbroker-image}
IMAGE=${CB_IMAGE:-localhost/credbroker}
MIRROR=${CB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${CB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
# The name deploy/Dockerfile's FROM resolves to in local storage.
BASE_IMAGE=docker.io/library/debian:bookworm-slim
BASE_TAR=$CACHE/debian-$SUITE-slim.tar
BASE_MAX_AGE_MIN=$((7 * 24 * 60))
TAR_LABEL=dev.credbroker.base.tar-sha256
BUILD_CACHE_TAG=${IMAGE}-build:cache

# Storage driver: vfs works everywhere (nested containers included), at the price of a full copy
# per layer. Debian's buildah 1.28 ignores the STORAGE_DRIVER variable, hence the wrapper.
STORAGE_DRIVER=${CB_STORAGE_DRIVER:-vfs}
buildah() { command buildah --storage-driver "$STORAGE_DRIVER" "$@"; }
export BUILDAH_ISOLATION=chroot

die() {
  echo "build-image: FAILED: $*" >&2
  exit 1
}
say() { echo "build-image: $*"; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

[ "$(id -u)" -eq 0 ] || die "run as root (buildah with the vfs driver and chroot isolation, mmdebstrap)"

# --- tools ----------------------------------------------------------------------------------------
need=()
for p in buildah mmdebstrap debian-archive-keyring; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  # Waits for the dpkg lock instead of failing while another apt runs.
  apt-get -o DPkg::Lock::Timeout=600 update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null || die "could not install ${need[*]}"
fi

mkdir -p "$CACHE/ccache"

# --- base image -----------------------------------------------------------------------------------
# debian:bookworm-slim is Debian's minbase (Essential, Priority: required, apt) with docs, man pages
# and locales left out; this is the same recipe, from the Debian archive, with its security and
# point-release updates, made by mmdebstrap here and never pulled.
make_base_tar() {
  local start tmp
  start=$(date +%s)
  tmp=$(mktemp "$CACHE/.base.XXXXXX.tar")
  say "making the base tarball with mmdebstrap --variant=minbase $SUITE (from $MIRROR)"
  # The merged-usr hook lays out merged /usr itself, as debootstrap does for the official image,
  # instead of installing the usrmerge package (and perl with it). The dpkg path excludes stay in
  # the image, so packages installed later leave their docs out too; the apt options keep apt's
  # binary caches and translations out. The customize hook empties the host's resolv.conf and
  # hostname, which mmdebstrap copies in (a container runtime mounts its own); /dev is dropped
  # for the same reason.
  if ! mmdebstrap --variant=minbase --mode=root --format=tar \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-include=/usr/share/locale/locale.alias' \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/lintian/*' \
      --dpkgopt='path-exclude=/usr/share/groff/*' \
      --aptopt='Acquire::Languages "none"' \
      --aptopt='Dir::Cache::pkgcache ""' \
      --aptopt='Dir::Cache::srcpkgcache ""' \
      --customize-hook=': > "$1/etc/resolv.conf"; : > "$1/etc/hostname"' \
      "$SUITE" - \
      "deb $MIRROR $SUITE main" \
      "deb $MIRROR $SUITE-updates main" \
      "deb $SECURITY_MIRROR $SUITE-security main" |
      mmtarfilter --path-exclude='/dev/*' >"$tmp"; then
    rm -f "$tmp"
    die "mmdebstrap could not make the base (is the Debian archive reachable?)"
  fi
  mv "$tmp" "$BASE_TAR"
  say "base tarball $BASE_TAR: $(du -h "$BASE_TAR" | cut -f1), made in $(elapsed "$start")"
}

if [ "$REFRESH_BASE" -eq 1 ] || [ ! -s "$BASE_TAR" ] ||
   [ -z "$(find "$BASE_TAR" -mmin -"$BASE_MAX_AGE_MIN" 2>/dev/null)" ]; then
  make_base_tar
else
  say "reusing base tarball $BASE_TAR (made $(date -r "$BASE_TAR" '+%F %T'))"
fi

tar_sha=$(sha256sum "$BASE_TAR" | cut -d' ' -f1)
have_sha=$(buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$TAR_LABEL\"}}" \
             "$BASE_IMAGE" 2>/dev/null || true)
if [ "$have_sha" = "$tar_sha" ]; then
  say "$BASE_IMAGE is already imported from this tarball"
else
  start=$(date +%s)
  say "importing the base tarball as $BASE_IMAGE"
  ctr=$(buildah from --pull=never scratch) || die "buildah from scratch failed"
  if ! { buildah add --quiet "$ctr" "$BASE_TAR" / >/dev/null &&
         buildah config --os linux --arch "$(dpkg --print-architecture)" --cmd '["bash"]' \
           --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
           --label "$TAR_LABEL=$tar_sha" \
           --label "dev.credbroker.base.recipe=mmdebstrap --variant=minbase $SUITE, docs/man/locales excluded" \
           "$ctr" &&
         buildah commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null; }; then
    buildah rm "$ctr" >/dev/null 2>&1 || true
    die "could not import $BASE_TAR into buildah's storage"
  fi
  say "imported in $(elapsed "$start")"
fi

if [ "$BASE_ONLY" -eq 1 ]; then
  say "base ready: $BASE_IMAGE ($(buildah images --format '{{.Size}}' "$BASE_IMAGE"))"
  exit 0
fi

# --- build ----------------------------------------------------------------------------------------
sha=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
# What the build compiles: the paths .dockerignore lets in.
CONTEXT_PATHS=(CMakeLists.txt CMakePresets.json cmake proto libs services scripts/strip-etcd-protos.py)
if [ "$sha" != unknown ] &&
   [ -n "$(git -C "$ROOT" status --porcelain -- "${CONTEXT_PATHS[@]}" 2>/dev/null)" ]; then
  # Uncommitted changes are in the image: do not let the tag claim the commit alone.
  sha=$sha-dirty
  revision=$revision-dirty
fi

# The build reads a snapshot of those paths, so that both buildah runs below, and the image, see
# one state of a tree that may be edited meanwhile.
CONTEXT=$(mktemp -d /var/tmp/credbroker-context.XXXXXX)
trap 'rm -rf "$CONTEXT"' EXIT
tar -C "$ROOT" -cf - --exclude=build --exclude=.git --exclude=node_modules --exclude=__pycache__ \
    --exclude=.credbroker .dockerignore "${CONTEXT_PATHS[@]}" | tar -C "$CONTEXT" -xf - ||
  die "could not copy the build context"

build_args=(
  --isolation chroot --layers --pull=never
  -f "$ROOT/deploy/Dockerfile"
  # ccache in the cache folder (kept by CI) instead of buildah's own cache mount, which lives in
  # /var/tmp/buildah-cache.
  --volume "$CACHE/ccache:/ccache-host:rw"
  --build-arg CCACHE_DIR=/ccache-host
)
no_cache=()
[ "$NO_CACHE" -eq 1 ] && no_cache=(--no-cache)

start=$(date +%s)
say "building $IMAGE:$sha and $IMAGE:dev"
# The revision as a label of this run: a build argument used by a LABEL line does not take part
# in buildah 1.28's layer cache, so the label would keep the first build's value.
buildah bud "${build_args[@]}" "${no_cache[@]}" --label org.opencontainers.image.revision="$revision" \
    -t "$IMAGE:$sha" -t "$IMAGE:dev" "$CONTEXT" ||
  die "buildah bud failed (see the output above)"
# Then the build stage alone, from the layer cache, only to tag it: its last layer (the compiled
# programs) is then no dangling image and survives the prune below, so an unchanged tree rebuilds
# without compiling.
buildah bud "${build_args[@]}" --quiet --target build -t "$BUILD_CACHE_TAG" "$CONTEXT" >/dev/null ||
  die "buildah bud --target build failed"
say "built in $(elapsed "$start")"
# Layers of earlier builds that nothing uses any more (with vfs each is a full copy of its tree).
buildah rmi --prune >/dev/null 2>&1 || say "warning: could not prune unused images"

# --- check ----------------------------------------------------------------------------------------
# Every program is run directly (exec form): the image must not need a shell at run time.
start=$(date +%s)
ref=$IMAGE:dev
cfg() { buildah inspect --type image --format "$1" "$ref"; }

user=$(cfg '{{.OCIv1.Config.User}}')
[ "$user" = "65532:65532" ] || die "image user is '$user', want 65532:65532"
entrypoint=$(cfg '{{range .OCIv1.Config.Entrypoint}}<{{.}}>{{end}}')
[ "$entrypoint" = '</usr/local/bin/credbroker>' ] ||
  die "entrypoint is $entrypoint, want exec form [\"/usr/local/bin/credbroker\"]"
label=$(cfg '{{index .OCIv1.Config.Labels "org.opencontainers.image.revision"}}')
[ "$label" = "$revision" ] || die "image label revision is '$label', want '$revision'"
ports=$(cfg '{{range $p, $_ := .OCIv1.Config.ExposedPorts}}{{$p}} {{end}}')
for p in 7443/tcp 9464/tcp 7444/tcp; do
  [[ " $ports" == *" $p "* ]] || die "port $p is not exposed (exposed: $ports)"
done
[[ " $(cfg '{{range $v, $_ := .OCIv1.Config.Volumes}}{{$v}} {{end}}')" == *" /var/lib/credbroker "* ]] ||
  die "/var/lib/credbroker is not a volume"

ctr=$(buildah from --pull=never "$ref") || die "buildah from $ref failed"
mnt=""
cleanup() {
  [ -n "$mnt" ] && buildah umount "$ctr" >/dev/null 2>&1
  buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$CONTEXT"
}
trap cleanup EXIT

run_in() { buildah run --isolation chroot "$@"; }

uid=$(run_in "$ctr" -- /usr/bin/id -u) || die "could not run /usr/bin/id in the image"
[ "$uid" = 65532 ] || die "processes in the image run as uid $uid, want 65532"

out=$(run_in "$ctr" -- /usr/local/bin/credbroker --version 2>&1) ||
  die "credbroker --version failed in the image: $out"
say "credbroker --version: $out"
out=$(run_in "$ctr" -- /usr/local/bin/credctl --help 2>&1) ||
  die "credctl --help failed in the image: $out"
say "credctl --help: $(printf '%s\n' "$out" | head -n 1)"
out=$(run_in -v "$ROOT/examples:/etc/credbroker:ro" "$ctr" -- \
        /usr/local/bin/credbroker --check-config /etc/credbroker/local.yaml 2>&1) ||
  die "credbroker --check-config examples/local.yaml failed in the image: $out"
say "credbroker --check-config: $out"

# The dynamic loader's view of both binaries (what ldd shows), run directly.
loader=/lib64/ld-linux-x86-64.so.2
libs=""
for bin in credbroker credctl; do
  list=$(run_in "$ctr" -- "$loader" --list "/usr/local/bin/$bin" 2>&1) ||
    die "$loader --list /usr/local/bin/$bin failed: $list"
  if grep -q 'not found' <<<"$list"; then
    die "libraries of $bin missing from the image (add their packages to deploy/Dockerfile):
$(grep 'not found' <<<"$list")"
  fi
  libs+=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 }' <<<"$list")$'\n'
done

mnt=$(buildah mount "$ctr") || die "buildah mount failed"
db=(--admindir="$mnt/var/lib/dpkg")
# Packages owning the loaded libraries (the library closure, base packages included).
closure=$(for lib in $(sort -u <<<"$libs"); do
  dpkg-query "${db[@]}" -S "$lib" 2>/dev/null ||
    dpkg-query "${db[@]}" -S "${lib#/usr}" 2>/dev/null ||
    dpkg-query "${db[@]}" -S "/usr$lib" 2>/dev/null ||
    echo "?: $lib"
done | cut -d: -f1 | sort -u)
grep -q '^?' <<<"$closure" && die "no package owns some loaded libraries: $closure"
say "runtime library packages (loader closure): $(tr '\n' ' ' <<<"$closure")"
# The runtime packages deploy/Dockerfile lists must be exactly those the build stage derived from
# the binaries (owners of their DT_NEEDED libraries).
listed=$(awk '/^FROM/ { final = 0 } /^FROM debian:bookworm-slim$/ { final = 1 }
              final && /apt-get install/ { inst = 1; next }
              inst && /^ *[a-z0-9][a-z0-9.+-]* *\\$/ { print $1; next } { inst = 0 }' deploy/Dockerfile |
         grep -vx ca-certificates | sort -u)
[ -n "$listed" ] || die "could not read the runtime package list in deploy/Dockerfile"
derived_file=$mnt/usr/local/share/credbroker/runtime-packages
[ -s "$derived_file" ] || die "the image lacks /usr/local/share/credbroker/runtime-packages"
if ! difference=$(diff <(echo "$listed") <(sort -u "$derived_file")); then
  die "deploy/Dockerfile's runtime packages (<) differ from what the binaries link (>):
$difference"
fi
say "runtime packages (direct): $(tr '\n' ' ' <<<"$listed")"

# No build tools: neither files nor packages.
for f in usr/bin/gcc usr/bin/g++ usr/bin/cc usr/bin/c++ usr/bin/cpp usr/bin/ld usr/bin/as \
         usr/bin/cmake usr/bin/ninja usr/bin/make usr/bin/clang usr/bin/ccache; do
  if [ -e "$mnt/$f" ] || [ -L "$mnt/$f" ]; then die "the image contains /$f"; fi
done
compgen -G "$mnt/usr/lib/gcc/*/*/cc1*" >/dev/null && die "the image contains a compiler (cc1)"
dev_pkgs=$(dpkg-query "${db[@]}" -W -f='${db:Status-Abbrev} ${Package}\n' |
  awk '$1 == "ii" { print $2 }' |
  grep -E '^(gcc|g\+\+|cpp|binutils|cmake|ninja-build|make|clang|ccache)(-[0-9]+)?$|-dev$' || true)
[ -z "$dev_pkgs" ] || die "build packages installed in the image: $dev_pkgs"
# apt's package lists are gone.
stray=$(find "$mnt/var/lib/apt/lists" -mindepth 1 -not -name lock -not -name partial -print -quit)
[ -z "$stray" ] || die "apt lists left in the image (${stray#"$mnt"})"
owner=$(stat -c %u:%g "$mnt/var/lib/credbroker")
[ "$owner" = "65532:65532" ] || die "/var/lib/credbroker is owned by $owner, want 65532:65532"

say "checked in $(elapsed "$start"): user 65532:65532, exec-form entrypoint, binaries run," \
    "no compiler, no apt lists"
say "image $IMAGE:$sha (also $IMAGE:dev): $(buildah images --format '{{.Size}}' "$ref")"
