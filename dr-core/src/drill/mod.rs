//! DR drills: restore a point into sandbox namespaces of a cluster (every namespace `ns` of
//! the point becomes `<prefix>ns`) or onto a scratch cluster, check every restored object
//! against the point, and leave a report an auditor can keep (JSON, Markdown, HTML): the
//! point, RPO (its age when the drill started), RTO (the restore's wall time), per kind what
//! was restored, differs or failed, and pass or fail. A sandbox is removed afterwards.
//!
//! The restore is the restore engine itself (`restore::run_restore`), run from where the
//! drill runs with its credentials; the Job adds only scheduling around it. In a sandbox the
//! drill restores only namespaced objects outside the DR namespace (cluster-scoped objects
//! are the live cluster's own), and never creates the ownership ConfigMap, which would stop
//! the live cluster's backups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kube::Client;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::catalog::Entry;
use crate::passphrase::PassphraseSource;
use crate::point;
use crate::resources;
use crate::restore::plan::object_path;
use crate::restore::{self, Destination, RestoreError, RestoreSettings, RunMode};

mod report;

/// Where the drill restores to.
#[derive(Clone, Debug)]
pub enum Target {
    /// Namespaces `<prefix><ns>` of the cluster the client reaches, removed afterwards
    /// unless `keep`.
    Sandbox { prefix: String, keep: bool },
    /// A whole cluster (a scratch one), named for the report.
    Cluster { name: String },
}

/// One kind's result.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KindResult {
    /// Objects of the point the drill restores.
    pub in_point: u64,
    pub restored: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Restored objects that read back as the point says.
    pub matching: u64,
    /// Objects the target cluster makes itself (its root CA ConfigMap, token Secrets, the
    /// default ServiceAccount): not compared, listed in the report's `ignored`.
    pub ignored: u64,
    /// Restored objects that read back differently, and objects not there at all that
    /// the restore did not skip.
    pub differing: u64,
    pub missing: u64,
}

/// An object that differs, with the paths of the fields (never their values: Secrets).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Difference {
    pub object: String,
    pub fields: Vec<String>,
}

