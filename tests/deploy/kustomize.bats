#!/usr/bin/env bats
# The kustomize base and overlays: rendered by the real kubectl kustomize, held to the chart's rules.
load _helpers

overlay() {
  "$KUBECTL" kustomize "$ROOT/deploy/kustomize/overlays/$1"
}

@test "kustomize: the base is the chart's render (scripts/render-kustomize.py --check)" {
  run /usr/bin/python3 "$ROOT/scripts/render-kustomize.py" --check
  [ "$status" -eq 0 ] || { echo "$output"; false; }
}

@test "kustomize: every overlay runs a restricted pod with gRPC probes on the health port" {
  local rendered sts
  for o in dev prod; do
    rendered=$(overlay "$o")
    sts=$(object StatefulSet <<<"$rendered")
    assert_restricted_pod "$(jq -c '.spec.template.spec' <<<"$sts")"
    [ "$(jq -r '.spec.template.spec.containers[0].readinessProbe.grpc.port' <<<"$sts")" = "7444" ]
    [ "$(jq -r '.spec.template.spec.containers[0].livenessProbe.grpc.service' <<<"$sts")" = "liveness" ]
    # dev: one replica on SQLite with its volume; prod: three on etcd, no volume.
    if [ "$o" = dev ]; then
      [ "$(jq -r '.spec.replicas' <<<"$sts")" = "1" ]
      [ "$(jq -r '.spec.volumeClaimTemplates | length' <<<"$sts")" = "1" ]
    else
      [ "$(jq -r '.spec.replicas' <<<"$sts")" = "3" ]
      [ "$(jq -r '.spec.volumeClaimTemplates // [] | length' <<<"$sts")" = "0" ]
      [ "$(jq -r '.spec.template.spec.volumes[] | select(.name == "data") | .emptyDir != null' <<<"$sts")" = "true" ]
      [ "$(yq -r 'select(.kind == "ConfigMap" and .data["credbroker.yaml"] != null) | .data["credbroker.yaml"]' <<<"$rendered" | yq -r '.state.etcd.endpoints | length')" = "3" ]
    fi
    # The namespace enforces the restricted Pod Security Standard.
    [ "$(object Namespace <<<"$rendered" | jq -r '.metadata.labels["pod-security.kubernetes.io/enforce"]')" = "restricted" ]
  done
}

@test "kustomize: every namespaced object lands in the overlay's namespace" {
  for o in dev prod; do
    local ns
    ns=$([ "$o" = dev ] && echo credbroker-dev || echo credbroker)
    [ "$(overlay "$o" | yq -r --arg ns "$ns" 'select(.kind != "Namespace" and .kind != "ClusterRoleBinding" and .metadata.namespace != $ns) | .kind')" = "" ]
    [ "$(overlay "$o" | object ClusterRoleBinding | jq -r '.subjects[0].namespace')" = "$ns" ]
  done
}

@test "kustomize: no secret in a ConfigMap; the config reads only mounted files" {
  local rendered config
  for o in dev prod; do
    rendered=$(overlay "$o")
    config=$(yq -r 'select(.kind == "ConfigMap" and .data["credbroker.yaml"] != null) | .data["credbroker.yaml"]' <<<"$rendered" | yq -c .)
    [ -n "$config" ]
    assert_secrets_are_mounted_files "$config" "$(object StatefulSet <<<"$rendered")"
    # The StatefulSet mounts the generated ConfigMap (hash-suffixed name), so edits roll the pod.
    local cm
    cm=$(object StatefulSet <<<"$rendered" | jq -r '.spec.template.spec.volumes[] | select(.name == "config") | .configMap.name')
    [[ "$cm" == credbroker-* ]]
    [ "$(yq -r --arg cm "$cm" 'select(.kind == "ConfigMap" and .metadata.name == $cm) | .metadata.name' <<<"$rendered")" = "$cm" ]
  done
}

@test "kustomize: dev is plaintext with demo Secrets; prod is TLS from cert-manager, Vault and monitoring" {
  local dev prod
  dev=$(overlay dev)
  [ "$(yq -r 'select(.kind == "ConfigMap") | .data["credbroker.yaml"]' <<<"$dev" | yq -r '.server.insecure_plaintext')" = "true" ]
  [ "$(object StatefulSet <<<"$dev" | jq -r '[.spec.template.spec.volumes[].name] | index("tls")')" = "null" ]
  [ "$(yq -r 'select(.kind == "Secret") | .metadata.name' <<<"$dev" | grep -c '^lumenfall-keys-')" = "1" ]
  prod=$(overlay prod)
  [ "$(yq -r 'select(.kind == "ConfigMap" and .data["credbroker.yaml"] != null) | .data["credbroker.yaml"]' <<<"$prod" | yq -r '.server.tls.client_ca_file')" = "/etc/credbroker/tls/ca.crt" ]
  [ "$(object Certificate <<<"$prod" | jq -r '.spec.secretName')" = "credbroker-tls" ]
  [ "$(object StatefulSet <<<"$prod" | jq -r '.spec.template.spec.volumes[] | select(.name == "tls") | .secret.secretName')" = "credbroker-tls" ]
  [ "$(object StatefulSet <<<"$prod" | jq -r '.spec.template.spec.volumes[] | select(.name == "vault-jwt") | .projected.sources[0].serviceAccountToken.audience')" = "vault" ]
  [ "$(object StatefulSet <<<"$prod" | jq -r '[.spec.template.spec.volumes[].name] | map(select(startswith("src-"))) | length')" = "0" ]
  [ "$(object PrometheusRule <<<"$prod" | jq -S -c '.spec')" = "$(yq -S -c . "$ROOT/deploy/prometheus/alerts.yaml")" ]
  [ "$(object ServiceMonitor <<<"$prod" | jq -r '.spec.jobLabel')" = "app.kubernetes.io/name" ]
  [ "$(yq -r 'select(.kind == "Secret") | .metadata.name' <<<"$prod")" = "" ]
}

@test "kustomize: NetworkPolicy admits labelled clients and the monitoring namespace only" {
  local np
  np=$(overlay prod | object NetworkPolicy)
  [ "$(jq -c '.spec.ingress[0].from[0].podSelector.matchLabels' <<<"$np")" = '{"credbroker.io/client":"true"}' ]
  [ "$(jq -c '.spec.ingress[1].from[0].namespaceSelector.matchLabels' <<<"$np")" = '{"kubernetes.io/metadata.name":"monitoring"}' ]
  [ "$(jq -r '.spec.podSelector.matchLabels["app.kubernetes.io/name"]' <<<"$np")" = "credbroker" ]
}
