//! Restore: puts one restore point's objects back onto a (usually new, empty) cluster.
//!
//! The order of work is what makes a restore safe to trust and to run again:
//! 1. settings are checked (skipResource names, quick mode needs override) before anything;
//! 2. a Lease in the DR namespace refuses a second restore running at the same time;
//! 3. the point is found, its manifest decrypted, its mode checked, and the whole archive
//!    decrypted and verified (hash, counts) — a wrong passphrase or a damaged point stops
//!    here, before the first write;
//! 4. the ownership ConfigMap is created first, so even a half-restored cluster never acts
//!    as the owner of the location (no pruning, no scheduled backups);
//! 5. the archive is read again once per tier (CRDs, Namespaces, other cluster-scoped,
//!    foundation namespaced kinds, the rest, then objects with owners), so memory stays flat
//!    whatever the point's size; within a tier objects are written concurrently, under a
//!    client-side rate limit, with retries on throttling, transient errors and conflicts;
//! 6. every restored object is annotated with the point it came from, so a re-run tells
//!    "restored by an earlier run of this restore" from "was already there".

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::Client;
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::catalog::{Category, Entry, Mode, API_GROUP, DR_POLICY_NAME, OWNERSHIP_CONFIGMAP};
use crate::location::{Location, LocationError};
use crate::passphrase::{PassphraseSource, ResolveOptions};
use crate::point::{self, Manifest, PointError, Unlocker};
use crate::resources::{self, ResourceError};

/// The field manager of objects the restore replaces by server-side apply.
pub const FIELD_MANAGER: &str = "kubectl-dr-restore";
/// Set on every object a restore creates or replaces: the point it came from.
pub const RESTORED_FROM_ANNOTATION: &str = "dr.kubectl-dr.io/restored-from";
/// The Lease that keeps two restores from running in one DR namespace at once.
pub const LEASE_NAME: &str = "kubectl-dr-restore";
/// A holder that stops renewing loses the Lease after this long (a killed pod, a deleted Job).
const LEASE_SECONDS: i32 = 30;
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// How long a restored CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per object for throttling, 5xx, timeouts and conflicts.
const ATTEMPTS: u32 = 8;
/// Failure messages kept per kind (the counts are always complete).
const REASONS_KEPT: usize = 5;

/// What a restore needs; the Job reads it from `DR_*` variables (`job::RestoreSettings`),
/// the plugin's `--dry-run` from its flags.
#[derive(Clone, Debug)]
pub struct RestoreSettings {
    /// The DR namespace: where the profile, `k10-dr-secret` and the ownership ConfigMap live.
    pub namespace: String,
    pub source_cluster_id: String,
    pub profile: String,
    pub point_in_time: Option<OffsetDateTime>,
    pub skip: BTreeSet<Category>,
    pub quick_mode: bool,
    pub override_resources: bool,
    pub timeout: Duration,
    /// Where a file profile's volume is mounted; `None` where none is.
    pub location_mount: Option<PathBuf>,
    pub resolve: ResolveOptions,
    /// Objects written at once within a tier.
    pub concurrency: usize,
    /// Requests per second the restore allows itself.
    pub qps: u32,
    /// Who holds the Lease: the same restore (Job) may take it over after a crash.
    pub holder: String,
    /// Plan only: read the cluster, write nothing.
    pub dry_run: bool,
    /// The passphrase source to use instead of `k10-dr-secret` (the plugin's `--dry-run`,
    /// which writes nothing, not even the secret).
    pub passphrase_source: Option<PassphraseSource>,
}

impl RestoreSettings {
    /// Defaults for everything but what names the restore.
    pub fn new(namespace: &str, source_cluster_id: &str, profile: &str) -> Self {
        Self {
            namespace: namespace.into(),
            source_cluster_id: source_cluster_id.into(),
            profile: profile.into(),
            point_in_time: None,
            skip: BTreeSet::new(),
            quick_mode: false,
            override_resources: false,
            timeout: Duration::from_secs(30 * 60),
            location_mount: None,
            resolve: ResolveOptions::default(),
            concurrency: DEFAULT_CONCURRENCY,
            qps: DEFAULT_QPS,
            holder: "kubectl-dr".into(),
            dry_run: false,
            passphrase_source: None,
        }
    }

