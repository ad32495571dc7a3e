//! Restore: puts one restore point's objects back onto a (usually new, empty) cluster.
//!
//! The order of work is what makes a restore safe to trust and to run again:
//! 1. settings are checked (`settings`) before anything;
//! 2. the caller opens the point once ([`open_point`]: found, its manifest decrypted, the
//!    key derived) and hands it on; the restore checks its mode;
//! 3. a Lease in the DR namespace refuses a second restore running at the same time (`lease`);
//! 4. the plan reads the point once (`plan`): the whole archive is decrypted and verified
//!    (hash, counts) while every object is planned (tier, round, why left out) and the ones
//!    to write are sealed into a temporary spill. A wrong passphrase or a damaged point stops
//!    here, before the first write; on S3 the point is downloaded once;
//! 5. the ownership ConfigMap is created first, so even a half-restored cluster never acts
//!    as the owner of the location (no pruning, no scheduled backups);
//! 6. the apply (`apply`) writes the tiers in order (CRDs, Namespaces, other cluster-scoped,
//!    foundation namespaced kinds, the rest), then objects with owners in rounds, so every
//!    reference can name its owner's new UID; within a tier objects are written concurrently;
//! 7. every restored object is annotated with the point it came from, so a re-run tells
//!    "restored by an earlier run of this restore" from "was already there".
//!
//! The result is one typed value (`report`), written by the Job and read by the plugin.

mod apply;
pub mod chart;
pub mod controls;
pub mod convert;
pub mod grant;
mod lease;
pub mod mapping;
pub mod modifiers;
pub(crate) mod patterns;
pub mod plan;
pub mod preflight;
pub mod report;
pub mod select;
pub mod settings;

mod spill;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::Client;

pub(crate) use apply::equals_point;
pub use controls::{Existing, RestoreControls};
pub use lease::LEASE_NAME;
pub use report::{Finding, KindReport, RestoreOutcome, RestoreReport};
pub use settings::{Destination, RestoreSettings, RunMode, StatusKinds, DEFAULT_CONCURRENCY, DEFAULT_QPS, MAX_TIMEOUT_MINUTES};

use crate::catalog::{Mode, OWNERSHIP_CONFIGMAP};
use crate::failure::{Classify, ErrorKind};
use crate::format::crypto::Passphrase;
use crate::location::{Location, LocationError};
use crate::passphrase::PassphraseSource;
use crate::point::{self, Manifest, PointError, Unlocker};
use crate::resources::{self, ResourceError};

/// The field manager of objects the restore replaces by server-side apply.
pub const FIELD_MANAGER: &str = "kubectl-dr-restore";
/// Set on every object a restore creates or replaces: the point it came from.
pub const RESTORED_FROM_ANNOTATION: &str = "dr.kubectl-dr.io/restored-from";

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
    #[error("{what}")]
    Api { what: String, source: kube::Error },
    #[error("the restore's temporary files (the sealed plan, in $TMPDIR or /tmp): {0}; check the space of the Job's /tmp volume")]
    WorkDir(String),
    #[error(
        "restore.timeout ({minutes} min) reached: {done} of {total} objects handled, {left} left; run the restore again to finish it (nothing is duplicated)"
    )]
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

impl Classify for RestoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            RestoreError::Invalid(_) | RestoreError::ModeMismatch { .. } => ErrorKind::BadInput,
            RestoreError::Busy { .. } => ErrorKind::Busy,
            RestoreError::Point(e) => e.kind(),
            RestoreError::Resource(e) => e.kind(),
            RestoreError::Location(e) => e.kind(),
            RestoreError::Api { source, .. } => source.kind(),
            RestoreError::WorkDir(_) => ErrorKind::Transient,
            RestoreError::Timeout { .. } => ErrorKind::TimedOut,
            RestoreError::Failed { .. } => ErrorKind::Incomplete,
        }
    }
}

pub(crate) fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RestoreError {
    let what = what.into();
    move |source| RestoreError::Api { what, source }
}

