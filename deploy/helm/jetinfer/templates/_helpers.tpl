{{/* Labels every object of the release carries. */}}
{{- define "jetinfer.labels" -}}
app.kubernetes.io/name: jetinfer
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{/* Prometheus scrape annotations for a pod whose metrics are on port. */}}
{{- define "jetinfer.scrape" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ . | quote }}
prometheus.io/path: /metrics
{{- end }}
