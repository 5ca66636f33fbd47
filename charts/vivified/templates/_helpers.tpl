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
{{- include "vivified.validateHaUpgrade" . -}}
{{- if and .Values.webhook.enabled .Values.webhook.certManager.enabled .Values.webhook.url -}}
{{- fail "webhook.url (local mode) cannot be combined with webhook.certManager.enabled: cert-manager issues certificates for the Service name only" -}}
{{- end -}}
{{- end -}}

{{/* Peering and a second replica in one upgrade of a standalone operator would start a
     peered pod next to the standalone one, which joins no peering: both would reconcile. The
     live Deployment tells (lookup; empty under `helm template`, so only a real install or
     upgrade checks it): a standalone one has no VIVIFIED_PEERING_NAME. docs/install.md,
     "High availability", gives the two steps. */}}
{{- define "vivified.validateHaUpgrade" -}}
{{- if and .Values.operator.enabled .Values.peering.enabled (gt (int .Values.replicaCount) 1) -}}
{{- $live := lookup "apps/v1" "Deployment" .Release.Namespace (include "vivified.fullname" .) -}}
{{- if $live -}}
{{- $peered := false -}}
{{- range ($live.spec.template.spec.containers | default list) -}}
{{- range (.env | default list) -}}
{{- if eq .name "VIVIFIED_PEERING_NAME" -}}{{- $peered = true -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $peered -}}
{{- fail (printf "the running operator is standalone (peering off): switching peering on and replicaCount=%d in one upgrade would run a peered replica next to it, both reconciling. Upgrade with peering.enabled=true and replicaCount=1 first, then set replicaCount (docs/install.md, High availability)" (int .Values.replicaCount)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The event lane's NATS (the audit trail is a stream on it too). */}}
{{- define "vivified.natsUrl" -}}
{{- $nats := .Values.events.nats -}}
{{- ternary (printf "nats://%s-nats.%s.svc:4222" (include "vivified.fullname" .) .Release.Namespace) $nats.url (eq $nats.mode "single") -}}
{{- end -}}

{{/* The audit trail (docs/audit.md): "true" when on. auto = on when the event lane's NATS is
     configured; true without it fails the render, saying why. */}}
{{- define "vivified.auditOn" -}}
{{- $mode := toString .Values.audit.enabled -}}
{{- if and (eq $mode "true") (not .Values.events.enabled) -}}
{{- fail "audit.enabled=true needs NATS: the trail is a JetStream stream on the event lane's server (set events.enabled=true, or audit.enabled=false to run without a trail; docs/audit.md)" -}}
{{- end -}}
{{- if or (eq $mode "true") (and (eq $mode "auto") .Values.events.enabled) -}}true{{- end -}}
{{- end -}}

{{- define "vivified.auditKeySecret" -}}
{{- default (printf "%s-audit-key" (include "vivified.fullname" .)) .Values.audit.checkpointKey.existingSecret -}}
{{- end -}}

{{/* The trail's environment for a container; dict "ctx" $ "role" "core"|"operator". Each pod
     writes its own chain, named after the pod (downward API). The operator also gets the
     event lane's NATS credentials and CA (the core has them from the lane's ConfigMap). */}}
{{- define "vivified.auditEnv" -}}
{{- $ := .ctx -}}
{{- $nats := $.Values.events.nats -}}
{{- if include "vivified.auditOn" $ }}
- name: VIVIFIED_AUDIT_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: VIVIFIED_AUDIT_WRITER
  value: {{ printf "%s-$(VIVIFIED_AUDIT_POD_NAME)" .role | quote }}
- name: VIVIFIED_AUDIT_SINK
  value: {{ include "vivified.natsUrl" $ | quote }}
- name: VIVIFIED_AUDIT_KEY_FILE
  value: /etc/vivified/audit-key/key.pem
- name: VIVIFIED_AUDIT_MAX_AGE_DAYS
  value: {{ $.Values.audit.maxAgeDays | int | toString | quote }}
- name: VIVIFIED_AUDIT_REPLICAS
  value: {{ $.Values.events.replicas | int | toString | quote }}
{{- if and (eq .role "operator") $nats.credentialsSecret }}
- name: VIVIFIED_NATS_CREDS
  value: /etc/vivified/nats/creds/nats.creds
{{- end }}
{{- if and (eq .role "operator") $nats.tlsCaSecret }}
- name: VIVIFIED_NATS_TLS_CA
  value: /etc/vivified/nats/tls/ca.crt
{{- end }}
{{- else }}
- name: VIVIFIED_AUDIT_SINK
  value: "none"
{{- end }}
{{- end -}}

{{/* The key's mount (read-only); dict "ctx" $ "nats" true also mounts the NATS credentials
     and CA (the operator: the core mounts them for its event lane). */}}
{{- define "vivified.auditMounts" -}}
{{- $ := .ctx -}}
{{- if include "vivified.auditOn" $ }}
- name: audit-key
  mountPath: /etc/vivified/audit-key
  readOnly: true
{{- if and .nats $.Values.events.nats.credentialsSecret }}
- name: nats-creds
  mountPath: /etc/vivified/nats/creds
  readOnly: true
{{- end }}
{{- if and .nats $.Values.events.nats.tlsCaSecret }}
- name: nats-tls
  mountPath: /etc/vivified/nats/tls
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* 0440 with the pod's fsGroup, like the other keys: Secret files are owned by root, so the
     non-root process reads them through its group; nobody else can. */}}
{{- define "vivified.auditVolumes" -}}
{{- $ := .ctx -}}
{{- $nats := $.Values.events.nats -}}
{{- if include "vivified.auditOn" $ }}
- name: audit-key
  secret:
    secretName: {{ include "vivified.auditKeySecret" $ }}
    defaultMode: 0440
    items:
      - key: key.pem
        path: key.pem
{{- if and .nats $nats.credentialsSecret }}
- name: nats-creds
  secret:
    secretName: {{ $nats.credentialsSecret }}
    defaultMode: 0440
    items:
      - key: nats.creds
        path: nats.creds
{{- end }}
{{- if and .nats $nats.tlsCaSecret }}
- name: nats-tls
  secret:
    secretName: {{ $nats.tlsCaSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end }}
{{- end -}}
