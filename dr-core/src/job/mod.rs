//! What the in-cluster job runs (a backup, a replication; the restore is `restore::run_restore`),
//! the names of the `DR_*` variables its pod sets, and the pod itself (`pod.rs`): the DR
//! CronJobs are built from that definition and `dr-job`'s arguments read these names; the
//! chart's templates spell the same pod and names, and a test holds them to it.

use std::path::PathBuf;

use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::backup::{self, BackupError, BackupReport};
use crate::location::LocationError;
use crate::ownership::{self, OwnershipError};
use crate::passphrase::ResolveOptions;
use crate::point;
use crate::resources::{self, Policy, PolicyCondition, ResourceError, RunRecord};

pub mod outcome;
pub mod pod;

/// The environment variables of the job image.
pub mod env {
    /// The DR namespace (the pod's own, through the downward API).
    pub const NAMESPACE: &str = "DR_NAMESPACE";
    /// The DR policy to run (default `k10-disaster-recovery-policy`).
    pub const POLICY: &str = "DR_POLICY";
    /// Where a file profile's volume is mounted (default `/mnt/dr-location`).
    pub const LOCATION_MOUNT: &str = "DR_LOCATION_MOUNT";
    /// Vault address; set when `vault.enabled`.
    pub const VAULT_ADDRESS: &str = "DR_VAULT_ADDRESS";
    /// File holding a Vault token (the mounted `vault_token` key of `vault.secretName`).
    pub const VAULT_TOKEN_FILE: &str = "DR_VAULT_TOKEN_FILE";
    /// PEM file with the CA that signed Vault's certificate (the mounted `vault.caBundle`).
    pub const VAULT_CA_BUNDLE: &str = "DR_VAULT_CA_BUNDLE";
    /// Vault Kubernetes auth role (`vault.role`).
    pub const VAULT_ROLE: &str = "DR_VAULT_ROLE";
    /// Service-account token for Vault Kubernetes auth (`vault.serviceAccountTokenPath`).
    pub const VAULT_SA_TOKEN_PATH: &str = "DR_VAULT_SA_TOKEN_PATH";
    /// Mount of Vault's Kubernetes auth method (default `kubernetes`).
    pub const VAULT_AUTH_MOUNT: &str = "DR_VAULT_AUTH_MOUNT";
    /// Endpoint override for AWS Secrets Manager.
    pub const AWS_SECRETS_ENDPOINT: &str = "AWS_ENDPOINT_URL_SECRETS_MANAGER";
    /// Where the container's termination message goes (default `/dev/termination-log`).
    pub const TERMINATION_LOG: &str = "DR_TERMINATION_LOG";

    // The restore Job's settings.
    /// The chart's values as the chart rendered them (`.Values`, JSON): what to restore and
    /// how, converted by `restore::chart::ChartValues::restore_settings`.
    pub const RESTORE_VALUES: &str = "DR_RESTORE_VALUES";
    /// Who holds the restore Lease (the Job's name): a new pod of the same Job may take over.
    pub const RESTORE_HOLDER: &str = "DR_RESTORE_HOLDER";
    /// A Prometheus Pushgateway to push each run's metrics to (`dr_core::metrics`); unset:
    /// nothing is pushed.
    pub const PUSHGATEWAY_URL: &str = "DR_PUSHGATEWAY_URL";
    /// The restore's cluster-wide ClusterRoleBinding, which the Job deletes when the restore
    /// is over (the chart grants that delete by name).
    pub const RBAC_BINDING: &str = "DR_RBAC_BINDING";
    /// The pod's own name (the downward API): the restore and its grant keeper read their pod
    /// to tell a disruption (the Job makes another pod) and how the restore container ended.
    pub const POD_NAME: &str = "DR_POD_NAME";
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("DR policy {name} not found in namespace {namespace}: run `kubectl dr enable`")]
    PolicyNotFound { name: String, namespace: String },
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    #[error("reading policy {name} failed")]
    Api { name: String, source: kube::Error },
    #[error("DR policy {name} has no replication: enable it with `kubectl dr enable --replicate-to PROFILE`")]
    NoReplication { name: String },
    #[error(transparent)]
    Replicate(#[from] crate::replicate::ReplicateError),
}

impl crate::failure::Classify for JobError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        match self {
            JobError::Resource(e) => e.kind(),
            JobError::Location(e) => e.kind(),
            JobError::Backup(e) => e.kind(),
            JobError::Ownership(e) => e.kind(),
            JobError::Api { source, .. } => source.kind(),
            JobError::Replicate(e) => e.kind(),
            JobError::NoReplication { .. } => ErrorKind::BadInput,
            JobError::PolicyNotFound { .. } => ErrorKind::BadInput,
        }
    }
}