    /// Refuses settings that cannot work, before anything is read or written.
    pub fn check(&self) -> Result<(), RestoreError> {
        point::validate_cluster_id(&self.source_cluster_id)?;
        if self.profile.is_empty() {
            return Err(RestoreError::Invalid("profile.name is required: the location profile the source cluster's DR policy wrote to".into()));
        }
        if self.quick_mode && !self.override_resources {
            return Err(RestoreError::Invalid(
                "quick mode restores may create or replace the DR platform's resources: set quickMode.overrideResources=true (--override-resources) as well".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(RestoreError::Invalid("restore.timeout must be a positive number of minutes".into()));
        }
        if self.concurrency == 0 || self.qps == 0 {
            return Err(RestoreError::Invalid("restore concurrency and QPS must be positive".into()));
        }
        Ok(())
    }
}

pub const DEFAULT_CONCURRENCY: usize = 16;
/// A restore's own rate limit; the API server's priority and fairness still applies (429s are
/// honoured).
pub const DEFAULT_QPS: u32 = 2000;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("restore point {point} was written in {point_mode} mode but this restore is set to {setting}: {fix}")]
    ModeMismatch { point: String, point_mode: &'static str, setting: &'static str, fix: &'static str },
    #[error("another restore ({holder}) is running in namespace {namespace} (Lease {LEASE_NAME}, renewed {renewed}); wait for it to finish, or delete the Lease if its Job is gone")]
    Busy { holder: String, namespace: String, renewed: String },
    #[error(transparent)]
    Point(#[from] PointError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("{what}: {source}")]
    Api { what: String, source: kube::Error },
    #[error("restore.timeout ({minutes} min) reached: {done} of {total} objects handled, {left} left; run the restore again to finish it (nothing is duplicated)")]
    Timeout { minutes: u64, done: u64, total: u64, left: u64, report: Box<RestoreReport> },
    #[error("{failed} objects could not be restored (see the report per kind); fix the cause and run the restore again: what was restored stays and is not duplicated")]
    Failed { failed: u64, report: Box<RestoreReport> },
}

impl RestoreError {
    /// The report of what was done, when the restore got as far as writing.
    pub fn report(&self) -> Option<&RestoreReport> {
        match self {
            RestoreError::Timeout { report, .. } | RestoreError::Failed { report, .. } => Some(report),
            _ => None,
        }
    }
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RestoreError {
    let what = what.into();
    move |source| RestoreError::Api { what, source }
}

/// What happened to the objects of one kind.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KindReport {
    /// Created by this run.
    pub restored: u64,
    /// Restored by an earlier run of a restore from the same point (a re-run).
    #[serde(skip_serializing_if = "is_zero")]
    pub already_restored: u64,
    /// Existed and were replaced (override).
    #[serde(skip_serializing_if = "is_zero")]
    pub replaced: u64,
    /// Left out, by reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub failed: u64,
    /// The first few failure reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Objects restored without an ownerReference whose owner is not on this cluster.
    #[serde(skip_serializing_if = "is_zero")]
    pub owner_references_dropped: u64,
    /// Existing objects (first few names) left as they were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub existing: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl KindReport {
    fn handled(&self) -> u64 {
        self.restored + self.already_restored + self.replaced + self.skipped.values().sum::<u64>() + self.failed
    }
}

/// The result of a restore: logged, written as the termination message, shown by the plugin.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub source_cluster_id: String,
    pub restore_point: String,
    pub mode: String,
    pub location: String,
    pub dry_run: bool,
    pub objects: u64,
    pub restored: u64,
    pub replaced: u64,
    pub skipped: u64,
    pub failed: u64,
    pub seconds: f64,
    pub by_kind: BTreeMap<String, KindReport>,
}

impl RestoreReport {
    fn total(&self) -> u64 {
        self.by_kind.values().map(KindReport::handled).sum()
    }

    fn finish(&mut self, started: Instant) {
        self.seconds = started.elapsed().as_secs_f64();
        self.restored = self.by_kind.values().map(|k| k.restored + k.already_restored).sum();
        self.replaced = self.by_kind.values().map(|k| k.replaced).sum();
        self.skipped = self.by_kind.values().map(|k| k.skipped.values().sum::<u64>()).sum();
        self.failed = self.by_kind.values().map(|k| k.failed).sum();
    }

    /// The report for the 4 KiB termination message: whole if it fits, else without the
    /// lists of existing objects, then with one failure reason per kind, then totals only.
    pub fn compact(&self) -> String {
        const LIMIT: usize = 4000;
        let json = serde_json::to_string(self).expect("report serializes");
        if json.len() <= LIMIT {
            return json;
        }
        let mut short = self.clone();
        for k in short.by_kind.values_mut() {
            k.existing.clear();
        }
        let json = serde_json::to_string(&short).expect("report serializes");
        if json.len() <= LIMIT {
            return json;
        }
        for k in short.by_kind.values_mut() {
            k.failures.truncate(1);
        }
        let json = serde_json::to_string(&short).expect("report serializes");
        if json.len() <= LIMIT {
            return json;
        }
        short.by_kind.clear();
        serde_json::to_string(&short).expect("report serializes")
    }
}

/// The order objects are written in. Objects with ownerReferences come last, after their
/// owners exist, so their references can name the owners' new UIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Crds,
    Namespaces,
    ClusterScoped,
    /// What workloads need to start: identities, configuration, RBAC, storage claims, and
    /// the DR Profiles (which Policies name).
    Foundation,
    Workloads,
    Owned,
}

const TIERS: [Tier; 5] = [Tier::Crds, Tier::Namespaces, Tier::ClusterScoped, Tier::Foundation, Tier::Workloads];

