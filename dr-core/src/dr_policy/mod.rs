//! Setting DR up on a cluster and taking it down: what `kubectl dr enable`, `status`,
//! `disable` and `backup` (Run Once) do. Every object is server-side applied by the field
//! manager `kubectl-dr`, so running a command again updates, never duplicates.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::catalog::{Mode, DR_POLICY_NAME, DR_SECRET_NAME, OWNERSHIP_CONFIGMAP, REPLICATION_CRONJOB};
use crate::job::env;
use crate::job::pod::JobPod;
use crate::passphrase::PassphraseSource;
use crate::resources::{Policy, PolicySpec, Profile, CA_BUNDLE_KEY, FILE_LOCATION_MOUNT};

pub mod profile;

/// The ServiceAccount the DR policy's jobs run as.
pub const SERVICE_ACCOUNT: &str = "kubectl-dr-backup";
/// Label on everything `enable` creates, so `disable` finds it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-dr");
/// The ConfigMap (key `ca.crt`) holding the CA that signed Vault's certificate, for the job.
pub const VAULT_CA_CONFIG_MAP: &str = "kubectl-dr-vault-ca";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{what}")]
    Api { what: String, source: kube::Error },
    #[error("location profile {name} not found in namespace {namespace}: create it first with `kubectl dr profile create {name} ...`")]
    ProfileMissing { name: String, namespace: String },
    #[error("DR is not enabled in namespace {0}: run `kubectl dr enable` first")]
    NotEnabled(String),
    #[error("CustomResourceDefinition {0} did not become Established in time: check the API server's logs")]
    CrdNotEstablished(String),
    #[error("{what}")]
    Wait { what: String, source: kube::runtime::wait::Error },
    #[error("invalid --frequency {0:?}: use a cron schedule (\"0 * * * *\") or @hourly, @daily, @weekly, @monthly, @yearly")]
    InvalidFrequency(String),
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    #[error(transparent)]
    Ownership(#[from] crate::ownership::OwnershipError),
    #[error("replication to profile {name}: {why}")]
    Replication { name: String, why: String },
    #[error(transparent)]
    Resource(#[from] crate::resources::ResourceError),
    #[error(transparent)]
    Location(#[from] crate::location::LocationError),
    #[error("location {location} is not usable (give --skip-validation for write-only credentials, which cannot list)")]
    Unusable { location: String, source: crate::location::LocationError },
    #[error("PersistentVolumeClaim {claim} not found in namespace {namespace}: create it (ReadWriteMany, on the NFS share) first")]
    ClaimMissing { claim: String, namespace: String },
    #[error("profile {name} is of kind {kind}, and the credentials given for it are of kind {given}: give credentials of the profile's own kind")]
    CredentialsKind { name: String, given: &'static str, kind: String },
}

impl crate::failure::Classify for InstallError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        use InstallError as E;
        match self {
            E::Api { source, .. } => source.kind(),
            E::Backup(e) => e.kind(),
            E::Ownership(e) => e.kind(),
            E::Resource(e) => e.kind(),
            E::Location(e) | E::Unusable { source: e, .. } => e.kind(),
            // The watch behind a wait: what the API server answered.
            E::Wait { source, .. } => match source {
                kube::runtime::wait::Error::ProbeFailed(
                    kube::runtime::watcher::Error::InitialListFailed(e)
                    | kube::runtime::watcher::Error::WatchStartFailed(e)
                    | kube::runtime::watcher::Error::WatchFailed(e),
                ) => e.kind(),
                _ => ErrorKind::Transient,
            },
            E::CrdNotEstablished(_) => ErrorKind::Transient,
            E::ProfileMissing { .. }
            | E::NotEnabled(_)
            | E::InvalidFrequency(_)
            | E::Replication { .. }
            | E::ClaimMissing { .. }
            | E::CredentialsKind { .. } => ErrorKind::BadInput,
        }
    }
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> InstallError {
    let what = what.into();
    move |source| InstallError::Api { what, source }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())])
}

