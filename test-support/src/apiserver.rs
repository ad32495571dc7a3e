//! An in-process Kubernetes API server for the tests, faithful to the real one for what
//! kubectl-dr touches: legacy discovery (`/api`, `/apis`, group-version resource lists) for
//! built-in kinds and for CRDs once created (which then report `Established`; a CRD's API is
//! served only once it exists); get, list (`limit`/`continue` pagination, label and field
//! selectors), watch (resuming from a resourceVersion, 410 when too old), create (names and
//! `generateName` validated as the real server validates them: a DNS-1123 label for Namespaces
//! and Services, any path segment for RBAC objects, a DNS-1123 subdomain otherwise, a
//! generateName as a prefix, kept on the object), update (resourceVersion conflicts), merge patch, server-side apply
//! (field managers, conflicts, force), delete (finalizers keep an object, marked with a
//! deletionTimestamp, until they are gone; the propagation policy is honoured and defaulted
//! as the real server does, Orphan for `batch/v1` Jobs); status subresources (status is dropped on
//! create and kept on update of the main resource, written only through `/status`); Service
//! cluster IPs and node ports allocated as the real allocator does (a requested port is kept
//! when free and in range, else 422 "provided port is already allocated"); namespaced and
//! cluster-scoped resources; `metav1.Status` errors; list items without `kind`/`apiVersion`
//! for built-in kinds, as the real server sends them; TokenReview for the tokens it issued;
//! RBAC enforced for service-account tokens when asked; admission webhooks as far as the
//! restore meets them (a create or update a Validating/MutatingWebhookConfiguration's rules
//! match, whose failure policy is Fail and whose service has no ready EndpointSlice endpoint,
//! is refused with the real server's 500 "no endpoints available for service"; a webhook with
//! ready endpoints admits everything, as no webhook server runs here); pod logs (`pods/log`,
//! with `follow` and `tailLines`, 400 while the container has not started), which
//! `kubelet.rs` fills as its processes write; namespace deletion as the namespace controller
//! does it (Terminating at once, new content refused, emptied and gone 300 ms later, on the
//! server's own timer: a watch waiting for the namespace to go sees it go with no other
//! request coming in); throttling (429 with Retry-After) and RBAC denials a test can
//! inject; the garbage collector, on the same timer (orphaning, foreground deletion, and
//! deleting a dependent none of whose owners is here by name and UID, as a restore that
//! kept a source UID would see); the root-CA publisher, on the same timer (ConfigMap
//! `kube-root-ca.crt` with this server's own CA in every namespace, put back when changed). It
//! is generic: no scripted sequence of expected calls. Apart from those three controllers'
//! parts it runs none (no ServiceAccount controller: no `default` ServiceAccounts): `kubelet.rs` plays the kubelet and
//! the Job controller. Pods are deleted at once (no grace period: no kubelet has to stop
//! them).
//!
//! Not served: strategic merge patch, protobuf.
//!
//! Why one module of about 1,500 lines: it is one server over one store, and every handler
//! (discovery, CRUD, apply, watch, status, RBAC, webhooks, namespaces) reads and writes that
//! store under one lock with the same resourceVersion counter; the kubelet stand-in, the only
//! other actor, is in `kubelet.rs`.

// A handler's error is the server's answer (an HTTP response with a Status body), made once
// per refused request: boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

/// One served resource.
#[derive(Clone, Debug)]
struct ResourceDef {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    status_subresource: bool,
    /// Custom resources keep `kind`/`apiVersion` in list items; built-in kinds do not.
    custom: bool,
    /// What discovery advertises.
    verbs: &'static [&'static str],
}

const STANDARD_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

impl ResourceDef {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Key of a stored object: group, plural, namespace ("" when cluster-scoped), name.
type Key = (String, String, String, String);

/// Response bodies: whole JSON documents, or a watch's stream of events.
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Events kept for watches that resume from a resourceVersion.
const EVENT_LOG: usize = 4096;

/// One change, as a watch reports it.
#[derive(Clone, Debug)]
struct Event {
    key: Key,
    kind: &'static str,
    object: Value,
    resource_version: u64,
}

struct State {
    resources: Vec<ResourceDef>,
    /// Written only through `put` and `take`, which keep the indexes below in step.
    objects: BTreeMap<Key, Value>,
    /// Indexes the controllers' passes read instead of scanning every object (a pass runs
    /// every 100 ms under the lock; with a million objects a scan would stall every request):
    /// the objects being deleted, the objects that have ownerReferences, and how many
    /// objects each (group, plural, namespace) holds (a list's `remainingItemCount`).
    deleting: BTreeSet<Key>,
    owned: BTreeSet<Key>,
    counts: BTreeMap<(String, String, String), usize>,
    resource_version: u64,
    /// (verb, group, plural) the caller may not use.
    forbidden: BTreeSet<(String, String, String)>,
    requests: u64,
    /// (plural, query) of every list request, in order.
    lists: Vec<(String, BTreeMap<String, String>)>,
    /// Service-account tokens this server issued: token -> (namespace, name, uid).
    tokens: BTreeMap<String, (String, String, String)>,
    token_reviews: u64,
    /// Requests still to be answered 429 Too Many Requests.
    throttle: u64,
    throttled: u64,
    /// Recent changes (for watches resuming from a resourceVersion) and their broadcast.
    events: std::collections::VecDeque<Event>,
    changes: tokio::sync::broadcast::Sender<Event>,
    /// API groups whose discovery answers 503, as an unavailable aggregated API does.
    unavailable_groups: BTreeSet<String>,
    /// Whether requests bearing a service-account token are authorized by RBAC (requests
    /// without a token are the cluster admin: the tests and the plugin).
    enforce_rbac: bool,
    /// Container logs by (namespace, pod): what the container wrote so far, and whether it
    /// has ended (`kubelet.rs` writes them as its processes run).
    pod_logs: BTreeMap<(String, String), (String, bool)>,
    /// Added to every request before it is served, as a real server's storage round trip is.
    latency: std::time::Duration,
    /// Namespaces being deleted, and when the namespace controller will have emptied them.
    terminating: BTreeMap<String, std::time::Instant>,
    /// This server's CA bundle (a stand-in PEM, different for every server, as two clusters'
    /// CAs are), which the root-CA publisher writes into every namespace.
    root_ca: String,
}

impl State {
    fn new() -> Self {
        State {
            resources: builtins(),
            objects: BTreeMap::new(),
            deleting: BTreeSet::new(),
            owned: BTreeSet::new(),
            counts: BTreeMap::new(),
            resource_version: 0,
            forbidden: BTreeSet::new(),
            requests: 0,
            lists: Vec::new(),
            tokens: BTreeMap::new(),
            token_reviews: 0,
            throttle: 0,
            throttled: 0,
            events: std::collections::VecDeque::new(),
            changes: tokio::sync::broadcast::channel(EVENT_LOG).0,
            enforce_rbac: false,
            unavailable_groups: BTreeSet::new(),
            pod_logs: BTreeMap::new(),
            latency: std::time::Duration::ZERO,
            terminating: BTreeMap::new(),
            root_ca: {
                let mut der = [0u8; 48];
                dr_core::format::crypto::fill_random(&mut der);
                format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", hex::encode(der))
            },
        }
    }

    /// The controller-manager's root-CA publisher: ConfigMap `kube-root-ca.crt` with this
    /// cluster's CA in every active namespace, created when missing and put back when changed.
    fn publish_root_ca(&mut self) {
        let namespaces: Vec<String> = in_resource(&self.objects, "", "namespaces", None)
            .filter(|(_, v)| v["metadata"].get("deletionTimestamp").is_none())
            .map(|(k, _)| k.3.clone())
            .collect();
        for ns in namespaces {
            let k: Key = (String::new(), "configmaps".into(), ns.clone(), ROOT_CA_CONFIG_MAP.into());
            match self.objects.get(&k) {
                Some(cm) if cm["data"]["ca.crt"] == self.root_ca.as_str() => continue,
                Some(cm) => {
                    let mut cm = cm.clone();
                    cm["data"] = json!({"ca.crt": self.root_ca});
                    self.store(k, cm, "MODIFIED");
                }
                None => {
                    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": ns, "uid": random_uid(), "creationTimestamp": now(),
                                     "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                        "data": {"ca.crt": self.root_ca}});
                    self.store(k, cm, "ADDED");
                }
            }
        }
    }

    /// Stores an object with a new resourceVersion and tells the watches. An object being
    /// deleted whose last finalizer is gone goes, as on the real server (a Namespace's
    /// deletion is the namespace controller's part).
    fn store(&mut self, key: Key, mut object: Value, kind: &'static str) -> Value {
        if object["metadata"].get("deletionTimestamp").is_some() && finalizers(&object).is_empty() && key.1 != "namespaces" {
            self.put(key.clone(), object);
            return self.remove(&key).expect("just stored");
        }
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.put(key.clone(), object.clone());
        self.publish(Event { key, kind, object: object.clone(), resource_version: self.resource_version });
        object
    }

    /// Stores `object` under `key` as it is, keeping the indexes in step.
    fn put(&mut self, key: Key, object: Value) {
        self.reindex(&key, Some(&object));
        if self.objects.insert(key.clone(), object).is_none() {
            *self.counts.entry((key.0, key.1, key.2)).or_default() += 1;
        }
    }

    /// Removes the object under `key` as it is, keeping the indexes in step.
    fn take(&mut self, key: &Key) -> Option<Value> {
        let object = self.objects.remove(key)?;
        self.reindex(key, None);
        if let Some(n) = self.counts.get_mut(&(key.0.clone(), key.1.clone(), key.2.clone())) {
            *n -= 1;
        }
        Some(object)
    }

