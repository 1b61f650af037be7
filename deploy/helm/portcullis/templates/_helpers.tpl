{{/*
Names, labels, and the settings every component shares. The Deployments are all rendered by
"portcullis.deployment" below, so the three components differ only in their arguments.
*/}}

{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-portcullis, or the release name alone when it already says portcullis. */}}
{{- define "portcullis.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The name of one component's objects: <fullname>-<component>, within 63 characters. */}}
{{- define "portcullis.componentName" -}}
{{- printf "%s-%s" (include "portcullis.fullname" .root | trunc (int (sub 62 (len .component)))) .component | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ include "portcullis.chart" . }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portcullis
{{- end }}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component's objects; call with (dict "root" $ "component" "data-plane"). */}}
{{- define "portcullis.componentLabels" -}}
{{ include "portcullis.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "portcullis.componentSelectorLabels" -}}
{{ include "portcullis.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "portcullis.image" -}}
{{- $repository := required "image.repository is required: push the image built from deploy/Dockerfile to a registry the cluster can pull from and name it here" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* publicUrl, required, as the binary accepts it: scheme, domain, optional port. */}}
{{- define "portcullis.publicUrl" -}}
{{- $url := required "publicUrl is required, e.g. https://gw.example.com (host h is then served at https://h.gw.example.com)" .Values.publicUrl }}
{{- if not (regexMatch "^https?://[A-Za-z0-9.-]+(:[0-9]+)?/?$" $url) }}
{{- fail (printf "publicUrl %q must be http(s)://<domain>[:port], without a path" $url) }}
{{- end }}
{{- trimSuffix "/" $url }}
{{- end }}

{{/* The base domain of publicUrl (no port): the Ingress serves it and *.<base domain>. */}}
{{- define "portcullis.baseDomain" -}}
{{- (urlParse (include "portcullis.publicUrl" .)).hostname | lower }}
{{- end }}

{{/* The NATS client URL of the dependency chart: its client Service, named as that chart does. */}}
{{- define "portcullis.bundledNatsUrl" -}}
{{- $nats := .Values.nats }}
{{- $name := "" }}
{{- if $nats.fullnameOverride }}
{{- $name = $nats.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $chartName := default "nats" $nats.nameOverride }}
{{- if contains $chartName .Release.Name }}
{{- $name = .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name = printf "%s-%s" .Release.Name $chartName | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- $port := 4222 }}
{{- if and $nats.config $nats.config.nats $nats.config.nats.port }}
{{- $port = $nats.config.nats.port }}
{{- end }}
{{- printf "nats://%s.%s.svc:%d" $name .Release.Namespace (int $port) }}
{{- end }}

{{/* Fails on settings that contradict each other; included once, by the control plane. */}}
{{- define "portcullis.validate" -}}
{{- $external := or .Values.externalNats.url .Values.externalNats.urlSecret.name .Values.externalNats.urlSecret.key }}
{{- if and .Values.nats.enabled $external }}
{{- fail "nats.enabled and externalNats are both set: choose the bundled NATS chart or an external cluster" }}
{{- end }}
{{- if and (not .Values.nats.enabled) (not $external) }}
{{- fail "a NATS JetStream cluster is required: set externalNats.url (or externalNats.urlSecret), or nats.enabled=true" }}
{{- end }}
{{- if and .Values.externalNats.url (or .Values.externalNats.urlSecret.name .Values.externalNats.urlSecret.key) }}
{{- fail "externalNats.url and externalNats.urlSecret are both set: choose one" }}
{{- end }}
{{- if and (or .Values.externalNats.urlSecret.name .Values.externalNats.urlSecret.key) (not (and .Values.externalNats.urlSecret.name .Values.externalNats.urlSecret.key)) }}
{{- fail "externalNats.urlSecret needs both name and key" }}
{{- end }}
{{- if .Values.nats.enabled }}
{{- $cluster := .Values.nats.config.cluster }}
{{- $nodes := 1 }}
{{- if $cluster.enabled }}{{ $nodes = int $cluster.replicas }}{{ end }}
{{- if gt (int .Values.store.replicas) $nodes }}
{{- fail (printf "store.replicas is %v but the bundled NATS chart runs %v node(s)" .Values.store.replicas $nodes) }}
{{- end }}
{{- end }}
{{- if and .Values.masterKey.existingSecret .Values.masterKey.value }}
{{- fail "masterKey.existingSecret and masterKey.value are both set: choose one" }}
{{- end }}
{{- if and .Values.adminToken.existingSecret .Values.adminToken.value }}
{{- fail "adminToken.existingSecret and adminToken.value are both set: choose one" }}
{{- end }}
{{- $dp := .Values.dataPlane }}
{{- if and $dp.autoscaling.enabled (gt (int $dp.autoscaling.minReplicas) (int $dp.autoscaling.maxReplicas)) }}
{{- fail "dataPlane.autoscaling.minReplicas exceeds maxReplicas" }}
{{- end }}
{{- if and $dp.autoscaling.enabled (not (or $dp.autoscaling.targetCPUUtilizationPercentage $dp.autoscaling.targetMemoryUtilizationPercentage)) }}
{{- fail "dataPlane.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- if and .Values.ingress.enabled .Values.ingress.tls.enabled (not .Values.ingress.tls.secretName) }}
{{- fail "ingress.tls.secretName is required when ingress.tls.enabled is true" }}
{{- end }}
{{- if and .Values.ingress.grpc.enabled .Values.ingress.grpc.tls.enabled (not .Values.ingress.grpc.tls.secretName) }}
{{- fail "ingress.grpc.tls.secretName is required when ingress.grpc.tls.enabled is true" }}
{{- end }}
{{- $grace := 0 }}
{{- $text := .Values.shutdownGrace }}
{{- if regexMatch "^[0-9]+s$" $text }}{{ $grace = int (trimSuffix "s" $text) }}{{ end }}
{{- if regexMatch "^[0-9]+m$" $text }}{{ $grace = mul 60 (int (trimSuffix "m" $text)) }}{{ end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) $grace) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds (%v) plus shutdownGrace (%s)" .Values.terminationGracePeriodSeconds .Values.preStopSleepSeconds $text) }}
{{- end }}
{{- end }}

{{- define "portcullis.masterKeySecretName" -}}
{{- default (printf "%s-master-key" (include "portcullis.fullname" .)) .Values.masterKey.existingSecret }}
{{- end }}

{{- define "portcullis.adminTokenSecretName" -}}
{{- default (printf "%s-admin-token" (include "portcullis.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}

{{/* Where the master-key Secret is mounted. */}}
{{- define "portcullis.masterKeyDir" -}}/etc/portcullis/master-key{{- end }}

{{/* Environment of every process: listen address, logs, shutdown, NATS. */}}
{{- define "portcullis.commonEnv" -}}
- name: PORTCULLIS_LISTEN
  value: {{ printf "0.0.0.0:%d" (int .Values.containerPort) | quote }}
- name: PORTCULLIS_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
- name: PORTCULLIS_LOG
  value: {{ .Values.log.filter | quote }}
- name: PORTCULLIS_SHUTDOWN_GRACE
  value: {{ .Values.shutdownGrace | quote }}
{{- with .Values.tracing.otlpEndpoint }}
- name: PORTCULLIS_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if .Values.nats.enabled }}
- name: PORTCULLIS_NATS
  value: {{ include "portcullis.bundledNatsUrl" . | quote }}
{{- else if .Values.externalNats.urlSecret.name }}
- name: PORTCULLIS_NATS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalNats.urlSecret.name }}
      key: {{ .Values.externalNats.urlSecret.key }}
{{- else }}
- name: PORTCULLIS_NATS
  value: {{ .Values.externalNats.url | quote }}
{{- end }}
- name: PORTCULLIS_NAMESPACE
  value: {{ .Values.store.namespace | quote }}
- name: PORTCULLIS_REPLICAS
  value: {{ .Values.store.replicas | int | toString | quote }}
{{- end }}

{{/* Environment of the processes that hold the master keys and serve public URLs. */}}
{{- define "portcullis.gatewayEnv" -}}
- name: PORTCULLIS_MASTER_KEY_FILE
  value: {{ printf "%s/%s" (include "portcullis.masterKeyDir" .) .Values.masterKey.secretKey | quote }}
- name: PORTCULLIS_PUBLIC_URL
  value: {{ include "portcullis.publicUrl" . | quote }}
- name: PORTCULLIS_ALLOW_PRIVATE_UPSTREAMS
  value: {{ .Values.allowPrivateUpstreams | quote }}
{{- end }}

{{/* The master keys, mounted read-only (group-readable for the pod's fsGroup). */}}
{{- define "portcullis.masterKeyVolume" -}}
- name: master-key
  secret:
    secretName: {{ include "portcullis.masterKeySecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.masterKey.secretKey }}
        path: {{ .Values.masterKey.secretKey }}
{{- end }}

{{- define "portcullis.masterKeyMount" -}}
- name: master-key
  mountPath: {{ include "portcullis.masterKeyDir" . }}
  readOnly: true
{{- end }}

{{/*
Topology spread constraints of a component: each one without a labelSelector gets the
component's pod labels. Call with (dict "root" $ "component" "data-plane" "constraints" list).
*/}}
{{- define "portcullis.topologySpread" -}}
{{- $selector := include "portcullis.componentSelectorLabels" . | fromYaml }}
{{- range .constraints }}
{{- $constraint := deepCopy . }}
{{- if not $constraint.labelSelector }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) }}
{{- end }}
- {{ toYaml $constraint | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/*
One component's Deployment. Call with a dict:
  root       the chart's context ($)
  component  control-plane | projector | data-plane (also the subcommand)
  values     the component's values (.Values.controlPlane, …)
  env        extra environment, YAML list text
  gateway    whether it holds the master keys (mounts the Secret)
  replicas   false when an HPA owns the replica count
  checksums  dict of annotation name -> content whose change must roll the pods
*/}}
{{- define "portcullis.deployment" -}}
{{- $root := .root }}
{{- $values := .values }}
{{- $ctx := dict "root" $root "component" .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "portcullis.componentName" $ctx }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "portcullis.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if .replicas }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "portcullis.componentSelectorLabels" $ctx | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "portcullis.componentLabels" $ctx | nindent 8 }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or $values.podAnnotations .checksums }}
      annotations:
        {{- range $name, $content := .checksums }}
        {{ $name }}: {{ $content | sha256sum | quote }}
        {{- end }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "portcullis.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "portcullis.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: [{{ .component | quote }}]
          env:
            {{- include "portcullis.commonEnv" $root | nindent 12 }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $root.Values.containerPort }}
              protocol: TCP
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $root.Values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          {{- if gt (int $root.Values.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $root.Values.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if .gateway }}
            {{- include "portcullis.masterKeyMount" $root | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
        {{- if .gateway }}
        {{- include "portcullis.masterKeyVolume" $root | nindent 8 }}
        {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- include "portcullis.topologySpread" (dict "root" $root "component" $.component "constraints" .) | trim | nindent 8 }}
      {{- end }}
{{- end }}

{{/* One component's PodDisruptionBudget (policy/v1). */}}
{{- define "portcullis.pdb" -}}
{{- $ctx := dict "root" .root "component" .component }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "portcullis.componentName" $ctx }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "portcullis.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .pdb.minAvailable) }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "portcullis.componentSelectorLabels" $ctx | nindent 6 }}
{{- end }}

{{/* One component's ClusterIP Service on port "http". */}}
{{- define "portcullis.service" -}}
{{- $ctx := dict "root" .root "component" .component }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "portcullis.componentName" $ctx }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "portcullis.componentLabels" $ctx | nindent 4 }}
  {{- with .service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .service.type }}
  selector:
    {{- include "portcullis.componentSelectorLabels" $ctx | nindent 4 }}
  ports:
    - name: http
      port: {{ .service.port }}
      targetPort: http
      protocol: TCP
{{- end }}
