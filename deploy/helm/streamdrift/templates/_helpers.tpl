{{/* The release's name, cut to Kubernetes' 63 characters. */}}
{{- define "streamdrift.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The StatefulSet's headless Service: the release's name, cut to leave room for the suffix. */}}
{{- define "streamdrift.headlessServiceName" -}}
{{- printf "%s-headless" (include "streamdrift.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{- define "streamdrift.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamdrift.labels" -}}
{{ include "streamdrift.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "streamdrift.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Where the pod finds its files. */}}
{{- define "streamdrift.baselinePath" -}}/etc/streamdrift/baseline/{{ .Values.baseline.key }}{{- end -}}
{{- define "streamdrift.saslPasswordPath" -}}/etc/streamdrift/kafka-sasl/{{ .Values.kafkaAuth.saslPasswordSecret.key }}{{- end -}}
{{- define "streamdrift.registryPasswordPath" -}}/etc/streamdrift/registry-auth/{{ .Values.schemaRegistryAuth.passwordSecret.key }}{{- end -}}
{{- define "streamdrift.registryCaPath" -}}/etc/streamdrift/registry-tls/{{ .Values.schemaRegistryAuth.caSecret.key }}{{- end -}}
{{- define "streamdrift.descriptorSetPath" -}}/etc/streamdrift/protobuf/{{ .Values.protobufDescriptors.key }}{{- end -}}
{{- define "streamdrift.webConfigPath" -}}/etc/streamdrift/web-config/{{ .Values.metricsWebConfig.key }}{{- end -}}

{{/* The config file: the user's map, with what the chart decides set over it. */}}
{{- define "streamdrift.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- /* A topic_pattern replaces the default's empty topic (streamdrift refuses both). */ -}}
{{- if and $config.kafka $config.kafka.topic_pattern (not $config.kafka.topic) -}}
{{- $_ := unset $config.kafka "topic" -}}
{{- end -}}
{{- $_ := set $config "baseline" (mergeOverwrite (deepCopy (default (dict) $config.baseline)) (dict "path" (include "streamdrift.baselinePath" .))) -}}
{{- $_ := set $config "metrics" (mergeOverwrite (deepCopy (default (dict) $config.metrics)) (dict "port" .Values.metricsPort "bind_address" "0.0.0.0")) -}}
{{- if .Values.metricsWebConfig.secret -}}
{{- $_ := set $config "metrics" (mergeOverwrite $config.metrics (dict "web_config_file" (include "streamdrift.webConfigPath" .))) -}}
{{- end -}}
{{- if .Values.kafkaAuth.saslPasswordSecret.name -}}
{{- $_ := set $config "kafka" (mergeOverwrite (deepCopy $config.kafka) (dict "sasl_password_file" (include "streamdrift.saslPasswordPath" .))) -}}
{{- end -}}
{{- $input := deepCopy (default (dict) $config.input) -}}
{{- $registry := dict -}}
{{- if .Values.schemaRegistryAuth.passwordSecret.name -}}
{{- $_ := set $registry "password_file" (include "streamdrift.registryPasswordPath" .) -}}
{{- end -}}
{{- if .Values.schemaRegistryAuth.caSecret.name -}}
{{- $_ := set $registry "ca_file" (include "streamdrift.registryCaPath" .) -}}
{{- end -}}
{{- if $registry -}}
{{- $_ := set $input "schema_registry" (mergeOverwrite (default (dict) $input.schema_registry) $registry) -}}
{{- end -}}
{{- if or .Values.protobufDescriptors.configMap .Values.protobufDescriptors.secret -}}
{{- $_ := set $input "protobuf" (mergeOverwrite (default (dict) $input.protobuf) (dict "descriptor_set" (include "streamdrift.descriptorSetPath" .))) -}}
{{- end -}}
{{- if $input -}}
{{- $_ := set $config "input" $input -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The baseline's volume source. */}}
{{- define "streamdrift.baselineVolume" -}}
{{- if .Values.baseline.existingConfigMap -}}
configMap:
  name: {{ .Values.baseline.existingConfigMap }}
{{- else if .Values.baseline.existingSecret -}}
secret:
  secretName: {{ .Values.baseline.existingSecret }}
{{- else if .Values.baseline.volume -}}
{{ toYaml .Values.baseline.volume }}
{{- else -}}
{{/* baseline.json, stored by the chart; or, without it, that ConfigMap made by hand. */}}
configMap:
  name: {{ include "streamdrift.fullname" . }}-baseline
{{- end -}}
{{- end -}}
