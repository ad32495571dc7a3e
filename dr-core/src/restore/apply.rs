//! The apply: writes the planned objects tier by tier, from the plan's spill. Within a tier
//! objects are written concurrently under the restore's own rate limit; API retries are the
//! client's one retry layer (`api_retry`), so a failure here is final for the object.
//!
//! Why one module of about 640 lines (and its tests): the write path of an object (create,
//! conflict, update, status, the waits for webhooks, the UID map for owner references) is
//! one sequence over one shared context (`Ctx`: rate limit, counters, progress); split, each
//! half would need the other's internals.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};

use crate::api_retry::webhook_refused;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::discovery::Scope;
use kube::runtime::wait::{await_condition, conditions, Condition};
use kube::Client;
use serde_json::{json, Value};

use super::controls::Existing;
use super::plan::{object_path, Plan, Tier, CRD_KIND};
use super::report::{RestoreReport, NAMES_KEPT, REASONS_KEPT};
use super::settings::{RestoreSettings, RunMode};
use super::spill::Spill;
use super::{RestoreError, FIELD_MANAGER, RESTORED_FROM_ANNOTATION};
use crate::catalog::{Entry, DR_POLICY_NAME, REPLICATION_CRONJOB};

/// How long a restored CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// Entries handed from a tier's spill reader to the writers at a time.
const SPILL_BATCH: usize = 64;

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

/// What the restore reads of an object it created: the UID, for the owner references that
/// name it.
#[derive(serde::Deserialize)]
struct Created {
    metadata: CreatedMetadata,
}

#[derive(serde::Deserialize)]
struct CreatedMetadata {
    uid: Option<String>,
}

/// The kinds of one apiVersion, each with how to reach it (`None`: not served here).
type ServedKinds = HashMap<String, Option<Arc<Served>>>;

/// How to reach one kind on this cluster.
struct Served {
    resource: ApiResource,
    namespaced: bool,
    status_subresource: bool,
}

/// The state shared by every object's write.
pub(super) struct Ctx {
    client: Client,
    settings: RestoreSettings,
    point_id: String,
    plan: Plan,
    limiter: RateLimiter,
    /// Source UID → UID on this cluster, for relinking ownerReferences: only of the objects
    /// the point's ownerReferences name (`Plan::is_referenced_owner`).
    uids: Mutex<HashMap<String, String>>,
    /// apiVersion → kind → how to reach it; `None` if this cluster does not serve it. Read
    /// for every object (a read lock and two lookups by `&str`: nothing allocated per object).
    kinds: std::sync::RwLock<HashMap<String, ServedKinds>>,
    /// Held while a kind is looked up, so concurrent writers of a new kind ask discovery once.
    discovering: tokio::sync::Mutex<()>,
    pub(super) report: Mutex<RestoreReport>,
    /// Live progress, which the Job logs (`crate::progress`).
    progress: Arc<crate::progress::Tracker>,
    /// CRDs written (or found) in the first tier, by name: the names to wait for until Established.
    crds_written: Mutex<Vec<String>>,
}

enum Outcome {
    Restored,
    AlreadyRestored,
    Replaced,
    Skipped(String),
    /// Already on the target, left as it was; whether it equals the point.
    Existing {
        name: String,
        equal: bool,
    },
    /// Already on the target and equal to the point (`existing: update` has nothing to do).
    Unchanged,
    /// Already on the target, differed, made what the point says (`existing: update`).
    Updated(String),
}

/// What one object's write did besides its outcome.
#[derive(Default)]
struct Notes {
    dropped_refs: bool,
    status_restored: bool,
    node_ports_changed: Vec<String>,
}

