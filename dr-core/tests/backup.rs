//! The backup engine against the in-process API server: what it selects, strips and keeps,
//! pagination, and the errors that must leave no complete point.

use dr_test_support as support;

use std::sync::{Arc, Mutex};

use dr_core::backup::{self, BackupError};
use dr_core::catalog::{Category, Entry, Mode};
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::ownership::{self, OwnershipError};
use dr_core::point::{self, Unlocker};
use dr_core::resources::Selection;
use serde_json::{json, Value};
use support::apiserver::ApiServer;

fn pass() -> Passphrase {
    Passphrase::new("correct horse battery staple".into()).unwrap()
}

fn full() -> Selection {
    Selection { cluster_scoped: true, ..Default::default() }
}

fn crd(group: &str, kind: &str, plural: &str, status_subresource: bool) -> Value {
    let mut version =
        json!({"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}});
    if status_subresource {
        version["subresources"] = json!({"status": {}});
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": format!("{plural}.{group}")},
           "spec": {"group": group, "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()}, "scope": "Namespaced", "versions": [version]}})
}

/// A cluster with the DR platform in kasten-io and a shop application.
async fn cluster() -> ApiServer {
    let api = ApiServer::start().await;
    for ns in ["kasten-io", "shop", "team-a"] {
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    api.seed(crd("dr.kubectl-dr.io", "Profile", "profiles", false));
    api.seed(crd("dr.kubectl-dr.io", "Policy", "policies", true));
    api.seed(crd("shop.example.com", "Cart", "carts", false));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": "kasten-io"}, "spec": {"s3": {"bucket": "b"}}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1", "kind": "Policy", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": "kasten-io"}, "spec": {"frequency": "@hourly"}, "status": {"lastRun": "x"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": "kasten-io"}, "data": {"key": "cGFzcw=="}}));
    api.seed(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": "kasten-io"}, "spec": {"schedule": "@hourly"}}));
    api.seed(json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "report", "namespace": "shop"}, "spec": {"schedule": "@daily"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop", "labels": {"app": "web"}}, "data": {"currency": "EUR"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other", "namespace": "team-a", "labels": {"app": "db"}}, "data": {}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {}}));
    let deploy = api.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
                                 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
                                 "status": {"readyReplicas": 2}}));
    let owner = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deploy["metadata"]["uid"], "controller": true}]);
    api.seed(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-5d8f", "namespace": "shop", "labels": {"app": "web"}, "ownerReferences": owner}, "spec": {}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "shop"}, "reason": "Scaled"}));
    api.seed(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "shop:reader"}, "rules": []}));
    // More carts than one page holds, each owned by nothing, one owned by a Cart.
    for i in 0..1234 {
        api.seed(json!({"apiVersion": "shop.example.com/v1", "kind": "Cart", "metadata": {"name": format!("cart-{i:04}"), "namespace": "shop", "labels": {"app": "web"}}, "spec": {"items": i}, "status": {"total": i}}));
    }
    api
}

async fn location() -> (tempfile::TempDir, Location) {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::connect(&LocationConfig::File { path: dir.path().to_owned() }).await.unwrap();
    (dir, loc)
}

/// The seeded cluster, a directory location, a client and the cluster ID.
async fn setup() -> (ApiServer, tempfile::TempDir, Location, kube::Client, String) {
    let api = cluster().await;
    let (dir, loc) = location().await;
    let client = api.client();
    let id = ownership::cluster_id(&client).await.unwrap();
    (api, dir, loc, client, id)
}

async fn entries(loc: &Location, cluster_id: &str, point_id: &str) -> Vec<Entry> {
    let unlocker = Unlocker::new(pass());
    let manifest = point::choose(loc, cluster_id, point::Which::Id(point_id), &unlocker).await.unwrap().manifest;
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    point::read_entries(loc, &manifest, &unlocker, move |e| {
        sink.lock().unwrap().push(e);
        Ok(())
    })
    .await
    .unwrap();
    let v = got.lock().unwrap().clone();
    v
}

fn find<'a>(entries: &'a [Entry], kind: &str, name: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.kind() == kind && e.name() == name)
}

#[tokio::test]
async fn the_cluster_id_is_the_default_namespace_uid() {
    let api = ApiServer::start().await;
    let id = ownership::cluster_id(&api.client()).await.unwrap();
    let default = api.objects("", "namespaces").into_iter().find(|n| n["metadata"]["name"] == "default").unwrap();
    assert_eq!(id, default["metadata"]["uid"].as_str().unwrap());
}