const FOUNDATION_KINDS: &[&str] = &[
    "ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim", "LimitRange", "ResourceQuota",
    "Role.rbac.authorization.k8s.io", "RoleBinding.rbac.authorization.k8s.io", "NetworkPolicy.networking.k8s.io",
];

fn tier_of(entry: &Entry) -> Tier {
    let has_owners = entry.object.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    let key = entry.kind_key();
    if has_owners {
        Tier::Owned
    } else if key == "CustomResourceDefinition.apiextensions.k8s.io" {
        Tier::Crds
    } else if key == "Namespace" {
        Tier::Namespaces
    } else if entry.namespace().is_empty() {
        Tier::ClusterScoped
    } else if FOUNDATION_KINDS.contains(&key.as_str()) || key == format!("Profile.{API_GROUP}") {
        Tier::Foundation
    } else {
        Tier::Workloads
    }
}

/// Why an object of the point is not written, before the cluster is asked anything.
fn skip_reason(entry: &Entry, skip: &BTreeSet<Category>) -> Option<&'static str> {
    // Namespaces hold the applications: skipping `cluster` alone keeps them.
    let skipped = if entry.kind() == "Namespace" && entry.api_version() == "v1" {
        skip.contains(&Category::Cluster) && skip.contains(&Category::Applications)
    } else {
        skip.contains(&entry.category)
    };
    if skipped {
        return Some("skipResource");
    }
    // The new cluster makes these itself; the old ones would carry the old cluster's CA or tokens.
    let o = &entry.object;
    if entry.kind() == "ConfigMap" && entry.name() == "kube-root-ca.crt" {
        return Some("made by the cluster");
    }
    if entry.kind() == "Secret" && o["type"] == "kubernetes.io/service-account-token" {
        return Some("made by the cluster");
    }
    None
}

/// Clears what the old cluster allocated and the new one must allocate again: a Service's
/// cluster IPs (another cluster's service range would be refused; headless `None` stays) and
/// its node ports (they may be taken; the type's own allocation gives new ones).
fn prepare_for_new_cluster(object: &mut Value) {
    if object["kind"] == "Service" && object["apiVersion"] == "v1" {
        let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else { return };
        if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
        spec.remove("healthCheckNodePort");
    }
}

/// A simple pacing limiter: one request slot every 1/qps seconds.
struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    fn new(qps: u32) -> Self {
        Self { interval: Duration::from_secs_f64(1.0 / f64::from(qps.max(1))), next: Mutex::new(Instant::now()) }
    }
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().expect("not poisoned");
            let now = Instant::now();
            // Allow a short burst after idle time, not an unbounded one.
            let slot = (*next).max(now - self.interval * 16);
            *next = slot + self.interval;
            slot
        };
        if slot > Instant::now() {
            tokio::time::sleep_until(slot.into()).await;
        }
    }
}

/// The state shared by every object's write.
struct Ctx {
    client: Client,
    settings: RestoreSettings,
    point_id: String,
    limiter: RateLimiter,
    /// Source UID → UID on this cluster, for relinking ownerReferences.
    uids: Mutex<HashMap<String, String>>,
    /// apiVersion/kind → how to reach it; `None` if this cluster does not serve it.
    kinds: tokio::sync::Mutex<HashMap<(String, String), Option<(ApiResource, bool)>>>,
    report: Mutex<RestoreReport>,
    /// CRDs written (or found) in the first tier, by name, with the (group, kind) they define:
    /// the names to wait for until Established, the kinds whose discovery may lag.
    crds: Mutex<BTreeMap<String, (String, String)>>,
    /// (group, kind) of CRDs that skipResource left out: their custom resources are skipped
    /// for that reason rather than failed.
    skipped_crds: Mutex<HashSet<(String, String)>>,
}

enum Outcome {
    Restored,
    AlreadyRestored,
    Replaced,
    Skipped(String),
    Existing(String),
    Failed(String),
}

impl Ctx {
    fn record(&self, kind: &str, outcome: Outcome, dropped_refs: bool) {
        let mut report = self.report.lock().expect("not poisoned");
        let k = report.by_kind.entry(kind.to_owned()).or_default();
        if dropped_refs {
            k.owner_references_dropped += 1;
        }
        match outcome {
            Outcome::Restored => k.restored += 1,
            Outcome::AlreadyRestored => k.already_restored += 1,
            Outcome::Replaced => k.replaced += 1,
            Outcome::Skipped(why) => *k.skipped.entry(why).or_default() += 1,
            Outcome::Existing(name) => {
                *k.skipped.entry("already exists".into()).or_default() += 1;
                if k.existing.len() < 20 {
                    k.existing.push(name);
                }
            }
            Outcome::Failed(why) => {
                k.failed += 1;
                if k.failures.len() < REASONS_KEPT {
                    k.failures.push(why);
                }
            }
        }
    }

