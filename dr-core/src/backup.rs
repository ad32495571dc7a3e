//! Reading a live cluster into a restore point: the backup engine the job image's `backup`
//! and `kubectl dr backup --local` share.
//!
//! It discovers every served resource, lists each with pagination, keeps what the policy and
//! mode select, strips what the API server sets, and streams the objects into a
//! [`PointWriter`]. It never reads, lists or deletes anything at the location.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::{verbs, ApiCapabilities, ApiGroup, Scope};
use kube::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{classify, kind_key, Entry, Mode, API_GROUP, DR_POLICY_NAME};
use crate::format::crypto::Passphrase;
use crate::location::Location;
use crate::manifests::strip_server_fields;
use crate::ownership::{self, OwnershipError};
use crate::point::{Manifest, PointError, PointWriter};
use crate::resources::Selection;

/// Objects per list request: large enough to keep request counts low, small enough that a
/// page of big Secrets stays a few MiB.
pub const PAGE_SIZE: u32 = 500;

/// Namespaces a full backup leaves out unless named explicitly: the node heartbeat leases
/// and the cluster's own bootstrap objects are recreated by the new cluster.
pub const DEFAULT_EXCLUDED_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// Kinds never backed up: recreated by the API server or controllers, or not meaningful on
/// another cluster.
const NEVER_BACKED_UP: &[&str] = &[
    "Event",
    "Event.events.k8s.io",
    "Endpoints",
    "EndpointSlice.discovery.k8s.io",
    "Node",
    "Lease.coordination.k8s.io",
    "ComponentStatus",
    "PodMetrics.metrics.k8s.io",
    "NodeMetrics.metrics.k8s.io",
];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the DR service account may not list {resource}{scope}: its RBAC names each kind the policy reads, as discovered when DR was enabled, so a kind installed since needs `kubectl dr enable` again (or exclude the kind from the DR policy)")]
    ListForbidden { resource: String, scope: String },
    #[error("listing {resource} failed")]
    List { resource: String, source: kube::Error },
    #[error("cannot discover the cluster's resources (check that the API server is reachable and the credentials are valid)")]
    Discovery(#[source] kube::Error),
    #[error(transparent)]
    Ownership(#[from] OwnershipError),
    #[error(transparent)]
    Point(#[from] PointError),
}

impl crate::failure::Classify for BackupError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        use BackupError as E;
        match self {
            E::ListForbidden { .. } => ErrorKind::BadInput,
            E::List { source, .. } | E::Discovery(source) => source.kind(),
            E::Ownership(e) => e.kind(),
            E::Point(e) => e.kind(),
        }
    }
}

/// One resource to list, as discovery describes it.
struct Target {
    resource: ApiResource,
    caps: ApiCapabilities,
    key: String,
}

/// What the cluster serves (`discovery`), as the backup's error.
async fn discover(client: &Client) -> Result<(Vec<ApiGroup>, Vec<String>), BackupError> {
    let discovered = crate::discovery::discover(client).await.map_err(BackupError::Discovery)?;
    Ok((discovered.groups, discovered.unavailable))
}

