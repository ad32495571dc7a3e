//! What the restore Job tests (`restore-job/tests`) share: a source cluster, its backup, an
//! empty target, and the restore run as the chart's container.

use std::path::Path;
use std::process::Output;

use crate::apiserver::ApiServer;
use crate::kubelet::{self, Pod};
use dr_core::catalog::Mode;
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::resources::Selection;
use dr_core::restore::RestoreOutcome;
use serde_json::{json, Value};

pub const NS: &str = "kasten-io";
pub const PASS: &str = "correct horse battery staple";
pub const RELEASE: &str = "k10-restore";

pub fn b64(s: &str) -> String {
    crate::apiserver::base64(s.as_bytes(), false)
}

/// The source cluster: the DR platform (profile, policy, its CronJob, k10-dr-secret) and an
/// application with a custom resource whose CRD is part of the backup, and a ConfigMap the
/// custom resource owns.
pub async fn source_cluster() -> ApiServer {
    let api = ApiServer::start().await;
    api.install_dr_crds();
    for ns in [NS, "shop"] {
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": NS}, "spec": {"file": {"claimName": "dr-nfs"}}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Policy", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": NS},
                    "spec": {"profile": "offsite", "frequency": "@hourly", "mode": "full"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": NS}, "data": {"key": b64(PASS)}}));
    api.seed(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": NS},
                    "spec": {"schedule": "@hourly", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "backup", "image": "dr-job"}], "restartPolicy": "Never"}}}}}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    api.seed(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque", "data": {"password": b64("s3cret")}}),
    );
    api.seed(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "shop"}}));
    api.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"serviceAccountName": "web", "containers": [{"name": "web", "image": "nginx"}]}}}}));
    api.seed(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "shop-reader"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}));
    api.seed(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.shop.example.com"},
                    "spec": {"group": "shop.example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                             "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}));
    let widget = api.seed(json!({"apiVersion": "shop.example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"}, "spec": {"size": 3}}));
    let config = api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w1-config", "namespace": "shop",
                    "ownerReferences": [{"apiVersion": "shop.example.com/v1", "kind": "Widget", "name": "w1", "uid": widget["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
                    "data": {"size": "3"}}));
    // A chain: the Secret's owner is itself owned.
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "w1-token", "namespace": "shop",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "w1-config", "uid": config["metadata"]["uid"]}]},
                    "data": {"t": b64("x")}}));
    api
}

/// Backs the source up into `location`; returns (cluster ID, point ID).
pub async fn backup(api: &ApiServer, location: &Path, mode: Mode) -> (String, String) {
    let loc = Location::connect(&LocationConfig::File { path: location.into() }).await.unwrap();
    let client = api.client();
    let cluster_id = dr_core::ownership::cluster_id(&client).await.unwrap();
    let report = dr_core::backup::backup(
        &client,
        &loc,
        &cluster_id,
        &Passphrase::new(PASS.into()).unwrap(),
        NS,
        mode,
        &Selection { cluster_scoped: true, ..Default::default() },
    )
    .await
    .unwrap();
    (cluster_id, report.manifest.point_id)
}

/// A new cluster where an operator has installed the DR CRDs, created the location profile
/// and `k10-dr-secret` (as `kubectl dr profile create` and `kubectl dr restore` do).
pub async fn target_cluster(dr_secret: Value) -> ApiServer {
    let api = ApiServer::start().await;
    api.install_dr_crds();
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": NS}, "spec": {"file": {"claimName": "dr-nfs"}}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": NS}, "data": dr_secret}));
    api
}

pub fn raw_secret(pass: &str) -> Value {
    json!({"key": b64(pass)})
}

/// Renders the chart with the Helm library; Err is Helm's message (schema, template).
pub fn render(values: &Value) -> Result<Value, String> {
    crate::render_chart(NS, RELEASE, values)
}

/// The chart's values for this test's restore.
pub fn values(cluster_id: &str, extra: Value) -> Value {
    let mut v = json!({"sourceClusterID": cluster_id, "profile": {"name": "offsite"}, "fileProfile": {"claimName": "dr-nfs"}});
    merge(&mut v, extra);
    v
}

pub fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

pub fn install_chart(api: &ApiServer, values: &Value, location: &Path, root: &Path) -> Pod {
    let rendered = render(values).unwrap_or_else(|e| panic!("chart did not render: {e}"));
    let manifests = rendered["manifests"].as_array().unwrap();
    for m in manifests.iter().filter(|m| m["kind"] != "Job") {
        // As `helm upgrade --install` does: created, replaced, or created again when deleted
        // (the Job deletes its ClusterRoleBinding when it is done).
        api.upsert(m.clone());
    }
    let job = manifests.iter().find(|m| m["kind"] == "Job").unwrap();
    kubelet::pod_for_job(api, job, location, root)
}

pub struct Run {
    pub out: Output,
    /// The Job's outcome, as its termination message carries it.
    pub outcome: RestoreOutcome,
    /// What it said went wrong (empty on success).
    pub message: String,
}