    /// How to reach `apiVersion`/`kind` on this cluster. Discovery of a kind whose CRD was
    /// just restored can lag behind `Established` on a real API server: ask a few times.
    async fn resource(&self, api_version: &str, kind: &str) -> Result<Option<(ApiResource, bool)>, kube::Error> {
        let key = (api_version.to_owned(), kind.to_owned());
        let mut kinds = self.kinds.lock().await;
        if let Some(found) = kinds.get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        // Only a kind whose CRD this restore just wrote is worth asking about again.
        let restored = self.crds.lock().expect("not poisoned").values().any(|(g, k)| g == group && k == kind);
        let attempts = if restored { 10 } else { 1 };
        let mut found = None;
        for attempt in 0..attempts {
            match kube::discovery::pinned_kind(&self.client, &gvk).await {
                Ok((resource, caps)) => {
                    found = Some((resource, caps.scope == Scope::Namespaced));
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(kube::Error::Discovery(_)) => {}
                Err(e) => return Err(e),
            }
            if attempt + 1 < attempts {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        kinds.insert(key, found.clone());
        Ok(found)
    }

    async fn restore(&self, entry: Entry, relink: bool) {
        let kind = entry.kind_key();
        let who = object_name(&entry);
        let (outcome, dropped) = match self.restore_inner(entry, relink).await {
            Ok(o) => o,
            Err(why) => (Outcome::Failed(format!("{who}: {why}")), false),
        };
        if let Outcome::Failed(why) = &outcome {
            tracing::warn!(kind = %kind, reason = %why, "not restored");
        }
        self.record(&kind, outcome, dropped);
    }

    async fn restore_inner(&self, entry: Entry, relink: bool) -> Result<(Outcome, bool), String> {
        if let Some(why) = skip_reason(&entry, &self.settings.skip) {
            if entry.kind_key() == "CustomResourceDefinition.apiextensions.k8s.io" {
                self.skipped_crds.lock().expect("not poisoned").insert(crd_group_kind(&entry.object));
            }
            return Ok((Outcome::Skipped(why.into()), false));
        }
        let Some((resource, namespaced)) =
            self.resource(entry.api_version(), entry.kind()).await.map_err(|e| format!("discovery failed: {e}"))?
        else {
            let group = entry.api_version().split_once('/').map(|(g, _)| g).unwrap_or_default().to_owned();
            if self.skipped_crds.lock().expect("not poisoned").contains(&(group, entry.kind().to_owned())) {
                return Ok((Outcome::Skipped("its CRD is skipped (skipResource)".into()), false));
            }
            return Err(format!("{} is not served by this cluster (is its CRD or API service installed?)", entry.api_version()));
        };
        let name = entry.name().to_owned();
        let namespace = entry.namespace().to_owned();
        let source_uid = entry.source_uid.clone();
        let mut object = entry.object;
        let dropped = if relink { self.relink(&mut object, &namespace).await? } else { false };
        prepare_for_new_cluster(&mut object);
        if object["kind"] == "CronJob" && namespace == self.settings.namespace && name == DR_POLICY_NAME {
            // The restored cluster must not back up into the location until it takes ownership.
            object["spec"]["suspend"] = json!(true);
        }
        object["metadata"]["annotations"][RESTORED_FROM_ANNOTATION] = json!(self.point_id);
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(self.client.clone(), &namespace, &resource)
        } else {
            Api::all_with(self.client.clone(), &resource)
        };
        if resource.kind == "CustomResourceDefinition" {
            self.crds.lock().expect("not poisoned").insert(name.clone(), crd_group_kind(&object));
        }
        let outcome = if self.settings.dry_run {
            match self.call(|| api.get_opt(&name)).await? {
                None => Outcome::Restored,
                Some(_) if self.settings.override_resources => Outcome::Replaced,
                Some(existing) => self.existing(&existing, &namespace, &name),
            }
        } else {
            let obj: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| format!("not a Kubernetes object: {e}"))?;
            let create = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
            match self.call(|| api.create(&create, &obj)).await {
                Ok(created) => {
                    self.remember(source_uid.as_deref(), &created);
                    Outcome::Restored
                }
                Err(e) if e.starts_with("409 AlreadyExists") => {
                    if self.settings.override_resources {
                        let params = PatchParams::apply(FIELD_MANAGER).force();
                        let apply = Patch::Apply(&object);
                        let applied = self.call(|| api.patch(&name, &params, &apply)).await?;
                        self.remember(source_uid.as_deref(), &applied);
                        Outcome::Replaced
                    } else {
                        let existing = self.call(|| api.get(&name)).await?;
                        self.remember(source_uid.as_deref(), &existing);
                        self.existing(&existing, &namespace, &name)
                    }
                }
                Err(e) => return Err(e),
            }
        };
        Ok((outcome, dropped))
    }

    fn existing(&self, existing: &DynamicObject, namespace: &str, name: &str) -> Outcome {
        let from = existing.metadata.annotations.as_ref().and_then(|a| a.get(RESTORED_FROM_ANNOTATION));
        if from.map(String::as_str) == Some(self.point_id.as_str()) {
            Outcome::AlreadyRestored
        } else if namespace.is_empty() {
            Outcome::Existing(name.to_owned())
        } else {
            Outcome::Existing(format!("{namespace}/{name}"))
        }
    }

    fn remember(&self, source_uid: Option<&str>, obj: &DynamicObject) {
        if let (Some(src), Some(uid)) = (source_uid, obj.metadata.uid.as_deref()) {
            self.uids.lock().expect("not poisoned").insert(src.to_owned(), uid.to_owned());
        }
    }

    /// Points each ownerReference at the owner's UID on this cluster: from this restore's
    /// own writes, else by looking the owner up by name. A reference whose owner is not here
    /// is dropped (a reference to a missing UID would make the garbage collector delete the
    /// object). Returns whether one was dropped.
    async fn relink(&self, object: &mut Value, namespace: &str) -> Result<bool, String> {
        let refs = object["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default();
        let mut kept = Vec::new();
        let mut dropped = false;
        for mut r in refs {
            let src = r["uid"].as_str().unwrap_or_default().to_owned();
            let known = self.uids.lock().expect("not poisoned").get(&src).cloned();
            let uid = match known {
                Some(uid) => Some(uid),
                None => self.lookup_owner(&r, namespace).await?,
            };
            match uid {
                Some(uid) => {
                    r["uid"] = json!(uid);
                    kept.push(r);
                }
                None => dropped = true,
            }
        }
        let meta = object["metadata"].as_object_mut().ok_or("object has no metadata")?;
        if kept.is_empty() {
            meta.remove("ownerReferences");
        } else {
            meta.insert("ownerReferences".into(), Value::Array(kept));
        }
        Ok(dropped)
    }

    async fn lookup_owner(&self, r: &Value, namespace: &str) -> Result<Option<String>, String> {
        let (Some(api_version), Some(kind), Some(name)) = (r["apiVersion"].as_str(), r["kind"].as_str(), r["name"].as_str()) else {
            return Ok(None);
        };
        let Some((resource, namespaced)) = self.resource(api_version, kind).await.map_err(|e| format!("discovery failed: {e}"))? else {
            return Ok(None);
        };
        let api: Api<DynamicObject> =
            if namespaced { Api::namespaced_with(self.client.clone(), namespace, &resource) } else { Api::all_with(self.client.clone(), &resource) };
        Ok(self.call(|| api.get_opt(name)).await?.and_then(|o| o.metadata.uid))
    }

    /// One API call under the rate limit, retried with backoff on throttling (honouring the
    /// server's retry-after), 5xx, timeouts and conflicts. Errors come back as
    /// "<code> <reason>: <message>".
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            self.limiter.wait().await;
            let err = match f().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let (retry, wait) = match &err {
                kube::Error::Api(s) if s.code == 429 || s.code >= 500 || (s.code == 409 && s.reason == "Conflict") => {
                    let after = s.details.as_ref().map(|d| d.retry_after_seconds).filter(|s| *s > 0);
                    (true, after.map(|s| Duration::from_secs(u64::from(s))).unwrap_or(delay))
                }
                kube::Error::Api(_) => (false, delay),
                // Transport errors: a restarting API server, a dropped connection.
                _ => (true, delay),
            };
            if !retry || attempt == ATTEMPTS {
                return Err(describe(&err));
            }
            tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        unreachable!("the last attempt returns")
    }

    /// Waits until every CRD of the first tier is Established, so their kinds can be written.
    async fn wait_established(&self) {
        let names: Vec<String> = self.crds.lock().expect("not poisoned").keys().cloned().collect();
        if names.is_empty() || self.settings.dry_run {
            return;
        }
        let crds: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"), "customresourcedefinitions"),
        );
        let deadline = Instant::now() + ESTABLISH_TIMEOUT;
        for name in names {
            loop {
                let established = match crds.get_opt(&name).await {
                    Ok(Some(crd)) => crd.data["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Established" && c["status"] == "True")),
                    // Failed to be created: its own failure is already in the report.
                    Ok(None) => true,
                    Err(e) => {
                        tracing::warn!(crd = %name, error = %e, "reading CRD status");
                        false
                    }
                };
                if established {
                    break;
                }
                if Instant::now() > deadline {
                    tracing::warn!(crd = %name, "CRD not Established in time; its custom resources may fail");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        // Kinds looked up before their CRDs existed must be asked again.
        self.kinds.lock().await.retain(|_, v| v.is_some());
    }
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => other.to_string(),
    }
}

/// The (group, kind) a CustomResourceDefinition defines.
fn crd_group_kind(crd: &Value) -> (String, String) {
    let spec = &crd["spec"];
    (spec["group"].as_str().unwrap_or_default().to_owned(), spec["names"]["kind"].as_str().unwrap_or_default().to_owned())
}

fn object_name(entry: &Entry) -> String {
    if entry.namespace().is_empty() {
        format!("{} {}", entry.kind_key(), entry.name())
    } else {
        format!("{} {}/{}", entry.kind_key(), entry.namespace(), entry.name())
    }
}

/// Restores per the settings. The Lease is held (and renewed) for the whole run.
pub async fn run_restore(client: &Client, settings: &RestoreSettings) -> Result<RestoreReport, RestoreError> {
    settings.check()?;
    let lease = if settings.dry_run { None } else { Some(LeaseGuard::acquire(client, &settings.namespace, &settings.holder).await?) };
    let started = Instant::now();
    let shared: Arc<Mutex<Option<Arc<Ctx>>>> = Arc::default();
    let result = tokio::time::timeout(settings.timeout, restore(client, settings, shared.clone(), started)).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    match result {
        Ok(r) => r,
        Err(_elapsed) => {
            let ctx = shared.lock().expect("not poisoned").clone();
            let mut report = ctx.map(|ctx| ctx.report.lock().expect("not poisoned").clone()).unwrap_or_default();
            let total = report.objects;
            report.finish(started);
            let done = report.total();
            Err(RestoreError::Timeout {
                minutes: settings.timeout.as_secs() / 60,
                done,
                total,
                left: total.saturating_sub(done),
                report: Box::new(report),
            })
        }
    }
}

async fn restore(client: &Client, settings: &RestoreSettings, shared: Arc<Mutex<Option<Arc<Ctx>>>>, started: Instant) -> Result<RestoreReport, RestoreError> {
    let profile = resources::get_profile(client, &settings.namespace, &settings.profile).await?;
    let config = resources::location_config(client, &settings.namespace, &profile, settings.location_mount.as_deref()).await?;
    let location = Location::connect(&config).await?;
    let points = point::list_points(&location, &settings.source_cluster_id).await?;
    let chosen = point::select_point(&points, settings.point_in_time, &settings.source_cluster_id, &location)?.clone();
    let source = match &settings.passphrase_source {
        Some(source) => source.clone(),
        None => resources::dr_secret_source(client, &settings.namespace).await?,
    };
    let passphrase = source.resolve(&settings.resolve).await.map_err(ResourceError::from)?;
    let unlocker = Unlocker::new(passphrase);
    let manifest = point::read_manifest(&location, &settings.source_cluster_id, &chosen.id, &unlocker).await?;
    check_mode(&manifest, settings.quick_mode)?;
    tracing::info!(point = %manifest.point_id, objects = manifest.counts.total, mode = manifest.mode.as_str(), location = %location.describe(), passphrase = %source.describe(), "verifying the restore point");
    // The whole point is decrypted and checked before the first write.
    point::verify_entries(&location, &manifest, &unlocker).await?;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        settings: settings.clone(),
        point_id: manifest.point_id.clone(),
        limiter: RateLimiter::new(settings.qps),
        uids: Mutex::default(),
        kinds: tokio::sync::Mutex::default(),
        report: Mutex::new(RestoreReport {
            source_cluster_id: settings.source_cluster_id.clone(),
            restore_point: manifest.point_id.clone(),
            mode: manifest.mode.as_str().into(),
            location: location.describe(),
            dry_run: settings.dry_run,
            objects: manifest.counts.total,
            ..Default::default()
        }),
        crds: Mutex::default(),
        skipped_crds: Mutex::default(),
    });
    *shared.lock().expect("not poisoned") = Some(ctx.clone());
    if !settings.dry_run {
        create_ownership_configmap(client, settings, &manifest).await?;
    }
    for tier in TIERS {
        pass(&ctx, &location, &manifest, &unlocker, move |e| tier_of(e) == tier, false).await?;
        tracing::info!(tier = ?tier, "tier done");
        if tier == Tier::Crds {
            ctx.wait_established().await;
        }
    }
    restore_owned(&ctx, &location, &manifest, &unlocker).await?;
    let mut report = ctx.report.lock().expect("not poisoned").clone();
    report.finish(started);
    for (kind, k) in &report.by_kind {
        tracing::info!(kind = %kind, restored = k.restored + k.already_restored, replaced = k.replaced, skipped = ?k.skipped, failed = k.failed, failures = ?k.failures, "restore result");
    }
    if report.failed > 0 {
        return Err(RestoreError::Failed { failed: report.failed, report: Box::new(report) });
    }
    Ok(report)
}

