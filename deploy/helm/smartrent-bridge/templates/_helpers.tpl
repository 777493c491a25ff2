{{- define "smartrent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "smartrent.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: smartrent-bridge
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: bridge or webhook-ingress */}}
{{- define "smartrent.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "smartrent.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "smartrent.secretName" -}}
{{- if .Values.secrets.create -}}
{{ include "smartrent.fullname" . }}-secrets
{{- else -}}
{{ required "secrets.existingSecret: name a Secret with keys inbank-api-key and callback-secret (or set secrets.create for a trial)" .Values.secrets.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "smartrent.graceSeconds" -}}
{{ add .Values.shutdown.delaySeconds .Values.shutdown.timeoutSeconds 10 }}
{{- end -}}

{{/*
smartrent.natsIdentity: the NATS identity of one component, called with
(dict "root" $ "component" "bridge" | "webhookIngress" | "provision"):
its own values (bridge.nats, webhookIngress.nats, provisioning.job.nats)
over the shared nats.user and nats.credentials. Returned as YAML for
fromYaml.
*/}}
{{- define "smartrent.natsIdentity" -}}
{{- $root := .root -}}
{{- $n := dict -}}
{{- if eq .component "provision" }}{{ $n = $root.Values.provisioning.job.nats }}{{ else }}{{ $n = (index $root.Values .component).nats }}{{ end -}}
{{- $user := $n.user | default (ternary "" $root.Values.nats.user (eq .component "provision")) -}}
{{- $creds := $n.credentialsSecret | default (ternary "" $root.Values.nats.credentials.existingSecret (eq .component "provision")) -}}
user: {{ $user | quote }}
passwordSecret: {{ $n.passwordSecret | default "" | quote }}
passwordKey: {{ $n.passwordKey | default "nats-password" | quote }}
credentialsSecret: {{ $creds | quote }}
credentialsKey: {{ $n.credentialsKey | default $root.Values.nats.credentials.key | quote }}
nkeySecret: {{ $n.nkeySecret | default "" | quote }}
nkeyKey: {{ $n.nkeyKey | default "nkey.seed" | quote }}
tlsClientSecret: {{ $n.tlsClientSecret | default "" | quote }}
{{- end -}}

{{/* NATS settings of one component; called like smartrent.natsIdentity */}}
{{- define "smartrent.natsEnv" -}}
{{- $root := .root -}}
{{- $id := include "smartrent.natsIdentity" . | fromYaml -}}
- name: NATS_URL
  value: {{ required "nats.url is required" $root.Values.nats.url | quote }}
- name: NATS_REPLICAS
  value: {{ $root.Values.nats.replicas | quote }}
{{- if $id.user }}
- name: NATS_USER
  value: {{ $id.user | quote }}
- name: NATS_PASSWORD_FILE
  value: {{ ternary "/etc/smartrent/nats-password" "/etc/smartrent/secrets" (ne $id.passwordSecret "") }}/{{ $id.passwordKey }}
{{- end }}
{{- if $id.credentialsSecret }}
- name: NATS_CREDS
  value: /etc/smartrent/nats/{{ $id.credentialsKey }}
{{- end }}
{{- if $id.nkeySecret }}
- name: NATS_NKEY_SEED
  value: /etc/smartrent/nats-nkey/{{ $id.nkeyKey }}
{{- end }}
{{- if $root.Values.nats.tls.caSecret }}
- name: NATS_TLS_CA
  value: /etc/smartrent/nats-ca/{{ $root.Values.nats.tls.caKey }}
{{- end }}
{{- if $id.tlsClientSecret }}
- name: NATS_TLS_CERT
  value: /etc/smartrent/nats-client/tls.crt
- name: NATS_TLS_KEY
  value: /etc/smartrent/nats-client/tls.key
{{- end }}
{{- end -}}

{{/* whether a component creates streams itself (PROVISION) */}}
{{- define "smartrent.provision" -}}
{{- $root := .root -}}
{{- $p := $root.Values.nats.provision -}}
{{- if eq .component "webhookIngress" }}{{ $p = and $p $root.Values.webhookIngress.nats.provision }}{{ end -}}
{{- $p -}}
{{- end -}}

{{/* settings both binaries share; called with (dict "root" $ "component" "bridge" | "webhookIngress") */}}
{{- define "smartrent.commonEnv" -}}
{{- $root := .root -}}
{{- include "smartrent.natsEnv" . }}
- name: PROVISION
  value: {{ include "smartrent.provision" . | quote }}
- name: CALLBACK_SECRET_FILE
  value: /etc/smartrent/secrets/callback-secret
- name: INBANK_API_KEY_FILE
  value: /etc/smartrent/secrets/inbank-api-key
- name: LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: SHUTDOWN_DELAY
  value: {{ printf "%ds" (int $root.Values.shutdown.delaySeconds) | quote }}
