{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "vivified.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vivified.fullname" -}}
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

{{/* Cluster-scoped objects carry the release namespace, so two releases never collide. */}}
{{- define "vivified.clusterName" -}}
{{- printf "%s-%s" (include "vivified.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "vivified.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vivified.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vivified.webhookServiceName" -}}
{{- printf "%s-webhook" (include "vivified.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vivified.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "vivified.fullname" .) | trunc 253 -}}
{{- end -}}

{{- define "vivified.peeringName" -}}
{{- default (include "vivified.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* The names the operator uses in its own namespace (RBAC resourceNames depend on them). */}}
{{- define "vivified.signingKeySecret" -}}
{{- default "vivified-signing-key" .Values.signingKey.existingSecret -}}
{{- end -}}

{{- define "vivified.jwksConfigMap" -}}
{{- default "vivified-jwks" .Values.operator.settings.jwksConfigmap -}}
{{- end -}}

{{- define "vivified.revocationsConfigMap" -}}
{{- default "vivified-revoked-tokens" .Values.operator.settings.revocationsConfigmap -}}
{{- end -}}

{{- define "vivified.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------------------- */}}

{{- define "vivified.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vivified.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Note: not app.kubernetes.io/part-of=vivified, which marks the *platform* to plugin
     NetworkPolicies; the operator never needs to be reachable from plugins. */}}
{{- define "vivified.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vivified.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Consistency checks that the JSON schema cannot express. */}}
{{- define "vivified.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) -}}
{{- fail "replicaCount > 1 needs peering.enabled=true: without kopf peering every replica would reconcile (see docs/install.md, High availability)" -}}
{{- end -}}
{{- if and .Values.webhook.enabled .Values.webhook.certManager.enabled .Values.webhook.url -}}
{{- fail "webhook.url (local mode) cannot be combined with webhook.certManager.enabled: cert-manager issues certificates for the Service name only" -}}
{{- end -}}
{{- end -}}