    fn reindex(&mut self, key: &Key, object: Option<&Value>) {
        if object.is_some_and(|o| o["metadata"].get("deletionTimestamp").is_some()) {
            self.deleting.insert(key.clone());
        } else {
            self.deleting.remove(key);
        }
        if object.is_some_and(|o| o["metadata"]["ownerReferences"].as_array().is_some_and(|r| !r.is_empty())) {
            self.owned.insert(key.clone());
        } else {
            self.owned.remove(key);
        }
    }

    /// Objects of (group, plural) in every namespace: how many are stored now.
    fn count(&self, group: &str, plural: &str, namespace: Option<&str>) -> usize {
        match namespace {
            Some(ns) => self.counts.get(&(group.to_owned(), plural.to_owned(), ns.to_owned())).copied().unwrap_or(0),
            None => self
                .counts
                .range((group.to_owned(), plural.to_owned(), String::new())..)
                .take_while(|((g, p, _), _)| g == group && p == plural)
                .map(|(_, n)| n)
                .sum(),
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Value> {
        let object = self.take(key)?;
        self.resource_version += 1;
        self.publish(Event { key: key.clone(), kind: "DELETED", object: object.clone(), resource_version: self.resource_version });
        Some(object)
    }

    /// A delete as the API server does it: an object with finalizers (or deleted with
    /// `Orphan` or `Foreground`, which add the garbage collector's `orphan` or
    /// `foregroundDeletion` finalizer) is marked with a deletionTimestamp and stays until its
    /// finalizers are gone; any other object goes at once, and the garbage collector deletes
    /// its dependents (`Background`). A second delete returns the object as it is.
    fn delete(&mut self, key: &Key, policy: Propagation) -> Option<Value> {
        let mut object = self.objects.get(key)?.clone();
        if object["metadata"].get("deletionTimestamp").is_some() {
            return Some(object);
        }
        let mut held = finalizers(&object);
        let added = match policy {
            Propagation::Orphan => Some("orphan"),
            Propagation::Foreground => Some("foregroundDeletion"),
            Propagation::Background => None,
        };
        if let Some(f) = added {
            if !held.iter().any(|h| h == f) {
                held.push(f.to_owned());
            }
        }
        if held.is_empty() {
            return self.remove(key);
        }
        object["metadata"]["deletionTimestamp"] = json!(now());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        object["metadata"]["finalizers"] = json!(held);
        Some(self.store(key.clone(), object, "MODIFIED"))
    }

    /// Where the object an ownerReference names would be stored, if the reference can be
    /// resolved: the real collector leaves a dependent alone when it cannot map the owner's
    /// kind, or when a cluster-scoped dependent names a namespaced owner (it only reports
    /// `OwnerRefInvalidNamespace`). A namespaced owner is looked for in the dependent's
    /// namespace only.
    fn owner_key(&self, reference: &Value, dependent_namespace: &str) -> Option<Key> {
        let group = reference["apiVersion"].as_str()?.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let kind = reference["kind"].as_str()?;
        let def = self.resources.iter().find(|r| r.group == group && r.kind == kind)?;
        if def.namespaced && dependent_namespace.is_empty() {
            return None;
        }
        Some(key(def, if def.namespaced { dependent_namespace } else { "" }, reference["name"].as_str()?))
    }

    /// The garbage collector's part, as the real controller does it: an owner deleted with
    /// `orphan` has the references to it removed from its dependents; one deleted with
    /// `foregroundDeletion` has its dependents deleted, and goes once none that blocks its
    /// deletion is left; a dependent none of whose owners is here (by name and UID) is
    /// deleted, and one with an owner still here loses the references to owners that are not.
    /// Runs until nothing changes. Returns whether anything did.
    fn collect_garbage(&mut self) -> bool {
        let mut changed_any = false;
        loop {
            let mut changed = false;
            let owners: Vec<(Key, Value)> = self
                .deleting
                .iter()
                .filter_map(|k| self.objects.get_key_value(k))
                .filter(|(_, o)| finalizers(o).iter().any(|f| f == "orphan" || f == "foregroundDeletion"))
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            for (owner_key, owner) in owners {
                let uid = owner["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
                let owned = |o: &Value| owner_refs(o).iter().any(|r| r["uid"] == uid.as_str());
                let dependents: Vec<Key> = self.owned.iter().filter(|k| self.objects.get(*k).is_some_and(owned)).cloned().collect();
                let mut held = finalizers(&owner);
                if held.iter().any(|f| f == "orphan") {
                    for k in &dependents {
                        let mut dependent = self.objects[k].clone();
                        retain_owners(&mut dependent, |r| r["uid"] != uid.as_str());
                        self.store(k.clone(), dependent, "MODIFIED");
                    }
                    held.retain(|f| f != "orphan");
                } else {
                    for k in &dependents {
                        if self.objects.get(k).is_some_and(|o| o["metadata"].get("deletionTimestamp").is_none()) {
                            self.delete(k, Propagation::Background);
                            changed = true;
                        }
                    }
                    let blocking = self
                        .owned
                        .iter()
                        .filter_map(|k| self.objects.get(k))
                        .any(|o| owner_refs(o).iter().any(|r| r["uid"] == uid.as_str() && r["blockOwnerDeletion"] == true));
                    if blocking {
                        continue;
                    }
                    held.retain(|f| f != "foregroundDeletion");
                }
                let mut owner = self.objects[&owner_key].clone();
                owner["metadata"]["finalizers"] = json!(held);
                self.store(owner_key, owner, "MODIFIED");
                changed = true;
            }
            let dependents: Vec<(Key, Value)> = self
                .owned
                .iter()
                .filter_map(|k| self.objects.get_key_value(k))
                .filter(|(_, o)| o["metadata"].get("deletionTimestamp").is_none())
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            for (k, mut dependent) in dependents {
                let mut solid = 0;
                let mut gone: BTreeSet<String> = BTreeSet::new();
                for r in owner_refs(&dependent) {
                    let Some(owner_key) = self.owner_key(&r, &k.2) else {
                        solid += 1;
                        continue;
                    };
                    match self.objects.get(&owner_key) {
                        Some(owner) if owner["metadata"]["uid"] == r["uid"] => {
                            if finalizers(owner).iter().any(|f| f == "foregroundDeletion") {
                                gone.insert(r["uid"].as_str().unwrap_or_default().to_owned());
                            } else {
                                solid += 1;
                            }
                        }
                        _ => {
                            gone.insert(r["uid"].as_str().unwrap_or_default().to_owned());
                        }
                    }
                }
                if gone.is_empty() {
                    continue;
                }
                if solid > 0 {
                    retain_owners(&mut dependent, |r| !gone.contains(r["uid"].as_str().unwrap_or_default()));
                    self.store(k, dependent, "MODIFIED");
                } else {
                    self.delete(&k, Propagation::Background);
                }
                changed = true;
            }
            if !changed {
                return changed_any;
            }
            changed_any = true;
        }
    }

    /// The namespace controller's part: a namespace whose deletion is due loses its objects,
    /// then goes itself.
    fn finish_namespace_deletions(&mut self) {
        let now = std::time::Instant::now();
        let due: Vec<String> = self.terminating.iter().filter(|(_, at)| **at <= now).map(|(n, _)| n.clone()).collect();
        for namespace in due {
            self.terminating.remove(&namespace);
            let inside: Vec<Key> = self.objects.keys().filter(|k| k.2 == namespace).cloned().collect();
            for k in inside {
                self.remove(&k);
            }
            self.remove(&("".into(), "namespaces".into(), String::new(), namespace));
        }
    }

    fn publish(&mut self, event: Event) {
        if self.events.len() == EVENT_LOG {
            self.events.pop_front();
        }
        self.events.push_back(event.clone());
        let _ = self.changes.send(event);
    }
}

/// The ConfigMap the controller-manager publishes in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// A handle on the server; clones share it (the server runs until the test process ends).
#[derive(Clone)]
pub struct ApiServer {
    pub url: String,
    state: Arc<Mutex<State>>,
    /// The task accepting and serving connections: aborted, the port refuses connections and
    /// every open one is cut, as when a kube-apiserver process stops ([`ApiServer::restart`]).
    serving: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// Accepts and serves connections on `listener` until aborted (which drops the listener and
/// every connection with it).
fn serve(state: Arc<Mutex<State>>, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { return };
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool, status: bool) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
        status_subresource: status,
        custom: false,
        verbs: STANDARD_VERBS,
    }
}

fn builtins() -> Vec<ResourceDef> {
    vec![
        builtin("", "v1", "Namespace", "namespaces", false, true),
        builtin("", "v1", "ConfigMap", "configmaps", true, false),
        builtin("", "v1", "Secret", "secrets", true, false),
        builtin("", "v1", "ServiceAccount", "serviceaccounts", true, false),
        builtin("", "v1", "Service", "services", true, true),
        builtin("", "v1", "Pod", "pods", true, true),
        builtin("", "v1", "Event", "events", true, false),
        builtin("", "v1", "Endpoints", "endpoints", true, false),
        builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, true),
        builtin("", "v1", "PersistentVolume", "persistentvolumes", false, true),
        builtin("", "v1", "Node", "nodes", false, true),
        builtin("apps", "v1", "Deployment", "deployments", true, true),
        builtin("apps", "v1", "ReplicaSet", "replicasets", true, true),
        builtin("apps", "v1", "StatefulSet", "statefulsets", true, true),
        builtin("apps", "v1", "DaemonSet", "daemonsets", true, true),
        builtin("batch", "v1", "Job", "jobs", true, true),
        builtin("batch", "v1", "CronJob", "cronjobs", true, true),
        builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true, false),
        builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, false),
        builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, false),
        builtin("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, false),
        builtin("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, true),
        builtin("coordination.k8s.io", "v1", "Lease", "leases", true, false),
        builtin("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, false),
        builtin("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, false),
        builtin("events.k8s.io", "v1", "Event", "events", true, false),
        builtin("", "v1", "ResourceQuota", "resourcequotas", true, true),
        builtin("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, false),
        builtin("networking.k8s.io", "v1", "Ingress", "ingresses", true, true),
        builtin("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, false),
        builtin("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, false),
        builtin("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", false, false),
        builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, true),
        builtin("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, true),
        builtin("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false, false),
        builtin("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false, false),
        builtin("apiregistration.k8s.io", "v1", "APIService", "apiservices", false, true),
        builtin("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", false, true),
        builtin("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", false, true),
        ResourceDef { verbs: &["create"], ..builtin("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", false, false) },
    ]
}

fn status(code: u16, reason: &str, message: String) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code});
    respond(code, body)
}

fn respond(code: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).expect("valid status"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body).expect("serializes"))).boxed_unsync())
        .expect("valid response")
}

fn random_uid() -> String {
    let mut b = [0u8; 16];
    dr_core::format::crypto::fill_random(&mut b);
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn now() -> String {
    dr_core::point::rfc3339(time::OffsetDateTime::now_utc().replace_millisecond(0).unwrap())
}

/// What a delete does to the objects the deleted one owns (DeleteOptions' `propagationPolicy`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Propagation {
    Orphan,
    Background,
    Foreground,
}

fn finalizers(object: &Value) -> Vec<String> {
    object["metadata"]["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn owner_refs(object: &Value) -> Vec<Value> {
    object["metadata"]["ownerReferences"].as_array().cloned().unwrap_or_default()
}

/// Keeps the ownerReferences `keep` accepts; the field goes when none is left.
fn retain_owners(object: &mut Value, keep: impl Fn(&Value) -> bool) {
    let kept: Vec<Value> = owner_refs(object).into_iter().filter(|r| keep(r)).collect();
    let meta = object["metadata"].as_object_mut().expect("metadata is an object");
    if kept.is_empty() {
        meta.remove("ownerReferences");
    } else {
        meta.insert("ownerReferences".into(), Value::Array(kept));
    }
}

impl ApiServer {
    /// Starts a server with the built-in kinds and the namespaces a new cluster has.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = ApiServer { url, state: state.clone(), serving: Arc::new(Mutex::new(None)) };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            server.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        // The namespace controller and the garbage collector run on their own, as the real
        // ones do: a watch waiting for a namespace or a Job to go sees it go without any other
        // request coming in, and a test sees what a real collector would have deleted.
        let controller = Arc::downgrade(&state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let Some(state) = controller.upgrade() else { return };
                let mut state = state.lock().unwrap();
                state.finish_namespace_deletions();
                state.collect_garbage();
                state.publish_root_ca();
            }
        });
        *server.serving.lock().unwrap() = Some(serve(state, listener));
        server
    }

    /// The API server process stops for `down` and starts again on the same address with the
    /// same store (etcd kept): connections are cut at once, new ones refused until it is back.
    pub async fn restart(&self, down: std::time::Duration) {
        if let Some(task) = self.serving.lock().unwrap().take() {
            task.abort();
        }
        tokio::time::sleep(down).await;
        let addr = self.url.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap_or_else(|e| panic!("rebinding {addr}: {e}"));
        *self.serving.lock().unwrap() = Some(serve(self.state.clone(), listener));
    }

    /// Runs the garbage collector now, rather than waiting for its next pass (it runs every
    /// 100 ms): what a real cluster would have deleted by the time anyone looks is gone.
    /// Returns whether it changed anything.
    pub fn collect_garbage(&self) -> bool {
        self.state.lock().unwrap().collect_garbage()
    }

    /// Every request from now on takes at least `latency` (requests still run concurrently).
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// Appends to a pod's container log (the kubelet's part): the container has started.
    pub fn append_pod_log(&self, namespace: &str, pod: &str, text: &str) {
        self.state.lock().unwrap().pod_logs.entry((namespace.into(), pod.into())).or_default().0.push_str(text);
    }

    /// The pod's container has ended: a follow of its log ends once it has read all of it.
    pub fn end_pod_log(&self, namespace: &str, pod: &str) {
        self.state.lock().unwrap().pod_logs.entry((namespace.into(), pod.into())).or_default().1 = true;
    }

    /// A kube client for this server, with no credentials (it does not authenticate).
    pub fn client(&self) -> kube::Client {
        dr_core::init_crypto_provider();
        dr_core::kube_client(kube::Config::new(self.url.parse().unwrap())).unwrap()
    }

    /// Writes a kubeconfig that authenticates with a bearer token (a service account's).
    pub fn write_token_kubeconfig(&self, path: &std::path::Path, namespace: &str, token: &str) {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: sa\n    namespace: {namespace}\ncurrent-context: test\n",
            self.url
        );
        std::fs::write(path, yaml).unwrap();
    }

    /// Writes a kubeconfig for this server (no credentials; `namespace` as the default).
    pub fn write_kubeconfig(&self, path: &std::path::Path, namespace: &str) {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\nusers:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: {namespace}\ncurrent-context: test\n",
            self.url
        );
        std::fs::write(path, yaml).unwrap();
    }

    /// Installs kubectl-dr's CRDs, generated from the Rust types.
    pub fn install_dr_crds(&self) {
        for (_, yaml) in dr_core::resources::crd_manifests() {
            self.seed(serde_yaml::from_str(&yaml).unwrap());
        }
    }

    /// Issues a service-account token (a JWT with the claims the real API server puts in
    /// one) that TokenReview then accepts, as a pod's projected token would be.
    pub fn issue_token(&self, namespace: &str, service_account: &str) -> String {
        let b64 = |v: &Value| base64url(&serde_json::to_vec(v).unwrap());
        let uid = random_uid();
        let header = json!({"alg": "RS256", "kid": "dr-test", "typ": "JWT"});
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "iss": "https://kubernetes.default.svc.cluster.local", "aud": ["https://kubernetes.default.svc.cluster.local"],
            "sub": format!("system:serviceaccount:{namespace}:{service_account}"), "iat": now, "nbf": now, "exp": now + 3600,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": service_account, "uid": uid}},
        });
        let mut sig = [0u8; 256];
        dr_core::format::crypto::fill_random(&mut sig);
        let token = format!("{}.{}.{}", b64(&header), b64(&claims), base64url(&sig));
        self.state.lock().unwrap().tokens.insert(token.clone(), (namespace.into(), service_account.into(), uid));
        token
    }

    /// Stores an object as if created through the API.
    pub fn seed(&self, object: Value) -> Value {
        let mut state = self.state.lock().unwrap();
        let (api_version, kind) = (object["apiVersion"].as_str().unwrap().to_owned(), object["kind"].as_str().unwrap().to_owned());
        let def = state
            .resources
            .iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
            .unwrap_or_else(|| panic!("no resource for {api_version} {kind}"))
            .clone();
        let ns = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_owned();
        // Seeding stands in for controllers too, so the status given is kept.
        let status = object.get("status").cloned();
        let mut created = create(&mut state, &def, &ns, object).unwrap_or_else(|r| panic!("seed failed: {:?}", r.status()));
        if let Some(status) = status {
            created["status"] = status;
            let name = created["metadata"]["name"].as_str().unwrap().to_owned();
            created = state.store(key(&def, &ns, &name), created, "MODIFIED");
        }
        created
    }

    /// Creates `object`, or replaces the stored object of that name: what `helm upgrade` does
    /// to a chart's objects, including recreating one that was deleted.
    pub fn upsert(&self, object: Value) -> Value {
        {
            let mut state = self.state.lock().unwrap();
            let (api_version, kind) = (object["apiVersion"].as_str().unwrap(), object["kind"].as_str().unwrap());
            let def = state.resources.iter().find(|r| r.api_version() == api_version && r.kind == kind).expect("a served resource").clone();
            let ns = object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
            let name = object["metadata"]["name"].as_str().unwrap();
            state.take(&key(&def, ns, name));
        }
        self.seed(object)
    }

    /// Makes the API server refuse `verb` on a resource (`plural`, `group`) with 403.
    pub fn forbid(&self, verb: &str, group: &str, plural: &str) {
        self.state.lock().unwrap().forbidden.insert((verb.into(), group.into(), plural.into()));
    }

    /// The stored objects of a resource.
    pub fn objects(&self, group: &str, plural: &str) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        in_resource(&state.objects, group, plural, None).map(|(_, v)| v.clone()).collect()
    }

    /// The queries of the list requests made for `plural`, in order.
    pub fn list_queries(&self, plural: &str) -> Vec<BTreeMap<String, String>> {
        self.state.lock().unwrap().lists.iter().filter(|(p, _)| p == plural).map(|(_, q)| q.clone()).collect()
    }

    /// Answers the next `n` requests 429 Too Many Requests with `Retry-After: 1`, as an API
    /// server under API Priority and Fairness pressure does.
    pub fn throttle(&self, n: u64) {
        self.state.lock().unwrap().throttle = n;
    }

    /// Authorizes requests that bear a service-account token this server issued with RBAC:
    /// the Roles and ClusterRoles bound to the account, as the real authorizer evaluates them.
    pub fn enforce_rbac(&self) {
        self.state.lock().unwrap().enforce_rbac = true;
    }

    /// Serves an API group whose backend is down: its discovery answers 503 (an APIService
    /// whose metrics-server is not running).
    pub fn break_group(&self, group: &str, version: &str, kind: &str, plural: &str) {
        let mut state = self.state.lock().unwrap();
        state.resources.push(ResourceDef { verbs: &["get", "list"], ..builtin(group, version, kind, plural, true, false) });
        state.unavailable_groups.insert(group.to_owned());
    }

    /// Serves another version of a kind (an older cluster's API: `policy/v1beta1`
    /// PodDisruptionBudget). Objects are stored once per group and resource, as the real
    /// server stores every version of a resource alike.
    pub fn serve(&self, group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) {
        self.state.lock().unwrap().resources.push(builtin(group, version, kind, plural, namespaced, false));
    }

    /// Stops serving a version of a kind (what a newer cluster removed, or an older one lacks).
    pub fn unserve(&self, group: &str, version: &str, kind: &str) {
        self.state.lock().unwrap().resources.retain(|r| !(r.group == group && r.version == version && r.kind == kind));
    }

    /// Requests answered 429 so far.
    pub fn throttled(&self) -> u64 {
        self.state.lock().unwrap().throttled
    }

    /// TokenReviews served so far.
    pub fn token_reviews(&self) -> u64 {
        self.state.lock().unwrap().token_reviews
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.state.lock().unwrap().requests
    }
}

