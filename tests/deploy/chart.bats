#!/usr/bin/env bats
# What the chart's templates must guarantee, whatever the values.
load _helpers

@test "probes: native gRPC probes on the plaintext health port, readiness and liveness services" {
  local c
  c=$(render | object StatefulSet | jq -c '.spec.template.spec.containers[0]')
  [ "$(jq -r '.startupProbe.grpc.port' <<<"$c")" = "7444" ]
  [ "$(jq -r '.startupProbe.grpc.service' <<<"$c")" = "readiness" ]
  [ "$(jq -r '.readinessProbe.grpc.port' <<<"$c")" = "7444" ]
  [ "$(jq -r '.readinessProbe.grpc.service' <<<"$c")" = "readiness" ]
  [ "$(jq -r '.livenessProbe.grpc.port' <<<"$c")" = "7444" ]
  [ "$(jq -r '.livenessProbe.grpc.service' <<<"$c")" = "liveness" ]
  [ "$(jq -r '[.startupProbe, .readinessProbe, .livenessProbe] | map(.httpGet // .exec // .tcpSocket) | map(select(. != null)) | length' <<<"$c")" = "0" ]
  # The broker serves the health-only listener on that port.
  [ "$(render | broker_config | jq -r '.server.health_listen')" = "0.0.0.0:7444" ]
  # A custom port moves the probes and the listener together.
  c=$(render --set server.healthPort=8081 | object StatefulSet | jq -c '.spec.template.spec.containers[0]')
  [ "$(jq -r '.readinessProbe.grpc.port' <<<"$c")" = "8081" ]
  [ "$(render --set server.healthPort=8081 | broker_config | jq -r '.server.health_listen')" = "0.0.0.0:8081" ]
}

@test "securityContext: restricted for the broker and the test pod" {
  local rendered pod
  rendered=$(render)
  assert_restricted_pod "$(object StatefulSet <<<"$rendered" | jq -c '.spec.template.spec')"
  assert_restricted_pod "$(object Pod <<<"$rendered" | jq -c '.spec')"
  # Resources are set, and the only writable paths are volumes.
  pod=$(object StatefulSet <<<"$rendered" | jq -c '.spec.template.spec')
  [ "$(jq -r '.containers[0].resources.requests.memory' <<<"$pod")" = "128Mi" ]
  [ "$(jq -r '.containers[0].resources.limits.memory' <<<"$pod")" = "512Mi" ]
}