/// The field manager of everything `enable` applies.
pub const FIELD_MANAGER: &str = "kubectl-dr";

/// Server-side applies `obj` as kubectl-dr: creates it, or makes the fields kubectl-dr
/// manages exactly what `obj` says (fields it stopped setting are removed; fields other
/// managers own are left alone). Forced: these objects are kubectl-dr's own.
pub async fn apply<K>(api: &Api<K>, obj: K) -> Result<K, InstallError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    apply_ref(api, &obj).await
}

/// [`apply`], leaving `obj` with the caller (who may have to wipe it afterwards).
async fn apply_ref<K>(api: &Api<K>, obj: &K) -> Result<K, InstallError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = obj.name_any();
    let what = format!("applying {} {name}", K::kind(&Default::default()));
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj)).await.map_err(api_err(what))
}

/// Everything `enable` needs.
#[derive(Clone, Debug)]
pub struct EnableSettings {
    pub namespace: String,
    pub profile: String,
    pub source: PassphraseSource,
    pub frequency: String,
    pub policy: PolicySpec,
    /// The job image reference (`repository:tag`, or pinned `repository:tag@sha256:...`).
    pub image: String,
    pub image_pull_secrets: Vec<String>,
    /// Vault for the job: address, and a token Secret (`vault_token`) or a Kubernetes-auth role.
    pub vault_address: Option<String>,
    pub vault_token_secret: Option<String>,
    pub vault_role: Option<String>,
    /// PEM bundle of the CA that signed Vault's certificate (kept in [`VAULT_CA_CONFIG_MAP`]).
    pub vault_ca_bundle: Option<String>,
    /// A Prometheus Pushgateway the backup Job pushes each run's metrics to.
    pub pushgateway_url: Option<String>,
}

/// What `enable` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnableReport {
    pub cluster_id: String,
    pub namespace: String,
    pub profile: String,
    pub passphrase_source: String,
    pub schedule: String,
}

/// How long `enable` waits for a CRD to be Established (the API server does it in a moment).
const CRD_ESTABLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Installs the CRDs (if missing or older) and waits until they are Established.
pub async fn install_crds(client: &Client) -> Result<(), InstallError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, yaml) in crate::resources::crd_manifests() {
        let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml).expect("generated CRDs parse");
        let name = crd.name_any();
        apply(&crds, crd).await?;
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(CRD_ESTABLISH_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => return Err(InstallError::Wait { what: format!("watching CRD {name}"), source }),
            Err(_) => return Err(InstallError::CrdNotEstablished(name)),
        }
    }
    Ok(())
}

/// Creates or updates `k10-dr-secret` for `source`.
pub async fn write_dr_secret(client: &Client, namespace: &str, source: &PassphraseSource) -> Result<(), InstallError> {
    let mut data = source.to_secret_data();
    let data: BTreeMap<String, ByteString> = std::mem::take(&mut data.0).into_iter().map(|(k, v)| (k, ByteString(v))).collect();
    let mut secret = Secret { data: Some(data), type_: Some("Opaque".into()), ..Default::default() };
    secret.metadata.name = Some(DR_SECRET_NAME.into());
    secret.metadata.namespace = Some(namespace.into());
    secret.metadata.labels = Some(labels());
    let applied = apply_ref(&Api::<Secret>::namespaced(client.clone(), namespace), &secret).await;
    // Both our copy and the server's answer may hold a raw passphrase.
    wipe_secret(&mut secret);
    applied.map(|mut s| wipe_secret(&mut s))
}

fn wipe_secret(secret: &mut Secret) {
    use zeroize::Zeroize;
    for v in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        v.0.zeroize();
    }
    for v in secret.string_data.iter_mut().flat_map(|d| d.values_mut()) {
        v.zeroize();
    }
}