/// Fails unless the restore's quick-mode setting matches the point's mode.
pub fn check_mode(manifest: &Manifest, quick_mode: bool) -> Result<(), RestoreError> {
    match (manifest.mode, quick_mode) {
        (Mode::Quick, false) => Err(RestoreError::ModeMismatch {
            point: manifest.point_id.clone(),
            point_mode: "quick",
            setting: "a full restore",
            fix: "set quickMode.enabled=true and quickMode.overrideResources=true (--quick-mode --override-resources)",
        }),
        (Mode::Full, true) => Err(RestoreError::ModeMismatch {
            point: manifest.point_id.clone(),
            point_mode: "full",
            setting: "quick mode",
            fix: "leave quickMode.enabled unset (drop --quick-mode)",
        }),
        _ => Ok(()),
    }
}

/// Reads the point once, handing the entries `wanted` selects to concurrent writers.
async fn pass<F>(ctx: &Arc<Ctx>, location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>, wanted: F, relink: bool) -> Result<(), RestoreError>
where
    F: Fn(&Entry) -> bool + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Entry>(ctx.settings.concurrency * 4);
    let reader = point::read_entries(location, manifest, unlocker, move |e| {
        if wanted(&e) {
            tx.blocking_send(e).map_err(|_| "the restore stopped".to_string())?;
        }
        Ok(())
    });
    let entries = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let writers = entries.for_each_concurrent(ctx.settings.concurrency, |e| {
        let ctx = ctx.clone();
        async move { ctx.restore(e, relink).await }
    });
    let (read, ()) = tokio::join!(reader, writers);
    read?;
    Ok(())
}