impl Ctx {
    pub(super) fn new(client: &Client, settings: &RestoreSettings, plan: Plan, report: RestoreReport, progress: Arc<crate::progress::Tracker>) -> Self {
        let mut report = report;
        for (kind, reasons) in &plan.skipped {
            let k = report.by_kind.entry(kind.clone()).or_default();
            for (why, n) in reasons {
                *k.skipped.entry(why.clone()).or_default() += n;
            }
        }
        for (kind, failures) in &plan.unservable {
            let k = report.by_kind.entry(kind.clone()).or_default();
            k.failed += failures.count;
            k.failures.extend(failures.names.iter().take(REASONS_KEPT).cloned());
        }
        for (kind, from) in &plan.converted {
            report.by_kind.entry(kind.clone()).or_default().converted_from = from.clone();
        }
        for (kind, n) in &plan.modified {
            report.by_kind.entry(kind.clone()).or_default().modified = *n;
        }
        // Objects the plan already decided about (left out, unservable) are done.
        progress.add_done(report.total());
        Self {
            client: client.clone(),
            settings: settings.clone(),
            point_id: report.restore_point.clone(),
            plan,
            limiter: RateLimiter::new(settings.qps),
            uids: Mutex::default(),
            kinds: std::sync::RwLock::default(),
            discovering: tokio::sync::Mutex::default(),
            report: Mutex::new(report),
            progress,
            crds_written: Mutex::default(),
        }
    }

    /// Writes every planned object: the tiers in order, then the owned objects in rounds.
    pub(super) async fn apply(self: &Arc<Self>, spill: &Arc<Spill>) -> Result<(), RestoreError> {
        // The tiers, the owned objects and the webhooks: one step each.
        let steps = Tier::ORDERED.len() as u64 + 2;
        for (step, tier) in (1..).zip(Tier::ORDERED) {
            self.progress.phase(tier.file(), step, steps);
            self.pass(spill, tier, |_| true, false).await?;
            tracing::info!(tier = ?tier, "tier done");
            if tier == Tier::Crds {
                self.wait_established().await;
            }
        }
        self.progress.phase(Tier::Owned.file(), steps - 1, steps);
        for round in self.plan.rounds() {
            let ctx = self.clone();
            self.pass(spill, Tier::Owned, move |e| ctx.plan.round_of(e) == round, true).await?;
            tracing::info!(round, "owned round done");
        }
        self.progress.phase(Tier::Webhooks.file(), steps, steps);
        self.pass(spill, Tier::Webhooks, |_| true, true).await?;
        Ok(())
    }