/// Base64: the standard alphabet with padding (Secret data), or the URL-safe one without
/// (JWTs). Kept here so the tests need no encoding crate.
pub fn base64(bytes: &[u8], url_safe: bool) -> String {
    let table: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(table[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if !url_safe {
                out.push('=');
            }
        }
    }
    out
}

fn base64url(bytes: &[u8]) -> String {
    base64(bytes, true)
}

/// TokenReview: authenticates tokens this server issued, like the real one does for pods.
fn token_review(state: &mut State, body: &[u8]) -> Response<Body> {
    state.token_reviews += 1;
    let Ok(review) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "the request body is not JSON".into());
    };
    let token = review["spec"]["token"].as_str().unwrap_or("");
    let status_value = match state.tokens.get(token) {
        Some((ns, sa, uid)) => json!({
            "authenticated": true,
            "user": {"username": format!("system:serviceaccount:{ns}:{sa}"), "uid": uid,
                     "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"]},
            "audiences": review["spec"]["audiences"].as_array().cloned().unwrap_or_else(|| vec![json!("https://kubernetes.default.svc.cluster.local")]),
        }),
        None => json!({"authenticated": false, "error": "invalid bearer token, token lookup failed"}),
    };
    respond(
        201,
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {"creationTimestamp": null}, "spec": review["spec"], "status": status_value}),
    )
}