@test "secrets: no ConfigMap holds a secret; every secret is a file from a mounted Secret" {
  local rendered
  for values in "$CHART"/ci/*.yaml; do
    rendered=$("$HELM" template test "$CHART" --namespace ai -f "$values")
    # No Secret objects are rendered: the chart only mounts Secrets the operator created.
    [ "$(yq -r 'select(.kind == "Secret") | .metadata.name' <<<"$rendered")" = "" ]
    assert_secrets_are_mounted_files "$(broker_config <<<"$rendered")" "$(object StatefulSet <<<"$rendered")"
  done
  # The schema refuses an inline token or a file path where a Secret reference belongs.
  render_fails --set 'identity.staticTokens[0].service=x' --set 'identity.staticTokens[0].token=abc' \
    --set 'identity.staticTokens[0].secret.name=s' --set 'identity.staticTokens[0].secret.key=k'
  [[ "$output" == *"token"* ]]
  render_fails --set 'providers[0].name=firemoon' --set 'providers[0].mint.admin_key_file=/k'
  [[ "$output" == *"admin_key_file"* ]]
}

@test "networkpolicy: only labelled clients reach gRPC, only the monitoring namespace reaches metrics" {
  local np
  np=$(render | object NetworkPolicy)
  [ "$(jq -r '.spec.podSelector.matchLabels["app.kubernetes.io/name"]' <<<"$np")" = "credbroker" ]
  [ "$(jq -r '.spec.podSelector.matchLabels["app.kubernetes.io/instance"]' <<<"$np")" = "test" ]
  [ "$(jq -c '.spec.policyTypes' <<<"$np")" = '["Ingress"]' ]
  [ "$(jq -r '.spec.ingress | length' <<<"$np")" = "2" ]
  [ "$(jq -c '.spec.ingress[0].ports' <<<"$np")" = '[{"port":"grpc","protocol":"TCP"}]' ]
  [ "$(jq -c '.spec.ingress[0].from[0].podSelector.matchLabels' <<<"$np")" = '{"credbroker.io/client":"true"}' ]
  [ "$(jq -c '.spec.ingress[1].ports' <<<"$np")" = '[{"port":"metrics","protocol":"TCP"}]' ]
  [ "$(jq -c '.spec.ingress[1].from[0].namespaceSelector.matchLabels' <<<"$np")" = '{"kubernetes.io/metadata.name":"monitoring"}' ]
  [ "$(jq -r '.spec.ingress[1].from[0].podSelector' <<<"$np")" = "null" ]
  # The helm test pod carries the client label, so it gets through.
  [ "$(render | object Pod | jq -r '.metadata.labels["credbroker.io/client"]')" = "true" ]
  # A different client label applies to both.
  np=$(render --set-string 'networkPolicy.clientLabel.team=media' --set 'networkPolicy.clientLabel.credbroker\.io/client=null' | object NetworkPolicy)
  [ "$(jq -c '.spec.ingress[0].from[0].podSelector.matchLabels' <<<"$np")" = '{"team":"media"}' ]
  [ "$(render --set networkPolicy.enabled=false | object NetworkPolicy)" = "" ]
}

@test "schema: unknown keys, wrong types and bad broker settings are refused" {
  render_fails --set unknownKey=1
  [[ "$output" == *"unknownKey"* ]]
  render_fails --set 'providers[0].name=lumenfall' --set 'providers[0].rotation_perod=30d'
  [[ "$output" == *"rotation_perod"* ]]
  render_fails --set 'leases.default_ttl=15 minutes'
  [[ "$output" == *"default_ttl"* ]]
  render_fails --set replicas=3
  [[ "$output" == *"replicas"* ]]
  render_fails --set state.etcd.enabled=true
  [[ "$output" == *"endpoints"* ]]
  render_fails --set state.etcd.enabled=true --set 'state.etcd.endpoints[0]=http://etcd:2379'
  [[ "$output" == *"endpoints"* ]]
  render_fails --set state.etcd.enabled=true --set 'state.etcd.endpoints[0]=etcd:2379' \
    --set state.etcd.requestTimeout=2
  [[ "$output" == *"requestTimeout"* ]]
  render_fails --set server.grpcPort=70000
  [[ "$output" == *"grpcPort"* ]]
  render_fails --set 'policy.rules[0].identities[0]=a' --set 'policy.rules[0].max_active_leases=many'
  [[ "$output" == *"max_active_leases"* ]]
  render_fails --set 'sources[0].name=both' --set 'sources[0].file.secrets.x=y' \
    --set 'sources[0].vault.address=https://vault:8200'
  [[ "$output" == *"sources"* ]]
  render_fails --set state.sqlite.synchronous=off
  [[ "$output" == *"synchronous"* ]]
  render_fails --set 'sources[0].name=v' --set 'sources[0].vault.auth.token.token_file=/t'
  [[ "$output" == *"token_file"* ]]
}

@test "validation: plaintext needs an explicit opt-in, TLS needs a certificate source" {
  render_fails --set server.insecurePlaintext=false
  [[ "$output" == *"server.tls.enabled"* ]]
  render_fails --set server.tls.enabled=true
  [[ "$output" == *"tls.secretName"* ]]
  render_fails --set server.tls.enabled=true --set server.tls.certManager.enabled=true
  [[ "$output" == *"issuerRef.name"* ]]
  render_fails --set identity.mtls.enabled=true --set server.tls.enabled=true --set server.tls.secretName=s
  [[ "$output" == *"clientAuth"* ]]
  render_fails --set 'sources=null'
  [[ "$output" == *"sources"* ]]
}

@test "tls: a Secret or a cert-manager Certificate, mounted where the config points" {
  local rendered config cert
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/file-tls-values.yaml")
  config=$(broker_config <<<"$rendered")
  [ "$(jq -r '.server.tls.cert_file' <<<"$config")" = "/etc/credbroker/tls/tls.crt" ]
  [ "$(jq -r '.server.tls.client_ca_file' <<<"$config")" = "/etc/credbroker/tls/ca.crt" ]
  [ "$(jq -r '.server.insecure_plaintext // false' <<<"$config")" = "false" ]
  [ "$(object StatefulSet <<<"$rendered" | jq -r '.spec.template.spec.volumes[] | select(.name == "tls") | .secret.secretName')" = "credbroker-tls" ]
  # The test pod talks TLS with the CA only (not the server's key).
  [ "$(object Pod <<<"$rendered" | jq -c '.spec.volumes[0].secret.items')" = '[{"key":"ca.crt","path":"ca.crt"}]' ]
  object Pod <<<"$rendered" | jq -e '.spec.containers[0].args | index("--tls-ca")' >/dev/null
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/vault-values.yaml")
  cert=$(object Certificate <<<"$rendered")
  [ "$(jq -r '.spec.secretName' <<<"$cert")" = "test-credbroker-tls" ]
  [ "$(jq -r '.spec.issuerRef.kind' <<<"$cert")" = "ClusterIssuer" ]
  jq -e '.spec.dnsNames | index("test-credbroker.ai.svc") and index("credbroker.example.internal")' <<<"$cert" >/dev/null
  [ "$(object StatefulSet <<<"$rendered" | jq -r '.spec.template.spec.volumes[] | select(.name == "tls") | .secret.secretName')" = "test-credbroker-tls" ]
  [ "$(render | object Certificate)" = "" ]
}

@test "sources: file Secrets and Vault auth become mounts and paths" {
  local rendered config sts
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/file-tls-values.yaml")
  config=$(broker_config <<<"$rendered")
  [ "$(jq -r '.sources[0].file.root' <<<"$config")" = "/etc/credbroker/sources/k8s" ]
  [ "$(jq -r '.sources[0].max_staleness' <<<"$config")" = "12h" ]
  sts=$(object StatefulSet <<<"$rendered")
  [ "$(jq -r '.spec.template.spec.containers[0].volumeMounts[] | select(.mountPath == "/etc/credbroker/sources/k8s/lumenfall") | .readOnly' <<<"$sts")" = "true" ]
  [ "$(jq -r '.spec.template.spec.volumes[] | select(.secret.secretName == "lumenfall-keys") | .name' <<<"$sts")" != "" ]
  # Vault's Kubernetes auth gets its own projected token, for Vault's audience only.
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/vault-values.yaml")
  config=$(broker_config <<<"$rendered")
  [ "$(jq -r '.sources[0].vault.auth.kubernetes.jwt_file' <<<"$config")" = "/var/run/secrets/credbroker/vault-vault/token" ]
  [ "$(jq -r '.sources[0].vault.auth.kubernetes.audience // "none"' <<<"$config")" = "none" ]
  [ "$(jq -r '.sources[0].vault.ca_file' <<<"$config")" = "/etc/credbroker/vault/vault/ca/ca.crt" ]
  sts=$(object StatefulSet <<<"$rendered")
  [ "$(jq -r '.spec.template.spec.volumes[] | select(.name == "vault-vault-jwt") | .projected.sources[0].serviceAccountToken.audience' <<<"$sts")" = "vault" ]
  # AppRole, token auth and a minted provider's admin key come from Secrets.
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/vault-approle-minted-values.yaml")
  config=$(broker_config <<<"$rendered")
  [ "$(jq -r '.sources[0].vault.auth.approle.secret_id_file' <<<"$config")" = "/etc/credbroker/vault/vault/approle/secret-id" ]
  [ "$(jq -r '.sources[1].vault.auth.token.token_file' <<<"$config")" = "/etc/credbroker/vault/vault-legacy/token/token" ]
  [ "$(jq -r '.providers[0].mint.admin_key_file' <<<"$config")" = "/etc/credbroker/mint/firemoon/admin-key" ]
  [ "$(jq -r '.providers[0].mint.adminKeySecret // "none"' <<<"$config")" = "none" ]
}

@test "sources: cloud secret managers get their CA from a Secret and their identity from the platform" {
  local rendered config sts
  # AWS: IRSA through the ServiceAccount's annotation; nothing secret in the chart.
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/aws-values.yaml")
  config=$(broker_config <<<"$rendered")
  [ "$(jq -r '.sources[0].aws.region' <<<"$config")" = "eu-west-1" ]
  [ "$(jq -r '.sources[0].aws.ca_file' <<<"$config")" = "/etc/credbroker/aws/aws/ca/ca.crt" ]
  [ "$(jq -r '.sources[0].aws.caSecret // "none"' <<<"$config")" = "none" ]
  sts=$(object StatefulSet <<<"$rendered")
  [ "$(jq -r '.spec.template.spec.volumes[] | select(.name == "aws-aws-ca") | .secret.secretName' <<<"$sts")" = "corp-ca" ]
  [ "$(jq -r '.spec.template.spec.containers[0].volumeMounts[] | select(.name == "aws-aws-ca") | .mountPath' <<<"$sts")" = "/etc/credbroker/aws/aws/ca" ]
  [ "$(object ServiceAccount <<<"$rendered" | jq -r '.metadata.annotations["eks.amazonaws.com/role-arn"]')" = "arn:aws:iam::123456789012:role/credbroker" ]
  # GCP outside GKE: a projected token for the workload identity pool's audience.
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/gcp-values.yaml")
  config=$(broker_config <<<"$rendered")
  [ "$(jq -r '.sources[0].gcp.auth.workload_identity_federation.token_file' <<<"$config")" = "/var/run/secrets/credbroker/gcp-gcp/token" ]
  sts=$(object StatefulSet <<<"$rendered")
  [ "$(jq -r '.spec.template.spec.volumes[] | select(.name == "gcp-gcp-wif") | .projected.sources[0].serviceAccountToken.audience' <<<"$sts")" = "https://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/k8s/providers/prod-cluster" ]
  # Azure: the workload identity webhook's label and annotation, no token file in the config.
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/azure-values.yaml")
  config=$(broker_config <<<"$rendered")
  [ "$(jq -r '.sources[0].azure.vault_url' <<<"$config")" = "https://ai-platform-prod.vault.azure.net" ]
  [ "$(jq -c '.sources[0].azure.auth' <<<"$config")" = '{"workload_identity":{}}' ]
  sts=$(object StatefulSet <<<"$rendered")
  [ "$(jq -r '.spec.template.metadata.labels["azure.workload.identity/use"]' <<<"$sts")" = "true" ]
  # The schema refuses file paths where the chart mounts things, and unknown keys.
  render_fails --set 'sources[0].name=a' --set 'sources[0].aws.ca_file=/ca.pem'
  [[ "$output" == *"ca_file"* ]]
  render_fails --set 'sources[0].name=g' --set 'sources[0].gcp.project=p' \
    --set 'sources[0].gcp.auth.workload_identity_federation.token_file=/t'
  [[ "$output" == *"token_file"* ]]
  render_fails --set 'sources[0].name=z' --set 'sources[0].azure.vaultUrl=https://v.vault.azure.net'
  [[ "$output" == *"vaultUrl"* ]]
}

@test "identity: service-account tokens verified with the JWKS, RBAC for exactly that" {
  local rendered config crb
  rendered=$(render)
  config=$(broker_config <<<"$rendered")
  [ "$(jq -r '.identity.kubernetes.audience' <<<"$config")" = "credbroker" ]
  [ "$(jq -r '.identity.kubernetes.jwks_bearer_token_file' <<<"$config")" = "/var/run/secrets/kubernetes.io/serviceaccount/token" ]
  crb=$(object ClusterRoleBinding <<<"$rendered")
  [ "$(jq -r '.roleRef.name' <<<"$crb")" = "system:service-account-issuer-discovery" ]
  [ "$(jq -r '.subjects[0].namespace' <<<"$crb")" = "ai" ]
  [ "$(yq -r 'select(.kind == "ClusterRole" or .kind == "Role") | .metadata.name' <<<"$rendered")" = "" ]
  # The broker's API token is short-lived and mounted only where the config reads it.
  [ "$(object StatefulSet <<<"$rendered" | jq -r '.spec.template.spec.volumes[] | select(.name == "kube-api-access") | .projected.sources[0].serviceAccountToken.expirationSeconds')" = "3600" ]
  rendered=$(render --set identity.kubernetes.enabled=false)
  [ "$(object ClusterRoleBinding <<<"$rendered")" = "" ]
  [ "$(object StatefulSet <<<"$rendered" | jq -r '[.spec.template.spec.volumes[].name] | index("kube-api-access")')" = "null" ]
}

@test "state: one replica on sqlite with a PVC; the PDB never blocks a drain" {
  local rendered sts
  rendered=$(render)
  sts=$(object StatefulSet <<<"$rendered")
  [ "$(jq -r '.spec.replicas' <<<"$sts")" = "1" ]
  [ "$(jq -r '.spec.volumeClaimTemplates[0].spec.resources.requests.storage' <<<"$sts")" = "1Gi" ]
  [ "$(broker_config <<<"$rendered" | jq -r '.server.data_dir')" = "/var/lib/credbroker" ]
  [ "$(jq -r '.spec.template.spec.containers[0].volumeMounts[] | select(.name == "data") | .mountPath' <<<"$sts")" = "/var/lib/credbroker" ]
  [ "$(object PodDisruptionBudget <<<"$rendered" | jq -r '.spec.maxUnavailable')" = "1" ]
  [ "$(jq -r '.spec.template.spec.terminationGracePeriodSeconds' <<<"$sts")" = "30" ]
  [ "$(broker_config <<<"$rendered" | jq -r '.server.shutdown_grace')" = "20s" ]
}

@test "state: several replicas on etcd, TLS and password from Secrets, no PVC" {
  local rendered sts cfg
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/etcd-values.yaml")
  sts=$(object StatefulSet <<<"$rendered")
  cfg=$(broker_config <<<"$rendered")
  [ "$(jq -r '.spec.replicas' <<<"$sts")" = "3" ]
  [ "$(jq -r '.spec.podManagementPolicy' <<<"$sts")" = "Parallel" ]
  [ "$(jq -r '.spec.volumeClaimTemplates // [] | length' <<<"$sts")" = "0" ]
  [ "$(jq -r '.spec.template.spec.volumes[] | select(.name == "data") | .emptyDir != null' <<<"$sts")" = "true" ]
  [ "$(jq -r '.state | keys | join(",")' <<<"$cfg")" = "etcd" ]
  [ "$(jq -r '.state.etcd.endpoints | length' <<<"$cfg")" = "3" ]
  [ "$(jq -r '.state.etcd.prefix' <<<"$cfg")" = "/credbroker/prod/" ]
  [ "$(jq -r '.state.etcd.request_timeout' <<<"$cfg")" = "2s" ]
  [ "$(jq -r '.state.etcd.username' <<<"$cfg")" = "credbroker" ]
  # Every file the config names is in a mounted Secret.
  local ca cert pw
  ca=$(jq -r '.state.etcd.tls.ca' <<<"$cfg")
  cert=$(jq -r '.state.etcd.tls.cert' <<<"$cfg")
  pw=$(jq -r '.state.etcd.password_file' <<<"$cfg")
  [ "$(jq -r --arg d "$(dirname "$ca")" '.spec.template.spec.containers[0].volumeMounts[] | select(.mountPath == $d) | .name' <<<"$sts")" = "etcd-tls" ]
  [ "$(dirname "$cert")" = "$(dirname "$ca")" ]
  [ "$(jq -r '.spec.template.spec.volumes[] | select(.name == "etcd-tls") | .secret.secretName' <<<"$sts")" = "credbroker-etcd-client" ]
  [ "$(jq -r --arg d "$(dirname "$pw")" '.spec.template.spec.containers[0].volumeMounts[] | select(.mountPath == $d) | .name' <<<"$sts")" = "etcd-password" ]
  [ "$(jq -r '.spec.template.spec.volumes[] | select(.name == "etcd-password") | .secret.items[0].key' <<<"$sts")" = "password" ]
  [ "$(jq -r '.spec.template.spec.volumes[] | select(.name == "etcd-password") | .secret.items[0].path' <<<"$sts")" = "$(basename "$pw")" ]
  # A drain moves one replica at a time; the others keep serving.
  [ "$(object PodDisruptionBudget <<<"$rendered" | jq -r '.spec.maxUnavailable')" = "1" ]
  # Half-configured etcd settings are refused with the field named.
  render_fails --set replicas=2 --set state.etcd.enabled=true --set 'state.etcd.endpoints[0]=etcd:2379' \
    --set state.etcd.tls.enabled=true
  [[ "$output" == *"state.etcd.tls.secretName"* ]]
  render_fails --set state.etcd.enabled=true --set 'state.etcd.endpoints[0]=etcd:2379' \
    --set state.etcd.auth.username=u
  [[ "$output" == *"state.etcd.auth"* ]]
}

@test "config changes roll the pod (checksum annotation)" {
  local a b
  a=$(render | object StatefulSet | jq -r '.spec.template.metadata.annotations["checksum/config"]')
  b=$(render --set leases.default_ttl=5m | object StatefulSet | jq -r '.spec.template.metadata.annotations["checksum/config"]')
  [ -n "$a" ] && [ "$a" != "$b" ]
}

@test "monitoring: the shipped alerts and dashboard, one source of truth, job=credbroker" {
  local rendered
  rendered=$("$HELM" template test "$CHART" --namespace ai -f "$CHART/ci/file-tls-values.yaml")
  [ "$(object PrometheusRule <<<"$rendered" | jq -S -c '.spec')" = "$(yq -S -c . "$ROOT/deploy/prometheus/alerts.yaml")" ]
  [ "$(object PrometheusRule <<<"$rendered" | jq -r '.metadata.labels.release')" = "kube-prometheus-stack" ]
  [ "$(object ServiceMonitor <<<"$rendered" | jq -r '.spec.jobLabel')" = "app.kubernetes.io/name" ]
  [ "$(object Service <<<"$rendered" | jq -r 'select(.spec.clusterIP != "None") | .metadata.labels["app.kubernetes.io/name"]')" = "credbroker" ]
  [ "$(object ConfigMap <<<"$rendered" | jq -r 'select(.metadata.name == "test-credbroker-dashboard") | .data["credbroker-dashboard.json"]' | jq -S -c .)" = "$(jq -S -c . "$ROOT/deploy/grafana/credbroker-dashboard.json")" ]
  [ "$(render | yq -r 'select(.kind == "PrometheusRule" or .kind == "ServiceMonitor") | .kind')" = "" ]
}

@test "helm test: credctl health readiness against the release's Service" {
  local pod
  pod=$(render | object Pod)
  [ "$(jq -r '.metadata.annotations["helm.sh/hook"]' <<<"$pod")" = "test" ]
  [ "$(jq -r '.spec.containers[0].command[0]' <<<"$pod")" = "/usr/local/bin/credctl" ]
  [ "$(jq -c '.spec.containers[0].args' <<<"$pod")" = '["--addr","test-credbroker.ai.svc:7443","health","readiness"]' ]
}
