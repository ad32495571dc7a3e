//! The plan: one read of the point decides, for every object, whether it is written and in
//! which tier and round, and keeps the objects to write in a sealed spill (`spill.rs`) so the
//! apply never reads the point again. The decisions are pure data (see the tests): which
//! tier, why an object is left out, the point's own CRDs (what their kinds will be on this
//! cluster, for a dry-run that cannot create them), and the owner graph that orders the
//! objects with ownerReferences.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::controls::{plural_of, Controls};
use super::convert::{self, Converted};
use super::settings::RestoreSettings;
use super::spill::Spill;
use super::RestoreError;
use crate::catalog::{Category, Entry, API_GROUP};
use crate::discovery::ServedApis;
use crate::location::Location;
use crate::point::{self, Manifest, Unlocker};

/// The order objects are written in. Objects with ownerReferences come last, after their
/// owners exist, so their references can name the owners' new UIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Crds,
    Namespaces,
    ClusterScoped,
    /// What workloads need to start: identities, configuration, RBAC, storage claims, and
    /// the DR Profiles (which Policies name).
    Foundation,
    Workloads,
    Owned,
    /// Admission webhooks and policies, after everything else: written earlier, one whose
    /// service is not running yet would refuse the rest of the restore.
    Webhooks,
}

impl Tier {
    /// The tiers written in one pass each, in order; `Owned` follows in rounds.
    pub const ORDERED: [Tier; 5] = [Tier::Crds, Tier::Namespaces, Tier::ClusterScoped, Tier::Foundation, Tier::Workloads];

    pub(super) fn file(self) -> &'static str {
        match self {
            Tier::Crds => "crds",
            Tier::Namespaces => "namespaces",
            Tier::ClusterScoped => "cluster-scoped",
            Tier::Foundation => "foundation",
            Tier::Workloads => "workloads",
            Tier::Owned => "owned",
            Tier::Webhooks => "webhooks",
        }
    }
}

const FOUNDATION_KINDS: &[&str] = &[
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "LimitRange",
    "ResourceQuota",
    "Role.rbac.authorization.k8s.io",
    "RoleBinding.rbac.authorization.k8s.io",
    "NetworkPolicy.networking.k8s.io",
];

pub(super) const CRD_KIND: &str = "CustomResourceDefinition.apiextensions.k8s.io";

/// Kinds that can refuse other objects' writes.
pub(super) fn is_admission_kind(kind_key: &str) -> bool {
    matches!(
        kind_key,
        "ValidatingWebhookConfiguration.admissionregistration.k8s.io"
            | "MutatingWebhookConfiguration.admissionregistration.k8s.io"
            | "ValidatingAdmissionPolicy.admissionregistration.k8s.io"
            | "ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io"
            | "MutatingAdmissionPolicy.admissionregistration.k8s.io"
            | "MutatingAdmissionPolicyBinding.admissionregistration.k8s.io"
    )
}