fn discovery_resources(state: &State, group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = state.resources.iter().filter(|r| r.group == group && r.version == version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in defs {
        resources.push(json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs}));
        if r.status_subresource {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}))
}

fn api_groups(state: &State) -> Value {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in state.resources.iter().filter(|r| !r.group.is_empty()) {
        let versions = groups.entry(r.group.as_str()).or_default();
        if !versions.contains(&r.version.as_str()) {
            versions.push(r.version.as_str());
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// A parsed resource path.
struct Target {
    def: ResourceDef,
    namespace: String,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(state: &State, path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let find = |plural: &str| state.resources.iter().find(|r| r.group == group && r.version == version && r.plural == plural).cloned();
    let t = |def, ns: &str, name: Option<&&str>, sub: Option<&&str>| Target {
        def,
        namespace: ns.to_owned(),
        name: name.map(|s| s.to_string()),
        subresource: sub.map(|s| s.to_string()),
    };
    match rest {
        ["namespaces", ns, plural, more @ ..] if group.is_empty() || find(plural).is_some_and(|d| d.namespaced) => {
            let def = find(plural)?;
            def.namespaced.then(|| t(def, ns, more.first(), more.get(1)))
        }
        [plural, more @ ..] => Some(t(find(plural)?, "", more.first(), more.get(1))),
        [] => None,
    }
}

fn forbidden(state: &State, verb: &str, t: &Target) -> Option<Response<Body>> {
    if !state.forbidden.contains(&(verb.to_owned(), t.def.group.clone(), t.def.plural.clone())) {
        return None;
    }
    let scope = if t.namespace.is_empty() { "at the cluster scope".to_owned() } else { format!("in the namespace \"{}\"", t.namespace) };
    Some(status(
        403,
        "Forbidden",
        format!(
            "{} is forbidden: User \"system:serviceaccount:kasten-io:k10-dr\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
            t.def.plural, t.def.plural, t.def.group
        ),
    ))
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let shared = state.clone();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .map(|q| q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), percent_decode(v))).collect())
        .unwrap_or_default();
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bearer = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::to_owned);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let latency = state.lock().unwrap().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut state = state.lock().unwrap();
    state.finish_namespace_deletions();
    state.requests += 1;
    if state.throttle > 0 {
        state.throttle -= 1;
        state.throttled += 1;
        let mut r = respond(
            429,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Too many requests, please try again later.",
                   "reason": "TooManyRequests", "details": {"retryAfterSeconds": 1}, "code": 429}),
        );
        r.headers_mut().insert("retry-after", hyper::header::HeaderValue::from_static("1"));
        return Ok(r);
    }
    if let Some(denied) = authorize(&state, bearer.as_deref(), &method, &path, &query) {
        return Ok(denied);
    }
    if method == Method::GET && query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return Ok(watch(&mut state, &path, &query));
    }
    if let (&Method::GET, ["", "api", "v1", "namespaces", ns, "pods", pod, "log"]) = (&method, path.split('/').collect::<Vec<_>>().as_slice()) {
        return Ok(pod_log(&state, shared, ns, pod, &query));
    }
    Ok(route(&mut state, &method, &path, &query, &content_type, &body))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00"), 16).unwrap_or(0));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Leaf paths of a JSON value. Maps are granular (an empty map claims nothing in it); lists
/// are leaves, atomic as most built-in list fields are.
fn leaves(v: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    match v {
        Value::Object(m) if m.is_empty() && !prefix.is_empty() => {}
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Paths a manager owns through server-side apply, without the identity fields.
fn applied_paths(config: &Value) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    leaves(config, &mut Vec::new(), &mut out);
    out.retain(|p| {
        let identity = matches!(p.first().map(String::as_str), Some("apiVersion" | "kind"))
            || p.first().map(String::as_str) == Some("metadata")
                && matches!(p.get(1).map(String::as_str), Some("name" | "namespace" | "resourceVersion" | "managedFields" | "uid" | "creationTimestamp"));
        !identity
    });
    out
}

/// FieldsV1 (`{"f:spec": {"f:schedule": {}}}`) from paths, and back.
fn to_fields_v1(paths: &BTreeSet<Vec<String>>) -> Value {
    let mut root = json!({});
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            cur = cur.as_object_mut().expect("object").entry(format!("f:{seg}")).or_insert_with(|| json!({}));
        }
    }
    root
}

fn from_fields_v1(v: &Value) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    fn walk(v: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
        let children: Vec<(&String, &Value)> = v.as_object().map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect()).unwrap_or_default();
        if children.is_empty() {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            return;
        }
        for (k, child) in children {
            prefix.push(k[2..].to_owned());
            walk(child, prefix, out);
            prefix.pop();
        }
    }
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, seg| v.get(seg))
}

fn set_path(v: &mut Value, path: &[String], value: Value) {
    let mut cur = v;
    for seg in &path[..path.len() - 1] {
        if !cur.get(seg).is_some_and(Value::is_object) {
            cur[seg.as_str()] = json!({});
        }
        cur = cur.get_mut(seg).expect("just set");
    }
    cur[path[path.len() - 1].as_str()] = value;
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    if let Some(parent) = parents.iter().try_fold(&mut *v, |v, seg| v.get_mut(seg)) {
        if let Some(m) = parent.as_object_mut() {
            m.remove(last);
        }
    }
}