/// Restores the point `opened` per the settings. The caller opens the point
/// ([`open_point`]) and hands it on, so a process that checked it first (the plugin's
/// pre-flight, a drill) does not find, download and unlock it a second time. The Lease is
/// held (and renewed) for the whole run.
pub async fn run_restore(client: &Client, settings: &RestoreSettings, opened: OpenedPoint) -> Result<RestoreReport, RestoreError> {
    settings.check()?;
    let lease = if settings.run == RunMode::Plan { None } else { Some(lease::LeaseGuard::acquire(client, &settings.namespace, &settings.holder).await?) };
    let started = Instant::now();
    let shared: Arc<Mutex<Option<Arc<apply::Ctx>>>> = Arc::default();
    let result = tokio::time::timeout(settings.timeout, restore(client, settings, opened, shared.clone(), started)).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
    match result {
        Ok(r) => r,
        Err(_elapsed) => {
            let ctx = shared.lock().expect("not poisoned").clone();
            let mut report = ctx.map(|ctx| ctx.report.lock().expect("not poisoned").clone()).unwrap_or_default();
            let total = report.objects;
            report.finish(started.elapsed().as_secs_f64());
            let done = report.total();
            Err(RestoreError::Timeout { minutes: settings.timeout.as_secs() / 60, done, total, left: total.saturating_sub(done), report: Box::new(report) })
        }
    }
}

/// The point a restore's settings select, opened: its location (the settings' profile), the
/// cluster's points with the one chosen (its manifest decrypted), and the key to read it with.
pub struct OpenedPoint {
    pub location: Location,
    pub chosen: point::Chosen,
    pub unlocker: Arc<Unlocker>,
    /// Where the passphrase came from, described for the log (never the passphrase).
    pub passphrase_from: String,
}

impl OpenedPoint {
    pub fn manifest(&self) -> &Manifest {
        &self.chosen.manifest
    }
}

/// Opens the point `settings` select (profile, source cluster, `restorePointID` or
/// `pointInTime`), with the passphrase from `source`, or else from `k10-dr-secret` (the
/// Job's way; the plugin's dry-run and drills pass the source the user gave, since they
/// write nothing, not even the secret).
pub async fn open_point(client: &Client, settings: &RestoreSettings, source: Option<PassphraseSource>) -> Result<OpenedPoint, RestoreError> {
    let location = resources::connect_profile(client, &settings.namespace, &settings.profile, settings.location_mount.as_deref()).await?;
    let source = match source {
        Some(source) => source,
        None => resources::dr_secret_source(client, &settings.namespace).await?,
    };
    let passphrase_from = source.describe();
    let passphrase = source.resolve(&settings.resolve).await.map_err(ResourceError::from)?;
    drop(source);
    choose_point(location, settings, passphrase, passphrase_from).await
}

/// The last step of opening a point, once the location is connected and the passphrase is in
/// hand: choose the point `settings` select among those that authenticate. [`open_point`] ends
/// with it, and so does the plugin's check, which connects and resolves the passphrase from the
/// operator's machine instead of the cluster's.
pub async fn choose_point(
    location: Location,
    settings: &RestoreSettings,
    passphrase: Passphrase,
    passphrase_from: String,
) -> Result<OpenedPoint, RestoreError> {
    let unlocker = Unlocker::new(passphrase);
    let which = point::Which::from_args(settings.point_id.as_deref(), settings.point_in_time);
    let chosen = point::choose(&location, &settings.source_cluster_id, which, &unlocker).await?;
    Ok(OpenedPoint { location, chosen, unlocker, passphrase_from })
}