/// What a backup or replication run needs (`dr-job` reads it from its `DR_*` arguments;
/// `kubectl dr backup --local` from its flags).
#[derive(Clone, Debug)]
pub struct BackupSettings {
    pub namespace: String,
    pub policy: String,
    /// Where a file profile's volume is mounted; `None` where none is (the plugin).
    pub location_mount: Option<PathBuf>,
    pub resolve: ResolveOptions,
}

/// What a backup run reports (logged, the report of its termination message, kept in the
/// policy's status). Read back leniently: a field an older Job did not write is empty.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct BackupSummary {
    pub cluster_id: String,
    pub restore_point: String,
    pub location: String,
    pub objects: u64,
    pub by_category: std::collections::BTreeMap<String, u64>,
    pub stored_bytes: u64,
    pub skipped: backup::Skipped,
}

/// What the backup Job says when it ends (`outcome`): its summary, or why it failed.
pub type BackupOutcome = outcome::JobOutcome<BackupSummary>;

impl outcome::Report for BackupSummary {
    const COMMAND: &'static str = "backup";
}

/// What the replication Job says when it ends: what happened to each point, or why it failed.
pub type ReplicationOutcome = outcome::JobOutcome<crate::replicate::ReplicateReport>;

impl outcome::Report for crate::replicate::ReplicateReport {
    const COMMAND: &'static str = "replication";
}

/// Runs the DR policy once: resolves the profile and passphrase, backs up, records the run.
pub async fn run_backup(client: &Client, settings: &BackupSettings) -> Result<BackupSummary, JobError> {
    let started = point::rfc3339(time::OffsetDateTime::now_utc());
    let result = backup_once(client, settings).await;
    let record = match &result {
        Ok(s) => RunRecord {
            started_at: started,
            finished_at: Some(point::rfc3339(time::OffsetDateTime::now_utc())),
            result: "Succeeded".into(),
            restore_point: Some(s.restore_point.clone()),
            objects: Some(s.objects),
            message: None,
        },
        Err(e) => RunRecord {
            started_at: started,
            finished_at: Some(point::rfc3339(time::OffsetDateTime::now_utc())),
            result: "Failed".into(),
            restore_point: None,
            objects: None,
            message: Some(crate::error_text(e)),
        },
    };
    if let Err(e) = record_run(client, settings, record).await {
        // The backup's own outcome matters more than its bookkeeping; say so and go on.
        tracing::warn!(error = %crate::error_text(&e), "could not record the run in the policy's status");
    }
    result
}

/// The DR policy the Job runs, or what to do when it is not there.
async fn read_policy(client: &Client, settings: &BackupSettings) -> Result<Policy, JobError> {
    Api::<Policy>::namespaced(client.clone(), &settings.namespace)
        .get_opt(&settings.policy)
        .await
        .map_err(|source| JobError::Api { name: settings.policy.clone(), source })?
        .ok_or_else(|| JobError::PolicyNotFound { name: settings.policy.clone(), namespace: settings.namespace.clone() })
}

async fn backup_once(client: &Client, settings: &BackupSettings) -> Result<BackupSummary, JobError> {
    let policy = read_policy(client, settings).await?;
    // Refuse before touching the location or the passphrase source.
    ownership::ensure_owner(client, &settings.namespace).await?;
    let location = resources::connect_profile(client, &settings.namespace, &policy.spec.profile, settings.location_mount.as_deref()).await?;
    location.check_writable().await?;
    let source = resources::dr_secret_source(client, &settings.namespace).await?;
    let passphrase = source.resolve(&settings.resolve).await.map_err(ResourceError::from)?;
    let cluster_id = ownership::cluster_id(client).await?;
    tracing::info!(cluster_id = %cluster_id, location = %location.describe(), mode = policy.spec.mode.as_str(), passphrase = %source.describe(), "backing up");
    let BackupReport { manifest, skipped } =
        backup::backup(client, &location, &cluster_id, &passphrase, &settings.namespace, policy.spec.mode, &policy.spec.selection).await?;
    Ok(BackupSummary {
        cluster_id,
        restore_point: manifest.point_id,
        location: location.describe(),
        objects: manifest.counts.total,
        by_category: manifest.counts.by_category.iter().map(|(c, n)| (c.as_str().to_owned(), *n)).collect(),
        stored_bytes: manifest.archive.stored_bytes,
        skipped,
    })
}