/// Objects with owners, in rounds: an object whose owner is itself still waiting (a chain of
/// owners) goes in a later round, so its reference can name the owner's new UID. A round that
/// writes nothing (an ownership cycle) is followed by one that writes the rest, dropping the
/// references that still cannot be resolved.
async fn restore_owned(ctx: &Arc<Ctx>, location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>) -> Result<(), RestoreError> {
    // Source UIDs of owned objects not yet written.
    let pending: Arc<Mutex<HashSet<String>>> = Arc::default();
    let collect = pending.clone();
    point::read_entries(location, manifest, unlocker, move |e| {
        if let (Tier::Owned, Some(uid)) = (tier_of(&e), e.source_uid) {
            collect.lock().expect("not poisoned").insert(uid);
        }
        Ok(())
    })
    .await?;
    // Objects (by name) already written by an earlier round.
    let mut done: HashSet<String> = HashSet::new();
    let mut stalled = false;
    loop {
        let waiting: Arc<HashSet<String>> = Arc::new(pending.lock().expect("not poisoned").clone());
        let written: Arc<Mutex<Vec<(String, Option<String>)>>> = Arc::default();
        let blocked_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (written_in, done_before, blocked_in) = (written.clone(), Arc::new(done.clone()), blocked_count.clone());
        let force = stalled;
        pass(
            ctx,
            location,
            manifest,
            unlocker,
            move |e| {
                if tier_of(e) != Tier::Owned || done_before.contains(&object_name(e)) {
                    return false;
                }
                let me = e.source_uid.as_deref().unwrap_or_default();
                let blocked = !force
                    && e.object["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str().is_some_and(|u| u != me && waiting.contains(u))));
                if blocked {
                    blocked_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    written_in.lock().expect("not poisoned").push((object_name(e), e.source_uid.clone()));
                }
                !blocked
            },
            true,
        )
        .await?;
        let written = std::mem::take(&mut *written.lock().expect("not poisoned"));
        let mut still = pending.lock().expect("not poisoned");
        for (name, uid) in &written {
            done.insert(name.clone());
            if let Some(uid) = uid {
                still.remove(uid);
            }
        }
        // Done when nothing had to wait (objects without a source UID can wait too).
        if blocked_count.load(std::sync::atomic::Ordering::Relaxed) == 0 || force {
            return Ok(());
        }
        stalled = written.is_empty();
    }
}

async fn create_ownership_configmap(client: &Client, settings: &RestoreSettings, manifest: &Manifest) -> Result<(), RestoreError> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &settings.namespace);
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": OWNERSHIP_CONFIGMAP, "namespace": settings.namespace, "labels": {"app.kubernetes.io/managed-by": "kubectl-dr"}},
        "data": {
            "sourceClusterID": settings.source_cluster_id,
            "restorePoint": manifest.point_id,
            "restoredAt": point::rfc3339(OffsetDateTime::now_utc()),
            "README": "This cluster was restored by kubectl-dr. While this ConfigMap exists it does no maintenance on the location (no scheduled backups, no pruning). Delete it (kubectl dr take-ownership) only once the source cluster no longer uses the location.",
        }
    }))
    .expect("a ConfigMap");
    match cms.create(&PostParams::default(), &cm).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(RestoreError::Api { what: format!("creating ConfigMap {OWNERSHIP_CONFIGMAP} in namespace {}", settings.namespace), source: e }),
    }
}