#[tokio::test]
async fn a_full_backup_takes_what_the_policy_selects_across_pages() {
    let (api, _dir, loc, client, id) = setup().await;
    let report = backup::backup(&client, &loc, &id, &pass(), "kasten-io", Mode::Full, &full()).await.unwrap();
    let m = &report.manifest;
    let got = entries(&loc, &id, &m.point_id).await;

    // Every cart, though they span three pages of 500 fetched with continue tokens.
    assert_eq!(m.counts.by_kind["Cart.shop.example.com"], 1234);
    // The manifest says which resource serves each kind it holds (what a restore's RBAC names).
    assert_eq!(m.resources["Cart.shop.example.com"], "carts");
    assert_eq!(m.resources.len(), m.counts.by_kind.len(), "{:?}", m.resources);
    let pages = api.list_queries("carts");
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|q| q.get("limit").map(String::as_str) == Some("500")), "{pages:?}");
    assert!(!pages[0].contains_key("continue") && pages[1].contains_key("continue") && pages[2].contains_key("continue"), "{pages:?}");
    assert!(find(&got, "Cart", "cart-1233").is_some());
    // The platform's own resources in their categories.
    assert_eq!(find(&got, "Profile", "offsite").unwrap().category, Category::Profiles);
    assert_eq!(find(&got, "Policy", "k10-disaster-recovery-policy").unwrap().category, Category::Policies);
    assert_eq!(find(&got, "CronJob", "k10-disaster-recovery-policy").unwrap().category, Category::Policies);
    assert_eq!(find(&got, "Secret", "k10-dr-secret").unwrap().category, Category::Secrets);
    assert_eq!(find(&got, "ClusterRole", "shop:reader").unwrap().category, Category::Cluster);
    assert_eq!(find(&got, "CustomResourceDefinition", "carts.shop.example.com").unwrap().category, Category::Cluster);
    assert_eq!(find(&got, "CronJob", "report").unwrap().category, Category::Applications);
    // Left out: kube-system, events, what a controller recreates.
    assert!(find(&got, "ConfigMap", "coredns").is_none());
    assert!(find(&got, "Event", "web.1").is_none());
    assert!(find(&got, "ReplicaSet", "web-5d8f").is_none());
    assert!(report.skipped.controller_owned >= 1 && report.skipped.namespace_excluded >= 1, "{:?}", report.skipped);
    // Built-in list items come without kind/apiVersion; the catalog has them.
    let web = find(&got, "Deployment", "web").unwrap();
    assert_eq!(web.api_version(), "apps/v1");
    // Server-set fields are gone; the source UID is kept beside the object.
    let meta = &web.object["metadata"];
    for f in ["uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"] {
        assert!(meta.get(f).is_none(), "{f} kept: {meta}");
    }
    assert!(web.source_uid.as_deref().is_some_and(|u| !u.is_empty()));
    // Status is kept, with or without a status subresource: a restore writes it back through
    // /status for the kinds the user names (--restore-status).
    assert_eq!(web.object["status"]["readyReplicas"], 2);
    assert_eq!(find(&got, "Policy", "k10-disaster-recovery-policy").unwrap().object["status"]["lastRun"], "x");
    assert_eq!(find(&got, "Cart", "cart-0007").unwrap().object["status"]["total"], 7);
    // The manifest counts what the archive holds.
    assert_eq!(m.counts.total, got.len() as u64);
}

#[tokio::test]
async fn quick_mode_keeps_only_the_dr_platform() {
    let (_api, _dir, loc, client, id) = setup().await;
    let report = backup::backup(&client, &loc, &id, &pass(), "kasten-io", Mode::Quick, &full()).await.unwrap();
    let got = entries(&loc, &id, &report.manifest.point_id).await;
    let mut names: Vec<String> = got.iter().map(|e| format!("{}/{}", e.kind(), e.name())).collect();
    names.sort();
    assert_eq!(names, ["CronJob/k10-disaster-recovery-policy", "Policy/k10-disaster-recovery-policy", "Profile/offsite", "Secret/k10-dr-secret"]);
    assert_eq!(report.manifest.mode, Mode::Quick);
}

#[tokio::test]
async fn namespaces_labels_and_kinds_narrow_a_full_backup() {
    let (_api, _dir, loc, client, id) = setup().await;
    let selection = Selection {
        namespaces: vec!["shop".into(), "team-a".into()],
        label_selector: Some("app=web".into()),
        exclude_kinds: vec!["Cart.shop.example.com".into()],
        cluster_scoped: false,
        ..Default::default()
    };
    let report = backup::backup(&client, &loc, &id, &pass(), "kasten-io", Mode::Full, &selection).await.unwrap();
    let got = entries(&loc, &id, &report.manifest.point_id).await;
    assert!(find(&got, "ConfigMap", "settings").is_some());
    assert!(find(&got, "ConfigMap", "other").is_none(), "label app=db does not match");
    assert!(find(&got, "Cart", "cart-0001").is_none(), "kind excluded");
    assert!(find(&got, "ClusterRole", "shop:reader").is_none(), "cluster-scoped off");
    // The DR platform is always kept, whatever the selection.
    assert!(find(&got, "Secret", "k10-dr-secret").is_some());
    assert!(find(&got, "Profile", "offsite").is_some());
}