/// Server-side apply: create, or merge the manager's configuration into the object. A field
/// another manager owns with a different value is a conflict unless `force=true`; fields the
/// manager applied before and no longer does are removed (when nobody else owns them).
fn apply(state: &mut State, t: &Target, query: &BTreeMap<String, String>, config: Value) -> Response<Body> {
    let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()).cloned() else {
        return status(400, "BadRequest", "PATCH, application/apply-patch+yaml requires fieldManager to be set".into());
    };
    let force = query.get("force").is_some_and(|f| f == "true");
    let name = t.name.clone().unwrap_or_default();
    let k = key(&t.def, &t.namespace, &name);
    let paths = applied_paths(&config);
    let entry = |manager: &str, paths: &BTreeSet<Vec<String>>, def: &ResourceDef| json!({"manager": manager, "operation": "Apply", "apiVersion": def.api_version(), "time": now(), "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)});
    let Some(mut current) = state.objects.get(&k).cloned() else {
        let mut obj = config;
        obj["metadata"]["name"] = json!(name);
        obj["metadata"]["managedFields"] = json!([entry(&manager, &paths, &t.def)]);
        return match create(state, &t.def, &t.namespace, obj) {
            Ok(o) => respond(201, o),
            Err(r) => r,
        };
    };
    let mut managed: Vec<Value> = current["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    let mut conflicts = Vec::new();
    for m in managed.iter().filter(|m| m["manager"] != manager.as_str()) {
        for p in from_fields_v1(&m["fieldsV1"]).intersection(&paths) {
            if get_path(&current, p) != get_path(&config, p) {
                conflicts.push((m["manager"].as_str().unwrap_or("").to_owned(), p.join(".")));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": format!(".{f}")}))
            .collect();
        return respond(
            409,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409,
            "message": format!("Apply failed with {} conflict(s): {}", conflicts.len(), conflicts.iter().map(|(m, f)| format!("conflict with \"{m}\": .{f}")).collect::<Vec<_>>().join(", ")),
            "details": {"causes": causes}}),
        );
    }
    let previous: BTreeSet<Vec<String>> = managed.iter().filter(|m| m["manager"] == manager.as_str()).flat_map(|m| from_fields_v1(&m["fieldsV1"])).collect();
    let others: BTreeSet<Vec<String>> = managed.iter().filter(|m| m["manager"] != manager.as_str()).flat_map(|m| from_fields_v1(&m["fieldsV1"])).collect();
    for p in previous.difference(&paths).filter(|p| !others.contains(*p)) {
        remove_path(&mut current, p);
    }
    for p in &paths {
        if let Some(v) = get_path(&config, p) {
            set_path(&mut current, p, v.clone());
        }
    }
    // Forced fields change hands; the manager's entry is exactly what it applied.
    for m in managed.iter_mut().filter(|m| m["manager"] != manager.as_str()) {
        let kept: BTreeSet<Vec<String>> = from_fields_v1(&m["fieldsV1"]).difference(&paths).cloned().collect();
        m["fieldsV1"] = to_fields_v1(&kept);
    }
    managed.retain(|m| m["manager"] != manager.as_str());
    managed.push(entry(&manager, &paths, &t.def));
    current["metadata"]["managedFields"] = json!(managed);
    if t.def.status_subresource {
        if let Some(before) = state.objects.get(&k).and_then(|o| o.get("status")).cloned() {
            current["status"] = before;
        }
    }
    respond(200, state.store(k, current, "MODIFIED"))
}

/// RBAC for service-account tokens: `None` when allowed, else the 403 the real server sends.
fn authorize(state: &State, bearer: Option<&str>, method: &Method, path: &str, query: &BTreeMap<String, String>) -> Option<Response<Body>> {
    if !state.enforce_rbac {
        return None;
    }
    let token = bearer?;
    let Some((sa_ns, sa_name, _)) = state.tokens.get(token).cloned() else {
        return Some(status(401, "Unauthorized", "Unauthorized".into()));
    };
    let t = parse_path(state, path)?; // discovery and /version are open to every authenticated user
    let verb = match (method, &t.name) {
        (&Method::GET, _) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => "unknown",
    };
    let resource = match &t.subresource {
        Some(sub) => format!("{}/{sub}", t.def.plural),
        None => t.def.plural.clone(),
    };
    let is_subject = |binding: &Value| {
        binding["subjects"]
            .as_array()
            .is_some_and(|subjects| subjects.iter().any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa_name.as_str() && s["namespace"] == sa_ns.as_str()))
    };
    let rules_of = |role_ref: &Value, binding_ns: &str| -> Vec<Value> {
        let name = role_ref["name"].as_str().unwrap_or("");
        let k = match role_ref["kind"].as_str() {
            Some("ClusterRole") => ("rbac.authorization.k8s.io".to_owned(), "clusterroles".to_owned(), String::new(), name.to_owned()),
            _ => ("rbac.authorization.k8s.io".to_owned(), "roles".to_owned(), binding_ns.to_owned(), name.to_owned()),
        };
        state.objects.get(&k).and_then(|r| r["rules"].as_array().cloned()).unwrap_or_default()
    };
    let mut rules = Vec::new();
    for ((_, plural, ns, _), binding) in in_group(&state.objects, "rbac.authorization.k8s.io") {
        if !is_subject(binding) {
            continue;
        }
        match plural.as_str() {
            "clusterrolebindings" => rules.extend(rules_of(&binding["roleRef"], "")),
            // A RoleBinding grants only in its own namespace.
            "rolebindings" if !t.namespace.is_empty() && *ns == t.namespace => rules.extend(rules_of(&binding["roleRef"], ns)),
            _ => {}
        }
    }
    let has = |list: &Value, want: &str| list.as_array().is_some_and(|l| l.iter().any(|v| v == "*" || v == want));
    let allowed = rules.iter().any(|r| {
        has(&r["apiGroups"], &t.def.group)
            && has(&r["resources"], &resource)
            && has(&r["verbs"], verb)
            && (r["resourceNames"].as_array().is_none_or(|n| n.is_empty()) || t.name.as_deref().is_some_and(|name| has(&r["resourceNames"], name)))
    });
    if allowed {
        return None;
    }
    let scope = if t.namespace.is_empty() { "at the cluster scope".to_owned() } else { format!("in the namespace \"{}\"", t.namespace) };
    Some(status(
        403,
        "Forbidden",
        format!(
            "{resource} is forbidden: User \"system:serviceaccount:{sa_ns}:{sa_name}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
            t.def.group
        ),
    ))
}

/// A watch: the current objects (resourceVersion unset or 0) or the changes after the given
/// resourceVersion (410 Gone when it is older than the event log), then every change, as
/// newline-delimited JSON events, until `timeoutSeconds`.
/// `GET pods/NAME/log` as the kubelet answers it through the API server: 404 for no such
/// pod, 400 while its container has not started, the log so far (`tailLines` honoured), and
/// with `follow=true` everything the container writes until it ends.
fn pod_log(state: &State, shared: Arc<Mutex<State>>, namespace: &str, pod: &str, query: &BTreeMap<String, String>) -> Response<Body> {
    let key = ("".to_owned(), "pods".to_owned(), namespace.to_owned(), pod.to_owned());
    let Some(object) = state.objects.get(&key) else {
        return status(404, "NotFound", format!("pods \"{pod}\" not found"));
    };
    let log_key = (namespace.to_owned(), pod.to_owned());
    let Some((text, _)) = state.pod_logs.get(&log_key) else {
        let container = object.pointer("/spec/containers/0/name").and_then(Value::as_str).unwrap_or("");
        return status(400, "BadRequest", format!("container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"));
    };
    let start = match query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) => text.match_indices('\n').rev().nth(n).map_or(0, |(i, _)| i + 1),
        None => 0,
    };
    let follow = query.get("follow").is_some_and(|f| f == "true" || f == "1");
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut sent = start;
        loop {
            let (chunk, ended) = {
                let state = shared.lock().unwrap();
                let (text, ended) = state.pod_logs.get(&log_key).cloned().unwrap_or_default();
                (text[sent.min(text.len())..].to_owned(), ended)
            };
            sent += chunk.len();
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if ended || !follow {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(hyper::body::Frame::data(b)), rx)) });
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("transfer-encoding", "chunked")
        .body(BodyExt::boxed_unsync(StreamBody::new(stream)))
        .unwrap()
}

fn watch(state: &mut State, path: &str, query: &BTreeMap<String, String>) -> Response<Body> {
    let Some(t) = parse_path(state, path) else {
        return status(404, "NotFound", "the server could not find the requested resource".into());
    };
    if let Some(denied) = forbidden(state, "watch", &t) {
        return denied;
    }
    let labels = query.get("labelSelector").cloned().unwrap_or_default();
    let mut fields = query.get("fieldSelector").cloned().unwrap_or_default();
    if let Some(name) = &t.name {
        fields = format!("metadata.name={name}");
    }
    let (group, plural, namespace) = (t.def.group.clone(), t.def.plural.clone(), t.namespace.clone());
    let matches = move |e: &Event| {
        let empty = serde_json::Map::new();
        e.key.0 == group
            && e.key.1 == plural
            && (namespace.is_empty() || e.key.2 == namespace)
            && label_matches(e.object.pointer("/metadata/labels").and_then(Value::as_object).unwrap_or(&empty), &labels)
            && field_matches(&e.object, &fields)
    };
    let since: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut initial: Vec<Event> = Vec::new();
    if since == 0 {
        // Only this resource's objects: copying every stored object would stall the server.
        let namespace = Some(t.namespace.as_str()).filter(|n| !n.is_empty());
        initial.extend(in_resource(&state.objects, &t.def.group, &t.def.plural, namespace).map(|(k, o)| Event {
            key: k.clone(),
            kind: "ADDED",
            object: o.clone(),
            resource_version: 0,
        }));
    } else {
        let oldest = state.events.front().map(|e| e.resource_version).unwrap_or(state.resource_version + 1);
        if since + 1 < oldest && since < state.resource_version {
            return status(410, "Expired", format!("too old resource version: {since} ({})", oldest - 1));
        }
        initial.extend(state.events.iter().filter(|e| e.resource_version > since).cloned());
    }
    let mut changes = state.changes.subscribe();
    let timeout = std::time::Duration::from_secs(query.get("timeoutSeconds").and_then(|v| v.parse().ok()).unwrap_or(60));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let line = |e: &Event| Bytes::from(format!("{}\n", json!({"type": e.kind, "object": e.object})));
    tokio::spawn(async move {
        for e in initial.iter().filter(|e| matches(e)) {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Ok(e)) if matches(&e) => {
                    if tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => return,
                Ok(Err(_)) | Err(_) => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(hyper::body::Frame::data(b)), rx)) });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("valid response")
}

