//! The `dr-restore` chart's values as one type: the contract between the plugin (which builds
//! them from its flags), the chart (whose templates read them) and the Job (which reads them
//! whole, as the chart rendered them, from `DR_RESTORE_VALUES`). Both turn them into the
//! restore's settings by one conversion, [`ChartValues::restore_settings`]. `charts/dr-restore/values.yaml`, `values.schema.json` and the
//! values table in the chart's README are generated from it (`generate.rs`); a test fails when
//! they are stale. The field comments are the documentation a user reads in all three.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::controls::{Existing, ModifiersRef, RestoreControls};
use super::mapping::Mapping;
use super::select::Select;
use super::settings::{RestoreSettings, StatusKinds};
use super::RestoreError;

mod generate;

pub use generate::{values_schema, values_table, values_yaml};

/// The repository the chart's `image.repository` names in the source tree; a build publishing
/// elsewhere rewrites that one line when it embeds the chart (the plugin's `chart.rs`).
pub const SOURCE_IMAGE_REPOSITORY: &str = "localhost/kubectl-dr/dr-job";

use super::patterns::*;

/// Values of the dr-restore chart. The names follow the restore chart of the source documents
/// (sourceClusterID, profile.name, pointInTime, skipResource, restore.timeout, quickMode.*,
/// vault.*, airgapped.repository); `kubectl dr restore` maps its flags onto them.
/// The DR passphrase is never a value: it is read from the Secret `k10-dr-secret` in the
/// release namespace (kubectl dr restore creates it).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
// `required` is spelled out: schemars leaves fields with a serde default out of it.
#[schemars(title = "dr-restore values", extend("required" = ["sourceClusterID", "profile"]))]
pub struct ChartValues {
    /// Helm's own values shared with subcharts; this chart reads none of them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub global: BTreeMap<String, Value>,
    /// The UID of the source cluster's `default` namespace (`kubectl dr enable` printed it). Required.
    #[serde(rename = "sourceClusterID")]
    #[schemars(pattern(CLUSTER_ID))]
    pub source_cluster_id: String,
    pub profile: ProfileValues,
    pub file_profile: FileProfileValues,
    /// Restore the newest complete restore point at or before this time (RFC3339, UTC:
    /// "2022-01-02T15:04:05Z"). Empty: the newest complete point.
    #[schemars(pattern(RFC3339_OR_EMPTY))]
    pub point_in_time: String,
    /// Restore this restore point, by its ID as `kubectl dr restore-points` lists it
    /// ("20261121T093000.123Z-0a1b2c3d"); chosen over pointInTime. Empty: chosen by time. A
    /// point's ID names it exactly, where a time can also match a point planted beside it.
    #[serde(rename = "restorePointID")]
    #[schemars(pattern(POINT_ID_OR_EMPTY))]
    pub restore_point_id: String,
    /// Comma list of categories not to restore: profiles, policies, secrets, cluster, applications
    /// (on Helm's command line, escape the commas: --set skipResource="profiles\,policies").
    #[schemars(pattern(CATEGORIES_OR_EMPTY))]
    pub skip_resource: String,
    /// What comes back (kubectl dr restore --include-namespaces ... --object ...). Every rule matches
    /// the objects as the point holds them (source namespaces and names); what each rule leaves out
    /// is in the report, by kind and reason. Namespaces come back with the objects in them.
    pub select: Select,
    /// Restore under other names and onto other infrastructure.
    pub mapping: Mapping,
    pub resource_modifiers: ModifiersRef,
    /// What happens to an object the cluster already has: skip (leave it; the report says whether
    /// it equals the point) or update (server-side apply, forced).
    pub existing: Existing,
    pub restore: RestoreValues,
    pub grant_keeper: GrantKeeperValues,
    /// The Kubernetes version the templates assume ("v1.30.0"); empty: the cluster's (with
    /// `helm template`, Helm's default). Set it when rendering offline for an older cluster.
    #[schemars(pattern("^$|^v?[0-9]+\\.[0-9]+(\\.[0-9]+)?([-+][0-9A-Za-z.-]+)?$"))]
    pub kube_version: String,
    pub quick_mode: QuickModeValues,
    pub vault: VaultValues,
    pub aws: AwsValues,
    pub monitoring: MonitoringValues,
    pub airgapped: AirgappedValues,
    pub image: ImageValues,
    pub fips: FipsValues,
    /// Secrets for pulling the job image: [{name: regcred}].
    pub image_pull_secrets: Vec<PullSecret>,
    /// Labels added to the Job's pod (policy engines, cost allocation).
    pub pod_labels: BTreeMap<String, String>,
    /// Annotations added to the Job's pod.
    pub pod_annotations: BTreeMap<String, String>,
    pub service_account: ServiceAccountValues,
    pub rbac: RbacValues,
    pub resources: ContainerResources,
    /// The nodes the Job's pod may run on, as a pod spec's nodeSelector.
    pub node_selector: BTreeMap<String, String>,
    /// Taints the Job's pod tolerates, as a pod spec's tolerations.
    pub tolerations: Vec<Value>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[schemars(extend("required" = ["name"]))]
pub struct ProfileValues {
    /// The location profile (in the release namespace) the source cluster's DR policy wrote to. Required.
    #[schemars(pattern(NAME))]
    pub name: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FileProfileValues {
    /// For a file (NFS) profile: the PVC holding the location. Found from the Profile when the
    /// chart is installed on a cluster; set it when rendering offline.
    #[schemars(pattern(NAME_OR_EMPTY))]
    pub claim_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RestoreValues {
    /// Minutes the whole restore may take (at most a week); at the limit the Job fails and
    /// reports what is left.
    #[schemars(range(min = 1, max = 10080))]
    pub timeout: u32,
    /// Objects written at once.
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: u32,
    /// The restore's own request rate (requests per second).
    #[schemars(range(min = 1))]
    pub qps: u32,
    /// Pod restarts after an interruption (eviction, node loss) or a transient failure (an API
    /// server, S3 or Vault that did not answer); the next pod finishes the restore. Bad input
    /// (wrong passphrase, damaged point, unknown profile) fails the Job at once.
    pub backoff_limit: u32,
    /// Kinds whose status is written back through their /status subresource: "all", or a comma
    /// list like "Widget.example.com,certificates.cert-manager.io". Off by default, as in Velero:
    /// most status describes the old cluster and its controllers rebuild it.
    #[schemars(pattern(STATUS_KINDS_OR_EMPTY))]
    pub status: String,
}

impl Default for RestoreValues {
    fn default() -> Self {
        RestoreValues { timeout: 30, concurrency: 16, qps: 2000, backoff_limit: 3, status: String::new() }
    }
}

/// The restore pod's native sidecar (Kubernetes 1.29 and later), which ends a full restore's
/// cluster-wide grant when the restore container cannot: killed (OOM) on the Job's last
/// attempt, or stopped at the Job's deadline. Without it (older clusters, or turned off) the
/// restore container, on its own end or SIGTERM, and `kubectl dr restore` end the grant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct GrantKeeperValues {
    /// Run the grant keeper (a full restore on Kubernetes 1.29+ only; quick mode has no
    /// cluster-wide grant).
    pub enabled: bool,
    /// The sidecar's resource requests and limits.
    pub resources: ContainerResources,
}

impl Default for GrantKeeperValues {
    fn default() -> Self {
        GrantKeeperValues {
            enabled: true,
            resources: ContainerResources(serde_json::json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}})),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[schemars(extend(
    "if" = {"properties": {"enabled": {"const": true}}, "required": ["enabled"]},
    "then" = {"properties": {"overrideResources": {"const": true, "description": "quick mode requires quickMode.overrideResources=true"}}}
))]
pub struct QuickModeValues {
    /// The restore point was written in quick mode (only the DR platform's own resources).
    pub enabled: bool,
    /// Replace existing resources (server-side apply) instead of leaving them. Quick mode requires it.
    pub override_resources: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[schemars(extend(
    "if" = {"properties": {"enabled": {"const": true}}, "required": ["enabled"]},
    "then" = {
        "properties": {"address": {"minLength": 1}},
        "anyOf": [
            {"properties": {"secretName": {"minLength": 1}}, "required": ["secretName"]},
            {"properties": {"role": {"minLength": 1}}, "required": ["role"]}
        ]
    }
))]
pub struct VaultValues {
    /// The k10-dr-secret names a passphrase held in Vault.
    pub enabled: bool,
    /// Vault's address (https://vault.example.com:8200); required with vault.enabled.
    #[schemars(pattern(URL_OR_EMPTY))]
    pub address: String,
    /// Token auth: a Secret in the release namespace with key `vault_token`.
    #[schemars(pattern(NAME_OR_EMPTY))]
    pub secret_name: String,
    /// Kubernetes auth: the Vault role.
    #[schemars(pattern("^[A-Za-z0-9._@-]{0,128}$"))]
    pub role: String,
    /// Kubernetes auth: the service-account token the Job presents (a projected token is
    /// mounted there when it is not the default path).
    #[schemars(pattern("^$|^/[A-Za-z0-9._/-]*$"))]
    pub service_account_token_path: String,
    /// The mount of Vault's Kubernetes auth method.
    #[schemars(pattern("^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$"))]
    pub auth_mount: String,
    pub ca_bundle: CaBundleValues,
}

impl Default for VaultValues {
    fn default() -> Self {
        VaultValues {
            enabled: false,
            address: String::new(),
            secret_name: String::new(),
            role: String::new(),
            service_account_token_path: String::new(),
            auth_mount: "kubernetes".into(),
            ca_bundle: CaBundleValues::default(),
        }
    }
}

/// The CA that signed Vault's TLS certificate, when it is not a public one: a ConfigMap or a
/// Secret (not both) in the release namespace, and the key holding the PEM bundle.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
#[schemars(extend("not" = {"properties": {"configMap": {"minLength": 1}, "secret": {"minLength": 1}}, "required": ["configMap", "secret"]}))]
pub struct CaBundleValues {
    /// A ConfigMap holding the CA bundle.
    #[schemars(length(max = 253), pattern(NAME_OR_EMPTY))]
    pub config_map: String,
    /// A Secret holding the CA bundle (instead of a ConfigMap).
    #[schemars(length(max = 253), pattern(NAME_OR_EMPTY))]
    pub secret: String,
    /// The key holding the PEM certificates.
    #[schemars(pattern("^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

impl Default for CaBundleValues {
    fn default() -> Self {
        CaBundleValues { config_map: String::new(), secret: String::new(), key: crate::resources::CA_BUNDLE_KEY.into() }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AwsValues {
    /// The k10-dr-secret names a passphrase held in AWS Secrets Manager. Credentials come from the
    /// service account (IRSA: serviceAccount.annotations) or from this Secret
    /// (keys aws_access_key_id, aws_secret_access_key).
    #[schemars(pattern(NAME_OR_EMPTY))]
    pub credentials_secret: String,
    /// A Secrets Manager endpoint other than AWS's (a VPC endpoint).
    #[schemars(pattern(URL_OR_EMPTY))]
    pub secrets_manager_endpoint: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct MonitoringValues {
    /// A Prometheus Pushgateway (http://host:9091) the Job pushes the restore's outcome to:
    /// kubectl_dr_restore_success, _duration_seconds, _objects, _restored_objects,
    /// _failed_objects (deploy/monitoring alerts on them). Empty: nothing is pushed.
    #[serde(rename = "pushgatewayURL")]
    #[schemars(pattern(URL_OR_EMPTY))]
    pub pushgateway_url: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct AirgappedValues {
    /// A registry that mirrors the job image: every image reference is rewritten to it
    /// (`kubectl dr images` lists what to mirror).
    #[schemars(pattern(REPOSITORY_OR_EMPTY))]
    pub repository: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ImageValues {
    /// Where this build's job images are published: scripts/image --repository sets it, and
    /// `kubectl dr version` shows it. localhost/... is the name a local build gets (load it into
    /// kind, or push it with `kubectl dr images mirror`).
    #[schemars(pattern(REPOSITORY))]
    pub repository: String,
    /// Default: the chart's appVersion (with fips.enabled: appVersion-fips, the FIPS image).
    #[schemars(pattern("^$|^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))]
    pub tag: String,
    /// sha256:... pins the image; it wins over the tag.
    #[schemars(pattern("^$|^sha256:[a-f0-9]{64}$"))]
    pub digest: String,
    /// Always, IfNotPresent or Never.
    pub pull_policy: PullPolicy,
}

impl Default for ImageValues {
    fn default() -> Self {
        ImageValues { repository: SOURCE_IMAGE_REPOSITORY.into(), tag: String::new(), digest: String::new(), pull_policy: PullPolicy::IfNotPresent }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FipsValues {
    /// The FIPS image (tag <appVersion>-fips), which refuses to run unless its crypto module is in
    /// FIPS mode (use values-fips.yaml).
    pub enabled: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct PullSecret {
    #[schemars(length(min = 1), pattern(NAME_OR_EMPTY))]
    pub name: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceAccountValues {
    /// Annotations for the Job's ServiceAccount (IRSA: eks.amazonaws.com/role-arn).
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RbacValues {
    /// What a full restore may write cluster-wide, each resource by API group and plural:
    /// [{group: apps, resource: deployments}, {group: "", resource: configmaps}, ...].
    /// `kubectl dr restore` sets it from the restore point's manifest, so the Job's grant names
    /// exactly what the point holds. Empty: every resource ("*", which also covers
    /// subresources), for points that do not record their resources.
    pub resources: Vec<RbacResource>,
}

/// One resource the restore may write, by API group and plural (no wildcards, no subresources).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RbacResource {
    #[schemars(length(max = 253), pattern(API_GROUP))]
    pub group: String,
    #[schemars(length(max = 253), pattern(RESOURCE))]
    pub resource: String,
}

/// The Job container's resource requests and limits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(transparent)]
pub struct ContainerResources(#[schemars(with = "BTreeMap<String, Value>")] pub Value);

impl Default for ContainerResources {
    fn default() -> Self {
        ContainerResources(serde_json::json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}))
    }
}

impl ChartValues {
    /// The restore these values ask for, checked: the one conversion from the chart's values
    /// to the engine's settings. The Job reads the values as the chart rendered them
    /// (`DR_RESTORE_VALUES`); `kubectl dr restore` builds them from its flags and converts
    /// them here too, so a value and the flag behind it are parsed and checked by the same
    /// code, and each error names both. `namespace` is the release's (the DR namespace); what
    /// only the Job knows (the Lease holder, the location's mount, how to reach Vault) the
    /// caller adds.
    pub fn restore_settings(&self, namespace: &str) -> Result<RestoreSettings, RestoreError> {
        let invalid = |value: &str, flag: &str, why: String| RestoreError::Invalid(format!("{value} (--{flag}): {why}"));
        let mut s = RestoreSettings::new(namespace, &self.source_cluster_id, &self.profile.name);
        if !self.point_in_time.is_empty() {
            let at = OffsetDateTime::parse(&self.point_in_time, &Rfc3339).map_err(|e| {
                invalid("pointInTime", "point-in-time", format!("{:?} is not an RFC 3339 time such as 2022-01-02T15:04:05Z ({e})", self.point_in_time))
            })?;
            s.point_in_time = Some(at);
        }
        if !self.restore_point_id.is_empty() {
            crate::point::point_time(&self.restore_point_id).map_err(|e| invalid("restorePointID", "point", e.to_string()))?;
            s.point_id = Some(self.restore_point_id.clone());
        }
        s.skip = crate::catalog::parse_categories(&self.skip_resource).map_err(|e| invalid("skipResource", "skip-resource", e.to_string()))?;
        s.timeout = Duration::from_secs(u64::from(self.restore.timeout) * 60);
        s.concurrency = usize::try_from(self.restore.concurrency).unwrap_or(usize::MAX);
        s.qps = self.restore.qps;
        s.restore_status = StatusKinds::parse(&self.restore.status).map_err(|e| invalid("restore.status", "restore-status", e))?;
        s.controls = self.controls();
        s.quick_mode = self.quick_mode.enabled;
        s.override_resources = self.quick_mode.override_resources;
        s.check()?;
        Ok(s)
    }

    /// The restore controls: the chart's `select`, `mapping`, `resourceModifiers` and `existing`.
    pub fn controls(&self) -> RestoreControls {
        RestoreControls {
            select: self.select.clone(),
            mapping: self.mapping.clone(),
            resource_modifiers: self.resource_modifiers.clone(),
            existing: self.existing,
        }
    }

    pub fn set_controls(&mut self, controls: RestoreControls) {
        self.select = controls.select;
        self.mapping = controls.mapping;
        self.resource_modifiers = controls.resource_modifiers;
        self.existing = controls.existing;
    }

    /// Only the values that differ from the chart's defaults, as a values file to pass after the
    /// chart's own (and after values-fips.yaml or values-hardened.yaml, which a full file would
    /// undo): nested objects keep only their changed keys.
    pub fn overrides(&self) -> Value {
        fn diff(value: Value, default: &Value) -> Option<Value> {
            match (value, default) {
                (Value::Object(map), Value::Object(defaults)) => {
                    let changed: serde_json::Map<String, Value> = map
                        .into_iter()
                        .filter_map(|(k, v)| match defaults.get(&k) {
                            Some(d) => diff(v, d).map(|v| (k, v)),
                            None => Some((k, v)),
                        })
                        .collect();
                    (!changed.is_empty()).then_some(Value::Object(changed))
                }
                (value, default) => (value != *default).then_some(value),
            }
        }
        let value = serde_json::to_value(self).expect("chart values serialize");
        let defaults = serde_json::to_value(Self::default()).expect("chart values serialize");
        diff(value, &defaults).unwrap_or_else(|| Value::Object(Default::default()))
    }
}
