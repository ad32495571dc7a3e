//! Who maintains a location: the cluster whose restore points are there, until it is restored
//! elsewhere. A restore leaves the ownership ConfigMap (`k10-dr-remove-to-get-ownership`) in
//! the DR namespace of the new cluster; while it exists that cluster does no maintenance on the
//! location (no scheduled backups, no pruning), so two clusters never prune each other's
//! points. Taking ownership deletes it and resumes the DR policy's CronJobs.
//!
//! Everything that reads or writes that ConfigMap is here: the gate ([`ensure_owner`]), the
//! claim a restore leaves ([`claim`]) and the take-over ([`restored_from`], [`take_over`]).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use time::OffsetDateTime;

use crate::catalog::{DR_POLICY_NAME, OWNERSHIP_CONFIGMAP, REPLICATION_CRONJOB};

#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    #[error("this cluster has the ConfigMap {OWNERSHIP_CONFIGMAP} in namespace {namespace}: it was restored from another cluster and does no maintenance until it owns the location. If the original cluster is gone, run `kubectl dr take-ownership` (or delete the ConfigMap), then back up again")]
    NotOwner { namespace: String },
    #[error("cannot read namespace default to get the cluster ID")]
    ClusterId(#[source] kube::Error),
    #[error("namespace default has no UID, so this cluster has no cluster ID: is this a real API server?")]
    NoClusterId,
    #[error("{what}")]
    Api { what: String, source: kube::Error },
}

impl crate::failure::Classify for OwnershipError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        use OwnershipError as E;
        match self {
            E::NotOwner { .. } => ErrorKind::Busy,
            E::NoClusterId => ErrorKind::BadInput,
            E::ClusterId(source) | E::Api { source, .. } => source.kind(),
        }
    }
}

fn api(what: String) -> impl FnOnce(kube::Error) -> OwnershipError {
    move |source| OwnershipError::Api { what, source }
}

/// The cluster ID: the UID of the `default` namespace. Restore points live under it.
pub async fn cluster_id(client: &Client) -> Result<String, OwnershipError> {
    let ns: Api<Namespace> = Api::all(client.clone());
    let default = ns.get("default").await.map_err(OwnershipError::ClusterId)?;
    default.metadata.uid.ok_or(OwnershipError::NoClusterId)
}

/// Fails while the ownership ConfigMap exists in the DR namespace: backups and pruning call it
/// before they touch the location.
pub async fn ensure_owner(client: &Client, dr_namespace: &str) -> Result<(), OwnershipError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), dr_namespace);
    match cms.get_opt(OWNERSHIP_CONFIGMAP).await {
        Ok(Some(_)) => Err(OwnershipError::NotOwner { namespace: dr_namespace.into() }),
        Ok(None) => Ok(()),
        Err(source) => Err(OwnershipError::Api { what: "listing configmaps failed".into(), source }),
    }
}

/// Leaves the ownership ConfigMap a restore ends with, naming where the cluster came from.
/// Idempotent: a re-run of the restore finds it there.
pub async fn claim(client: &Client, namespace: &str, source_cluster_id: &str, point_id: &str) -> Result<(), kube::Error> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": OWNERSHIP_CONFIGMAP, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "kubectl-dr"}},
        "data": {
            "sourceClusterID": source_cluster_id,
            "restorePoint": point_id,
            "restoredAt": crate::point::rfc3339(OffsetDateTime::now_utc()),
            "README": "This cluster was restored by kubectl-dr. While this ConfigMap exists it does no maintenance on the location (no scheduled backups, no pruning). Delete it (kubectl dr take-ownership) only once the source cluster no longer uses the location.",
        }
    }))
    .expect("a ConfigMap");
    match cms.create(&PostParams::default(), &cm).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        // A re-run, with a ConfigMap webhook of the point restored and not running yet.
        Err(e) if crate::api_retry::webhook_refused(&e) && matches!(cms.get_opt(OWNERSHIP_CONFIGMAP).await, Ok(Some(_))) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Where a restored cluster came from, as its ownership ConfigMap says ("unknown" for a
/// field it lacks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    pub source_cluster_id: String,
    pub restore_point: String,
    pub restored_at: String,
    /// The DR policy's CronJob: `None` when there is none, else whether it is suspended.
    pub backups_suspended: Option<bool>,
}

/// `None` when this cluster owns its location (no ownership ConfigMap).
pub async fn restored_from(client: &Client, namespace: &str) -> Result<Option<Restored>, OwnershipError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let crons: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let Some(cm) = cms.get_opt(OWNERSHIP_CONFIGMAP).await.map_err(api(format!("reading ConfigMap {OWNERSHIP_CONFIGMAP}")))? else {
        return Ok(None);
    };
    let cron = crons.get_opt(DR_POLICY_NAME).await.map_err(api(format!("reading CronJob {DR_POLICY_NAME}")))?;
    let data: BTreeMap<String, String> = cm.data.unwrap_or_default();
    let field = |k: &str| data.get(k).cloned().unwrap_or_else(|| "unknown".into());
    Ok(Some(Restored {
        source_cluster_id: field("sourceClusterID"),
        restore_point: field("restorePoint"),
        restored_at: field("restoredAt"),
        backups_suspended: cron.map(|c| c.spec.and_then(|s| s.suspend) == Some(true)),
    }))
}

/// Makes this cluster the owner: deletes the ownership ConfigMap, then resumes the DR policy's
/// CronJobs that exist (a restore suspended them). Returns the CronJobs resumed.
pub async fn take_over(client: &Client, namespace: &str) -> Result<Vec<&'static str>, OwnershipError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let crons: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    match cms.delete(OWNERSHIP_CONFIGMAP, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(api(format!("deleting ConfigMap {OWNERSHIP_CONFIGMAP}"))(e)),
    }
    let mut resumed = Vec::new();
    for name in [DR_POLICY_NAME, REPLICATION_CRONJOB] {
        if crons.get_opt(name).await.map_err(api(format!("reading CronJob {name}")))?.is_none() {
            continue;
        }
        crons
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}})))
            .await
            .map_err(api(format!("resuming CronJob {name}")))?;
        resumed.push(name);
    }
    Ok(resumed)
}