fn route(state: &mut State, method: &Method, path: &str, query: &BTreeMap<String, String>, content_type: &str, body: &[u8]) -> Response<Body> {
    // Discovery.
    if method == Method::GET {
        match path.trim_end_matches('/') {
            "/version" => return respond(200, json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-dr-test"})),
            "/api" => {
                return respond(
                    200,
                    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
                )
            }
            "/apis" => return respond(200, api_groups(state)),
            p => {
                let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
                if let ["apis", g, _] = segs.as_slice() {
                    if state.unavailable_groups.contains(*g) {
                        return status(503, "ServiceUnavailable", "the server is currently unable to handle the request".into());
                    }
                }
                let found = match segs.as_slice() {
                    ["api", v] => Some(discovery_resources(state, "", v)),
                    ["apis", g, v] => Some(discovery_resources(state, g, v)),
                    _ => None,
                };
                if let Some(found) = found {
                    return match found {
                        Some(list) => respond(200, list),
                        None => status(404, "NotFound", "the server could not find the requested resource".into()),
                    };
                }
            }
        }
    }
    let Some(t) = parse_path(state, path) else {
        return status(404, "NotFound", "the server could not find the requested resource".into());
    };
    if let Some(sub) = &t.subresource {
        if sub != "status" || !t.def.status_subresource {
            return status(404, "NotFound", "the server could not find the requested resource".into());
        }
        return status_subresource(state, method, &t, content_type, body);
    }
    let verb = match (method, &t.name) {
        (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, None) => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        _ => return status(405, "MethodNotAllowed", format!("{method} is not allowed on {path}")),
    };
    if let Some(denied) = forbidden(state, verb, &t) {
        return denied;
    }
    let parse = |body: &[u8]| serde_json::from_slice::<Value>(body).map_err(|e| status(400, "BadRequest", format!("the request body is not JSON: {e}")));
    if t.def.kind == "TokenReview" {
        return if verb == "create" { token_review(state, body) } else { status(405, "MethodNotAllowed", format!("{verb} is not allowed on tokenreviews")) };
    }
    if matches!(verb, "create" | "update" | "patch") && t.subresource.is_none() {
        let operation = if verb == "create" { "CREATE" } else { "UPDATE" };
        if let Some(refused) = admission(state, &t, operation) {
            return refused;
        }
    }
    match verb {
        "list" => {
            state.lists.push((t.def.plural.clone(), query.clone()));
            list(state, &t, query)
        }
        "get" => match state.objects.get(&key(&t.def, &t.namespace, t.name.as_deref().unwrap())) {
            Some(o) => respond(200, o.clone()),
            None => not_found(&t.def, t.name.as_deref().unwrap()),
        },
        // The real server refuses new content in a namespace being deleted.
        "create" if t.def.namespaced && state.terminating.contains_key(&t.namespace) => status(
            403,
            "Forbidden",
            format!("{} is forbidden: unable to create new content in namespace {} because it is being terminated", t.def.plural, t.namespace),
        ),
        // A Namespace is deleted as the namespace controller does it: Terminating at once,
        // emptied and gone a moment later.
        "delete" if t.def.kind == "Namespace" && t.def.group.is_empty() => {
            let name = t.name.clone().unwrap();
            let k = key(&t.def, "", &name);
            let Some(mut ns) = state.objects.get(&k).cloned() else { return not_found(&t.def, &name) };
            if !state.terminating.contains_key(&name) {
                ns["metadata"]["deletionTimestamp"] = json!(now());
                ns["status"] = json!({"phase": "Terminating"});
                let ns = state.store(k, ns, "MODIFIED");
                state.terminating.insert(name, std::time::Instant::now() + std::time::Duration::from_millis(300));
                return respond(200, ns);
            }
            respond(200, ns)
        }
        "create" => match parse(body) {
            Ok(mut obj) => {
                let manager = query.get("fieldManager").map(String::as_str).unwrap_or("unknown");
                match create_as(state, &t.def, &t.namespace, &mut obj, Some(manager)) {
                    Ok(()) => respond(201, obj),
                    Err(r) => r,
                }
            }
            Err(r) => r,
        },
        "update" => match parse(body) {
            Ok(obj) => update(state, &t, obj),
            Err(r) => r,
        },
        "patch" => match parse(body) {
            Ok(config) if content_type.starts_with("application/apply-patch") => apply(state, &t, query, config),
            Ok(patch) if content_type.starts_with("application/merge-patch+json") => {
                let k = key(&t.def, &t.namespace, t.name.as_deref().unwrap());
                let Some(mut current) = state.objects.get(&k).cloned() else { return not_found(&t.def, t.name.as_deref().unwrap()) };
                merge(&mut current, &patch);
                respond(200, state.store(k, current, "MODIFIED"))
            }
            Ok(_) => status(415, "UnsupportedMediaType", format!("the test API server does not support patch type {content_type}")),
            Err(r) => r,
        },
        "delete" => {
            let policy = match propagation(&t.def, query, body) {
                Ok(p) => p,
                Err(r) => return r,
            };
            match state.delete(&key(&t.def, &t.namespace, t.name.as_deref().unwrap()), policy) {
                Some(o) => respond(200, o),
                None => not_found(&t.def, t.name.as_deref().unwrap()),
            }
        }
        _ => status(405, "MethodNotAllowed", format!("{verb} is not served by the test API server")),
    }
}

/// `.../status`: reads the object, and writes only its status (as the real server does).
fn status_subresource(state: &mut State, method: &Method, t: &Target, content_type: &str, body: &[u8]) -> Response<Body> {
    let name = t.name.as_deref().unwrap_or_default();
    let k = key(&t.def, &t.namespace, name);
    let Some(mut current) = state.objects.get(&k).cloned() else { return not_found(&t.def, name) };
    let verb = if method == Method::GET {
        "get"
    } else if method == Method::PUT {
        "update"
    } else {
        "patch"
    };
    if let Some(denied) = forbidden(
        state,
        verb,
        &Target {
            def: ResourceDef { plural: format!("{}/status", t.def.plural), ..t.def.clone() },
            namespace: t.namespace.clone(),
            name: None,
            subresource: None,
        },
    ) {
        return denied;
    }
    let Ok(sent) = serde_json::from_slice::<Value>(body) else {
        return if method == Method::GET { respond(200, current) } else { status(400, "BadRequest", "the request body is not JSON".into()) };
    };
    match *method {
        Method::GET => return respond(200, current),
        Method::PUT => current["status"] = sent["status"].clone(),
        Method::PATCH if content_type.starts_with("application/merge-patch+json") => {
            let mut status_value = current["status"].clone();
            if !status_value.is_object() {
                status_value = json!({});
            }
            merge(&mut status_value, &sent["status"]);
            current["status"] = status_value;
        }
        _ => return status(415, "UnsupportedMediaType", format!("the test API server does not support {method} {content_type} on status")),
    }
    respond(200, state.store(k, current, "MODIFIED"))
}

/// The admission webhooks that would refuse this write: matched by their rules, failure
/// policy Fail (v1's default), and a service without a ready endpoint, answered as the real
/// server answers when it cannot reach the webhook. Webhook configurations themselves are
/// never sent to webhooks (as in the real server).
fn admission(state: &State, t: &Target, operation: &str) -> Option<Response<Body>> {
    if t.def.group == "admissionregistration.k8s.io" {
        return None;
    }
    let listed = |list: &Value, item: &str| list.as_array().is_some_and(|l| l.iter().any(|v| v == "*" || v == item || v == "*/*"));
    for ((_, plural, _, _), config) in in_group(&state.objects, "admissionregistration.k8s.io") {
        if !plural.ends_with("webhookconfigurations") {
            continue;
        }
        for hook in config["webhooks"].as_array().into_iter().flatten() {
            if hook["failurePolicy"].as_str().unwrap_or("Fail") != "Fail" {
                continue;
            }
            let matches = hook["rules"].as_array().into_iter().flatten().any(|r| {
                let scope_ok = match r["scope"].as_str().unwrap_or("*") {
                    "Namespaced" => t.def.namespaced,
                    "Cluster" => !t.def.namespaced,
                    _ => true,
                };
                scope_ok && listed(&r["operations"], operation) && listed(&r["apiGroups"], &t.def.group) && listed(&r["resources"], &t.def.plural)
            });
            let (Some(ns), Some(svc)) =
                (hook.pointer("/clientConfig/service/namespace").and_then(Value::as_str), hook.pointer("/clientConfig/service/name").and_then(Value::as_str))
            else {
                continue;
            };
            if !matches {
                continue;
            }
            let ready = in_resource(&state.objects, "discovery.k8s.io", "endpointslices", Some(ns)).any(|(_, slice)| {
                slice["metadata"]["labels"]["kubernetes.io/service-name"] == svc
                    && slice["endpoints"].as_array().is_some_and(|e| e.iter().any(|e| e.pointer("/conditions/ready").and_then(Value::as_bool).unwrap_or(true)))
            });
            if !ready {
                let name = hook["name"].as_str().unwrap_or_default();
                return Some(status(
                    500,
                    "InternalError",
                    format!("Internal error occurred: failed calling webhook \"{name}\": failed to call webhook: Post \"https://{svc}.{ns}.svc:443/?timeout=10s\": no endpoints available for service \"{svc}\""),
                ));
            }
        }
    }
    None
}

fn key(def: &ResourceDef, namespace: &str, name: &str) -> Key {
    (def.group.clone(), def.plural.clone(), if def.namespaced { namespace.to_owned() } else { String::new() }, name.to_owned())
}

/// The stored objects of one API group, in key order, found without scanning the others.
fn in_group<'a>(objects: &'a BTreeMap<Key, Value>, group: &'a str) -> impl Iterator<Item = (&'a Key, &'a Value)> {
    objects.range((group.to_owned(), String::new(), String::new(), String::new())..).take_while(move |(k, _)| k.0 == group)
}