#[tokio::test]
async fn a_kind_that_may_not_be_listed_fails_the_backup_and_leaves_no_complete_point() {
    let (api, _dir, loc, client, id) = setup().await;
    api.forbid("list", "shop.example.com", "carts");
    let err = backup::backup(&client, &loc, &id, &pass(), "kasten-io", Mode::Full, &full()).await.unwrap_err();
    assert!(matches!(err, BackupError::ListForbidden { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("carts.shop.example.com") && msg.contains("kubectl dr enable") && msg.contains("exclude the kind"), "{msg}");
    let points = point::list_points(&loc, &id).await.unwrap();
    assert!(points.iter().all(|p| !p.complete), "{points:?}");
}

#[tokio::test]
async fn a_restored_cluster_does_not_back_up_until_it_owns_the_location() {
    let (api, _dir, loc, client, id) = setup().await;
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k10-dr-remove-to-get-ownership", "namespace": "kasten-io"}}));
    let err = backup::backup(&client, &loc, &id, &pass(), "kasten-io", Mode::Full, &full()).await.unwrap_err();
    assert!(matches!(err, BackupError::Ownership(OwnershipError::NotOwner { .. })), "{err}");
    assert!(err.to_string().contains("take-ownership"), "{err}");
    assert!(point::list_points(&loc, &id).await.unwrap().is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_throttling_api_server_slows_the_backup_down_but_does_not_fail_it() {
    let (api, _dir, loc, client, id) = setup().await;
    // Three 429s with Retry-After: 1 in a row, in the middle of discovery and listing.
    api.throttle(3);
    let started = std::time::Instant::now();
    let report = backup::backup(&client, &loc, &id, &pass(), "kasten-io", Mode::Full, &full()).await.unwrap();
    assert_eq!(api.throttled(), 3);
    // Retry-After was honoured: three waits of a second each.
    assert!(started.elapsed() >= std::time::Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(report.manifest.counts.by_kind["Cart.shop.example.com"], 1234);
}

#[tokio::test]
async fn an_unavailable_aggregated_api_is_reported_not_fatal() {
    let (api, _dir, loc, client, id) = setup().await;
    api.break_group("metrics.k8s.io", "v1beta1", "PodMetrics", "pods");
    let report = backup::backup(&client, &loc, &id, &pass(), "kasten-io", Mode::Full, &full()).await.unwrap();
    assert_eq!(report.skipped.unavailable_groups, vec!["metrics.k8s.io/v1beta1".to_owned()]);
    assert_eq!(report.manifest.counts.by_kind["Cart.shop.example.com"], 1234, "everything else is backed up");
}

#[tokio::test]
async fn discovery_briefly_incomplete_is_retried_so_no_group_is_left_out() {
    use support::fault_proxy::{Fault, FaultProxy};
    let (api, _dir, loc, _client, id) = setup().await;
    // The API server answers a group's discovery 503 for a moment, as one does while an
    // aggregated API or its own handlers are not ready yet after a restart.
    let proxy = FaultProxy::start(&api.url);
    let unavailable = Fault::kube_status(503, "ServiceUnavailable", "the server is currently unable to handle the request");
    proxy.on(|h| h.method == "GET" && h.path() == "/apis/shop.example.com/v1", unavailable.clone(), 3);
    proxy.on(|h| h.method == "GET" && h.path() == "/apis/apps/v1", unavailable, 2);
    let client = dr_core::kube_client(kube::Config::new(proxy.url.parse().unwrap())).unwrap();
    let report = backup::backup(&client, &loc, &id, &pass(), "kasten-io", Mode::Full, &full()).await.unwrap();
    assert_eq!(proxy.applied("Respond"), 5, "the faults met discovery");
    assert!(report.skipped.unavailable_groups.is_empty(), "{:?}", report.skipped.unavailable_groups);
    assert_eq!(report.manifest.counts.by_kind["Cart.shop.example.com"], 1234, "the group that was briefly unavailable is in the point");
    assert_eq!(report.manifest.counts.by_kind["Deployment.apps"], 1);
}