/// The restore's Lease: acquired before the first read of the cluster's DR settings,
/// renewed in the background, deleted at the end.
struct LeaseGuard {
    api: Api<Lease>,
    renew: tokio::task::JoinHandle<()>,
}

impl LeaseGuard {
    async fn acquire(client: &Client, namespace: &str, holder: &str) -> Result<Self, RestoreError> {
        let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
        let now = || MicroTime(Timestamp::now());
        let mine = |rv: Option<String>| -> Lease {
            serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": LEASE_NAME, "namespace": namespace, "resourceVersion": rv},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": LEASE_SECONDS, "acquireTime": now(), "renewTime": now()}
            }))
            .expect("a Lease")
        };
        let what = format!("acquiring Lease {LEASE_NAME} in namespace {namespace}");
        match api.create(&PostParams::default(), &mine(None)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let current = api.get(LEASE_NAME).await.map_err(api_err(&what))?;
                let spec = current.spec.clone().unwrap_or_default();
                let other = spec.holder_identity.clone().unwrap_or_default();
                let renewed = spec.renew_time.as_ref().map(|t| t.0);
                let expired = renewed.is_none_or(|t| {
                    let age = Timestamp::now().as_second() - t.as_second();
                    age > i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS))
                });
                if other != holder && !expired {
                    return Err(RestoreError::Busy {
                        holder: other,
                        namespace: namespace.into(),
                        renewed: renewed.map(|t| t.to_string()).unwrap_or_else(|| "never".into()),
                    });
                }
                // Ours from an interrupted run, or abandoned: take it over (a conflict means
                // someone else just did).
                api.replace(LEASE_NAME, &PostParams::default(), &mine(current.metadata.resource_version.clone()))
                    .await
                    .map_err(|e| match e {
                        kube::Error::Api(s) if s.code == 409 => RestoreError::Busy { holder: "another restore".into(), namespace: namespace.into(), renewed: "just now".into() },
                        e => RestoreError::Api { what: what.clone(), source: e },
                    })?;
            }
            Err(e) => return Err(RestoreError::Api { what, source: e }),
        }
        let renew_api = api.clone();
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_RENEW).await;
                let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
                if let Err(e) = renew_api.patch(LEASE_NAME, &PatchParams::default(), &Patch::Merge(patch)).await {
                    tracing::warn!(error = %e, "renewing the restore Lease");
                }
            }
        });
        Ok(Self { api, renew })
    }

    async fn release(self) {
        self.renew.abort();
        if let Err(e) = self.api.delete(LEASE_NAME, &DeleteParams::default()).await {
            tracing::warn!(error = %e, "deleting the restore Lease (it expires by itself)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(category: Category, object: Value) -> Entry {
        Entry { category, object, source_uid: None }
    }

    #[test]
    fn tiers_put_definitions_before_what_uses_them() {
        let crd = entry(Category::Cluster, json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"}}));
        let ns = entry(Category::Cluster, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
        let sa = entry(Category::Applications, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "namespace": "shop"}}));
        let profile = entry(Category::Profiles, json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "p", "namespace": "kasten-io"}}));
        let policy = entry(Category::Policies, json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Policy", "metadata": {"name": "p", "namespace": "kasten-io"}}));
        let owned = entry(Category::Applications, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop", "ownerReferences": [{"uid": "1"}]}}));
        let cr = entry(Category::Cluster, json!({"apiVersion": "x.io/v1", "kind": "Widget", "metadata": {"name": "w"}}));
        assert_eq!(tier_of(&crd), Tier::Crds);
        assert_eq!(tier_of(&ns), Tier::Namespaces);
        assert_eq!(tier_of(&cr), Tier::ClusterScoped);
        assert_eq!(tier_of(&sa), Tier::Foundation);
        assert_eq!(tier_of(&profile), Tier::Foundation);
        assert_eq!(tier_of(&policy), Tier::Workloads);
        assert_eq!(tier_of(&owned), Tier::Owned);
    }

    #[test]
    fn skipping_cluster_keeps_the_namespaces_applications_live_in() {
        let ns = entry(Category::Cluster, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
        let cluster: BTreeSet<Category> = [Category::Cluster].into();
        let both: BTreeSet<Category> = [Category::Cluster, Category::Applications].into();
        assert_eq!(skip_reason(&ns, &cluster), None);
        assert_eq!(skip_reason(&ns, &both), Some("skipResource"));
        let token = entry(Category::Applications, json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": {"name": "t", "namespace": "shop"}}));
        assert_eq!(skip_reason(&token, &BTreeSet::new()), Some("made by the cluster"));
    }

    #[test]
    fn services_get_new_cluster_ips_and_node_ports_but_stay_headless() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                             "spec": {"type": "NodePort", "clusterIP": "10.96.4.7", "clusterIPs": ["10.96.4.7"], "ports": [{"port": 80, "nodePort": 30080}]}});
        prepare_for_new_cluster(&mut svc);
        assert_eq!(svc["spec"], json!({"type": "NodePort", "ports": [{"port": 80}]}));
        let mut headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        prepare_for_new_cluster(&mut headless);
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut s = RestoreSettings::new("kasten-io", "0b6bd9b4-2c4a-4d1e-9a3e-3b7f0f6a1c2d", "s3");
        assert!(s.check().is_ok());
        s.quick_mode = true;
        assert!(s.check().unwrap_err().to_string().contains("quickMode.overrideResources=true"));
        s.override_resources = true;
        s.timeout = Duration::ZERO;
        assert!(s.check().unwrap_err().to_string().contains("restore.timeout"));
    }
}