impl Run {
    pub fn report(&self) -> Value {
        assert!(self.out.status.success(), "restore failed: {}\nstderr: {}", self.message, String::from_utf8_lossy(&self.out.stderr));
        let report: Value = serde_json::from_slice(&self.out.stdout).unwrap();
        report
    }
    pub fn failure(&self) -> String {
        assert!(!self.out.status.success(), "restore should have failed: {}", String::from_utf8_lossy(&self.out.stdout));
        self.message.clone()
    }
}

/// Runs the pod's container: this build's `dr-job`, or another build's when
/// `DR_RESTORE_JOB_BIN` names one (`scripts/fips-interop`: points this test process wrote
/// with one build's library, restored by the other build's binary).
pub fn spawn(pod: &Pod) -> std::process::Child {
    let bin = std::env::var("DR_RESTORE_JOB_BIN").unwrap_or_else(|_| crate::workspace_binary("dr-job"));
    pod.spawn(&bin)
}

/// Installs the chart with `values` on `api` and runs its restore container to the end.
pub fn restore(api: &ApiServer, values: &Value, location: &Path) -> Run {
    let root = tempfile::tempdir().unwrap();
    let pod = install_chart(api, values, location, root.path());
    let out = spawn(&pod).wait_with_output().unwrap();
    let raw = std::fs::read_to_string(&pod.termination).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(PASS) && !raw.contains(PASS), "the passphrase leaked");
    assert!(raw.len() <= 4096, "the termination message fits what Kubernetes keeps");
    let outcome = RestoreOutcome::parse(&raw);
    // The exit status is the kind the outcome names (dr_core::failure).
    assert_eq!(out.status.code(), Some(outcome.kind.map_or(0, |k| i32::from(k.exit_code()))), "{raw}");
    Run { out, message: outcome.error.clone(), outcome }
}

pub fn find(api: &ApiServer, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
    api.objects(group, plural).into_iter().find(|o| o["metadata"]["name"] == name && o["metadata"]["namespace"].as_str().unwrap_or("") == namespace)
}

/// Everything on the target but the chart's own objects and what every cluster has.
pub fn object_count(api: &ApiServer) -> usize {
    [
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("apps", "deployments"),
        ("batch", "cronjobs"),
        ("dr.kubectl-dr.io", "policies"),
        ("dr.kubectl-dr.io", "profiles"),
        ("", "namespaces"),
    ]
    .iter()
    .map(|(g, p)| {
        // Not the release's own objects, nor the root-CA ConfigMaps the server's publisher
        // adds to each namespace on its own timer.
        let made_here = |o: &&serde_json::Value| o["metadata"]["name"] == RELEASE || o["metadata"]["name"] == crate::apiserver::ROOT_CA_CONFIG_MAP;
        api.objects(g, p).iter().filter(|o| !made_here(o)).count()
    })
    .sum()
}

/// The chart's `rbac.resources` for the newest point, as `kubectl dr restore` sets it from the
/// manifest: the Job's grant names each resource the point holds.
pub async fn scoped_rbac(location: &Path, cluster_id: &str) -> Value {
    use dr_core::point::{self, Unlocker};
    let loc = Location::connect(&LocationConfig::File { path: location.into() }).await.unwrap();
    let unlocker = Unlocker::new(Passphrase::new(PASS.into()).unwrap());
    let manifest = point::choose(&loc, cluster_id, point::Which::Newest, &unlocker).await.unwrap().manifest;
    let resources: Vec<Value> =
        dr_core::restore::written_resources(&manifest).unwrap().into_iter().map(|(group, resource)| json!({"group": group, "resource": resource})).collect();
    json!({"resources": resources})
}

/// A point with `n` ConfigMaps in one namespace (`app-0`) at the directory `location`; returns
/// its cluster ID.
pub async fn big_point(location: &Path, n: usize) -> String {
    let loc = Location::connect(&LocationConfig::File { path: location.into() }).await.unwrap();
    let mut entries = crate::sample_entries(n, 16);
    for e in &mut entries {
        if e.object["kind"] == "ConfigMap" {
            e.object["metadata"]["namespace"] = json!("app-0");
        }
    }
    let cluster_id = "3f0c2a8e-big-point";
    crate::write_point(&loc, cluster_id, &Passphrase::new(PASS.into()).unwrap(), &entries).await;
    cluster_id.into()
}

/// The ConfigMaps in app-0, where [`big_point`]'s are restored (the ownership ConfigMap is
/// elsewhere; the root-CA ConfigMap the server publishes there is not counted).
pub fn restored_apps(target: &ApiServer) -> usize {
    target
        .objects("", "configmaps")
        .iter()
        .filter(|c| c["metadata"]["namespace"] == "app-0" && c["metadata"]["name"] != crate::apiserver::ROOT_CA_CONFIG_MAP)
        .count()
}

/// Runs `dr-job backup` as the DR policy's CronJob runs it, the location volume at `mount`;
/// the output and the termination message.
pub fn backup_job(api: &ApiServer, mount: &Path) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, NS);
    let termination = dir.path().join("termination-log");
    let out = std::process::Command::new(crate::workspace_binary("dr-job"))
        .arg("backup")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", &kubeconfig)
        .env("DR_NAMESPACE", NS)
        .env("DR_LOCATION_MOUNT", mount)
        .env("DR_TERMINATION_LOG", &termination)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let message = kubelet::termination_message(&termination, out.status.code().unwrap_or(137), false, "");
    (out, message)
}
