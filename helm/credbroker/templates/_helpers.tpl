{{/* Names and labels. */}}
{{- define "credbroker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "credbroker.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "credbroker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "credbroker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "credbroker.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "credbroker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: credbroker
{{- end -}}

{{- define "credbroker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "credbroker.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "credbroker.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "credbroker.tlsSecretName" -}}
{{- if .Values.server.tls.secretName -}}
{{- .Values.server.tls.secretName -}}
{{- else -}}
{{- printf "%s-tls" (include "credbroker.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the pod. */}}
{{- define "credbroker.dataDir" -}}/var/lib/credbroker{{- end -}}
{{- define "credbroker.tlsDir" -}}/etc/credbroker/tls{{- end -}}
{{- define "credbroker.apiTokenDir" -}}/var/run/secrets/kubernetes.io/serviceaccount{{- end -}}
{{- define "credbroker.etcdDir" -}}/etc/credbroker/etcd{{- end -}}

{{/* Fails the render when the values ask for something the broker would refuse. */}}
{{- define "credbroker.validate" -}}
{{- if and (not .Values.server.tls.enabled) (not .Values.server.insecurePlaintext) -}}
{{- fail "server: leases carry provider keys; set server.tls.enabled (with tls.secretName or tls.certManager) or, only behind a mesh that encrypts pod traffic, server.insecurePlaintext=true" -}}
{{- end -}}
{{- if and .Values.server.tls.enabled (not .Values.server.tls.secretName) (not .Values.server.tls.certManager.enabled) -}}
{{- fail "server.tls: set tls.secretName (an existing kubernetes.io/tls Secret) or tls.certManager.enabled" -}}
{{- end -}}
{{- if and .Values.server.tls.certManager.enabled (not .Values.server.tls.certManager.issuerRef.name) -}}
{{- fail "server.tls.certManager.issuerRef.name is required" -}}
{{- end -}}
{{- if and .Values.identity.mtls.enabled (not .Values.server.tls.clientAuth) -}}
{{- fail "identity.mtls needs server.tls.clientAuth (client certificates are verified against the TLS Secret's ca.crt)" -}}
{{- end -}}
{{- if and .Values.server.tls.requireClientCert (not .Values.server.tls.clientAuth) -}}
{{- fail "server.tls.requireClientCert needs server.tls.clientAuth" -}}
{{- end -}}
{{- if not .Values.sources -}}
{{- fail "sources: name at least one source of keys (file Secrets, vault, aws, gcp or azure)" -}}
{{- end -}}
{{- $etcd := .Values.state.etcd -}}
{{- if and (gt (int .Values.replicas) 1) (not $etcd.enabled) -}}
{{- fail "replicas: several replicas need state.etcd.enabled (the sqlite state store belongs to one broker)" -}}
{{- end -}}
{{- if and $etcd.enabled (not $etcd.endpoints) -}}
{{- fail "state.etcd.endpoints: name at least one etcd member (host:port)" -}}
{{- end -}}
{{- if and $etcd.enabled $etcd.tls.enabled (not $etcd.tls.secretName) -}}
{{- fail "state.etcd.tls.secretName: the Secret with ca.crt (and tls.crt, tls.key for clientCert) is required" -}}
{{- end -}}
{{- if and $etcd.enabled (ne (empty $etcd.auth.username) (empty $etcd.auth.passwordSecret.name)) -}}
{{- fail "state.etcd.auth: set username and passwordSecret.name together" -}}
{{- end -}}
{{- if not .Values.providers -}}
{{- fail "providers: name at least one provider to serve" -}}
{{- end -}}
{{- end -}}

{{/* Volumes and mounts of the secrets the configuration refers to, as a list of
     {name, mountPath, volume} (the volume without its name). */}}
{{- define "credbroker.secretMounts" -}}
{{- $mounts := list -}}
{{- range $s := .Values.sources -}}
{{- if $s.file -}}
{{- range $folder, $secret := $s.file.secrets -}}
{{- $mounts = append $mounts (dict "name" (printf "src-%s-%s" $s.name $folder | trunc 63 | trimSuffix "-") "mountPath" (printf "/etc/credbroker/sources/%s/%s" $s.name $folder) "volume" (dict "secret" (dict "secretName" $secret "defaultMode" 288))) -}}
{{- end -}}
{{- end -}}
{{- if $s.vault -}}
{{- $v := $s.vault -}}
{{- if $v.caSecret -}}
{{- $mounts = append $mounts (dict "name" (printf "vault-%s-ca" $s.name) "mountPath" (printf "/etc/credbroker/vault/%s/ca" $s.name) "volume" (dict "secret" (dict "secretName" $v.caSecret.name "defaultMode" 288 "items" (list (dict "key" $v.caSecret.key "path" "ca.crt"))))) -}}
{{- end -}}
{{- if $v.clientCertSecret -}}
{{- $mounts = append $mounts (dict "name" (printf "vault-%s-client" $s.name) "mountPath" (printf "/etc/credbroker/vault/%s/client" $s.name) "volume" (dict "secret" (dict "secretName" $v.clientCertSecret.name "defaultMode" 288))) -}}
{{- end -}}
{{- $auth := $v.auth | default dict -}}
{{- if $auth.kubernetes -}}
{{- $mounts = append $mounts (dict "name" (printf "vault-%s-jwt" $s.name) "mountPath" (printf "/var/run/secrets/credbroker/vault-%s" $s.name) "volume" (dict "projected" (dict "defaultMode" 288 "sources" (list (dict "serviceAccountToken" (dict "audience" (default "vault" $auth.kubernetes.audience) "expirationSeconds" 3600 "path" "token")))))) -}}
{{- end -}}
{{- if $auth.approle -}}
{{- $mounts = append $mounts (dict "name" (printf "vault-%s-approle" $s.name) "mountPath" (printf "/etc/credbroker/vault/%s/approle" $s.name) "volume" (dict "secret" (dict "secretName" $auth.approle.secretIdSecret.name "defaultMode" 288 "items" (list (dict "key" $auth.approle.secretIdSecret.key "path" "secret-id"))))) -}}
{{- end -}}
{{- if $auth.token -}}
{{- $mounts = append $mounts (dict "name" (printf "vault-%s-token" $s.name) "mountPath" (printf "/etc/credbroker/vault/%s/token" $s.name) "volume" (dict "secret" (dict "secretName" $auth.token.secret.name "defaultMode" 288 "items" (list (dict "key" $auth.token.secret.key "path" "token"))))) -}}
{{- end -}}
{{- end -}}
{{- range $type := list "aws" "gcp" "azure" -}}
{{- $block := get $s $type -}}
{{- if and $block $block.caSecret -}}
{{- $mounts = append $mounts (dict "name" (printf "%s-%s-ca" $type $s.name | trunc 63 | trimSuffix "-") "mountPath" (printf "/etc/credbroker/%s/%s/ca" $type $s.name) "volume" (dict "secret" (dict "secretName" $block.caSecret.name "defaultMode" 288 "items" (list (dict "key" $block.caSecret.key "path" "ca.crt"))))) -}}
{{- end -}}
{{- end -}}
{{- if and $s.gcp $s.gcp.auth $s.gcp.auth.workload_identity_federation -}}
{{- $wif := $s.gcp.auth.workload_identity_federation -}}
{{- $mounts = append $mounts (dict "name" (printf "gcp-%s-wif" $s.name | trunc 63 | trimSuffix "-") "mountPath" (printf "/var/run/secrets/credbroker/gcp-%s" $s.name) "volume" (dict "projected" (dict "defaultMode" 288 "sources" (list (dict "serviceAccountToken" (dict "audience" (default (printf "https:%s" $wif.audience) $wif.tokenAudience) "expirationSeconds" 3600 "path" "token")))))) -}}
{{- end -}}
{{- end -}}
{{- $etcd := .Values.state.etcd -}}
{{- if and $etcd.enabled $etcd.tls.enabled -}}
{{- $mounts = append $mounts (dict "name" "etcd-tls" "mountPath" (include "credbroker.etcdDir" .) "volume" (dict "secret" (dict "secretName" $etcd.tls.secretName "defaultMode" 288))) -}}
{{- end -}}
{{- if and $etcd.enabled $etcd.auth.passwordSecret.name -}}
{{- $mounts = append $mounts (dict "name" "etcd-password" "mountPath" (printf "%s-auth" (include "credbroker.etcdDir" .)) "volume" (dict "secret" (dict "secretName" $etcd.auth.passwordSecret.name "defaultMode" 288 "items" (list (dict "key" $etcd.auth.passwordSecret.key "path" "password"))))) -}}
{{- end -}}
{{- range $t := .Values.identity.staticTokens -}}
{{- $mounts = append $mounts (dict "name" (printf "token-%s" ($t.service | replace "/" "-")) "mountPath" (printf "/etc/credbroker/tokens/%s" ($t.service | replace "/" "-")) "volume" (dict "secret" (dict "secretName" $t.secret.name "defaultMode" 288 "items" (list (dict "key" $t.secret.key "path" "token"))))) -}}
{{- end -}}
{{- range $p := .Values.providers -}}
{{- if and $p.mint $p.mint.adminKeySecret -}}
{{- $mounts = append $mounts (dict "name" (printf "mint-%s" $p.name) "mountPath" (printf "/etc/credbroker/mint/%s" $p.name) "volume" (dict "secret" (dict "secretName" $p.mint.adminKeySecret.name "defaultMode" 288 "items" (list (dict "key" $p.mint.adminKeySecret.key "path" "admin-key"))))) -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "mounts" $mounts) -}}
{{- end -}}

{{/* The broker's configuration file. */}}
{{- define "credbroker.config" -}}
{{- $v := .Values -}}
{{- $server := dict "listen" (printf "0.0.0.0:%d" (int $v.server.grpcPort)) "metrics_listen" (printf "0.0.0.0:%d" (int $v.server.metricsPort)) "health_listen" (printf "0.0.0.0:%d" (int $v.server.healthPort)) "data_dir" (include "credbroker.dataDir" .) "shutdown_grace" (printf "%ds" (int $v.server.shutdownGraceSeconds)) "reflection" $v.server.reflection -}}
{{- if $v.server.tls.enabled -}}
{{- $tls := dict "cert_file" (printf "%s/tls.crt" (include "credbroker.tlsDir" .)) "key_file" (printf "%s/tls.key" (include "credbroker.tlsDir" .)) -}}
{{- if $v.server.tls.clientAuth -}}
{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" (include "credbroker.tlsDir" .)) -}}
{{- $_ := set $tls "require_client_cert" $v.server.tls.requireClientCert -}}
{{- end -}}
{{- $_ := set $server "tls" $tls -}}
{{- else -}}
{{- $_ := set $server "insecure_plaintext" true -}}
{{- end -}}
{{- $sources := list -}}
{{- range $s := $v.sources -}}
{{- $out := omit $s "file" "vault" "aws" "gcp" "azure" -}}
{{- if $s.file -}}
{{- $_ := set $out "file" (dict "root" (printf "/etc/credbroker/sources/%s" $s.name)) -}}
{{- end -}}
{{- if $s.vault -}}
{{- $vault := omit $s.vault "caSecret" "clientCertSecret" "auth" -}}
{{- if $s.vault.caSecret -}}
{{- $_ := set $vault "ca_file" (printf "/etc/credbroker/vault/%s/ca/ca.crt" $s.name) -}}
{{- end -}}
{{- if $s.vault.clientCertSecret -}}
{{- $_ := set $vault "client_cert_file" (printf "/etc/credbroker/vault/%s/client/tls.crt" $s.name) -}}
{{- $_ := set $vault "client_key_file" (printf "/etc/credbroker/vault/%s/client/tls.key" $s.name) -}}
{{- end -}}
{{- $auth := $s.vault.auth | default dict -}}
{{- if $auth.kubernetes -}}
{{- $_ := set $vault "auth" (dict "kubernetes" (merge (dict "jwt_file" (printf "/var/run/secrets/credbroker/vault-%s/token" $s.name)) (omit $auth.kubernetes "audience"))) -}}
{{- else if $auth.approle -}}
{{- $_ := set $vault "auth" (dict "approle" (merge (dict "secret_id_file" (printf "/etc/credbroker/vault/%s/approle/secret-id" $s.name)) (omit $auth.approle "secretIdSecret"))) -}}
{{- else if $auth.token -}}
{{- $_ := set $vault "auth" (dict "token" (dict "token_file" (printf "/etc/credbroker/vault/%s/token/token" $s.name))) -}}
{{- end -}}
{{- $_ := set $out "vault" $vault -}}
{{- end -}}
{{- range $type := list "aws" "gcp" "azure" -}}
{{- $block := get $s $type -}}
{{- if $block -}}
{{- $cloud := omit $block "caSecret" -}}
{{- if $block.caSecret -}}
{{- $_ := set $cloud "ca_file" (printf "/etc/credbroker/%s/%s/ca/ca.crt" $type $s.name) -}}
{{- end -}}
{{- if and (eq $type "gcp") $block.auth $block.auth.workload_identity_federation -}}
{{- $wif := omit $block.auth.workload_identity_federation "tokenAudience" -}}
{{- $_ := set $wif "token_file" (printf "/var/run/secrets/credbroker/gcp-%s/token" $s.name) -}}
{{- $_ := set $cloud "auth" (dict "workload_identity_federation" $wif) -}}
{{- end -}}
{{- $_ := set $out $type $cloud -}}
{{- end -}}
{{- end -}}
{{- $sources = append $sources $out -}}
{{- end -}}
{{- $providers := list -}}
{{- range $p := $v.providers -}}
{{- $out := deepCopy $p -}}
{{- if and $p.mint $p.mint.adminKeySecret -}}
{{- $mint := omit $p.mint "adminKeySecret" -}}
{{- $_ := set $mint "admin_key_file" (printf "/etc/credbroker/mint/%s/admin-key" $p.name) -}}
{{- $_ := set $out "mint" $mint -}}
{{- end -}}
{{- $providers = append $providers $out -}}
{{- end -}}
{{- $identity := dict -}}
{{- if $v.identity.kubernetes.enabled -}}
{{- $_ := set $identity "kubernetes" (dict "issuer" $v.identity.kubernetes.issuer "audience" $v.identity.kubernetes.audience "jwks_url" $v.identity.kubernetes.jwksUrl "jwks_ca_file" (printf "%s/ca.crt" (include "credbroker.apiTokenDir" .)) "jwks_bearer_token_file" (printf "%s/token" (include "credbroker.apiTokenDir" .))) -}}
{{- end -}}
{{- if $v.identity.mtls.enabled -}}
{{- $_ := set $identity "mtls" (dict "trust_domain" $v.identity.mtls.trustDomain) -}}
{{- end -}}
{{- $tokens := list -}}
{{- range $t := $v.identity.staticTokens -}}
{{- $tokens = append $tokens (dict "service" $t.service "admin" (default false $t.admin) "token_file" (printf "/etc/credbroker/tokens/%s/token" ($t.service | replace "/" "-"))) -}}
{{- end -}}
{{- if $tokens -}}
{{- $_ := set $identity "static_tokens" $tokens -}}
{{- end -}}
{{- $state := dict "sqlite" (dict "synchronous" $v.state.sqlite.synchronous) -}}
{{- if $v.state.etcd.enabled -}}
{{- $e := $v.state.etcd -}}
{{- $etcd := dict "endpoints" $e.endpoints "prefix" $e.prefix "dial_timeout" $e.dialTimeout "request_timeout" $e.requestTimeout "election_ttl" $e.electionTtl -}}
{{- if $e.tls.enabled -}}
{{- $tls := dict "ca" (printf "%s/ca.crt" (include "credbroker.etcdDir" .)) -}}
{{- if $e.tls.clientCert -}}
{{- $_ := set $tls "cert" (printf "%s/tls.crt" (include "credbroker.etcdDir" .)) -}}
{{- $_ := set $tls "key" (printf "%s/tls.key" (include "credbroker.etcdDir" .)) -}}
{{- end -}}
{{- $_ := set $etcd "tls" $tls -}}
{{- end -}}
{{- if $e.auth.username -}}
{{- $_ := set $etcd "username" $e.auth.username -}}
{{- $_ := set $etcd "password_file" (printf "%s-auth/password" (include "credbroker.etcdDir" .)) -}}
{{- end -}}
{{- $state = dict "etcd" $etcd -}}
{{- end -}}
{{- $cfg := dict "server" $server "sources" $sources "providers" $providers "identity" $identity "state" $state -}}
{{- $_ := set $cfg "policy" $v.policy -}}
{{- range $section := list "leases" "rotation" "anomaly_detection" "logging" -}}
{{- if index $v $section -}}
{{- $_ := set $cfg $section (index $v $section) -}}
{{- end -}}
{{- end -}}
{{- if $v.audit.file -}}
{{- $_ := set $cfg "audit" (dict "path" (printf "%s/%s" (include "credbroker.dataDir" .) $v.audit.file)) -}}
{{- else -}}
{{- $_ := set $cfg "audit" (dict "path" "-") -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
