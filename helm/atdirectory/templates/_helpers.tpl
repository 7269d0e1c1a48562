{{/* The chart name, or nameOverride. */}}
{{- define "atdirectory.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<name>" (just the release when it already contains the name), or fullnameOverride; 63 characters at most, a DNS label. */}}
{{- define "atdirectory.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "atdirectory.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "atdirectory.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "atdirectory.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: atdirectory
{{- end }}

{{/* Labels that select this release's objects. */}}
{{- define "atdirectory.selectorLabels" -}}
app.kubernetes.io/name: {{ include "atdirectory.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels that select the serving pods, and only them (not the migration Job's). */}}
{{- define "atdirectory.serverSelectorLabels" -}}
{{ include "atdirectory.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "atdirectory.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The Secret with the lookup certificate: cert-manager's, the existing one, or none. */}}
{{- define "atdirectory.tlsSecret" -}}
{{- if and .Values.tls.certManager.enabled .Values.tls.existingSecret }}
{{- fail "tls.existingSecret and tls.certManager.enabled are exclusive: choose one source for the certificate" }}
{{- end }}
{{- if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "atdirectory.fullname" .) }}
{{- else }}
{{- .Values.tls.existingSecret }}
{{- end }}
{{- end }}

{{/* Environment shared by the server and the migration Job: the database and where files may go. */}}
{{- define "atdirectory.baseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required: the Secret holding the PostgreSQL URL (the chart never runs an embedded database)" .Values.database.existingSecret }}
      key: {{ .Values.database.key }}
- name: ATDIR_DATA_DIR
  value: /var/lib/atdirectory
- name: ATDIR_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{/* Pod settings shared by the server and the migration Job. */}}
{{- define "atdirectory.podBasics" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
