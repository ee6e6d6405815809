# shellcheck shell=bash
# Source this (bash): exports HELM and KUBECTL, the binaries scripts/install-k8s-tools.sh installs,
# and puts their folder first on PATH. Fails (return 1) when they are not installed, so use
#   source scripts/k8s-tools-env.sh || exit 1   (or under set -e).
_cb_tools_bin="${CB_TOOLS_CACHE:-$HOME/.cache/credbroker-tools}/bin"
_cb_tools_validate="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/deploy/validate/node_modules"
if [ ! -x "$_cb_tools_bin/helm" ] || [ ! -x "$_cb_tools_bin/kubectl" ] || [ ! -d "$_cb_tools_validate" ]; then
  echo "k8s-tools-env: helm/kubectl (in $_cb_tools_bin) or the validator's node_modules are missing: run scripts/install-k8s-tools.sh" >&2
  unset _cb_tools_bin _cb_tools_validate
  # shellcheck disable=SC2317  # exit is reached only when the file is run instead of sourced
  return 1 2>/dev/null || exit 1
fi
export HELM="$_cb_tools_bin/helm"
export KUBECTL="$_cb_tools_bin/kubectl"
case ":$PATH:" in
  *":$_cb_tools_bin:"*) ;;
  *) export PATH="$_cb_tools_bin:$PATH" ;;
esac
unset _cb_tools_bin _cb_tools_validate