/// The stored objects of (group, plural), of one namespace when `namespace` is given, in key
/// order, found without scanning the others.
fn in_resource<'a>(
    objects: &'a BTreeMap<Key, Value>,
    group: &'a str,
    plural: &'a str,
    namespace: Option<&'a str>,
) -> impl Iterator<Item = (&'a Key, &'a Value)> {
    let start = (group.to_owned(), plural.to_owned(), namespace.unwrap_or("").to_owned(), String::new());
    objects.range(start..).take_while(move |(k, _)| k.0 == group && k.1 == plural && namespace.is_none_or(|n| k.2 == n))
}

fn not_found(def: &ResourceDef, name: &str) -> Response<Body> {
    let what = if def.group.is_empty() { def.plural.clone() } else { format!("{}.{}", def.plural, def.group) };
    status(404, "NotFound", format!("{what} \"{name}\" not found"))
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn create(state: &mut State, def: &ResourceDef, namespace: &str, mut obj: Value) -> Result<Value, Response<Body>> {
    create_as(state, def, namespace, &mut obj, None)?;
    Ok(obj)
}

/// `Kind.group` as the real server names a kind in its messages (`Event.events.k8s.io`).
fn kind_of(def: &ResourceDef) -> String {
    if def.group.is_empty() {
        def.kind.clone()
    } else {
        format!("{}.{}", def.kind, def.group)
    }
}

/// Why `name` is not a valid name for `def`'s objects, as the real server's validation says
/// it (`prefix`: a generateName, whose trailing '-' is allowed): RBAC objects take any path
/// segment (`system:controller:…`), Namespaces and Services a DNS-1123 label, everything
/// else a DNS-1123 subdomain.
fn invalid_name(def: &ResourceDef, name: &str, prefix: bool) -> Option<String> {
    if def.group == "rbac.authorization.k8s.io" {
        return match name {
            "." | ".." if !prefix => Some(format!("may not be '{name}'")),
            _ if name.contains('/') => Some("may not contain '/'".into()),
            _ if name.contains('%') => Some("may not contain '%'".into()),
            _ => None,
        };
    }
    // maskTrailingDash: a prefix may end in '-', the generated suffix follows it.
    let checked = match name.strip_suffix('-') {
        Some(rest) if prefix => format!("{rest}a"),
        _ => name.to_owned(),
    };
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let label_ok = |l: &str| !l.is_empty() && l.len() <= 63 && l.starts_with(alnum) && l.ends_with(alnum) && l.chars().all(|c| alnum(c) || c == '-');
    let label = def.group.is_empty() && matches!(def.kind.as_str(), "Namespace" | "Service");
    if label {
        if checked.len() > 63 {
            return Some("must be no more than 63 characters".into());
        }
        if !label_ok(&checked) {
            return Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into());
        }
        return None;
    }
    if checked.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    if !checked.split('.').all(label_ok) {
        return Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into());
    }
    None
}

/// The delete's propagation policy, from the query or the DeleteOptions body, defaulted as
/// the real server does: `batch/v1` Jobs orphan their Pods unless told otherwise (kept for
/// compatibility; kubectl asks for Background), everything else is Background.
fn propagation(def: &ResourceDef, query: &BTreeMap<String, String>, body: &[u8]) -> Result<Propagation, Response<Body>> {
    let options: Value = if body.is_empty() { json!({}) } else { serde_json::from_slice(body).unwrap_or(json!({})) };
    let asked = query.get("propagationPolicy").cloned().or_else(|| options["propagationPolicy"].as_str().map(str::to_owned));
    match asked.as_deref() {
        Some("Orphan") => Ok(Propagation::Orphan),
        Some("Background") => Ok(Propagation::Background),
        Some("Foreground") => Ok(Propagation::Foreground),
        Some(other) => Err(status(422, "Invalid", format!("DeleteOptions.propagationPolicy: Unsupported value: \"{other}\""))),
        None if options["orphanDependents"] == true => Ok(Propagation::Orphan),
        None if options["orphanDependents"] == false => Ok(Propagation::Background),
        None if def.group == "batch" && def.kind == "Job" => Ok(Propagation::Orphan),
        None => Ok(Propagation::Background),
    }
}

/// Creates `obj`; a `manager` (the fieldManager of a plain create) owns every field it set.
fn create_as(state: &mut State, def: &ResourceDef, namespace: &str, obj_ref: &mut Value, manager: Option<&str>) -> Result<(), Response<Body>> {
    if let Some(manager) = manager {
        let paths = applied_paths(obj_ref);
        obj_ref["metadata"]["managedFields"] = json!([{"manager": manager, "operation": "Update", "apiVersion": def.api_version(), "time": now(), "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&paths)}]);
    }
    let mut obj = std::mem::take(obj_ref);
    if !obj.is_object() {
        return Err(status(400, "BadRequest", "the object is not a JSON object".into()));
    }
    let meta = obj["metadata"].as_object().cloned().unwrap_or_default();
    let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
    let generate = meta.get("generateName").and_then(Value::as_str).filter(|g| !g.is_empty());
    // As ValidateObjectMeta: generateName is checked as a prefix (a trailing '-' allowed),
    // whether or not a name was given.
    if let Some(prefix) = generate {
        if let Some(why) = invalid_name(def, prefix, true) {
            return Err(invalid(&kind_of(def), prefix, "metadata.generateName", format!("Invalid value: \"{prefix}\": {why}")));
        }
    }
    if name.is_empty() {
        match generate {
            Some(prefix) => {
                // The real server cuts the prefix to 58 bytes and adds 5 random characters.
                const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                let mut tag = [0u8; 5];
                dr_core::format::crypto::fill_random(&mut tag);
                let suffix: String = tag.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect();
                name = format!("{}{suffix}", &prefix[..prefix.len().min(58)]);
            }
            None => {
                return Err(respond(
                    422,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
                           "message": format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", def.kind),
                           "details": {"kind": def.kind, "causes": [{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]}}),
                ))
            }
        }
    }
    if let Some(why) = invalid_name(def, &name, false) {
        return Err(invalid(&kind_of(def), &name, "metadata.name", format!("Invalid value: \"{name}\": {why}")));
    }
    let ns = if def.namespaced {
        let ns = meta.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty()).unwrap_or(namespace).to_owned();
        if !namespace.is_empty() && ns != namespace {
            return Err(status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request".into()));
        }
        if !state.objects.contains_key(&("".into(), "namespaces".into(), "".into(), ns.clone())) {
            return Err(status(404, "NotFound", format!("namespaces \"{ns}\" not found")));
        }
        ns
    } else {
        String::new()
    };
    let k = key(def, &ns, &name);
    if state.objects.contains_key(&k) {
        let what = if def.group.is_empty() { def.plural.clone() } else { format!("{}.{}", def.plural, def.group) };
        return Err(status(409, "AlreadyExists", format!("{what} \"{name}\" already exists")));
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let md = obj["metadata"].as_object_mut().expect("metadata is an object");
    md.insert("name".into(), json!(name));
    if def.namespaced {
        md.insert("namespace".into(), json!(ns));
    }
    md.insert("uid".into(), json!(random_uid()));
    md.insert("creationTimestamp".into(), json!(now()));
    // Set by a delete only, as on the real server.
    md.remove("deletionTimestamp");
    md.remove("deletionGracePeriodSeconds");
    md.insert("generation".into(), json!(1));
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    if def.status_subresource {
        // Status is written through the status subresource only.
        obj.as_object_mut().expect("object").remove("status");
    }
    if def.kind == "Namespace" {
        obj["status"] = json!({"phase": "Active"});
    }
    if def.kind == "CustomResourceDefinition" {
        establish_crd(state, &mut obj)?;
    }
    if def.kind == "Service" && def.group.is_empty() {
        allocate_service(state, &name, &mut obj)?;
    }
    *obj_ref = state.store(k, obj, "ADDED");
    Ok(())
}

/// The service range and node-port range of a kube-apiserver with default flags.
const SERVICE_CIDR_PREFIX: &str = "10.96.";
const NODE_PORTS: std::ops::RangeInclusive<u64> = 30000..=32767;

/// A 422 Invalid for one field, as the real server words it.
fn invalid(kind: &str, name: &str, field: &str, detail: String) -> Response<Body> {
    respond(
        422,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
               "message": format!("{kind} \"{name}\" is invalid: {field}: {detail}"),
               "details": {"name": name, "kind": kind.to_lowercase() + "s", "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}]}}),
    )
}

/// Allocates a new Service's cluster IP and node ports as the real server does: a requested
/// one is kept when it is free and in range, else the create is refused (422); a missing one
/// is allocated at random from the range.
fn allocate_service(state: &State, name: &str, svc: &mut Value) -> Result<(), Response<Body>> {
    let others: Vec<&Value> = state
        .objects
        .range(("".to_owned(), "services".to_owned(), String::new(), String::new())..)
        .take_while(|(k, _)| k.0.is_empty() && k.1 == "services")
        .map(|(_, v)| v)
        .collect();
    let mut spec = svc["spec"].as_object().cloned().unwrap_or_default();
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_owned();
    if ty != "ExternalName" {
        let used_ips: BTreeSet<String> = others.iter().filter_map(|o| o["spec"]["clusterIP"].as_str().map(str::to_owned)).collect();
        match spec.get("clusterIP").and_then(Value::as_str).filter(|ip| !ip.is_empty()) {
            Some("None") => {}
            Some(ip) if !ip.starts_with(SERVICE_CIDR_PREFIX) => {
                return Err(invalid("Service", name, "spec.clusterIPs", format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12")));
            }
            Some(ip) if used_ips.contains(ip) => {
                return Err(invalid(
                    "Service",
                    name,
                    "spec.clusterIPs",
                    format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"),
                ));
            }
            Some(_) => {}
            None => {
                let ip = loop {
                    let mut b = [0u8; 2];
                    dr_core::format::crypto::fill_random(&mut b);
                    let ip = format!("{SERVICE_CIDR_PREFIX}{}.{}", b[0] % 16, b[1].max(1));
                    if !used_ips.contains(&ip) {
                        break ip;
                    }
                };
                spec.insert("clusterIP".into(), json!(ip));
            }
        }
        if let Some(ip) = spec.get("clusterIP").cloned() {
            spec.insert("clusterIPs".into(), json!([ip]));
        }
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        let mut used: BTreeSet<u64> =
            others.iter().flat_map(|o| o["spec"]["ports"].as_array().cloned().unwrap_or_default()).filter_map(|p| p["nodePort"].as_u64()).collect();
        let ports = spec.get_mut("ports").and_then(Value::as_array_mut).map(std::mem::take).unwrap_or_default();
        let mut allocated = Vec::new();
        for (i, mut port) in ports.into_iter().enumerate() {
            match port["nodePort"].as_u64().filter(|p| *p != 0) {
                Some(p) if !NODE_PORTS.contains(&p) => {
                    return Err(invalid(
                        "Service",
                        name,
                        &format!("spec.ports[{i}].nodePort"),
                        format!("Invalid value: {p}: provided port is not in the valid range. The range of valid ports is 30000-32767"),
                    ));
                }
                Some(p) if used.contains(&p) => {
                    return Err(invalid(
                        "Service",
                        name,
                        &format!("spec.ports[{i}].nodePort"),
                        format!("Invalid value: {p}: provided port is already allocated"),
                    ));
                }
                Some(p) => {
                    used.insert(p);
                }
                None => {
                    let p = loop {
                        let mut b = [0u8; 2];
                        dr_core::format::crypto::fill_random(&mut b);
                        let p = NODE_PORTS.start() + u64::from(u16::from_le_bytes(b)) % (NODE_PORTS.end() - NODE_PORTS.start() + 1);
                        if !used.contains(&p) {
                            break p;
                        }
                    };
                    used.insert(p);
                    port["nodePort"] = json!(p);
                }
            }
            allocated.push(port);
        }
        spec.insert("ports".into(), Value::Array(allocated));
    }
    svc["spec"] = Value::Object(spec);
    Ok(())
}

/// Registers a CRD's served versions and marks it Established, as the real server does once
/// its names are accepted.
fn establish_crd(state: &mut State, crd: &mut Value) -> Result<(), Response<Body>> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default().to_owned();
    let kind = spec["names"]["kind"].as_str().unwrap_or_default().to_owned();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default().to_owned();
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Err(status(422, "Invalid", "CustomResourceDefinition is invalid: spec.group, spec.names.kind and spec.names.plural are required".into()));
    }
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    // A CRD's resources are exactly what its latest spec serves.
    state.resources.retain(|r| !(r.custom && r.group == group && r.plural == plural));
    for v in spec["versions"].as_array().cloned().unwrap_or_default() {
        if v["served"].as_bool() != Some(true) {
            continue;
        }
        state.resources.push(ResourceDef {
            group: group.clone(),
            version: v["name"].as_str().unwrap_or("v1").to_owned(),
            kind: kind.clone(),
            plural: plural.clone(),
            namespaced,
            status_subresource: v.pointer("/subresources/status").is_some(),
            custom: true,
            verbs: STANDARD_VERBS,
        });
    }
    crd["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": now()},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "lastTransitionTime": now()},
        ],
        "acceptedNames": spec["names"].clone(),
        "storedVersions": spec["versions"].as_array().map(|vs| vs.iter().filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>()).unwrap_or_default(),
    });
    Ok(())
}