async fn ensure_namespace(client: &Client, namespace: &str) -> Result<(), InstallError> {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(namespace).await.map_err(api_err(format!("reading namespace {namespace}")))?.is_none() {
        let mut ns = Namespace::default();
        ns.metadata.name = Some(namespace.into());
        api.create(&PostParams::default(), &ns).await.map_err(api_err(format!("creating namespace {namespace}")))?;
    }
    Ok(())
}

fn from_json<K: DeserializeOwned>(v: Value) -> K {
    serde_json::from_value(v).expect("static manifests deserialize")
}

/// The RBAC the DR policy's jobs need, and no more: in the DR namespace, read its own
/// Profiles, Policies (and write their status), Secrets and the ownership ConfigMap; cluster
/// wide, read the `default` namespace (the cluster ID) and, in full mode, get and list each
/// resource it backs up (`read`, by API group), by name: a `*` would grant subresources too.
fn rbac(namespace: &str, mode: Mode, read: &[(String, String)]) -> (Role, ClusterRole) {
    let role = from_json(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace, "labels": labels()},
        "rules": [
            {"apiGroups": ["dr.kubectl-dr.io"], "resources": ["profiles", "policies"], "verbs": ["get", "list"]},
            {"apiGroups": ["dr.kubectl-dr.io"], "resources": ["policies/status"], "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list"]},
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list"]},
            // Each run's outcome as an Event on the Policy.
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
        ]
    }));
    let mut rules = vec![json!({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]})];
    if mode == Mode::Full {
        // A full backup reads every kind the policy selects; it never writes.
        let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (group, plural) in read {
            by_group.entry(group).or_default().push(plural);
        }
        for (group, plurals) in by_group {
            rules.push(json!({"apiGroups": [group], "resources": plurals, "verbs": ["get", "list"]}));
        }
    }
    let cluster_role = from_json(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": format!("{SERVICE_ACCOUNT}-{namespace}"), "labels": labels()},
        "rules": rules
    }));
    (role, cluster_role)
}

/// The DR policy's CronJob: the job pod (`job::pod`) running `backup`, one run at a time.
pub fn cronjob(settings: &EnableSettings, profile: &Profile) -> CronJob {
    let ns = &settings.namespace;
    let mut pod = JobPod::new("backup", "backup");
    pod.env(env::POLICY, DR_POLICY_NAME).env(env::LOCATION_MOUNT, FILE_LOCATION_MOUNT);
    if let Some(url) = &settings.pushgateway_url {
        pod.env(env::PUSHGATEWAY_URL, url);
    }
    if let Some(address) = &settings.vault_address {
        pod.env(env::VAULT_ADDRESS, address);
        if let Some(role) = &settings.vault_role {
            pod.env(env::VAULT_ROLE, role);
        }
        if let Some(secret) = &settings.vault_token_secret {
            pod.vault_token_secret(secret);
        }
        if settings.vault_ca_bundle.is_some() {
            pod.vault_ca_config_map(VAULT_CA_CONFIG_MAP, CA_BUNDLE_KEY);
        }
    }
    if let Some(file) = &profile.spec.file {
        pod.location_claim(&file.claim_name, false);
    }
    let resources = from_json(json!({"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}));
    let pod_spec = pod.spec(&settings.image, SERVICE_ACCOUNT, &settings.image_pull_secrets, resources);
    let mut pod_labels = labels();
    if profile.spec.uses_azure_workload_identity() {
        let (name, value) = crate::resources::AZURE_WORKLOAD_IDENTITY_LABEL;
        pod_labels.insert(name.into(), value.into());
    }
    from_json(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": DR_POLICY_NAME, "namespace": ns, "labels": labels()},
        "spec": {
            "schedule": settings.frequency,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": labels()}, "spec": {
                "backoffLimit": 1,
                "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec}
            }}
        }
    }))
}