pub fn tier_of(entry: &Entry) -> Tier {
    let key = entry.kind_key();
    if is_admission_kind(&key) {
        Tier::Webhooks
    } else if has_owners(&entry.object) {
        Tier::Owned
    } else if key == CRD_KIND {
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

fn has_owners(object: &Value) -> bool {
    object.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

/// Why an object of the point is not written, from the settings alone.
pub fn skip_reason(entry: &Entry, skip: &BTreeSet<Category>) -> Option<&'static str> {
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
    made_by_the_cluster(entry).then_some(MADE_BY_THE_CLUSTER)
}

/// Why an object the target cluster publishes itself is not restored.
pub const MADE_BY_THE_CLUSTER: &str = "made by the cluster";

/// ConfigMaps a cluster's own controllers publish in every namespace, with the cluster's CA:
/// the controller-manager's root CA bundle, and OpenShift's service CA bundle.
pub const PUBLISHED_CONFIG_MAPS: [&str; 2] = ["kube-root-ca.crt", "openshift-service-ca.crt"];

/// Whether the target cluster makes this object itself, with its own CA or tokens: a
/// ConfigMap of [`PUBLISHED_CONFIG_MAPS`], a service-account token Secret. The restore leaves
/// them to the target, and a drill does not compare them.
pub fn made_by_the_cluster(entry: &Entry) -> bool {
    let core = entry.api_version() == "v1";
    (core && entry.kind() == "ConfigMap" && PUBLISHED_CONFIG_MAPS.contains(&entry.name()))
        || (core && entry.kind() == "Secret" && entry.object["type"] == "kubernetes.io/service-account-token")
}

/// What a CRD of the point will serve once it is restored.
#[derive(Clone, Debug, PartialEq)]
pub struct CrdInfo {
    pub name: String,
    pub plural: String,
    pub namespaced: bool,
    /// Served versions.
    pub versions: Vec<String>,
    pub status_subresource: bool,
}

/// The (group, kind) a CustomResourceDefinition defines.
fn crd_group_kind(crd: &Value) -> (String, String) {
    let spec = &crd["spec"];
    (spec["group"].as_str().unwrap_or_default().to_owned(), spec["names"]["kind"].as_str().unwrap_or_default().to_owned())
}

fn crd_info(crd: &Value) -> CrdInfo {
    let spec = &crd["spec"];
    let served: Vec<&Value> = spec["versions"].as_array().into_iter().flatten().filter(|v| v["served"] == true).collect();
    CrdInfo {
        name: crd["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        plural: spec["names"]["plural"].as_str().unwrap_or_default().to_owned(),
        namespaced: spec["scope"].as_str() != Some("Cluster"),
        versions: served.iter().filter_map(|v| v["name"].as_str().map(str::to_owned)).collect(),
        status_subresource: served.iter().any(|v| v.pointer("/subresources/status").is_some()),
    }
}

/// The round of an owned object whose owners form a cycle (or wait on one): written last,
/// with the references that still cannot be resolved dropped.
pub const CYCLE_ROUND: u32 = u32::MAX;

/// What the plan needs besides the settings: the checked controls, what the target serves,
/// and the point's resource names (`manifest.resources`).
#[derive(Default)]
pub struct PlanInputs {
    pub controls: Controls,
    pub served: ServedApis,
    pub resources: BTreeMap<String, String>,
}

/// The first few names of a set of objects, with their count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub count: u64,
    pub names: Vec<String>,
}

impl Sample {
    pub const KEPT: usize = 5;
    pub fn add(&mut self, name: String) {
        self.count += 1;
        if self.names.len() < Self::KEPT {
            self.names.push(name);
        }
    }
}

/// What the preflight checks need from the objects to write (after conversion and mapping).
#[derive(Debug, Default)]
pub struct Uses {
    /// (apiVersion, kind) written.
    pub kinds: BTreeMap<(String, String), Sample>,
    /// (StorageClass|IngressClass|PriorityClass|RuntimeClass, name) referenced, by whom.
    pub classes: BTreeMap<(&'static str, String), Sample>,
    /// The classes the point itself brings.
    pub defined_classes: BTreeSet<(&'static str, String)>,
    /// Objects written per (namespace, quota resource name: `configmaps`, `deployments.apps`).
    pub per_namespace: BTreeMap<(String, String), u64>,
    /// Namespaces the point brings (after mapping).
    pub namespaces: BTreeSet<String>,
    /// The point's admission webhook configurations.
    pub webhooks: Vec<Value>,
    /// Objects written per (group, plural, namespaced), to name what a webhook would block:
    /// counts and the first few names, so the plan's memory stays flat in the point's size.
    pub resources: BTreeMap<(String, String, bool), Sample>,
}

/// What the plan decided, without the objects themselves (those are in the spill).
#[derive(Debug, Default)]
pub struct Plan {
    /// Objects to write, per tier.
    pub to_write: BTreeMap<Tier, u64>,
    /// Objects left out, per kind and reason.
    pub skipped: BTreeMap<String, BTreeMap<String, u64>>,
    /// Objects that cannot be written on this cluster (a version it does not serve and no
    /// conversion), per kind: each with the reason.
    pub unservable: BTreeMap<String, Sample>,
    /// Objects converted to another API version, per (new) kind and former apiVersion.
    pub converted: BTreeMap<String, BTreeMap<String, u64>>,
    /// Objects a resource modifier rule changed, per kind.
    pub modified: BTreeMap<String, u64>,
    /// The point's CRDs that are restored, by (group, kind).
    pub crds: BTreeMap<(String, String), CrdInfo>,
    /// The (group, kind) of CRDs left out: their custom resources are left out too.
    pub skipped_crds: HashSet<(String, String)>,
    /// For the preflight.
    pub uses: Uses,
    /// Owned objects: the source UID of each, with the source UIDs of its owners.
    owners: HashMap<String, Vec<String>>,
    /// Source UIDs some object of the point names as its owner: the only objects whose UID on
    /// the target the restore keeps (to relink references to them), so its memory grows with
    /// the point's owners, not with its objects.
    referenced_owners: HashSet<String>,
    /// Their rounds, once the point is read: an object goes one round after its latest owner
    /// that is itself owned.
    rounds: HashMap<String, u32>,
    /// Rounds of owned objects (not counting the cycle round).
    pub owned_rounds: u32,
    pub has_cycles: bool,
}

impl Plan {
    /// Decides for one object, rewriting it as it will be written (API version, mappings,
    /// modifiers); returns the tier it is written in, or `None` when left out. An error is a
    /// modifier rule that cannot apply: the restore stops before any write.
    pub fn add(&mut self, entry: &mut Entry, settings: &RestoreSettings, inputs: &PlanInputs) -> Result<Option<Tier>, String> {
        let source_kind = entry.kind_key();
        let source_plural = inputs.resources.get(&source_kind).map(String::as_str);
        let skip = convert::managed_by_target(&entry.object)
            .or_else(|| skip_reason(entry, &settings.skip))
            .or_else(|| inputs.controls.selection.left_out(entry, source_plural));
        if entry.kind_key() == CRD_KIND {
            let group_kind = crd_group_kind(&entry.object);
            if skip.is_some() {
                self.skipped_crds.insert(group_kind);
            }
        }
        if let Some(why) = skip {
            *self.skipped.entry(source_kind).or_default().entry(why.into()).or_default() += 1;
            return Ok(None);
        }
        let from = entry.api_version().to_owned();
        match convert::convert(&mut entry.object, &|g, k| inputs.served.versions(g, k)) {
            None => {}
            Some(Converted::To(_)) => {
                *self.converted.entry(entry.kind_key()).or_default().entry(from).or_default() += 1;
            }
            Some(Converted::Unservable(why)) => {
                self.unservable.entry(source_kind).or_default().add(format!("{}: {from} {why}", object_path(&entry.object)));
                return Ok(None);
            }
        }
        convert_owner_references(&mut entry.object, &inputs.served);
        let plural = plural_of(&inputs.resources, &inputs.served, &entry.object).map(str::to_owned);
        inputs.controls.mapping.apply(&mut entry.object, plural.as_deref());
        if let Some(modifiers) = &inputs.controls.modifiers {
            let applied =
                modifiers.apply(&mut entry.object, plural.as_deref()).map_err(|e| format!("{} {}: {e}", entry.kind_key(), object_path(&entry.object)))?;
            if applied > 0 {
                *self.modified.entry(entry.kind_key()).or_default() += 1;
            }
        }
        if entry.kind_key() == CRD_KIND {
            self.crds.insert(crd_group_kind(&entry.object), crd_info(&entry.object));
        }
        let tier = tier_of(entry);
        let me = entry.source_uid.as_deref().unwrap_or_default();
        self.referenced_owners.extend(owner_uids(&entry.object, me));
        if tier == Tier::Owned {
            if let Some(uid) = &entry.source_uid {
                self.owners.insert(uid.clone(), owner_uids(&entry.object, uid));
            }
        }
        self.note_uses(entry, plural);
        *self.to_write.entry(tier).or_default() += 1;
        Ok(Some(tier))
    }

    fn note_uses(&mut self, entry: &mut Entry, plural: Option<String>) {
        let uses = &mut self.uses;
        let o = &entry.object;
        let who = format!("{} {}", entry.kind_key(), object_path(o));
        uses.kinds.entry((entry.api_version().to_owned(), entry.kind().to_owned())).or_default().add(object_path(o));
        let group = entry.api_version().split_once('/').map_or("", |(g, _)| g).to_owned();
        let plural = plural.unwrap_or_else(|| format!("{}s", entry.kind().to_lowercase()));
        let namespace = entry.namespace().to_owned();
        if !namespace.is_empty() {
            let resource = if group.is_empty() { plural.clone() } else { format!("{plural}.{group}") };
            *uses.per_namespace.entry((namespace.clone(), resource)).or_default() += 1;
        }
        let shown = if namespace.is_empty() { format!("{plural} {}", entry.name()) } else { format!("{plural} {namespace}/{}", entry.name()) };
        uses.resources.entry((group.clone(), plural, !namespace.is_empty())).or_default().add(shown);
        let mut refer = |class: &'static str, name: Option<&str>| {
            if let Some(name) = name.filter(|n| !n.is_empty()) {
                uses.classes.entry((class, name.to_owned())).or_default().add(who.clone());
            }
        };
        match (group.as_str(), entry.kind()) {
            ("", "Namespace") => {
                uses.namespaces.insert(entry.name().to_owned());
            }
            ("", "PersistentVolumeClaim") => refer("StorageClass", o.pointer("/spec/storageClassName").and_then(Value::as_str)),
            ("apps", "StatefulSet") => {
                for t in o.pointer("/spec/volumeClaimTemplates").and_then(Value::as_array).into_iter().flatten() {
                    refer("StorageClass", t.pointer("/spec/storageClassName").and_then(Value::as_str));
                }
            }
            ("networking.k8s.io", "Ingress") => refer("IngressClass", o.pointer("/spec/ingressClassName").and_then(Value::as_str)),
            ("storage.k8s.io", "StorageClass")
            | ("networking.k8s.io", "IngressClass")
            | ("scheduling.k8s.io", "PriorityClass")
            | ("node.k8s.io", "RuntimeClass") => {
                let class = match entry.kind() {
                    "StorageClass" => "StorageClass",
                    "IngressClass" => "IngressClass",
                    "PriorityClass" => "PriorityClass",
                    _ => "RuntimeClass",
                };
                uses.defined_classes.insert((class, entry.name().to_owned()));
            }
            _ => {}
        }
        if is_admission_kind(&entry.kind_key()) && entry.kind().ends_with("WebhookConfiguration") {
            uses.webhooks.push(o.clone());
        }
        // The walker hands out `&mut` pod specs (the mappings rewrite them); only read here.
        crate::restore::mapping::for_each_pod_spec(&mut entry.object, &mut |spec| {
            refer("PriorityClass", spec.get("priorityClassName").and_then(Value::as_str));
            refer("RuntimeClass", spec.get("runtimeClassName").and_then(Value::as_str));
        });
    }

    /// Orders the owned objects into rounds, once every object has been added.
    pub fn finish(&mut self) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done(u32),
        }
        fn visit(uid: &str, owners: &HashMap<String, Vec<String>>, marks: &mut HashMap<String, Mark>) -> u32 {
            match marks.get(uid) {
                Some(Mark::Done(r)) => return *r,
                Some(Mark::Visiting) => return CYCLE_ROUND,
                None => {}
            }
            marks.insert(uid.to_owned(), Mark::Visiting);
            let mut round = 0u32;
            for owner in owners.get(uid).into_iter().flatten() {
                if owners.contains_key(owner) {
                    let r = visit(owner, owners, marks);
                    round = if r == CYCLE_ROUND { CYCLE_ROUND } else { round.max(r + 1) };
                    if round == CYCLE_ROUND {
                        break;
                    }
                }
            }
            marks.insert(uid.to_owned(), Mark::Done(round));
            round
        }
        let mut marks = HashMap::new();
        let uids: Vec<String> = self.owners.keys().cloned().collect();
        for uid in &uids {
            visit(uid, &self.owners, &mut marks);
        }
        self.rounds = marks.into_iter().filter_map(|(u, m)| if let Mark::Done(r) = m { Some((u, r)) } else { None }).collect();
        self.has_cycles = self.rounds.values().any(|r| *r == CYCLE_ROUND);
        self.owned_rounds = self.rounds.values().filter(|r| **r != CYCLE_ROUND).max().map_or(0, |m| m + 1);
        self.owners = HashMap::new();
    }

    /// Whether some object of the point names the object of this source UID as its owner.
    pub fn is_referenced_owner(&self, source_uid: &str) -> bool {
        self.referenced_owners.contains(source_uid)
    }

    /// The round an owned object is written in.
    pub fn round_of(&self, entry: &Entry) -> u32 {
        if let Some(r) = entry.source_uid.as_ref().and_then(|u| self.rounds.get(u)) {
            return *r;
        }
        // No source UID: one round after its latest owned owner.
        let me = entry.source_uid.clone().unwrap_or_default();
        owner_uids(&entry.object, &me)
            .iter()
            .filter_map(|o| self.rounds.get(o))
            .fold(0, |round, r| if *r == CYCLE_ROUND { CYCLE_ROUND } else { round.max(r + 1) })
    }

    /// The rounds to run, in order.
    pub fn rounds(&self) -> Vec<u32> {
        let mut rounds: Vec<u32> = (0..self.owned_rounds).collect();
        if self.has_cycles {
            rounds.push(CYCLE_ROUND);
        }
        if rounds.is_empty() && self.to_write.contains_key(&Tier::Owned) {
            rounds.push(0);
        }
        rounds
    }

    /// What `apiVersion`/`kind` will be once the point's CRDs are restored: `None` when no CRD
    /// of the point defines it; else whether it is namespaced, or why that version will not
    /// be served.
    pub fn planned_kind(&self, api_version: &str, kind: &str) -> Option<Result<&CrdInfo, String>> {
        let (group, version) = api_version.split_once('/')?;
        let crd = self.crds.get(&(group.to_owned(), kind.to_owned()))?;
        if crd.versions.iter().any(|v| v == version) {
            Some(Ok(crd))
        } else {
            Some(Err(format!("{api_version} is not served by its CRD {} in the point (it serves {})", crd.name, crd.versions.join(", "))))
        }
    }
}

fn owner_uids(object: &Value, me: &str) -> Vec<String> {
    object["metadata"]["ownerReferences"].as_array().into_iter().flatten().filter_map(|r| r["uid"].as_str()).filter(|u| *u != me).map(str::to_owned).collect()
}

/// An ownerReference names its owner's apiVersion: a converted owner is referenced in the
/// version it is written in.
fn convert_owner_references(object: &mut Value, served: &ServedApis) {
    for r in object.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut).into_iter().flatten() {
        let mut owner = serde_json::json!({"apiVersion": r["apiVersion"], "kind": r["kind"], "spec": {"selector": {}}});
        if let Some(Converted::To(to)) = convert::convert(&mut owner, &|g, k| served.versions(g, k)) {
            r["apiVersion"] = Value::String(to);
        }
    }
}

