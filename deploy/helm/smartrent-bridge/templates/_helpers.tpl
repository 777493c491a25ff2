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

{{/* settings both binaries share; called with (dict "root" $ "component" "bridge" | "webhookIngress") */}}
{{- define "smartrent.commonEnv" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
{{- $user := $c.nats.user | default $root.Values.nats.user -}}
{{- $provision := $root.Values.nats.provision -}}
{{- if eq .component "webhookIngress" }}{{ $provision = and $root.Values.nats.provision $c.nats.provision }}{{ end -}}
- name: NATS_URL
  value: {{ required "nats.url is required" $root.Values.nats.url | quote }}
- name: NATS_REPLICAS
  value: {{ $root.Values.nats.replicas | quote }}
- name: PROVISION
  value: {{ $provision | quote }}
{{- if $user }}
- name: NATS_USER
  value: {{ $user | quote }}
- name: NATS_PASSWORD_FILE
  value: /etc/smartrent/secrets/{{ $c.nats.passwordKey | default "nats-password" }}
{{- end }}
{{- if $root.Values.nats.credentials.existingSecret }}
- name: NATS_CREDS
  value: /etc/smartrent/nats/{{ $root.Values.nats.credentials.key }}
{{- end }}
{{- if $root.Values.nats.tls.caSecret }}
- name: NATS_TLS_CA
  value: /etc/smartrent/nats-ca/{{ $root.Values.nats.tls.caKey }}
{{- end }}
{{- if $c.nats.tlsClientSecret }}
- name: NATS_TLS_CERT
  value: /etc/smartrent/nats-client/tls.crt
- name: NATS_TLS_KEY
  value: /etc/smartrent/nats-client/tls.key
{{- end }}
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

{{/* volumes of one component; called like smartrent.commonEnv */}}
{{- define "smartrent.volumes" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
- name: secrets
  secret:
    secretName: {{ include "smartrent.secretName" $root }}
    defaultMode: 0440
{{- if $root.Values.nats.credentials.existingSecret }}
- name: nats-credentials
  secret:
    secretName: {{ $root.Values.nats.credentials.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if $root.Values.nats.tls.caSecret }}
- name: nats-ca
  secret:
    secretName: {{ $root.Values.nats.tls.caSecret }}
    defaultMode: 0440
{{- end }}
{{- if $c.nats.tlsClientSecret }}
- name: nats-client
  secret:
    secretName: {{ $c.nats.tlsClientSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "smartrent.volumeMounts" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
- name: secrets
  mountPath: /etc/smartrent/secrets
  readOnly: true
{{- if $root.Values.nats.credentials.existingSecret }}
- name: nats-credentials
  mountPath: /etc/smartrent/nats
  readOnly: true
{{- end }}
{{- if $root.Values.nats.tls.caSecret }}
- name: nats-ca
  mountPath: /etc/smartrent/nats-ca
  readOnly: true
{{- end }}
{{- if $c.nats.tlsClientSecret }}
- name: nats-client
  mountPath: /etc/smartrent/nats-client
  readOnly: true
{{- end }}
{{- end -}}

{{- define "smartrent.probes" -}}
readinessProbe:
  httpGet: {path: /readyz, port: metrics}
  periodSeconds: 2
  failureThreshold: 1
livenessProbe:
  httpGet: {path: /healthz, port: metrics}
  periodSeconds: 10
  failureThreshold: 3
{{- end -}}
