//! What a restore point holds: Kubernetes objects, each tagged with the category that
//! `skipResource` names. Pure: no I/O, no API server.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API group of kubectl-dr's own custom resources (`Profile`, `Policy`).
pub const API_GROUP: &str = "dr.kubectl-dr.io";
/// The DR namespace unless told otherwise; the seed's procedure uses it verbatim.
pub const DEFAULT_DR_NAMESPACE: &str = "kasten-io";
/// The DR passphrase secret, exactly as the source documents name it.
pub const DR_SECRET_NAME: &str = "k10-dr-secret";
/// The DR policy and its CronJob.
pub const DR_POLICY_NAME: &str = "k10-disaster-recovery-policy";
/// The CronJob that copies the DR policy's restore points off site (`spec.replication`).
pub const REPLICATION_CRONJOB: &str = "k10-disaster-recovery-replication";
/// While this ConfigMap exists in the DR namespace, the cluster does no maintenance.
pub const OWNERSHIP_CONFIGMAP: &str = "k10-dr-remove-to-get-ownership";

/// A group of resources a restore can skip (`skipResource`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Location profiles (`Profile` objects).
    Profiles,
    /// DR policies (`Policy` objects) and the DR policy's CronJob.
    Policies,
    /// Secrets in the DR namespace: profile credentials, the DR passphrase source.
    Secrets,
    /// Cluster-scoped resources: CRDs, ClusterRoles, StorageClasses, ...
    Cluster,
    /// Namespaced resources of the selected application namespaces.
    Applications,
}

impl Category {
    pub const ALL: [Category; 5] = [Category::Profiles, Category::Policies, Category::Secrets, Category::Cluster, Category::Applications];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Profiles => "profiles",
            Category::Policies => "policies",
            Category::Secrets => "secrets",
            Category::Cluster => "cluster",
            Category::Applications => "applications",
        }
    }

    /// Whether quick mode (the DR platform's own resources only) keeps this category.
    pub fn in_quick_mode(self) -> bool {
        matches!(self, Category::Profiles | Category::Policies | Category::Secrets)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a category.
#[derive(Debug, thiserror::Error)]
#[error("unknown resource category {0:?}: use a comma-separated list of profiles, policies, secrets, cluster, applications")]
pub struct UnknownCategory(pub String);

impl FromStr for Category {
    type Err = UnknownCategory;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL.into_iter().find(|c| c.as_str() == s.trim()).ok_or_else(|| UnknownCategory(s.trim().to_owned()))
    }
}

/// Parses a `skipResource` value: `profiles,policies`. Helm users escape the comma
/// (`profiles\,policies`), so a backslash before a comma is accepted too.
pub fn parse_categories(list: &str) -> Result<BTreeSet<Category>, UnknownCategory> {
    list.replace("\\,", ",").split(',').filter(|s| !s.trim().is_empty()).map(Category::from_str).collect()
}

/// Backup mode: `quick` keeps only the DR platform's own resources, `full` also the
/// cluster-scoped and application resources the policy selects.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Quick,
    #[default]
    Full,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
    pub fn keeps(self, category: Category) -> bool {
        self == Mode::Full || category.in_quick_mode()
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "quick" => Ok(Mode::Quick),
            "full" => Ok(Mode::Full),
            other => Err(format!("unknown mode {other:?}: use quick or full")),
        }
    }
}

/// One object of a restore point, as one line of the archive's catalog.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub category: Category,
    pub object: Value,
    /// The object's UID on the source cluster (the object itself carries none), so a restore
    /// can relink ownerReferences that point at it.
    #[serde(default, rename = "sourceUid", skip_serializing_if = "Option::is_none")]
    pub source_uid: Option<String>,
}

impl Entry {
    pub fn api_version(&self) -> &str {
        str_at(&self.object, &["apiVersion"])
    }
    pub fn kind(&self) -> &str {
        str_at(&self.object, &["kind"])
    }
    pub fn name(&self) -> &str {
        str_at(&self.object, &["metadata", "name"])
    }
    /// Empty for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        str_at(&self.object, &["metadata", "namespace"])
    }
    /// `Kind` for the core group, `Kind.group` otherwise (`Deployment.apps`): the key that
    /// counts and reports use.
    pub fn kind_key(&self) -> String {
        kind_key(self.api_version(), self.kind())
    }
}

/// `Kind` for the core group, `Kind.group` otherwise.
pub fn kind_key(api_version: &str, kind: &str) -> String {
    match api_version.split_once('/') {
        Some((group, _)) => format!("{kind}.{group}"),
        None => kind.to_owned(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or("")
}

/// Kinds that are cluster-scoped in every Kubernetes release, for classifying manifests read
/// from files (a live backup asks discovery instead).
const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "VolumeAttachment",
    "CSIDriver",
    "CSINode",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "APIService",
    "PriorityClass",
    "RuntimeClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "VolumeSnapshotClass",
    "VolumeSnapshotContent",
    "CertificateSigningRequest",
    "FlowSchema",
    "PriorityLevelConfiguration",
];

/// Whether `kind` is cluster-scoped, as far as a manifest without discovery can tell.
pub fn is_cluster_scoped_kind(kind: &str) -> bool {
    CLUSTER_SCOPED_KINDS.contains(&kind)
}

/// The category of an object, given whether its kind is cluster-scoped and the DR namespace.
pub fn classify(object: &Value, cluster_scoped: bool, dr_namespace: &str) -> Category {
    let api_version = str_at(object, &["apiVersion"]);
    let kind = str_at(object, &["kind"]);
    let namespace = str_at(object, &["metadata", "namespace"]);
    let name = str_at(object, &["metadata", "name"]);
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    let dr_cron_job = kind == "CronJob" && namespace == dr_namespace && (name == DR_POLICY_NAME || name == REPLICATION_CRONJOB);
    if group == API_GROUP && kind == "Profile" {
        Category::Profiles
    } else if group == API_GROUP && kind == "Policy" || dr_cron_job {
        Category::Policies
    } else if kind == "Secret" && namespace == dr_namespace {
        Category::Secrets
    } else if cluster_scoped {
        Category::Cluster
    } else {
        Category::Applications
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skip_resource_accepts_the_seed_values_and_helm_escaped_commas() {
        let set = parse_categories("profiles\\,policies").unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec![Category::Profiles, Category::Policies]);
        assert!(parse_categories("").unwrap().is_empty());
        let err = parse_categories("profiles,catalog").unwrap_err().to_string();
        assert!(err.contains("\"catalog\"") && err.contains("applications"), "{err}");
    }

    #[test]
    fn objects_are_classified_into_the_seed_categories() {
        let ns = DEFAULT_DR_NAMESPACE;
        let profile = json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "p", "namespace": ns}});
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns}});
        let app_secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}});
        let cronjob = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": DR_POLICY_NAME, "namespace": ns}});
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"}});
        assert_eq!(classify(&profile, false, ns), Category::Profiles);
        assert_eq!(classify(&secret, false, ns), Category::Secrets);
        assert_eq!(classify(&app_secret, false, ns), Category::Applications);
        assert_eq!(classify(&cronjob, false, ns), Category::Policies);
        assert_eq!(classify(&crd, true, ns), Category::Cluster);
        assert_eq!(kind_key("apps/v1", "Deployment"), "Deployment.apps");
        assert_eq!(kind_key("v1", "ConfigMap"), "ConfigMap");
    }
}