/// The resources a backup of `mode` and `selection` reads on this cluster now, as (API group,
/// plural): what the DR policy's RBAC grants by name (never `*`, which would include
/// subresources such as `nodes/proxy` or `pods/exec`).
pub async fn backed_up_resources(client: &Client, selection: &Selection, mode: Mode) -> Result<Vec<(String, String)>, BackupError> {
    let (groups, _) = discover(client).await?;
    let mut out: Vec<(String, String)> = targets(&groups, selection, mode).into_iter().map(|t| (t.resource.group, t.resource.plural)).collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The kinds a backup of `mode` and `selection` reads on this cluster now, as kind key
/// (`Deployment.apps`) → plural (`kubectl dr diff --live` compares them).
pub async fn backed_up_kinds(client: &Client, selection: &Selection, mode: Mode) -> Result<BTreeMap<String, String>, BackupError> {
    let (groups, _) = discover(client).await?;
    Ok(targets(&groups, selection, mode).into_iter().map(|t| (t.key, t.resource.plural)).collect())
}

/// Whether a backup of `selection` reads namespaced objects of `namespace` (the DR
/// namespace always).
pub fn reads_namespace(selection: &Selection, dr_namespace: &str, namespace: &str) -> bool {
    if namespace == dr_namespace {
        return true;
    }
    if !selection.namespaces.is_empty() {
        return selection.namespaces.iter().any(|n| n == namespace);
    }
    match &selection.exclude_namespaces {
        Some(excluded) => !excluded.iter().any(|n| n == namespace),
        None => !DEFAULT_EXCLUDED_NAMESPACES.contains(&namespace),
    }
}

fn targets(groups: &[ApiGroup], selection: &Selection, mode: Mode) -> Vec<Target> {
    let include: BTreeSet<&str> = selection.include_kinds.iter().map(String::as_str).collect();
    let exclude: BTreeSet<&str> = selection.exclude_kinds.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for group in groups {
        // Each kind once, in the first version that serves it (the groups come preferred first).
        for (resource, caps) in group.recommended_resources() {
            if !caps.supports_operation(verbs::LIST) || !caps.supports_operation(verbs::CREATE) {
                continue;
            }
            let key = kind_key(&resource.api_version, &resource.kind);
            if !seen.insert(key.clone()) {
                continue;
            }
            let platform = is_platform_kind(&resource);
            let wanted = match mode {
                Mode::Quick => platform,
                Mode::Full => {
                    platform
                        || (!NEVER_BACKED_UP.contains(&key.as_str())
                            && !exclude.contains(key.as_str())
                            && (include.is_empty() || include.contains(key.as_str()))
                            && (caps.scope == Scope::Namespaced || selection.cluster_scoped))
                }
            };
            if wanted {
                out.push(Target { resource, caps, key });
            }
        }
    }
    out
}

/// The kinds quick mode keeps: the DR platform's own Profiles, Policies, Secrets, CronJob.
fn is_platform_kind(r: &ApiResource) -> bool {
    (r.group == API_GROUP && (r.kind == "Profile" || r.kind == "Policy"))
        || (r.group.is_empty() && r.kind == "Secret")
        || (r.group == "batch" && r.kind == "CronJob")
}

/// Whether a workload controller recreates this object (a Deployment's ReplicaSet, a
/// ReplicaSet's Pods, a CronJob's Jobs): restoring it would duplicate what the controller makes.
pub(crate) fn recreated_by_controller(obj: &Value) -> bool {
    obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
        refs.iter().any(|r| {
            r["controller"].as_bool() == Some(true) && matches!(r["apiVersion"].as_str(), Some(v) if v.starts_with("apps/") || v.starts_with("batch/"))
        })
    })
}

/// Counts of what a backup left out, for its report.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Skipped {
    pub namespace_excluded: u64,
    pub label_mismatch: u64,
    pub controller_owned: u64,
    pub outside_quick_mode: u64,
    /// API groups whose discovery failed (unavailable aggregated APIs); not backed up.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unavailable_groups: Vec<String>,
}

/// The result of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub manifest: Manifest,
    pub skipped: Skipped,
}

/// Backs up the cluster behind `client` into a new point at `location`.
pub async fn backup(
    client: &Client,
    location: &Location,
    cluster_id: &str,
    passphrase: &Passphrase,
    dr_namespace: &str,
    mode: Mode,
    selection: &Selection,
) -> Result<BackupReport, BackupError> {
    ownership::ensure_owner(client, dr_namespace).await?;
    let (groups, unavailable_groups) = discover(client).await?;
    let targets = targets(&groups, selection, mode);
    let mut writer = PointWriter::begin(location, cluster_id, passphrase, mode, DR_POLICY_NAME).await?;
    let mut skipped = Skipped { unavailable_groups, ..Default::default() };
    // Logged for `kubectl dr backup` to show (crate::progress): the resource being read, and
    // the objects written so far (a backup cannot know its total before it has listed all).
    let progress = crate::progress::Tracker::new("backup");
    let _ticks = progress.tick(crate::progress::TICK);
    let result = write_all(client, &mut writer, &targets, dr_namespace, mode, selection, &mut skipped, &progress).await;
    progress.phase("done", 0, 0);
    match result {
        Ok(()) => Ok(BackupReport { manifest: writer.finish().await?, skipped }),
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    }
}

