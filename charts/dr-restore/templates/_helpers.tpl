{{/* The Job, its ServiceAccount and RBAC share the release's name. */}}
{{- define "dr-restore.name" -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "dr-restore.labels" -}}
app.kubernetes.io/name: dr-restore
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: "{{ .Chart.Name }}-{{ .Chart.Version }}"
{{- end -}}

{{/*
The job image. With airgapped.repository every reference is rewritten to that registry
(keeping the image's last path segment); a digest pins it and wins over the tag.
*/}}
{{- define "dr-restore.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.airgapped.repository -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.airgapped.repository) (last (splitList "/" .Values.image.repository)) -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- $defaultTag := ternary (printf "%s-fips" .Chart.AppVersion) .Chart.AppVersion (.Values.fips.enabled | default false) -}}
{{- printf "%s:%s" $repo (default $defaultTag .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The PVC of a file profile: from the Profile on the cluster, else fileProfile.claimName. */}}
{{- define "dr-restore.claimName" -}}
{{- $claim := .Values.fileProfile.claimName -}}
{{- $profile := lookup "dr.kubectl-dr.io/v1alpha1" "Profile" .Release.Namespace .Values.profile.name -}}
{{- if and $profile $profile.spec $profile.spec.file -}}
{{- $claim = $profile.spec.file.claimName -}}
{{- end -}}
{{- $claim -}}
{{- end -}}

{{/*
"true" when the pod gets the grant keeper: a full restore (quick mode has no cluster-wide
grant), grantKeeper.enabled, and a cluster with native sidecars (init containers with
restartPolicy Always, Kubernetes 1.29+; kubeVersion overrides what Helm reports).
*/}}
{{- define "dr-restore.grantKeeper" -}}
{{- $version := .Values.kubeVersion | default .Capabilities.KubeVersion.Version -}}
{{- if and .Values.grantKeeper.enabled (not .Values.quickMode.enabled) (semverCompare ">=1.29-0" $version) -}}
true
{{- end -}}
{{- end -}}
