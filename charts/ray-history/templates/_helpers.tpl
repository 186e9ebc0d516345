{{/* Name of the release's objects. */}}
{{- define "ray-history.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ray-history.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ray-history.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "ray-history.webhookService" -}}
{{- printf "%s-webhook" (include "ray-history.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ray-history.tlsSecret" -}}
{{- printf "%s-webhook-tls" (include "ray-history.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ray-history.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}

{{- define "ray-history.storageNamespace" -}}
{{- default .Release.Namespace .Values.historyStorage.namespace -}}
{{- end -}}

{{/* Namespaces where the operator reads Secrets: rbac.secretNamespaces, plus the chart's own
HistoryStorage namespace when the chart creates that HistoryStorage (JSON array). */}}
{{- define "ray-history.secretNamespaces" -}}
{{- $namespaces := .Values.rbac.secretNamespaces | default list -}}
{{- if .Values.historyStorage.enabled -}}
{{- $namespaces = append $namespaces (include "ray-history.storageNamespace" .) -}}
{{- end -}}
{{- $namespaces | uniq | toJson -}}
{{- end }}

{{/* Storage hosts the operator may probe besides the public clouds': allowedEndpoints, plus
the development Azurite's Service. */}}
{{- define "ray-history.allowedEndpoints" -}}
{{- $hosts := .Values.allowedEndpoints | default list -}}
{{- if .Values.azurite.enabled -}}
{{- $hosts = append $hosts (printf "%s-azurite.%s.svc" (include "ray-history.fullname" .) .Release.Namespace) -}}
{{- end -}}
{{- $hosts | uniq | join "," -}}
{{- end }}