async fn restore(
    client: &Client,
    settings: &RestoreSettings,
    opened: OpenedPoint,
    shared: Arc<Mutex<Option<Arc<apply::Ctx>>>>,
    started: Instant,
) -> Result<RestoreReport, RestoreError> {
    let OpenedPoint { location, chosen, unlocker, passphrase_from } = opened;
    let manifest = chosen.manifest;
    check_mode(&manifest, settings.quick_mode)?;
    tracing::info!(point = %manifest.point_id, objects = manifest.counts.total, mode = manifest.mode.as_str(), location = %location.describe(), passphrase = %passphrase_from, "reading and planning the restore point");
    let progress = crate::progress::Tracker::new("restore");
    progress.set_total(manifest.counts.total);
    progress.phase("reading the point", 0, 0);
    let _ticks = progress.tick(crate::progress::TICK);
    let inputs = plan_inputs(client, settings, &manifest).await?;
    let served = inputs.served.clone();
    // The one read of the point: the whole of it is decrypted and checked before the first write.
    let opened_before = crate::location::objects_opened();
    let (plan, spill) = plan::make_plan(&location, &manifest, &unlocker, settings, inputs).await?;
    drop(unlocker);
    // What would stop or block the restore, before it writes: all checks for a dry-run, the
    // blocking webhooks always (as warnings).
    let findings = preflight::check(client, &plan, &served, settings.run == RunMode::Plan).await;
    for f in &findings {
        // A dry-run's caller prints the findings; a restore's log is where they are read.
        if settings.run == RunMode::Plan {
            tracing::info!(check = %f.check, objects = ?f.objects, "{}", f.message);
        } else {
            tracing::warn!(check = %f.check, objects = ?f.objects, "{}", f.message);
        }
    }
    let report = RestoreReport {
        source_cluster_id: settings.source_cluster_id.clone(),
        restore_point: manifest.point_id.clone(),
        mode: manifest.mode.as_str().into(),
        location: location.describe(),
        dry_run: settings.run == RunMode::Plan,
        objects: manifest.counts.total,
        findings,
        ..Default::default()
    };
    let ctx = Arc::new(apply::Ctx::new(client, settings, plan, report, progress.clone()));
    *shared.lock().expect("not poisoned") = Some(ctx.clone());
    if settings.run == RunMode::Apply && settings.destination == Destination::Recovery {
        crate::ownership::claim(client, &settings.namespace, &settings.source_cluster_id, &manifest.point_id)
            .await
            .map_err(|source| RestoreError::Api { what: format!("creating ConfigMap {OWNERSHIP_CONFIGMAP} in namespace {}", settings.namespace), source })?;
    }
    ctx.apply(&Arc::new(spill)).await?;
    let mut report = ctx.report.lock().expect("not poisoned").clone();
    if settings.run == RunMode::Plan {
        let collisions = preflight::collisions(&report);
        report.findings.extend(collisions);
    }
    report.archive_reads = crate::location::objects_opened() - opened_before;
    report.point_opens = point::point_opens();
    report.finish(started.elapsed().as_secs_f64());
    progress.phase("done", 0, 0);
    for (kind, k) in &report.by_kind {
        tracing::info!(kind = %kind, restored = k.restored + k.already_restored, replaced = k.replaced, skipped = ?k.skipped, failed = k.failed, failures = ?k.failures, "restore result");
    }
    if report.failed > 0 {
        return Err(RestoreError::Failed { failed: report.failed, report: Box::new(report) });
    }
    Ok(report)
}

/// What the plan needs from the target and the DR namespace: what the target serves (for
/// conversions), and the resource modifier rules, parsed and checked.
async fn plan_inputs(client: &Client, settings: &RestoreSettings, manifest: &Manifest) -> Result<plan::PlanInputs, RestoreError> {
    let served = crate::discovery::ServedApis::discover(client).await.map_err(api_err("discovering what this cluster serves"))?;
    let name = &settings.controls.resource_modifiers.config_map;
    let modifiers = if let Some((source, rules)) = &settings.inline_modifiers {
        Some(modifiers::Modifiers::parse(source, rules).map_err(RestoreError::Invalid)?)
    } else if name.is_empty() {
        None
    } else {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &settings.namespace);
        let ns = &settings.namespace;
        let cm = cms.get_opt(name).await.map_err(api_err(format!("reading the resource modifiers ConfigMap {name} in namespace {ns}")))?.ok_or_else(|| {
            RestoreError::Invalid(format!(
                "resource modifiers ConfigMap {name} is not in namespace {ns}: create it with the rules under key {}",
                modifiers::RULES_KEY
            ))
        })?;
        let rules = cm.data.as_ref().and_then(|d| d.get(modifiers::RULES_KEY)).ok_or_else(|| {
            RestoreError::Invalid(format!("resource modifiers ConfigMap {ns}/{name} has no key {}: put the rules there", modifiers::RULES_KEY))
        })?;
        Some(modifiers::Modifiers::parse(&format!("ConfigMap {ns}/{name}"), rules).map_err(RestoreError::Invalid)?)
    };
    let controls = settings.controls.compile(&settings.namespace, modifiers).map_err(RestoreError::Invalid)?;
    Ok(plan::PlanInputs { controls, served, resources: manifest.resources.clone() })
}