pub(crate) fn object_path(object: &Value) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// Reads the point once: checks it whole (hash and counts; a wrong passphrase or a damaged
/// point stops here, before the first write) while planning every object and sealing the
/// ones to write into the spill.
pub(super) async fn make_plan(
    location: &Location,
    manifest: &Manifest,
    unlocker: &Arc<Unlocker>,
    settings: &RestoreSettings,
    inputs: PlanInputs,
) -> Result<(Plan, Spill), RestoreError> {
    let spill = Spill::create(settings.work_dir.as_deref()).map_err(|e| RestoreError::WorkDir(e.to_string()))?;
    let shared = Arc::new(Mutex::new((Plan::default(), spill)));
    let filling = shared.clone();
    let settings_copy = settings.clone();
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    let refusal = refused.clone();
    let counts = point::read_entries(location, manifest, unlocker, move |mut entry| {
        let mut guard = filling.lock().expect("not poisoned");
        let (plan, spill) = &mut *guard;
        match plan.add(&mut entry, &settings_copy, &inputs) {
            Ok(Some(tier)) => spill.push(tier.file(), &entry).map_err(|e| format!("cannot write them: {e}"))?,
            Ok(None) => {}
            Err(why) => {
                *refusal.lock().expect("not poisoned") = Some(why.clone());
                return Err(why);
            }
        }
        Ok(())
    })
    .await;
    if let Some(why) = refused.lock().expect("not poisoned").take() {
        return Err(RestoreError::Invalid(format!("{why}; fix the resource modifier rules (nothing was written)")));
    }
    let (mut plan, mut spill) = Arc::try_unwrap(shared).ok().expect("the reader is done").into_inner().expect("not poisoned");
    let counts = counts.map_err(|e| match e {
        point::PointError::Callback(why) => RestoreError::WorkDir(why),
        e => e.into(),
    })?;
    if counts != manifest.counts {
        return Err(point::PointError::CountMismatch { point: manifest.point_id.clone(), expected: manifest.counts.total, found: counts.total }.into());
    }
    spill.finish().map_err(|e| RestoreError::WorkDir(format!("cannot write them: {e}")))?;
    plan.finish();
    tracing::info!(to_write = ?plan.to_write, owned_rounds = plan.owned_rounds, cycles = plan.has_cycles, spilled_bytes = spill.bytes, "planned");
    Ok((plan, spill))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(category: Category, object: Value) -> Entry {
        Entry { category, object, source_uid: None }
    }

    fn owned(uid: &str, owner: &str) -> Entry {
        Entry {
            category: Category::Applications,
            object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": uid, "namespace": "shop", "ownerReferences": [{"uid": owner}]}}),
            source_uid: Some(uid.into()),
        }
    }

    #[test]
    fn tiers_put_definitions_before_what_uses_them() {
        let crd = entry(Category::Cluster, json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"}}));
        let ns = entry(Category::Cluster, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
        let sa = entry(Category::Applications, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a", "namespace": "shop"}}));
        let profile = entry(
            Category::Profiles,
            json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "p", "namespace": "kasten-io"}}),
        );
        let policy = entry(
            Category::Policies,
            json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Policy", "metadata": {"name": "p", "namespace": "kasten-io"}}),
        );
        let owned = entry(
            Category::Applications,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop", "ownerReferences": [{"uid": "1"}]}}),
        );
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
        let token = entry(
            Category::Applications,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token", "metadata": {"name": "t", "namespace": "shop"}}),
        );
        assert_eq!(skip_reason(&token, &BTreeSet::new()), Some("made by the cluster"));
    }

    #[test]
    fn owned_objects_follow_their_owners_in_rounds_and_cycles_go_last() {
        let settings = RestoreSettings::new("kasten-io", "0b6bd9b4-2c4a-4d1e-9a3e-3b7f0f6a1c2d", "p");
        let mut plan = Plan::default();
        // deployment (not owned) <- rs <- pod; a <-> b is a cycle; c waits on the cycle.
        for e in [owned("rs", "deployment"), owned("pod", "rs"), owned("a", "b"), owned("b", "a"), owned("c", "a")] {
            assert_eq!(plan.add(&mut e.clone(), &settings, &PlanInputs::default()).unwrap(), Some(Tier::Owned));
        }
        plan.finish();
        assert_eq!(plan.round_of(&owned("rs", "deployment")), 0);
        assert_eq!(plan.round_of(&owned("pod", "rs")), 1);
        assert_eq!(plan.round_of(&owned("a", "b")), CYCLE_ROUND);
        assert_eq!(plan.round_of(&owned("c", "a")), CYCLE_ROUND);
        assert_eq!(plan.rounds(), vec![0, 1, CYCLE_ROUND]);
        let mut no_uid = owned("x", "rs");
        no_uid.source_uid = None;
        assert_eq!(plan.round_of(&no_uid), 1);
    }

    #[test]
    fn the_points_crds_say_what_their_kinds_will_be() {
        let settings = RestoreSettings::new("kasten-io", "0b6bd9b4-2c4a-4d1e-9a3e-3b7f0f6a1c2d", "p");
        let mut plan = Plan::default();
        let crd = entry(
            Category::Cluster,
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"},
                     "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}, {"name": "v0", "served": false}]}}),
        );
        plan.add(&mut crd.clone(), &settings, &PlanInputs::default()).unwrap();
        let w = plan.planned_kind("example.com/v1", "Widget").unwrap().unwrap();
        assert!(w.namespaced && w.status_subresource);
        assert!(plan.planned_kind("example.com/v0", "Widget").unwrap().unwrap_err().contains("not served by its CRD"));
        assert!(plan.planned_kind("other.com/v1", "Widget").is_none());
        // A skipped CRD's kinds are left out with it.
        let mut skip = settings.clone();
        skip.skip = [Category::Cluster].into();
        let mut plan = Plan::default();
        assert_eq!(plan.add(&mut crd.clone(), &skip, &PlanInputs::default()).unwrap(), None);
        assert!(plan.skipped_crds.contains(&("example.com".to_owned(), "Widget".to_owned())));
    }
}
