#!/usr/bin/env bash
# Checks everything the project ships for Kubernetes, offline, with the real tools:
#   - values.schema.json and the kustomize base are what their generators make from the chart
#     and config.proto (scripts/gen-chart-schema.py, scripts/render-kustomize.py);
#   - helm lint --strict for every values file in helm/credbroker/ci, against the oldest and the
#     newest Kubernetes the chart supports;
#   - every object that helm template (each values file, both Kubernetes versions) and kubectl
#     kustomize (each overlay) render is valid against Kubernetes' own schemas, with no unknown
#     field (tests/deploy/validate);
#   - the broker configuration each render ships passes the real `credbroker --check-config`, at
#     the pod's paths (tests/deploy/check_rendered_config.py);
#   - the templates' behaviour: bats tests in tests/deploy (probes, securityContext, secrets,
#     NetworkPolicy, schema refusals, overlays).
#   scripts/check-deploy.sh --credbroker build/dev/services/broker/credbroker
# Needs scripts/install-k8s-tools.sh to have run (helm, kubectl, bats, yq, node modules) and
# bubblewrap. Exits non-zero on the first problem.
set -euo pipefail
cd "$(dirname "$0")/.."

credbroker=""
while [ $# -gt 0 ]; do
  case "$1" in
    --credbroker) credbroker=$2; shift 2 ;;
    *) echo "usage: $0 --credbroker PATH" >&2; exit 2 ;;
  esac
done
[ -x "$credbroker" ] || { echo "check-deploy: --credbroker must name the built broker binary" >&2; exit 2; }
# shellcheck source=scripts/k8s-tools-env.sh
source scripts/k8s-tools-env.sh
for tool in bats yq jq node bwrap; do
  command -v "$tool" >/dev/null || { echo "check-deploy: $tool not found (scripts/install-k8s-tools.sh)" >&2; exit 1; }
done
PY=/usr/bin/python3
# Oldest: native gRPC probes are GA since 1.27. Newest: the kubectl/kustomize release we ship with.
KUBE_VERSIONS=(1.27.0 1.32.0)
chart=helm/credbroker
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "==> generated files are current"
$PY scripts/gen-chart-schema.py --check
$PY scripts/render-kustomize.py --check

echo "==> helm lint --strict, helm template, schemas, credbroker --check-config"
for values in "$chart"/ci/*.yaml; do
  name=$(basename "$values" .yaml)
  for kube in "${KUBE_VERSIONS[@]}"; do
    if ! lint=$("$HELM" lint --strict "$chart" -f "$values" --kube-version "$kube" 2>&1); then
      echo "$lint" >&2
      echo "check-deploy: helm lint --strict failed for $values (Kubernetes $kube)" >&2
      exit 1
    fi
    echo "helm lint --strict $values (Kubernetes $kube): ok"
    "$HELM" template credbroker "$chart" --namespace credbroker -f "$values" \
      --kube-version "$kube" >"$out/$name-$kube.yaml" 2>"$out/helm.err" || {
      cat "$out/helm.err" >&2
      exit 1
    }
    node tests/deploy/validate/validate.mjs "$out/$name-$kube.yaml"
  done
  $PY tests/deploy/check_rendered_config.py "$out/$name-${KUBE_VERSIONS[-1]}.yaml" \
    --credbroker "$credbroker"
done

echo "==> kubectl kustomize overlays, schemas, credbroker --check-config"
for overlay in deploy/kustomize/overlays/*/; do
  name=$(basename "$overlay")
  "$KUBECTL" kustomize "$overlay" >"$out/kustomize-$name.yaml"
  node tests/deploy/validate/validate.mjs "$out/kustomize-$name.yaml"
  $PY tests/deploy/check_rendered_config.py "$out/kustomize-$name.yaml" --credbroker "$credbroker"
done

echo "==> template behaviour (bats)"
bats tests/deploy

echo "check-deploy: OK"