    /// Reads one tier's spill, handing the entries `wanted` selects to concurrent writers.
    async fn pass<F>(self: &Arc<Self>, spill: &Arc<Spill>, tier: Tier, wanted: F, relink: bool) -> Result<(), RestoreError>
    where
        F: Fn(&Entry) -> bool + Send + 'static,
    {
        // Entries go from the reader's thread to the writers in batches: one hand-over (a
        // wake-up of each side) per object costs as much CPU as the object's write at a
        // million objects, on the cores the API server needs.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Entry>>(4);
        let spill = spill.clone();
        let reader = tokio::task::spawn_blocking(move || -> Result<(), RestoreError> {
            let mut batch = Vec::with_capacity(SPILL_BATCH);
            for entry in spill.reader(tier.file()).map_err(|e| RestoreError::WorkDir(e.to_string()))? {
                let entry = entry.map_err(|e| RestoreError::WorkDir(e.to_string()))?;
                if !wanted(&entry) {
                    continue;
                }
                batch.push(entry);
                if batch.len() == SPILL_BATCH && tx.blocking_send(std::mem::replace(&mut batch, Vec::with_capacity(SPILL_BATCH))).is_err() {
                    return Ok(());
                }
            }
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            Ok(())
        });
        let entries = futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).flat_map(futures::stream::iter);
        entries
            .for_each_concurrent(self.settings.concurrency, |e| {
                let ctx = self.clone();
                async move { ctx.restore(e, relink).await }
            })
            .await;
        reader.await.expect("the spill reader panicked")
    }

    fn record(&self, kind: &str, outcome: Result<Outcome, String>, notes: Notes) {
        self.progress.add_done(1);
        let mut report = self.report.lock().expect("not poisoned");
        if !report.by_kind.contains_key(kind) {
            report.by_kind.insert(kind.to_owned(), Default::default());
        }
        let k = report.by_kind.get_mut(kind).expect("inserted above");
        if notes.dropped_refs {
            k.owner_references_dropped += 1;
        }
        if notes.status_restored {
            k.status_restored += 1;
        }
        for changed in notes.node_ports_changed {
            if k.node_ports_changed.len() < NAMES_KEPT {
                k.node_ports_changed.push(changed);
            }
        }
        match outcome {
            Ok(Outcome::Restored) => k.restored += 1,
            Ok(Outcome::AlreadyRestored) => k.already_restored += 1,
            Ok(Outcome::Replaced) => k.replaced += 1,
            Ok(Outcome::Skipped(why)) => *k.skipped.entry(why).or_default() += 1,
            Ok(Outcome::Existing { name, equal }) => {
                *k.skipped.entry("already exists".into()).or_default() += 1;
                if equal {
                    k.unchanged += 1;
                } else if k.differs.len() < NAMES_KEPT {
                    k.differs.push(name.clone());
                }
                if k.existing.len() < NAMES_KEPT {
                    k.existing.push(name);
                }
            }
            Ok(Outcome::Unchanged) => {
                *k.skipped.entry("already equal to the point".into()).or_default() += 1;
                k.unchanged += 1;
            }
            Ok(Outcome::Updated(name)) => {
                k.updated += 1;
                if k.differs.len() < NAMES_KEPT {
                    k.differs.push(name);
                }
            }
            Err(why) => {
                k.failed += 1;
                if k.failures.len() < REASONS_KEPT {
                    k.failures.push(why);
                }
            }
        }
    }

    /// How to reach `apiVersion`/`kind` on this cluster. Discovery of a kind whose CRD was
    /// just restored can lag behind `Established` on a real API server: ask a few times.
    async fn served(&self, api_version: &str, kind: &str) -> Result<Option<Arc<Served>>, kube::Error> {
        let known = |ctx: &Self| ctx.kinds.read().expect("not poisoned").get(api_version).and_then(|kinds| kinds.get(kind)).cloned();
        if let Some(found) = known(self) {
            return Ok(found);
        }
        let _discovering = self.discovering.lock().await;
        if let Some(found) = known(self) {
            return Ok(found);
        }
        // Only a kind whose CRD this restore writes is worth asking about again.
        let restored = self.settings.run == RunMode::Apply && self.plan.planned_kind(api_version, kind).is_some();
        let found = crate::discovery::find_kind(&self.client, api_version, kind, if restored { 10 } else { 1 }).await?.map(|(resource, caps)| {
            let status_subresource = caps.subresources.iter().any(|(r, _)| r.plural == "status");
            Arc::new(Served { resource, namespaced: caps.scope == Scope::Namespaced, status_subresource })
        });
        self.kinds.write().expect("not poisoned").entry(api_version.to_owned()).or_default().insert(kind.to_owned(), found.clone());
        Ok(found)
    }

    async fn restore(&self, entry: Entry, relink: bool) {
        let kind = entry.kind_key();
        let who = object_name(&entry);
        let mut notes = Notes::default();
        let outcome = self.restore_one(entry, relink, &mut notes).await.map_err(|why| format!("{who}: {why}"));
        if let Err(why) = &outcome {
            tracing::warn!(kind = %kind, reason = %why, "not restored");
        }
        self.record(&kind, outcome, notes);
    }

    async fn restore_one(&self, entry: Entry, relink: bool, notes: &mut Notes) -> Result<Outcome, String> {
        let served = self.served(entry.api_version(), entry.kind()).await.map_err(|e| format!("discovery failed: {}", describe(&e)))?;
        let served = match served {
            Some(s) => s,
            None => {
                let group = entry.api_version().split_once('/').map(|(g, _)| g).unwrap_or_default().to_owned();
                if self.plan.skipped_crds.contains(&(group, entry.kind().to_owned())) {
                    return Ok(Outcome::Skipped("its CRD is skipped (skipResource)".into()));
                }
                return match self.plan.planned_kind(entry.api_version(), entry.kind()) {
                    // A dry-run creates no CRDs: the point's own CRD says what the kind will be.
                    Some(Ok(crd)) if self.settings.run == RunMode::Plan => {
                        let group = entry.api_version().split_once('/').map(|(g, _)| g).unwrap_or_default();
                        notes.status_restored = has_status(&entry.object) && self.settings.restore_status.includes(&entry.kind_key(), &crd.plural, group);
                        Ok(Outcome::Restored)
                    }
                    Some(Err(why)) => Err(why),
                    _ => Err(format!("{} is not served by this cluster (is its CRD or API service installed?)", entry.api_version())),
                };
            }
        };
        let name = entry.name().to_owned();
        let namespace = entry.namespace().to_owned();
        let source_uid = entry.source_uid.clone();
        let kind_key = entry.kind_key();
        let mut object = entry.object;
        if relink {
            notes.dropped_refs = self.relink(&mut object, &namespace).await?;
        }
        // Status goes back through /status (where the kind has it) after the object exists.
        let status = object.as_object_mut().and_then(|o| o.remove("status")).filter(|s| s.as_object().is_some_and(|m| !m.is_empty()));
        let restore_status = status.is_some() && self.settings.restore_status.includes(&kind_key, &served.resource.plural, &served.resource.group);
        if let (Some(status), true, false) = (&status, restore_status, served.status_subresource) {
            // Without a status subresource, status is an ordinary field of the object.
            object["status"] = status.clone();
        }
        prepare_for_new_cluster(&mut object);
        if object["kind"] == "CronJob" && namespace == self.settings.namespace && (name == DR_POLICY_NAME || name == REPLICATION_CRONJOB) {
            // The restored cluster must not back up into (or copy from) the location until it
            // takes ownership.
            object["spec"]["suspend"] = json!(true);
        }
        object["metadata"]["annotations"][RESTORED_FROM_ANNOTATION] = json!(self.point_id);
        let api: Api<DynamicObject> = if served.namespaced {
            Api::namespaced_with(self.client.clone(), &namespace, &served.resource)
        } else {
            Api::all_with(self.client.clone(), &served.resource)
        };
        if kind_key == CRD_KIND {
            self.crds_written.lock().expect("not poisoned").push(name.clone());
        }
        if self.settings.run == RunMode::Plan {
            notes.status_restored = restore_status;
            return Ok(match self.call(|| api.get_opt(&name)).await.map_err(|e| describe(&e))? {
                None => Outcome::Restored,
                Some(_) if self.settings.override_resources => Outcome::Replaced,
                Some(existing) => self.existing(&existing, &object, &namespace, &name),
            });
        }
        let force_apply = || async {
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let apply = Patch::Apply(&object);
            self.call(|| api.patch(&name, &params, &apply)).await.map_err(|e| describe(&e))
        };
        let (outcome, written_uid) = match self.create(&api, &object, notes).await {
            Ok(uid) => (Outcome::Restored, uid),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                if self.settings.override_resources {
                    (Outcome::Replaced, force_apply().await?.metadata.uid)
                } else {
                    let existing = self.call(|| api.get(&name)).await.map_err(|e| describe(&e))?;
                    match self.existing(&existing, &object, &namespace, &name) {
                        Outcome::Updated(who) => (Outcome::Updated(who), force_apply().await?.metadata.uid),
                        other => (other, existing.metadata.uid),
                    }
                }
            }
            // An admission webhook the point brought (restored last, its service not running
            // yet) refuses a re-run's creates before the server would say AlreadyExists: an
            // object an earlier run of this restore wrote is done all the same.
            Err(e) if webhook_refused(&e) => match self.call(|| api.get_opt(&name)).await.map_err(|e| describe(&e))? {
                Some(existing) => match self.existing(&existing, &object, &namespace, &name) {
                    Outcome::AlreadyRestored => (Outcome::AlreadyRestored, existing.metadata.uid),
                    _ => return Err(describe(&e)),
                },
                None => return Err(describe(&e)),
            },
            Err(e) => return Err(describe(&e)),
        };
        self.remember(source_uid.as_deref(), written_uid.as_deref());
        // Status only on what this restore wrote: never on an object it left as it was.
        let ours = matches!(outcome, Outcome::Restored | Outcome::Replaced | Outcome::AlreadyRestored | Outcome::Updated(_));
        if let (Some(status), true, true, true) = (status, restore_status, served.status_subresource, ours) {
            let patch = Patch::Merge(json!({"status": status}));
            let params = PatchParams::default();
            self.call(|| api.patch_status(&name, &params, &patch)).await.map_err(|e| format!("restoring its status: {}", describe(&e)))?;
            notes.status_restored = true;
        } else if restore_status && ours {
            notes.status_restored = true;
        }
        Ok(outcome)
    }

    /// Creates `object` and answers its UID on this cluster. A Service keeps the node ports
    /// it had; when one is taken on this cluster, the cluster allocates another and the change
    /// is noted for the report.
    ///
    /// The object goes out as it is (no copy into a typed object first), and of the object the
    /// server echoes back only the UID is read, the rest skipped unparsed: on the cores the API
    /// server shares with the restore, every parse is a create the server does not do.
    async fn create(&self, api: &Api<DynamicObject>, object: &Value, notes: &mut Notes) -> Result<Option<String>, kube::Error> {
        let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
        let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
        let request = kube::core::Request::new(api.resource_url()).create(&params, body).map_err(kube::Error::BuildRequest)?;
        let status = match self.call(|| self.client.request::<Created>(request)).await {
            Ok(created) => return Ok(created.metadata.uid),
            Err(kube::Error::Api(s)) if s.code == 422 => s,
            Err(e) => return Err(e),
        };
        let taken = taken_node_ports(&status);
        if taken.is_empty() {
            return Err(kube::Error::Api(status));
        }
        let mut retry = object.clone();
        let olds: Vec<Option<Value>> = taken.iter().map(|port| port.field_mut(&mut retry).and_then(|(spec, key)| spec.remove(key))).collect();
        let obj: DynamicObject = serde_json::from_value(retry).map_err(kube::Error::SerdeError)?;
        let mut created = self.call(|| api.create(&params, &obj)).await?;
        let who = object_path(object);
        for (port, old) in taken.iter().zip(olds) {
            let new = port.field_mut(&mut created.data).and_then(|(spec, key)| spec.get(key).cloned()).unwrap_or(Value::Null);
            notes.node_ports_changed.push(format!("{who} {}: {} -> {new} (taken here)", port.describe(object), old.unwrap_or(Value::Null)));
        }
        Ok(created.metadata.uid)
    }

    /// What to do with an object the target already has: one an earlier run of this
    /// restore wrote is done; any other is compared with the point (`desired`) and left, or
    /// updated when it differs and `existing: update` is set.
    fn existing(&self, existing: &DynamicObject, desired: &Value, namespace: &str, name: &str) -> Outcome {
        let from = existing.metadata.annotations.as_ref().and_then(|a| a.get(RESTORED_FROM_ANNOTATION));
        if from.map(String::as_str) == Some(self.point_id.as_str()) {
            return Outcome::AlreadyRestored;
        }
        let who = if namespace.is_empty() { name.to_owned() } else { format!("{namespace}/{name}") };
        let equal = serde_json::to_value(existing).is_ok_and(|e| equals_point(&e, desired));
        match (self.plan_existing(), equal) {
            (Existing::Update, true) => Outcome::Unchanged,
            (Existing::Update, false) => Outcome::Updated(who),
            (Existing::Skip, equal) => Outcome::Existing { name: who, equal },
        }
    }

    fn plan_existing(&self) -> Existing {
        self.settings.controls.existing
    }

    fn remember(&self, source_uid: Option<&str>, uid: Option<&str>) {
        if let (Some(src), Some(uid)) = (source_uid.filter(|s| self.plan.is_referenced_owner(s)), uid) {
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
        let Some(served) = self.served(api_version, kind).await.map_err(|e| format!("discovery failed: {}", describe(&e)))? else {
            return Ok(None);
        };
        let api: Api<DynamicObject> = if served.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &served.resource)
        } else {
            Api::all_with(self.client.clone(), &served.resource)
        };
        match self.call(|| api.get_opt(name)).await {
            Ok(found) => Ok(found.and_then(|o| o.metadata.uid)),
            // The Job's grant names the kinds the point holds; an owner of another kind that
            // only the target has cannot be read, so the reference cannot be relinked.
            Err(kube::Error::Api(e)) if e.code == 403 => {
                tracing::warn!(owner_kind = kind, owner = name, "cannot read the owner (not a kind of the point): its reference is dropped");
                Ok(None)
            }
            Err(e) => Err(describe(&e)),
        }
    }

    /// One API call under the restore's rate limit. Retries are the client's (`api_retry`).
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        self.limiter.wait().await;
        f().await
    }

    /// Waits until every CRD of the first tier is Established, so their kinds can be written.
    async fn wait_established(&self) {
        let names: Vec<String> = self.crds_written.lock().expect("not poisoned").clone();
        if names.is_empty() || self.settings.run == RunMode::Plan {
            return;
        }
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        // A CRD that is not there failed to be created: its own failure is already in the report.
        let established_or_gone = |crd: Option<&CustomResourceDefinition>| crd.is_none() || conditions::is_crd_established().matches_object(crd);
        let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
        for name in names {
            match tokio::time::timeout_at(deadline, await_condition(crds.clone(), &name, established_or_gone)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(crd = %name, error = %crate::error_text(&e), "cannot watch the CRD's status; its custom resources may fail"),
                Err(_) => tracing::warn!(crd = %name, "CRD not Established in time; its custom resources may fail"),
            }
        }
        // Kinds looked up before their CRDs existed must be asked again.
        for kinds in self.kinds.write().expect("not poisoned").values_mut() {
            kinds.retain(|_, v| v.is_some());
        }
    }
}