/// What an auditor keeps.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub passed: bool,
    /// Why it failed (empty when it passed).
    pub reasons: Vec<String>,
    pub source_cluster_id: String,
    pub restore_point: String,
    pub point_created_at: String,
    pub location: String,
    pub target: String,
    pub started_at: String,
    pub finished_at: String,
    /// Age of the point when the drill started (seconds): the data a disaster now would lose.
    pub rpo_seconds: f64,
    /// From the start of the drill (the decision to restore) until the restored objects were
    /// read back and compared (seconds): what recovering this point takes, verified. The
    /// restore alone is `restore_seconds`.
    pub rto_seconds: f64,
    /// Wall time of the restore itself (seconds): opening the point and writing its objects.
    pub restore_seconds: f64,
    /// What the drill's process spent opening the point (one key derivation, one manifest
    /// read: the drill and the restore share the opened point).
    pub point_opens: point::PointOpens,
    pub objects: u64,
    pub by_kind: BTreeMap<String, KindResult>,
    /// The first differing objects (at most 50), field paths only.
    pub differences: Vec<Difference>,
    /// Objects of the point that were not compared because the target makes them itself
    /// (at most 50 named, with why; `by_kind` counts them all).
    pub ignored: Vec<String>,
    /// The restore's failure reasons (first few per kind).
    pub failures: Vec<String>,
    /// What the drill removed afterwards (sandbox namespaces).
    pub cleaned_up: Vec<String>,
    pub written_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Point(#[from] point::PointError),
    #[error(transparent)]
    Resource(#[from] resources::ResourceError),
    #[error(transparent)]
    Location(#[from] crate::location::LocationError),
    #[error("{0}")]
    Invalid(String),
    #[error("{what}")]
    Api { what: String, source: kube::Error },
    #[error("{what}")]
    Wait { what: String, source: kube::runtime::wait::Error },
}

const DIFFERENCES_KEPT: usize = 50;

/// Runs a drill of the point `settings` select onto `target`, with `settings` as a restore
/// would use them and the passphrase from `source` (else `k10-dr-secret`). The point is
/// opened once: what the drill compares against and what the engine restores are the same
/// opened point, one key derivation, the chosen point and no other.
pub async fn run(client: &Client, settings: &RestoreSettings, target: &Target, source: Option<PassphraseSource>) -> Result<DrillReport, DrillError> {
    let started_at = OffsetDateTime::now_utc();
    let clock_started = Instant::now();
    let ns = &settings.namespace;
    let opened = restore::open_point(client, settings, source).await?;
    // The point, read whole: the objects to check the restore against.
    let entries = point::read_all_entries(&opened.location, opened.manifest(), &opened.unlocker).await?;
    let chosen = opened.chosen.point.clone();
    let manifest = opened.chosen.manifest.clone();
    let location_described = opened.location.describe();

    // The restore: exactly this point, into the target.
    let mut restore = settings.clone();
    restore.point_id = Some(chosen.id.clone());
    restore.run = RunMode::Apply;
    let in_scope: Box<dyn Fn(&Entry) -> bool + Send + Sync> = match target {
        Target::Sandbox { prefix, .. } => {
            let mapping = sandbox_mapping(&entries, ns, prefix)?;
            for sandbox in mapping.values() {
                let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
                if namespaces.get_opt(sandbox).await.map_err(|source| DrillError::Api { what: format!("reading namespace {sandbox}"), source })?.is_some() {
                    return Err(DrillError::Invalid(format!(
                        "sandbox namespace {sandbox} already exists: delete it (an earlier drill run with --keep?) or choose another --sandbox-prefix"
                    )));
                }
            }
            let sandboxed = mapping.clone();
            restore.controls.mapping.namespaces = mapping;
            // Only the sandboxed namespaces: the DR namespace and the system ones stay out.
            restore.controls.select.include_namespaces = sandboxed.keys().cloned().collect();
            restore.controls.select.exclude_kinds = cluster_scoped_kinds(&entries);
            restore.destination = Destination::Sandbox;
            Box::new(move |e: &Entry| namespace_of(e).is_some_and(|n| sandboxed.contains_key(n)))
        }
        Target::Cluster { .. } => Box::new(|_: &Entry| true),
    };
    let clock = Instant::now();
    let outcome = restore::run_restore(client, &restore, opened).await;
    let restore_seconds = clock.elapsed().as_secs_f64();
    let (report, failure) = match outcome {
        Ok(r) => (r, None),
        Err(e) => match e.report().cloned() {
            Some(r) => (r, Some(crate::error_text(&e))),
            None => return Err(e.into()),
        },
    };

    // Every object in scope, read back and compared with the point (mapped as restored).
    let compiled = restore.controls.mapping.compile(ns).map_err(DrillError::Invalid)?;
    let served = crate::discovery::ServedApis::discover(client)
        .await
        .map_err(|source| DrillError::Api { what: "discovering what the cluster serves".into(), source })?;
    let mut by_kind: BTreeMap<String, KindResult> = BTreeMap::new();
    let mut differences = Vec::new();
    let mut ignored = Vec::new();
    for entry in entries.iter().filter(|e| in_scope(e)) {
        let mut want = entry.object.clone();
        let key = entry.kind_key();
        compiled.apply(&mut want, manifest.resources.get(&key).map(String::as_str));
        let k = by_kind.entry(key.clone()).or_default();
        k.in_point += 1;
        // What the target publishes itself holds the target's CA or tokens, not the point's.
        if let Some(why) = made_by_the_target(entry) {
            k.ignored += 1;
            if ignored.len() < DIFFERENCES_KEPT {
                ignored.push(format!("{key} {}: {why}", object_path(&want)));
            }
            continue;
        }
        // Left as it was on the target (it existed): the restore did not write it, so it says
        // nothing about the restore; it counts as skipped.
        if report.by_kind.get(&key).is_some_and(|r| r.existing.contains(&object_path(&want))) {
            continue;
        }
        let live = read_back(client, &served, &want).await;
        match live {
            Some(live) => {
                let fields = differing_fields(&want, &live);
                if fields.is_empty() {
                    k.matching += 1;
                } else {
                    k.differing += 1;
                    if differences.len() < DIFFERENCES_KEPT {
                        differences.push(Difference { object: format!("{key} {}", object_path(&want)), fields });
                    }
                }
            }
            None => k.missing += 1,
        }
    }
    let mut failures = Vec::new();
    for (kind, r) in &report.by_kind {
        // Kinds wholly outside the drill (a sandbox's cluster-scoped kinds, the DR namespace's).
        let Some(k) = by_kind.get_mut(kind) else { continue };
        k.restored = r.restored + r.already_restored + r.replaced + r.updated;
        // Skipped by the restore itself; not what the drill's own scope left out (its
        // namespace and kind rules, `restore::select`).
        k.skipped = r
            .skipped
            .iter()
            .filter(|(why, _)| !why.contains("--include-") && !why.contains("--exclude-") && why.as_str() != restore::plan::MADE_BY_THE_CLUSTER)
            .map(|(_, n)| n)
            .sum();
        k.failed = r.failed;
        // Objects the restore skipped (the target manages them, a selection rule) are not
        // expected back; any other absence is a difference.
        k.missing = k.missing.saturating_sub(k.skipped + k.failed);
        failures.extend(r.failures.iter().take(3).cloned());
    }
    let mut reasons = Vec::new();
    if let Some(f) = failure {
        reasons.push(format!("the restore failed: {f}"));
    }
    let failed: u64 = by_kind.values().map(|k| k.failed).sum();
    let differing: u64 = by_kind.values().map(|k| k.differing).sum();
    let missing: u64 = by_kind.values().map(|k| k.missing).sum();
    if failed > 0 && reasons.is_empty() {
        reasons.push(format!("{failed} object(s) could not be restored"));
    }
    if differing > 0 {
        reasons.push(format!("{differing} restored object(s) differ from the point"));
    }
    if missing > 0 {
        reasons.push(format!("{missing} object(s) of the point are not on the target"));
    }

    let (target_name, cleaned_up) = match target {
        Target::Sandbox { prefix, keep } => {
            let namespaces: Vec<String> = restore.controls.mapping.namespaces.values().cloned().collect();
            let cleaned = if *keep { Vec::new() } else { remove_namespaces(client, &namespaces).await? };
            (format!("sandbox namespaces {prefix}* of the cluster"), cleaned)
        }
        Target::Cluster { name } => (format!("cluster {name}"), Vec::new()),
    };
    Ok(DrillReport {
        passed: reasons.is_empty(),
        reasons,
        source_cluster_id: settings.source_cluster_id.clone(),
        restore_point: manifest.point_id.clone(),
        point_created_at: manifest.created_at.clone(),
        location: location_described,
        target: target_name,
        started_at: point::rfc3339(started_at),
        finished_at: point::rfc3339(OffsetDateTime::now_utc()),
        rpo_seconds: (started_at - chosen.time).as_seconds_f64().max(0.0),
        rto_seconds: clock_started.elapsed().as_secs_f64(),
        restore_seconds,
        point_opens: point::point_opens(),
        objects: by_kind.values().map(|k| k.in_point).sum(),
        by_kind,
        differences,
        ignored,
        failures,
        cleaned_up,
        written_by: format!("kubectl-dr {}", env!("CARGO_PKG_VERSION")),
    })
}

/// Why the target makes this object itself, if it does: what the restore leaves to it
/// ([`restore::plan::made_by_the_cluster`]), and the `default` ServiceAccount, which the
/// target's controller-manager creates in every namespace as it appears (the restore finds
/// it there or writes it first, whichever is quicker).
fn made_by_the_target(entry: &Entry) -> Option<&'static str> {
    if restore::plan::made_by_the_cluster(entry) {
        return Some("published by the target cluster's own controllers, with its own CA or tokens");
    }
    if entry.api_version() == "v1" && entry.kind() == "ServiceAccount" && entry.name() == "default" {
        return Some("created by the target cluster in every namespace");
    }
    None
}

/// The namespace an object of the point lives in; for a Namespace, itself.
fn namespace_of(e: &Entry) -> Option<&str> {
    match e.namespace() {
        "" if e.kind_key() == "Namespace" => Some(e.name()),
        "" => None,
        ns => Some(ns),
    }
}

/// Every namespace of the point but the DR namespace, mapped to `<prefix><ns>`.
fn sandbox_mapping(entries: &[Entry], dr_namespace: &str, prefix: &str) -> Result<BTreeMap<String, String>, DrillError> {
    if prefix.is_empty()
        || !prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || !prefix.starts_with(|c: char| c.is_ascii_lowercase())
    {
        return Err(DrillError::Invalid(format!("--sandbox-prefix {prefix:?}: use lower-case letters, digits and '-', starting with a letter (drill-)")));
    }
    let mut namespaces: BTreeSet<&str> = entries.iter().filter_map(namespace_of).collect();
    namespaces.remove(dr_namespace);
    // The system namespaces' contents are never backed up: only their Namespace objects are
    // in the point, and a sandbox copy of kube-system would say nothing.
    for system in crate::backup::DEFAULT_EXCLUDED_NAMESPACES {
        namespaces.remove(*system);
    }
    let mut mapping = BTreeMap::new();
    for n in namespaces {
        let sandbox = format!("{prefix}{n}");
        if sandbox.len() > 63 {
            return Err(DrillError::Invalid(format!("sandbox namespace {sandbox} is longer than 63 characters: use a shorter --sandbox-prefix")));
        }
        mapping.insert(n.to_owned(), sandbox);
    }
    if mapping.is_empty() {
        return Err(DrillError::Invalid("the point holds no namespace outside the DR namespace: nothing to restore into a sandbox".into()));
    }
    Ok(mapping)
}

/// The point's cluster-scoped kinds but Namespace, as select rules (`Kind.group`).
fn cluster_scoped_kinds(entries: &[Entry]) -> Vec<String> {
    let mut kinds = BTreeSet::new();
    for e in entries {
        let key = e.kind_key();
        if e.namespace().is_empty() && key != "Namespace" {
            kinds.insert(key);
        }
    }
    kinds.into_iter().collect()
}

/// The object as the target serves it now, `None` when it is not there (or its kind is not
/// served).
async fn read_back(client: &Client, served: &crate::discovery::ServedApis, want: &Value) -> Option<Value> {
    let api_version = want["apiVersion"].as_str()?;
    let kind = want["kind"].as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = served.plural(group, kind)?.to_owned();
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural);
    let name = want.pointer("/metadata/name")?.as_str()?;
    let api: Api<DynamicObject> = match want.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(name).await.ok().flatten().map(|o| serde_json::to_value(o).expect("objects serialize"))
}

