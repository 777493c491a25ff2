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

{{/* settings both binaries share */}}
{{- define "smartrent.commonEnv" -}}
- name: NATS_URL
  value: {{ required "nats.url is required" .Values.nats.url | quote }}
- name: NATS_REPLICAS
  value: {{ .Values.nats.replicas | quote }}
- name: PROVISION
  value: {{ .Values.nats.provision | quote }}
{{- if .Values.nats.user }}
- name: NATS_USER
  value: {{ .Values.nats.user | quote }}
- name: NATS_PASSWORD_FILE
  value: /etc/smartrent/secrets/nats-password
{{- end }}
{{- if .Values.nats.credentials.existingSecret }}
- name: NATS_CREDS
  value: /etc/smartrent/nats/{{ .Values.nats.credentials.key }}
{{- end }}
- name: CALLBACK_SECRET_FILE
  value: /etc/smartrent/secrets/callback-secret
- name: INBANK_API_KEY_FILE
  value: /etc/smartrent/secrets/inbank-api-key
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: SHUTDOWN_DELAY
  value: {{ printf "%ds" (int .Values.shutdown.delaySeconds) | quote }}
- name: SHUTDOWN_TIMEOUT
  value: {{ printf "%ds" (int .Values.shutdown.timeoutSeconds) | quote }}
{{- end -}}

{{- define "smartrent.volumes" -}}
- name: secrets
  secret:
    secretName: {{ include "smartrent.secretName" . }}
    defaultMode: 0440
{{- if .Values.nats.credentials.existingSecret }}
- name: nats-credentials
  secret:
    secretName: {{ .Values.nats.credentials.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "smartrent.volumeMounts" -}}
- name: secrets
  mountPath: /etc/smartrent/secrets
  readOnly: true
{{- if .Values.nats.credentials.existingSecret }}
- name: nats-credentials
  mountPath: /etc/smartrent/nats
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
