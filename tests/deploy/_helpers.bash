# Shared by the chart and kustomize bats tests (in the style of vault-helm's unit tests: render
# with the real Helm, query with yq, assert). Needs HELM and KUBECTL (scripts/k8s-tools-env.sh).
ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
CHART="$ROOT/helm/credbroker"
MINIMAL="$CHART/ci/minimal-values.yaml"

# helm template with the minimal values plus any extra flags (--set, -f, -s).
render() {
  "$HELM" template test "$CHART" --namespace ai -f "$MINIMAL" "$@"
}

# The one object of a kind in a rendered stream on stdin, as JSON.
object() {
  yq -c --arg kind "$1" 'select(.kind == $kind)'
}

# The broker configuration file inside the rendered ConfigMap, as JSON.
broker_config() {
  yq -r 'select(.kind == "ConfigMap" and (.data["credbroker.yaml"] != null)) | .data["credbroker.yaml"]' | yq -c .
}

# Runs helm template expecting it to fail; $output holds helm's message.
render_fails() {
  run "$HELM" template test "$CHART" --namespace ai -f "$MINIMAL" "$@"
  [ "$status" -ne 0 ]
}

# Asserts that a pod spec (JSON in $1) meets the restricted Pod Security Standard and more.
assert_restricted_pod() {
  local pod=$1
  [ "$(jq -r '.securityContext.runAsNonRoot' <<<"$pod")" = "true" ]
  [ "$(jq -r '.securityContext.runAsUser' <<<"$pod")" = "65532" ]
  [ "$(jq -r '.securityContext.seccompProfile.type' <<<"$pod")" = "RuntimeDefault" ]
  [ "$(jq -r '.automountServiceAccountToken' <<<"$pod")" = "false" ]
  [ "$(jq -r '[.containers[] | .securityContext.readOnlyRootFilesystem] | all' <<<"$pod")" = "true" ]
  [ "$(jq -r '[.containers[] | .securityContext.allowPrivilegeEscalation == false] | all' <<<"$pod")" = "true" ]
  [ "$(jq -r '[.containers[] | .securityContext.capabilities.drop == ["ALL"]] | all' <<<"$pod")" = "true" ]
  [ "$(jq -r '[.containers[] | .securityContext.capabilities.add // [] | length == 0] | all' <<<"$pod")" = "true" ]
  [ "$(jq -r '[.containers[] | .securityContext.privileged != true] | all' <<<"$pod")" = "true" ]
  [ "$(jq -r '.hostNetwork // false' <<<"$pod")" = "false" ]
  [ "$(jq -r '[.volumes // [] | .[] | select(.hostPath)] | length' <<<"$pod")" = "0" ]
}

# Asserts that the broker configuration (JSON in $1) has no inline secret and that every *_file
# path in it lies under a volumeMount of the StatefulSet (JSON in $2).
assert_secrets_are_mounted_files() {
  local config=$1 sts=$2 mounts f
  [ "$(jq -r '[paths(scalars) | map(tostring) | join(".") | select(test("(^|\\.)(token|token_env|password|secret_id|api_key)$"))] | length' <<<"$config")" = "0" ]
  mounts=$(jq -c '[.spec.template.spec.containers[0].volumeMounts[].mountPath]' <<<"$sts")
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    [[ "$f" == /* ]]
    jq -e --arg f "$f" 'any(.[]; . as $m | $f | startswith($m + "/"))' <<<"$mounts" >/dev/null
  done < <(jq -r '[.. | objects | to_entries[] | select(.key | endswith("_file")) | .value] | .[]' <<<"$config")
  # A file source's root holds the provider folders, each a mounted Secret.
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    jq -e --arg f "$f" 'any(.[]; startswith($f + "/"))' <<<"$mounts" >/dev/null
  done < <(jq -r '.sources // [] | .[] | .file.root // empty' <<<"$config")
}