/// What a restore of `manifest` writes, as (API group, plural): each resource the point
/// holds, and the successor of each a newer cluster moved to another group (`extensions`
/// ingresses are written as `networking.k8s.io` ones). The chart's `rbac.resources`, so the
/// Job's grant names exactly these. `None` when the manifest does not say which resource
/// serves one of its kinds (points written before that was recorded, or made from files).
pub fn written_resources(manifest: &Manifest) -> Option<std::collections::BTreeSet<(String, String)>> {
    let mut out = std::collections::BTreeSet::new();
    for kind_key in manifest.counts.by_kind.keys() {
        let plural = manifest.resources.get(kind_key)?;
        let group = kind_key.split_once('.').map(|(_, g)| g).unwrap_or("");
        if let Some((to_group, to_plural)) = convert::successor_resource(group, plural) {
            out.insert((to_group.to_owned(), to_plural.to_owned()));
        }
        out.insert((group.to_owned(), plural.clone()));
    }
    Some(out)
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

/// An Event on the restore Job (its name is the Lease holder the chart sets), with the
/// totals or the error; best effort: the termination message and the log say it too.
pub async fn job_event(client: &kube::Client, settings: &RestoreSettings, outcome: &RestoreOutcome) {
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(client.clone(), &settings.namespace);
    let uid = jobs.get_opt(&settings.holder).await.ok().flatten().and_then(|j| j.metadata.uid).unwrap_or_default();
    let regarding = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job", "name": settings.holder, "namespace": settings.namespace, "uid": uid});
    let (reason, note) = match (&outcome.kind, &outcome.report) {
        (None, Some(r)) => (
            "RestoreSucceeded",
            format!("restore point {}: {} restored, {} updated, {} skipped, {} failed", r.restore_point, r.restored, r.updated, r.skipped, r.failed),
        ),
        _ => ("RestoreFailed", outcome.error.clone()),
    };
    if let Err(e) = crate::events::record(client, &settings.namespace, regarding, "Restore", reason, outcome.kind.is_some(), &note).await {
        tracing::warn!(error = %crate::error_text(&e), "could not record the restore as an Event on its Job");
    }
}

/// Ends the restore's cluster-wide grant: deletes its ClusterRoleBinding (`name`). Called when
/// the restore is over (`grant::is_over`), so the broad RBAC a full restore needs does not outlive it. Says
/// whether the grant is gone; a failure is logged with what to do, never fatal.
pub async fn end_cluster_grant(client: &kube::Client, name: &str) -> bool {
    use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
    let api: kube::Api<ClusterRoleBinding> = kube::Api::all(client.clone());
    match api.delete(name, &Default::default()).await {
        Ok(_) => {
            tracing::info!(binding = name, "the restore's cluster-wide grant is ended: its ClusterRoleBinding was deleted");
            true
        }
        Err(kube::Error::Api(e)) if e.code == 404 => true,
        // The delete is granted by name through this very binding, so once it is deleted (by
        // the restore, its sidecar or the plugin, whichever came first) the next delete is
        // forbidden rather than not found: the grant is gone either way.
        Err(kube::Error::Api(e)) if e.code == 403 => {
            tracing::debug!(binding = name, "the restore's cluster-wide grant was already ended (its delete is no longer granted)");
            true
        }
        Err(e) => {
            tracing::warn!(binding = name, error = %crate::error_text(&e), "cannot end the restore's cluster-wide grant: delete ClusterRoleBinding {name} (or helm uninstall the release)");
            false
        }
    }
}