/// Whether an object on the cluster already is what the point says: every field the point
/// gives (but its status and the restore's own annotation) has the same value there. Fields
/// only the cluster has (defaults, its metadata) do not count.
pub(crate) fn equals_point(existing: &Value, desired: &Value) -> bool {
    fn subset(want: &Value, have: &Value) -> bool {
        match (want, have) {
            (Value::Null, _) => true,
            (Value::Object(w), Value::Object(h)) => w.iter().all(|(k, v)| h.get(k).map_or(v.is_null(), |hv| subset(v, hv))),
            (Value::Object(w), Value::Null) => w.is_empty(),
            (Value::Array(w), Value::Array(h)) => w.len() == h.len() && w.iter().zip(h).all(|(a, b)| subset(a, b)),
            (w, h) => w == h,
        }
    }
    let Some(fields) = desired.as_object() else { return false };
    fields.iter().all(|(key, want)| match key.as_str() {
        "status" => true,
        "metadata" => ["labels", "annotations"].iter().all(|m| {
            let mut want = want[*m].clone();
            if let Some(a) = want.as_object_mut() {
                a.remove(RESTORED_FROM_ANNOTATION);
            }
            subset(&want, &existing["metadata"][*m])
        }),
        _ => subset(want, &existing[key.as_str()]),
    })
}