fn update(state: &mut State, t: &Target, mut obj: Value) -> Response<Body> {
    let name = t.name.as_deref().unwrap();
    let k = key(&t.def, &t.namespace, name);
    let Some(current) = state.objects.get(&k).cloned() else { return not_found(&t.def, name) };
    let sent_rv = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
    let current_rv = current["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if !sent_rv.is_empty() && sent_rv != current_rv {
        let what = if t.def.group.is_empty() { t.def.plural.clone() } else { format!("{}.{}", t.def.plural, t.def.group) };
        return status(409, "Conflict", format!("Operation cannot be fulfilled on {what} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"));
    }
    for f in ["uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        if let Some(v) = current["metadata"].get(f) {
            obj["metadata"][f] = v.clone();
        }
    }
    obj["apiVersion"] = json!(t.def.api_version());
    obj["kind"] = json!(t.def.kind);
    if t.def.status_subresource {
        // An update of the main resource leaves status as it was.
        match current.get("status") {
            Some(status) => obj["status"] = status.clone(),
            None => {
                obj.as_object_mut().expect("object").remove("status");
            }
        }
    }
    if t.def.kind == "CustomResourceDefinition" {
        // Serve the versions the update lists (status, with its condition, stays as it was).
        let mut updated = obj.clone();
        if let Err(r) = establish_crd(state, &mut updated) {
            return r;
        }
    }
    respond(200, state.store(k, obj, "MODIFIED"))
}

/// `key=value`, `key==value`, `key!=value`, `key`, `!key`, `key in (a,b)`, `key notin (a,b)`.
fn label_matches(labels: &serde_json::Map<String, Value>, selector: &str) -> bool {
    // Split on commas that are not inside parentheses.
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).all(|term| {
        let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
        if let Some((k, set)) = term.split_once(" notin ") {
            let set: Vec<&str> = set.trim().trim_matches(|c| c == '(' || c == ')').split(',').map(str::trim).collect();
            get(k).is_none_or(|v| !set.contains(&v))
        } else if let Some((k, set)) = term.split_once(" in ") {
            let set: Vec<&str> = set.trim().trim_matches(|c| c == '(' || c == ')').split(',').map(str::trim).collect();
            get(k).is_some_and(|v| set.contains(&v))
        } else if let Some((k, v)) = term.split_once("!=") {
            get(k) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k) == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            get(k).is_none()
        } else {
            get(term).is_some()
        }
    })
}

fn field_matches(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let (path, want, negate) = match term.split_once("!=") {
            Some((p, v)) => (p, v, true),
            None => match term.split_once("==").or_else(|| term.split_once('=')) {
                Some((p, v)) => (p, v, false),
                None => return false,
            },
        };
        let pointer = format!("/{}", path.trim().replace('.', "/"));
        let have = obj.pointer(&pointer).and_then(Value::as_str).unwrap_or("");
        (have == want.trim()) != negate
    })
}

fn list(state: &State, t: &Target, query: &BTreeMap<String, String>) -> Response<Body> {
    use std::ops::Bound;
    let labels = query.get("labelSelector").cloned().unwrap_or_default();
    let fields = query.get("fieldSelector").cloned().unwrap_or_default();
    let empty = serde_json::Map::new();
    // The continue token names where the previous page ended, as the real server's does (it
    // holds the last key read): `<items returned so far>:<resourceVersion>:<namespace>/<name>`.
    // A page starts right after that key in the (key-ordered) store, so paging through a
    // large list costs each page only its own items.
    let (returned, after): (usize, Option<Key>) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let mut parts = token.splitn(3, ':');
            let returned = parts.next().and_then(|n| n.parse().ok());
            let last = parts.nth(1).and_then(|k| k.split_once('/'));
            match (returned, last) {
                (Some(n), Some((ns, name))) => (n, Some((t.def.group.clone(), t.def.plural.clone(), ns.to_owned(), name.to_owned()))),
                _ => return status(400, "BadRequest", "invalid continue token".into()),
            }
        }
        None => (0, None),
    };
    let namespace = Some(t.namespace.as_str()).filter(|n| !n.is_empty());
    let lower = match after {
        Some(k) => Bound::Excluded(k),
        None => Bound::Included((t.def.group.clone(), t.def.plural.clone(), namespace.unwrap_or("").to_owned(), String::new())),
    };
    let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let matching = state
        .objects
        .range((lower, Bound::Unbounded))
        .take_while(|(k, _)| k.0 == t.def.group && k.1 == t.def.plural && namespace.is_none_or(|n| k.2 == n))
        .filter(|(_, o)| label_matches(o.pointer("/metadata/labels").and_then(Value::as_object).unwrap_or(&empty), &labels))
        .filter(|(_, o)| field_matches(o, &fields));
    let mut page = Vec::new();
    let mut last: Option<&Key> = None;
    let mut more = false;
    for (k, o) in matching {
        if page.len() == limit {
            more = true;
            break;
        }
        let mut o = o.clone();
        if !t.def.custom {
            let m = o.as_object_mut().expect("object");
            m.remove("kind");
            m.remove("apiVersion");
        }
        page.push(o);
        last = Some(k);
    }
    let next = returned + page.len();
    let mut metadata = json!({"resourceVersion": state.resource_version.to_string()});
    if let (true, Some(last)) = (more, last) {
        metadata["continue"] = json!(format!("{next}:{}:{}/{}", state.resource_version, last.2, last.3));
        // As the real server: an estimate, and only for a list without selectors.
        if labels.is_empty() && fields.is_empty() {
            metadata["remainingItemCount"] = json!(state.count(&t.def.group, &t.def.plural, namespace).saturating_sub(next).max(1));
        }
    }
    respond(200, json!({"kind": format!("{}List", t.def.kind), "apiVersion": t.def.api_version(), "metadata": metadata, "items": page}))
}