/// The replication CronJob's run: copies this cluster's complete points from the policy's
/// profile to `spec.replication.to`, each verified through `verifyWith` (or `to`).
pub async fn run_replication(client: &Client, settings: &BackupSettings) -> Result<crate::replicate::ReplicateReport, JobError> {
    let policy = read_policy(client, settings).await?;
    let replication = policy.spec.replication.clone().ok_or_else(|| JobError::NoReplication { name: settings.policy.clone() })?;
    let mut locations = Vec::new();
    let check = replication.verify_with.as_ref().unwrap_or(&replication.to);
    for (name, mount) in [(&policy.spec.profile, settings.location_mount.as_deref()), (&replication.to, None), (check, None)] {
        locations.push(resources::connect_profile(client, &settings.namespace, name, mount).await?);
    }
    let cluster_id = ownership::cluster_id(client).await?;
    // The passphrase authenticates each point before it is copied, and each copy after.
    let source = resources::dr_secret_source(client, &settings.namespace).await?;
    let unlocker = crate::point::Unlocker::new(source.resolve(&settings.resolve).await.map_err(ResourceError::from)?);
    tracing::info!(cluster_id = %cluster_id, from = %locations[0].describe(), to = %locations[1].describe(), passphrase = %source.describe(), "replicating");
    Ok(crate::replicate::replicate(&locations[0], &locations[1], &locations[2], &cluster_id, None, &unlocker).await?)
}

/// Keeps the ten most recent runs in the policy's status, with its conditions and the time
/// of the last good backup, and says what happened as an Event on the Policy.
async fn record_run(client: &Client, settings: &BackupSettings, record: RunRecord) -> Result<(), kube::Error> {
    let policies: Api<Policy> = Api::namespaced(client.clone(), &settings.namespace);
    let current = policies.get_status(&settings.policy).await?;
    let uid = current.metadata.uid.clone().unwrap_or_default();
    let status = current.status.clone().unwrap_or_default();
    let succeeded = record.result == "Succeeded";
    let mut patch = json!({"status": {}});
    if let Some(gap) = crate::cron::longest_gap(&current.spec.frequency, time::OffsetDateTime::now_utc()) {
        patch["status"]["backupIntervalSeconds"] = json!(gap);
    }
    if succeeded {
        patch["status"]["lastSuccessfulBackup"] = json!(record.finished_at);
        patch["status"]["lastSuccessfulRestorePoint"] = json!(record.restore_point);
    }
    let ever_succeeded = succeeded || status.last_successful_backup.is_some();
    let now = record.finished_at.clone().unwrap_or_else(|| record.started_at.clone());
    let (reason, message) = if succeeded {
        ("BackupSucceeded", format!("restore point {}: {} objects", record.restore_point.as_deref().unwrap_or_default(), record.objects.unwrap_or(0)))
    } else {
        ("BackupFailed", record.message.clone().unwrap_or_default())
    };
    let flag = |b: bool| if b { "True" } else { "False" };
    let wanted = [
        ("LastBackupSucceeded", flag(succeeded), reason, message.clone()),
        (
            "Ready",
            flag(succeeded),
            if succeeded {
                "BackupSucceeded"
            } else if ever_succeeded {
                "LastBackupFailed"
            } else {
                "NoGoodBackup"
            },
            message.clone(),
        ),
    ];
    let conditions: Vec<PolicyCondition> = wanted
        .into_iter()
        .map(|(type_, state, reason, message)| {
            // The transition time moves only when the status does, as in metav1.Condition.
            let since =
                status.conditions.iter().find(|c| c.type_ == type_ && c.status == state).map(|c| c.last_transition_time.clone()).unwrap_or_else(|| now.clone());
            PolicyCondition {
                type_: type_.into(),
                status: state.into(),
                reason: reason.into(),
                message: message.chars().take(1000).collect(),
                last_transition_time: since,
            }
        })
        .collect();
    let mut runs = status.last_runs;
    runs.insert(0, record);
    runs.truncate(10);
    patch["status"]["lastRuns"] = json!(runs);
    patch["status"]["conditions"] = json!(conditions);
    policies.patch_status(&settings.policy, &PatchParams::default(), &Patch::Merge(patch)).await?;
    if let Err(e) = policy_event(client, settings, &uid, succeeded, reason, &message).await {
        tracing::warn!(error = %crate::error_text(&e), "could not record the run as an Event on the policy");
    }
    Ok(())
}

/// An Event regarding the Policy (`kubectl describe policy` shows it).
async fn policy_event(client: &Client, settings: &BackupSettings, uid: &str, succeeded: bool, reason: &str, note: &str) -> Result<(), kube::Error> {
    let regarding = json!({"apiVersion": format!("{}/v1alpha1", crate::catalog::API_GROUP), "kind": "Policy", "name": settings.policy, "namespace": settings.namespace, "uid": uid});
    crate::events::record(client, &settings.namespace, regarding, "Backup", reason, !succeeded, note).await
}

/// Writes the run's outcome as the container's termination message, so the plugin can show
/// the result without reading logs. The outcome keeps it under the 4 KiB a kubelet keeps
/// (`JobOutcome::termination_message`).
pub fn write_termination_message<R: outcome::Report>(outcome: &outcome::JobOutcome<R>) {
    let path = var(env::TERMINATION_LOG).unwrap_or_else(|| "/dev/termination-log".into());
    if let Err(e) = std::fs::write(&path, outcome.termination_message()) {
        tracing::debug!(path, error = %e, "no termination log");
    }
}