fn has_status(object: &Value) -> bool {
    object.get("status").and_then(Value::as_object).is_some_and(|m| !m.is_empty())
}

/// A node port a 422 says is taken on this cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TakenPort {
    /// `spec.ports[i].nodePort`
    Port(usize),
    /// `spec.healthCheckNodePort`
    HealthCheck,
}

impl TakenPort {
    /// The object that holds the port's field in a Service, and the field's name.
    fn field_mut(self, service: &mut Value) -> Option<(&mut serde_json::Map<String, Value>, &'static str)> {
        match self {
            TakenPort::Port(i) => service["spec"]["ports"].get_mut(i)?.as_object_mut().map(|p| (p, "nodePort")),
            TakenPort::HealthCheck => service["spec"].as_object_mut().map(|s| (s, "healthCheckNodePort")),
        }
    }

    fn describe(self, service: &Value) -> String {
        match self {
            TakenPort::Port(i) => format!("port {}", service["spec"]["ports"][i]["port"]),
            TakenPort::HealthCheck => "healthCheckNodePort".into(),
        }
    }
}

/// The node ports a 422 says are taken ("provided port is already allocated", one cause per field).
fn taken_node_ports(s: &kube::core::Status) -> Vec<TakenPort> {
    let causes = s.details.as_ref().map(|d| d.causes.clone()).unwrap_or_default();
    causes
        .iter()
        .filter(|c| c.message.contains("already allocated"))
        .filter_map(|c| {
            let field = c.field.as_str();
            if field == "spec.healthCheckNodePort" {
                return Some(TakenPort::HealthCheck);
            }
            field.strip_prefix("spec.ports[")?.strip_suffix("].nodePort")?.parse().ok().map(TakenPort::Port)
        })
        .collect()
}