- name: SHUTDOWN_TIMEOUT
  value: {{ printf "%ds" (int $root.Values.shutdown.timeoutSeconds) | quote }}
{{- end -}}

{{/*
NATS volumes of one component; called like smartrent.natsIdentity. Each
Secret is mounted with only the keys this identity uses.
*/}}
{{- define "smartrent.natsVolumes" -}}
{{- $root := .root -}}
{{- $id := include "smartrent.natsIdentity" . | fromYaml -}}
{{- if and $id.user $id.passwordSecret }}
- name: nats-password
  secret:
    secretName: {{ $id.passwordSecret }}
    defaultMode: 0440
    items: [{key: {{ $id.passwordKey | quote }}, path: {{ $id.passwordKey | quote }}}]
{{- end }}
{{- if $id.credentialsSecret }}
- name: nats-credentials
  secret:
    secretName: {{ $id.credentialsSecret }}
    defaultMode: 0440
    items: [{key: {{ $id.credentialsKey | quote }}, path: {{ $id.credentialsKey | quote }}}]
{{- end }}
{{- if $id.nkeySecret }}
- name: nats-nkey
  secret:
    secretName: {{ $id.nkeySecret }}
    defaultMode: 0440
    items: [{key: {{ $id.nkeyKey | quote }}, path: {{ $id.nkeyKey | quote }}}]
{{- end }}
{{- if $root.Values.nats.tls.caSecret }}
- name: nats-ca
  secret:
    secretName: {{ $root.Values.nats.tls.caSecret }}
    defaultMode: 0440
    items: [{key: {{ $root.Values.nats.tls.caKey | quote }}, path: {{ $root.Values.nats.tls.caKey | quote }}}]
{{- end }}
{{- if $id.tlsClientSecret }}
- name: nats-client
  secret:
    secretName: {{ $id.tlsClientSecret }}
    defaultMode: 0440
    items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]
{{- end }}
{{- end -}}

{{- define "smartrent.natsMounts" -}}
{{- $id := include "smartrent.natsIdentity" . | fromYaml -}}
{{- if and $id.user $id.passwordSecret }}
- name: nats-password
  mountPath: /etc/smartrent/nats-password
  readOnly: true
{{- end }}
{{- if $id.credentialsSecret }}
- name: nats-credentials
  mountPath: /etc/smartrent/nats
  readOnly: true
{{- end }}
{{- if $id.nkeySecret }}
- name: nats-nkey
  mountPath: /etc/smartrent/nats-nkey
  readOnly: true
{{- end }}
{{- if .root.Values.nats.tls.caSecret }}
- name: nats-ca
  mountPath: /etc/smartrent/nats-ca
  readOnly: true
{{- end }}
{{- if $id.tlsClientSecret }}
- name: nats-client
  mountPath: /etc/smartrent/nats-client
  readOnly: true
{{- end }}
{{- end -}}

{{/*
volumes of one binary; called like smartrent.commonEnv. The shop's Secret
is mounted with only the keys the binary reads: the Inbank API key, the
callback secret and, when it is kept there, its own NATS password (never
another component's, nor the admin's).
*/}}
{{- define "smartrent.volumes" -}}
{{- $id := include "smartrent.natsIdentity" . | fromYaml -}}
- name: secrets
  secret:
    secretName: {{ include "smartrent.secretName" .root }}
    defaultMode: 0440
    items:
      - {key: inbank-api-key, path: inbank-api-key}
      - {key: callback-secret, path: callback-secret}
      {{- if and $id.user (not $id.passwordSecret) }}
      - {key: {{ $id.passwordKey | quote }}, path: {{ $id.passwordKey | quote }}}
      {{- end }}
{{- include "smartrent.natsVolumes" . }}
{{- end -}}

{{- define "smartrent.volumeMounts" -}}
- name: secrets
  mountPath: /etc/smartrent/secrets
  readOnly: true
{{- include "smartrent.natsMounts" . }}
{{- end -}}

{{/*
Probes. /readyz checks NATS within 2 s itself, so the probe waits 3 s (the
Kubernetes default of 1 s failed slow answers), and one slow or failed
answer does not take a pod out of its Service (3 in a row do, within 10 s).
*/}}
{{- define "smartrent.probes" -}}
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  periodSeconds: 3
  timeoutSeconds: 3
  failureThreshold: 3
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/* the extension points of one component: extraEnv, envFrom; called with the component's values */}}
{{- define "smartrent.extraEnv" -}}
{{- with .extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* egress rules every component needs: DNS and NATS (and networkPolicy.extraEgress); called with .Values.networkPolicy */}}
{{- define "smartrent.egressDNSAndNATS" -}}
- ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]
- ports:
    {{- range .natsPorts }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with .natsTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- with .extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}
