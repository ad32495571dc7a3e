//! The `Policy` custom resource: what the DR policy backs up (its [`Selection`]), how often, how
//! long points are kept, where they are replicated, and the status each run records.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::Mode;

/// The DR policy: what to back up, how often, how long to keep it.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[kube(
    group = "dr.kubectl-dr.io",
    version = "v1alpha1",
    kind = "Policy",
    namespaced,
    status = "PolicyStatus",
    shortname = "drpolicy",
    printcolumn = r#"{"name":"Profile","type":"string","jsonPath":".spec.profile"}"#,
    printcolumn = r#"{"name":"Frequency","type":"string","jsonPath":".spec.frequency"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// The location profile restore points go to.
    pub profile: String,
    /// A cron schedule, or @hourly, @daily, @weekly, @monthly, @yearly.
    pub frequency: String,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub selection: Selection,
    /// Off-site copies of the restore points, made by their own CronJob
    /// (`k10-disaster-recovery-replication`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "empty_as_none")]
    pub replication: Option<Replication>,
}

/// `replication: {}` reads as none: server-side apply may leave the empty map behind when
/// `enable` stops applying the field (the test API server does; a real one may too).
fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Replication>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    match v {
        None => Ok(None),
        Some(serde_json::Value::Object(m)) if m.is_empty() => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Where and when the DR policy copies its restore points (`kubectl dr replicate`, run in
/// the cluster): to an S3, Azure Blob or Google Cloud Storage profile, each copy read back
/// through `verifyWith` (a profile that may read) or through `to` itself.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replication {
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_with: Option<String>,
    /// A cron schedule, or @hourly, @daily, ...
    pub frequency: String,
}

/// How many restore points `prune` keeps per period (grandfather-father-son).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    #[serde(default)]
    pub hourly: u32,
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
    #[serde(default)]
    pub monthly: u32,
    #[serde(default)]
    pub yearly: u32,
}

impl Default for Retention {
    /// 24 hourly, 7 daily, 4 weekly, 12 monthly, 1 yearly.
    fn default() -> Self {
        Retention { hourly: 24, daily: 7, weekly: 4, monthly: 12, yearly: 1 }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The most recent runs, newest first (at most 10).
    #[serde(default)]
    pub last_runs: Vec<RunRecord>,
    /// `LastBackupSucceeded` (the last run) and `Ready` (the last run succeeded; false with
    /// reason `NoGoodBackup` until one has), as Kubernetes conditions, for monitoring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PolicyCondition>,
    /// When the last good backup finished (RFC 3339), and its restore point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_backup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_restore_point: Option<String>,
    /// The longest time between two scheduled runs of `spec.frequency`, in seconds (written
    /// by `enable` and by every run), so monitoring can tell an overdue backup without
    /// parsing cron (`deploy/monitoring`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_interval_seconds: Option<u64>,
}

/// A condition of the Policy, shaped like `metav1.Condition`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// True or False.
    pub status: String,
    pub reason: String,
    #[serde(default)]
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Succeeded or Failed.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a DR policy protects (the `selection` of a `Policy`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// Namespaces whose resources are backed up; empty means every namespace except
    /// `excludeNamespaces`.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces left out when `namespaces` is empty (default: kube-system, kube-public,
    /// kube-node-lease).
    #[serde(default)]
    pub exclude_namespaces: Option<Vec<String>>,
    /// A label selector every namespaced application object must match.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Only these kinds (`Kind` or `Kind.group`); empty means all.
    #[serde(default)]
    pub include_kinds: Vec<String>,
    /// Never these kinds.
    #[serde(default)]
    pub exclude_kinds: Vec<String>,
    /// Whether cluster-scoped resources (CRDs, ClusterRoles, ...) are backed up.
    #[serde(default = "yes")]
    pub cluster_scoped: bool,
}

fn yes() -> bool {
    true
}

/// Everything: the same as `selection: {}`. A Policy that names no selection at all gets this
/// (through the CRD's structural default on the API server, and through serde here); a derived
/// `Default` left cluster-scoped resources out (`clusterScoped: false`), so such a policy
/// backed up no CRD, Namespace or ClusterRole.
impl Default for Selection {
    fn default() -> Self {
        Selection {
            namespaces: Vec::new(),
            exclude_namespaces: None,
            label_selector: None,
            include_kinds: Vec::new(),
            exclude_kinds: Vec::new(),
            cluster_scoped: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn a_policy_that_names_no_selection_backs_up_everything_as_an_empty_one_does() {
        let spec: PolicySpec = serde_json::from_value(serde_json::json!({"profile": "offsite", "frequency": "@hourly"})).unwrap();
        assert!(spec.selection.cluster_scoped, "cluster-scoped resources are backed up");
        let empty: Selection = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(spec.selection, empty);
        // The CRD's structural default, which a real API server writes into a Policy created
        // without a selection, says the same.
        let crd = serde_json::to_value(Policy::crd()).unwrap();
        let default = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["selection"]["default"];
        assert_eq!(default["clusterScoped"], true, "{default}");
    }
}