/// The CronJob that copies the points off site: the DR CronJob's pod (same image, account,
/// mounts and environment) running `replicate` on the replication's schedule. `destinations`:
/// the profiles it copies to and verifies with, whose workload identity its pods need too.
pub fn replication_cronjob(settings: &EnableSettings, profile: &Profile, destinations: &[Profile], frequency: &str) -> CronJob {
    let mut cron = serde_json::to_value(cronjob(settings, profile)).expect("a CronJob serializes");
    if destinations.iter().any(|p| p.spec.uses_azure_workload_identity()) {
        let (name, value) = crate::resources::AZURE_WORKLOAD_IDENTITY_LABEL;
        cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"][name] = json!(value);
    }
    cron["metadata"]["name"] = json!(REPLICATION_CRONJOB);
    cron["spec"]["schedule"] = json!(frequency);
    let container = &mut cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    container["name"] = json!("replicate");
    container["args"] = json!(["replicate"]);
    from_json(cron)
}

/// Enables DR: CRDs, namespace, `k10-dr-secret`, the Policy, ServiceAccount, RBAC, CronJob.
pub async fn enable(client: &Client, settings: &EnableSettings) -> Result<EnableReport, InstallError> {
    let ns = &settings.namespace;
    if crate::cron::next_after(&settings.frequency, time::OffsetDateTime::now_utc()).is_none() {
        return Err(InstallError::InvalidFrequency(settings.frequency.clone()));
    }
    install_crds(client).await?;
    ensure_namespace(client, ns).await?;
    let profiles: Api<Profile> = Api::namespaced(client.clone(), ns);
    let profile = profiles
        .get_opt(&settings.profile)
        .await
        .map_err(api_err(format!("reading profile {}", settings.profile)))?
        .ok_or_else(|| InstallError::ProfileMissing { name: settings.profile.clone(), namespace: ns.clone() })?;
    write_dr_secret(client, ns, &settings.source).await?;
    if let Some(pem) = &settings.vault_ca_bundle {
        let mut map = crate::resources::ca_bundle_config_map(VAULT_CA_CONFIG_MAP, ns, pem.clone());
        map.metadata.labels = Some(labels());
        apply(&Api::namespaced(client.clone(), ns), map).await?;
    }

    let mut destinations = Vec::new();
    if let Some(r) = &settings.policy.replication {
        if crate::cron::next_after(&r.frequency, time::OffsetDateTime::now_utc()).is_none() {
            return Err(InstallError::InvalidFrequency(r.frequency.clone()));
        }
        for name in std::iter::once(&r.to).chain(r.verify_with.as_ref()) {
            let p = profiles.get_opt(name).await.map_err(api_err(format!("reading profile {name}")))?;
            let p = p.ok_or_else(|| InstallError::ProfileMissing { name: name.clone(), namespace: ns.clone() })?;
            if p.spec.s3.is_none() && p.spec.azure.is_none() && p.spec.gcs.is_none() {
                return Err(InstallError::Replication {
                    name: name.clone(),
                    why: "the replication CronJob copies to S3, Azure Blob and Google Cloud Storage profiles only; for a file share, run `kubectl dr replicate` from a machine that mounts both"
                        .into(),
                });
            }
            destinations.push(p);
        }
        if r.to == settings.profile {
            return Err(InstallError::Replication { name: r.to.clone(), why: "it is the policy's own profile: replicate to another location".into() });
        }
    }
    let mut policy = Policy::new(DR_POLICY_NAME, settings.policy.clone());
    policy.metadata.namespace = Some(ns.clone());
    policy.metadata.labels = Some(labels());
    // Apply leaves status (the run history the jobs write) alone.
    let policies = Api::<Policy>::namespaced(client.clone(), ns);
    apply(&policies, policy).await?;
    // How overdue a backup may be before monitoring says so, from the first moment: a
    // CronJob whose pods never start writes no run.
    let gap = crate::cron::longest_gap(&settings.frequency, time::OffsetDateTime::now_utc());
    policies
        .patch_status(DR_POLICY_NAME, &PatchParams::default(), &Patch::Merge(json!({"status": {"backupIntervalSeconds": gap}})))
        .await
        .map_err(api_err("writing the DR policy's backup interval"))?;

    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(SERVICE_ACCOUNT.into());
    sa.metadata.namespace = Some(ns.clone());
    sa.metadata.labels = Some(labels());
    apply(&Api::<ServiceAccount>::namespaced(client.clone(), ns), sa).await?;
    // The kinds a full backup reads, as the cluster serves them now.
    let read = match settings.policy.mode {
        Mode::Full => crate::backup::backed_up_resources(client, &settings.policy.selection, Mode::Full).await?,
        Mode::Quick => Vec::new(),
    };
    let (role, cluster_role) = rbac(ns, settings.policy.mode, &read);
    let cluster_role_name = cluster_role.name_any();
    apply(&Api::<Role>::namespaced(client.clone(), ns), role).await?;
    apply(&Api::<ClusterRole>::all(client.clone()), cluster_role).await?;
    let subject = json!([{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}]);
    let role_binding: RoleBinding = from_json(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": ns, "labels": labels()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT}, "subjects": subject}));
    let cluster_binding: ClusterRoleBinding = from_json(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": cluster_role_name, "labels": labels()},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role_name}, "subjects": subject}));
    apply(&Api::<RoleBinding>::namespaced(client.clone(), ns), role_binding).await?;
    apply(&Api::<ClusterRoleBinding>::all(client.clone()), cluster_binding).await?;
    let crons = Api::<CronJob>::namespaced(client.clone(), ns);
    apply(&crons, cronjob(settings, &profile)).await?;
    match &settings.policy.replication {
        Some(r) => {
            apply(&crons, replication_cronjob(settings, &profile, &destinations, &r.frequency)).await?;
        }
        // Enabled again without replication: its CronJob goes.
        None => match crons.delete(REPLICATION_CRONJOB, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(api_err(format!("removing CronJob {REPLICATION_CRONJOB}"))(e)),
        },
    }

    let cluster_id = crate::ownership::cluster_id(client).await?;
    Ok(EnableReport {
        cluster_id,
        namespace: ns.clone(),
        profile: settings.profile.clone(),
        passphrase_source: settings.source.describe(),
        schedule: settings.frequency.clone(),
    })
}

/// Removes the policy, its CronJob and RBAC; the secret and all restore points stay unless
/// `delete_secret`.
pub async fn disable(client: &Client, namespace: &str, delete_secret: bool) -> Result<Vec<String>, InstallError> {
    let mut removed = Vec::new();
    let dp = DeleteParams::background();
    macro_rules! remove {
        ($api:expr, $name:expr, $what:expr) => {
            match $api.delete($name, &dp).await {
                Ok(_) => removed.push(format!("{} {}", $what, $name)),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(InstallError::Api { what: format!("deleting {} {}", $what, $name), source: e }),
            }
        };
    }
    let cluster_role = format!("{SERVICE_ACCOUNT}-{namespace}");
    remove!(Api::<CronJob>::namespaced(client.clone(), namespace), DR_POLICY_NAME, "cronjob");
    remove!(Api::<CronJob>::namespaced(client.clone(), namespace), REPLICATION_CRONJOB, "cronjob");
    remove!(Api::<Policy>::namespaced(client.clone(), namespace), DR_POLICY_NAME, "policy");
    remove!(Api::<RoleBinding>::namespaced(client.clone(), namespace), SERVICE_ACCOUNT, "rolebinding");
    remove!(Api::<Role>::namespaced(client.clone(), namespace), SERVICE_ACCOUNT, "role");
    remove!(Api::<ClusterRoleBinding>::all(client.clone()), &cluster_role, "clusterrolebinding");
    remove!(Api::<ClusterRole>::all(client.clone()), &cluster_role, "clusterrole");
    remove!(Api::<ServiceAccount>::namespaced(client.clone(), namespace), SERVICE_ACCOUNT, "serviceaccount");
    remove!(Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), namespace), VAULT_CA_CONFIG_MAP, "configmap");
    if delete_secret {
        remove!(Api::<Secret>::namespaced(client.clone(), namespace), DR_SECRET_NAME, "secret");
    }
    Ok(removed)
}

