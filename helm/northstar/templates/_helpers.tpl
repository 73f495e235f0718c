{{- define "northstar.labels" -}}
app.kubernetes.io/part-of: northstar
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "northstar.registryUrl" -}}
{{- if .Values.schemaRegistry.enabled -}}
http://{{ .Release.Name }}-registry:8081
{{- else -}}
{{ .Values.schemaRegistry.externalUrl }}
{{- end -}}
{{- end -}}

{{- define "northstar.commonEnv" -}}
- name: NORTHSTAR_KAFKA__BROKERS
  value: {{ .Values.kafka.brokers | quote }}
{{- /* Property names become environment names: `security.protocol` is
       NORTHSTAR_KAFKA__PROPERTIES__SECURITY_PROTOCOL (the services read `_` as `.`). */}}
{{- range $k, $v := .Values.kafka.properties }}
- name: NORTHSTAR_KAFKA__PROPERTIES__{{ $k | replace "." "_" | replace "-" "_" | upper }}
  value: {{ $v | quote }}
{{- end }}
{{- range $k, $ref := .Values.kafka.secretProperties }}
- name: NORTHSTAR_KAFKA__PROPERTIES__{{ $k | replace "." "_" | replace "-" "_" | upper }}
  valueFrom:
    secretKeyRef: {name: {{ $ref.secret | quote }}, key: {{ $ref.key | quote }}}
{{- end }}
- name: NORTHSTAR_TOPICS__REPLICATION_FACTOR
  value: {{ .Values.topics.replicationFactor | quote }}
- name: NORTHSTAR_TOPICS__MIN_INSYNC_REPLICAS
  value: {{ .Values.topics.minInsyncReplicas | quote }}
- name: NORTHSTAR_REGISTRY_URL
  value: {{ include "northstar.registryUrl" . | quote }}
{{- with .Values.schemaRegistry.clientCredentialsSecret }}
- name: NORTHSTAR_REGISTRY_AUTH__BASIC_AUTH_USER_INFO
  valueFrom:
    secretKeyRef: {name: {{ . | quote }}, key: user-info}
{{- end }}
- name: NORTHSTAR_TELEMETRY__LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: NORTHSTAR_SHUTDOWN_GRACE_SECS
  value: {{ .Values.shutdownGraceSecs | quote }}
- name: NORTHSTAR_TOPICS__RAW
  value: {{ .Values.topics.raw | quote }}
- name: NORTHSTAR_TOPICS__CLEAN
  value: {{ .Values.topics.clean | quote }}
- name: NORTHSTAR_TOPICS__DLQ
  value: {{ .Values.topics.dlq | quote }}
- name: NORTHSTAR_TOPICS__AGGREGATES
  value: {{ .Values.topics.aggregates | quote }}
- name: NORTHSTAR_TOPICS__SCHEMAS
  value: {{ .Values.topics.schemas | quote }}
- name: NORTHSTAR_TOPICS__SUPPRESSIONS
  value: {{ .Values.topics.suppressions | quote }}
{{- end -}}

{{/* The PII keys, from their Secret (ingest, processor, lake sink, lake-admin). */}}
{{- define "northstar.piiKeyEnv" -}}
{{- if .Values.privacy.piiKeySecret }}
- name: NORTHSTAR_PII_KEY
  valueFrom:
    secretKeyRef: {name: {{ .Values.privacy.piiKeySecret | quote }}, key: pii.key}
{{- end }}
{{- end -}}

{{/* The tracking plan's ConfigMap (processor, lake sink), or nothing. */}}
{{- define "northstar.planConfigMap" -}}
{{- if .Values.trackingPlan.configMap -}}
{{ .Values.trackingPlan.configMap }}
{{- else if .Values.trackingPlan.inline -}}
{{ .Release.Name }}-tracking-plan
{{- end -}}
{{- end -}}

{{- define "northstar.catalogConfigMap" -}}
{{- if .Values.kpiCatalog.configMap -}}
{{ .Values.kpiCatalog.configMap }}
{{- else if .Values.kpiCatalog.inline -}}
{{ .Release.Name }}-kpi-catalog
{{- end -}}
{{- end -}}

{{/* Non-root, read-only root filesystem; the image's user (65532). */}}
{{- define "northstar.podSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "northstar.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: ["ALL"]}
{{- end -}}

{{/* The writable working directory (the image's WORKDIR) and /tmp, on the read-only root;
     and the Kafka TLS Secret (CA, client certificate and key), when one is named. */}}
{{- define "northstar.workMounts" -}}
- {name: work, mountPath: /var/lib/northstar}
- {name: tmp, mountPath: /tmp}
{{- if .Values.kafka.tlsSecret }}
- {name: kafka-tls, mountPath: /etc/northstar/kafka-tls, readOnly: true}
{{- end }}
{{- end -}}

{{- define "northstar.workVolumes" -}}
- {name: work, emptyDir: {}}
- {name: tmp, emptyDir: {}}
{{- if .Values.kafka.tlsSecret }}
- name: kafka-tls
  secret: {secretName: {{ .Values.kafka.tlsSecret | quote }}}
{{- end }}
{{- end -}}