/// The paths where `live` is not what `want` (the point, mapped) says, by the restore's own
/// rule (`restore::equals_point`: fields the point gives, not status or server defaults).
/// Addresses the target allocates itself (cluster IPs, node ports taken there) do not count.
fn differing_fields(want: &Value, live: &Value) -> Vec<String> {
    let mut want = want.clone();
    crate::manifests::strip_server_fields(&mut want);
    if want["kind"] == "Service" {
        if let Some(spec) = want.get_mut("spec").and_then(Value::as_object_mut) {
            for field in ["clusterIP", "clusterIPs", "healthCheckNodePort"] {
                spec.remove(field);
            }
            for port in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
    }
    if restore::equals_point(live, &want) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (key, value) in want.as_object().into_iter().flatten() {
        match key.as_str() {
            "status" | "apiVersion" | "kind" => {}
            "metadata" => {
                for m in ["labels", "annotations"] {
                    paths(&value[m], &live["metadata"][m], &format!("metadata.{m}"), &mut out);
                }
            }
            _ => paths(value, &live[key.as_str()], key, &mut out),
        }
    }
    out.retain(|p| !p.contains(restore::RESTORED_FROM_ANNOTATION));
    out
}

fn paths(want: &Value, have: &Value, at: &str, out: &mut Vec<String>) {
    match (want, have) {
        (Value::Null, _) => {}
        (Value::Object(w), Value::Object(h)) => {
            for (k, v) in w {
                paths(v, h.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"), out);
            }
        }
        (Value::Array(w), Value::Array(h)) if w.len() == h.len() => {
            for (i, (a, b)) in w.iter().zip(h).enumerate() {
                paths(a, b, &format!("{at}[{i}]"), out);
            }
        }
        (w, h) if w == h => {}
        _ => out.push(at.to_owned()),
    }
}

/// Deletes the sandbox namespaces and waits (up to five minutes) until they are gone.
async fn remove_namespaces(client: &Client, names: &[String]) -> Result<Vec<String>, DrillError> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in names {
        match api.delete(n, &DeleteParams::foreground()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(DrillError::Api { what: format!("deleting sandbox namespace {n}"), source }),
        }
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(300);
    for n in names {
        let gone = |ns: Option<&k8s_openapi::api::core::v1::Namespace>| ns.is_none();
        match tokio::time::timeout_at(deadline, await_condition(api.clone(), n, gone)).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => return Err(DrillError::Wait { what: format!("watching namespace {n} go"), source }),
            Err(_) => return Err(DrillError::Invalid(format!("sandbox namespace {n} is still terminating after five minutes: check its finalizers"))),
        }
    }
    Ok(names.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sandbox_maps_every_namespace_but_the_dr_one_and_leaves_cluster_kinds_out() {
        let e = |o: Value| Entry { category: crate::catalog::Category::Applications, object: o, source_uid: None };
        let entries = vec![
            e(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})),
            e(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}})),
            e(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "web"}})),
            e(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}})),
        ];
        let m = sandbox_mapping(&entries, "kasten-io", "drill-").unwrap();
        assert_eq!(m, BTreeMap::from([("shop".into(), "drill-shop".into()), ("web".into(), "drill-web".into())]));
        assert_eq!(cluster_scoped_kinds(&entries), vec!["ClusterRole.rbac.authorization.k8s.io".to_owned()]);
        assert!(sandbox_mapping(&entries, "kasten-io", "Drill_").is_err());
        assert!(sandbox_mapping(&entries, "kasten-io", &"d".repeat(60)).is_err());
    }

    #[test]
    fn differences_name_paths_not_values_and_ignore_what_the_target_allocates() {
        let want = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a": "1"}}, "data": {"password": "c2VjcmV0"}});
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "uid": "u", "labels": {"a": "2"}}, "data": {"password": "b3RoZXI="}, "type": "Opaque"});
        assert_eq!(differing_fields(&want, &live), vec!["data.password".to_owned(), "metadata.labels.a".to_owned()]);
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80, "nodePort": 30080}]}});
        let moved = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"clusterIP": "10.0.0.9", "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}});
        assert!(differing_fields(&svc, &moved).is_empty());
    }

    #[test]
    fn the_html_report_escapes_what_it_shows() {
        let report = DrillReport {
            passed: false,
            reasons: vec!["<script>alert(1)</script>".into()],
            source_cluster_id: "c".into(),
            restore_point: "p".into(),
            point_created_at: "t".into(),
            location: "l".into(),
            target: "x".into(),
            started_at: "s".into(),
            finished_at: "f".into(),
            rpo_seconds: 3700.0,
            rto_seconds: 12.4,
            restore_seconds: 0.5,
            point_opens: Default::default(),
            objects: 1,
            by_kind: BTreeMap::new(),
            differences: vec![],
            ignored: vec!["ConfigMap <b>/kube-root-ca.crt: published".into()],
            failures: vec![],
            cleaned_up: vec![],
            written_by: "w".into(),
        };
        let html = report.html();
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;") && html.contains("&lt;b&gt;/kube-root-ca.crt"));
        assert!(html.contains("1 h 1 min") && html.contains("12 s") && html.contains("FAILED"));
        assert!(!html.contains("http://") && !html.contains("https://"), "self-contained");
    }
}