/// What `kubectl dr status` shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub namespace: String,
    pub cluster_id: String,
    pub enabled: bool,
    pub policy: Option<PolicySpec>,
    pub schedule: Option<String>,
    pub suspended: bool,
    pub last_schedule: Option<String>,
    pub next_run: Option<String>,
    pub last_runs: Vec<crate::resources::RunRecord>,
    /// False while the ownership ConfigMap exists (a restored cluster).
    pub owns_location: bool,
}

pub async fn status(client: &Client, namespace: &str) -> Result<StatusReport, InstallError> {
    let cluster_id = crate::ownership::cluster_id(client).await?;
    let policy = Api::<Policy>::namespaced(client.clone(), namespace).get_opt(DR_POLICY_NAME).await.map_err(api_err("reading the DR policy"));
    // Without the CRD installed, the policy cannot exist.
    let policy = match policy {
        Ok(p) => p,
        Err(InstallError::Api { source: kube::Error::Api(e), .. }) if e.code == 404 => None,
        Err(e) => return Err(e),
    };
    let cron = Api::<CronJob>::namespaced(client.clone(), namespace).get_opt(DR_POLICY_NAME).await.map_err(api_err("reading the DR CronJob"))?;
    let owner =
        Api::<ConfigMap>::namespaced(client.clone(), namespace).get_opt(OWNERSHIP_CONFIGMAP).await.map_err(api_err("reading the ownership ConfigMap"))?;
    let schedule = cron.as_ref().and_then(|c| c.spec.as_ref()).map(|s| s.schedule.clone());
    let suspended = cron.as_ref().and_then(|c| c.spec.as_ref()).and_then(|s| s.suspend).unwrap_or(false);
    let next_run = match (&schedule, suspended) {
        (Some(s), false) => crate::cron::next_after(s, time::OffsetDateTime::now_utc()).map(crate::point::rfc3339),
        _ => None,
    };
    Ok(StatusReport {
        namespace: namespace.into(),
        cluster_id,
        enabled: policy.is_some() && cron.is_some(),
        last_runs: policy.as_ref().and_then(|p| p.status.clone()).map(|s| s.last_runs).unwrap_or_default(),
        policy: policy.map(|p| p.spec),
        schedule,
        suspended,
        last_schedule: cron.and_then(|c| c.status).and_then(|s| s.last_schedule_time).map(|t| t.0.to_string()),
        next_run,
        owns_location: owner.is_none(),
    })
}

/// Run Once: a Job made from the DR CronJob's template, as `kubectl create job
/// --from=cronjob/k10-disaster-recovery-policy` makes it.
pub async fn run_once(client: &Client, namespace: &str) -> Result<Job, InstallError> {
    let cron = Api::<CronJob>::namespaced(client.clone(), namespace)
        .get_opt(DR_POLICY_NAME)
        .await
        .map_err(api_err("reading the DR CronJob"))?
        .ok_or_else(|| InstallError::NotEnabled(namespace.into()))?;
    let template = cron.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let mut job = Job { spec: template.spec, ..Default::default() };
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    job.metadata.name = Some(format!("{DR_POLICY_NAME}-manual-{stamp}"));
    job.metadata.namespace = Some(namespace.into());
    job.metadata.labels = template.metadata.and_then(|m| m.labels);
    job.metadata.annotations = Some(BTreeMap::from([("cronjob.kubernetes.io/instantiate".to_owned(), "manual".to_owned())]));
    job.metadata.owner_references = cron.controller_owner_ref(&()).map(|r| vec![r]);
    Api::<Job>::namespaced(client.clone(), namespace).create(&PostParams::default(), &job).await.map_err(api_err("creating the Run Once job"))
}