/// Clears what the old cluster allocated and this one must allocate again: a Service's
/// cluster IPs (another cluster's service range would be refused; headless `None` stays).
/// Node ports are kept: load balancers, firewalls and DNS outside the cluster point at them
/// (`Ctx::create` lets the cluster choose when one is taken here).
pub(super) fn prepare_for_new_cluster(object: &mut Value) {
    if object["kind"] == "Service" && object["apiVersion"] == "v1" {
        let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else { return };
        if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
}

pub(super) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => crate::error_text(other),
    }
}

fn object_name(entry: &Entry) -> String {
    if entry.namespace().is_empty() {
        format!("{} {}", entry.kind_key(), entry.name())
    } else {
        format!("{} {}/{}", entry.kind_key(), entry.namespace(), entry.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_get_new_cluster_ips_keep_their_node_ports_and_stay_headless() {
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                             "spec": {"type": "NodePort", "clusterIP": "10.96.4.7", "clusterIPs": ["10.96.4.7"], "ports": [{"port": 80, "nodePort": 30080}]}});
        prepare_for_new_cluster(&mut svc);
        assert_eq!(svc["spec"], json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}));
        let mut headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}});
        prepare_for_new_cluster(&mut headless);
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn an_existing_object_equals_the_point_when_every_field_the_point_gives_matches() {
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop", "labels": {"a": "1"}, "annotations": {RESTORED_FROM_ANNOTATION: "p"}},
                             "data": {"k": "v"}});
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop", "uid": "x", "resourceVersion": "9", "labels": {"a": "1", "extra": "y"}},
                          "data": {"k": "v"}});
        assert!(equals_point(&same, &desired));
        let mut changed = same.clone();
        changed["data"]["k"] = json!("w");
        assert!(!equals_point(&changed, &desired));
        let mut relabelled = same.clone();
        relabelled["metadata"]["labels"]["a"] = json!("2");
        assert!(!equals_point(&relabelled, &desired));
        // Defaults inside list items do not make it differ; another item does.
        let d = json!({"spec": {"containers": [{"name": "c", "image": "i"}]}});
        assert!(equals_point(&json!({"spec": {"containers": [{"name": "c", "image": "i", "terminationMessagePath": "/dev/termination-log"}]}}), &d));
        assert!(!equals_point(&json!({"spec": {"containers": [{"name": "c", "image": "i"}, {"name": "d", "image": "j"}]}}), &d));
    }

    #[test]
    fn taken_node_ports_are_read_from_the_servers_causes() {
        let status: kube::core::Status = serde_json::from_value(json!({"status": "Failure", "reason": "Invalid", "code": 422, "message": "Service \"web\" is invalid",
            "details": {"causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: 30080: provided port is already allocated", "field": "spec.ports[1].nodePort"},
                                   {"reason": "FieldValueInvalid", "message": "Invalid value: 31000: provided port is already allocated", "field": "spec.healthCheckNodePort"},
                                   {"reason": "FieldValueInvalid", "message": "Invalid value: 1: provided port is not in the valid range", "field": "spec.ports[0].nodePort"}]}}))
        .unwrap();
        assert_eq!(taken_node_ports(&status), vec![TakenPort::Port(1), TakenPort::HealthCheck]);
    }
}