// One caller (the backup above), which holds each of these separately.
#[allow(clippy::too_many_arguments)]
async fn write_all(
    client: &Client,
    writer: &mut PointWriter,
    targets: &[Target],
    dr_namespace: &str,
    mode: Mode,
    selection: &Selection,
    skipped: &mut Skipped,
    progress: &crate::progress::Tracker,
) -> Result<(), BackupError> {
    let default_excluded: Vec<String> = DEFAULT_EXCLUDED_NAMESPACES.iter().map(|s| s.to_string()).collect();
    let excluded = selection.exclude_namespaces.as_ref().unwrap_or(&default_excluded);
    let label_filter = selection.label_selector.as_deref().map(parse_equality_selector);
    for (step, target) in (1..).zip(targets) {
        progress.phase(&target.key, step, targets.len() as u64);
        writer.note_resource(&target.key, &target.resource.plural);
        let namespaced = target.caps.scope == Scope::Namespaced;
        // List per selected namespace when the policy names them, else cluster-wide once;
        // the DR namespace is always read (the platform's own resources live there).
        let scopes: Vec<Option<String>> = if namespaced && !selection.namespaces.is_empty() && mode == Mode::Full {
            let mut s: BTreeSet<String> = selection.namespaces.iter().cloned().collect();
            s.insert(dr_namespace.to_owned());
            s.into_iter().map(Some).collect()
        } else if namespaced && mode == Mode::Quick {
            vec![Some(dr_namespace.to_owned())]
        } else {
            vec![None]
        };
        for scope in scopes {
            let api: Api<DynamicObject> = match &scope {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &target.resource),
                None => Api::all_with(client.clone(), &target.resource),
            };
            let mut params = ListParams::default().limit(PAGE_SIZE);
            loop {
                let page = api.list(&params).await.map_err(|e| list_error(e, &target.resource, scope.as_deref()))?;
                for obj in page.items {
                    let mut object = serde_json::to_value(&obj).expect("objects serialize");
                    if object.get("apiVersion").is_none() {
                        object["apiVersion"] = Value::String(target.resource.api_version.clone());
                        object["kind"] = Value::String(target.resource.kind.clone());
                    }
                    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
                    let category = classify(&object, !namespaced, dr_namespace);
                    if !mode.keeps(category) {
                        skipped.outside_quick_mode += 1;
                        continue;
                    }
                    let in_dr_namespace = namespace == dr_namespace;
                    if mode == Mode::Full && namespaced && !in_dr_namespace {
                        if selection.namespaces.is_empty() && excluded.contains(&namespace) {
                            skipped.namespace_excluded += 1;
                            continue;
                        }
                        if let Some(filter) = &label_filter {
                            if !matches_labels(&object, filter) {
                                skipped.label_mismatch += 1;
                                continue;
                            }
                        }
                    }
                    if recreated_by_controller(&object) {
                        skipped.controller_owned += 1;
                        continue;
                    }
                    let source_uid = obj.metadata.uid.clone();
                    // Status is kept: a restore writes it back through /status for the kinds
                    // the user names (`--restore-status`), and drops it otherwise.
                    strip_server_fields(&mut object);
                    writer.add(&Entry { category, object, source_uid }).await?;
                    progress.add_done(1);
                }
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
        }
        tracing::info!(resource = %target.key, objects = writer.counts().by_kind.get(&target.key).copied().unwrap_or(0), "backed up");
    }
    Ok(())
}

fn list_error(e: kube::Error, resource: &ApiResource, namespace: Option<&str>) -> BackupError {
    let name = if resource.group.is_empty() { resource.plural.clone() } else { format!("{}.{}", resource.plural, resource.group) };
    match &e {
        kube::Error::Api(status) if status.code == 403 => {
            BackupError::ListForbidden { resource: name, scope: namespace.map(|ns| format!(" in namespace {ns}")).unwrap_or_else(|| " cluster-wide".into()) }
        }
        _ => BackupError::List { resource: name, source: e },
    }
}

/// `a=b,c!=d,e` as (key, op, value) triples; the policy's selector is applied client-side so
/// that the DR namespace and cluster-scoped objects are not filtered by it.
fn parse_equality_selector(s: &str) -> Vec<(String, &'static str, String)> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let p = p.trim();
            if let Some((k, v)) = p.split_once("!=") {
                (k.trim().to_owned(), "!=", v.trim().to_owned())
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                (k.trim().to_owned(), "=", v.trim().to_owned())
            } else if let Some(k) = p.strip_prefix('!') {
                (k.trim().to_owned(), "!", String::new())
            } else {
                (p.to_owned(), "exists", String::new())
            }
        })
        .collect()
}

fn matches_labels(object: &Value, filter: &[(String, &'static str, String)]) -> bool {
    let labels = object.pointer("/metadata/labels");
    filter.iter().all(|(k, op, v)| {
        let have = labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        match *op {
            "=" => have == Some(v.as_str()),
            "!=" => have != Some(v.as_str()),
            "!" => have.is_none(),
            _ => have.is_some(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_selectors_match_like_the_api_server() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        let m = |s: &str| matches_labels(&o, &parse_equality_selector(s));
        assert!(m("app=web"));
        assert!(m("app==web,tier"));
        assert!(m("app!=db,!missing"));
        assert!(!m("app=db"));
        assert!(!m("tier,!app"));
    }

    #[test]
    fn controller_owned_workload_objects_are_left_to_their_controllers() {
        let pod = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "controller": true}]}});
        let cm = json!({"metadata": {"ownerReferences": [{"apiVersion": "shop.example.com/v1", "kind": "Cart", "name": "c", "controller": true}]}});
        assert!(recreated_by_controller(&pod));
        assert!(!recreated_by_controller(&cm));
    }
}
