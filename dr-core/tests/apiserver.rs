//! The test API server itself behaves like the real one where the product relies on it:
//! server-side apply with field managers, watch resuming from a resourceVersion, deletes
//! with finalizers and propagation policies, and the garbage collector; and the kubelet
//! stand-in keeps of a termination message what a kubelet keeps.

use dr_test_support as support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use support::apiserver::ApiServer;

fn cm(data: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"}, "data": data})
}

#[tokio::test]
async fn server_side_apply_tracks_field_managers() {
    let api = ApiServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let apply = |manager: &str, force: bool| {
        let mut p = PatchParams::apply(manager);
        if force {
            p = p.force();
        }
        p
    };
    // Apply creates; a second apply that drops a field removes it.
    cms.patch("cfg", &apply("a", false), &Patch::Apply(cm(json!({"x": "1", "y": "2"})))).await.unwrap();
    let got = cms.patch("cfg", &apply("a", false), &Patch::Apply(cm(json!({"x": "1"})))).await.unwrap();
    assert_eq!(got.data.unwrap().into_iter().collect::<Vec<_>>(), vec![("x".to_owned(), "1".to_owned())]);
    // Another manager changing a's field conflicts, naming the owner; forcing takes it over.
    let err = cms.patch("cfg", &apply("b", false), &Patch::Apply(cm(json!({"x": "9"})))).await.unwrap_err();
    match err {
        kube::Error::Api(e) => assert!(e.code == 409 && e.message.contains("conflict with \"a\""), "{e:?}"),
        other => panic!("{other:?}"),
    }
    cms.patch("cfg", &apply("b", true), &Patch::Apply(cm(json!({"x": "9", "z": "3"})))).await.unwrap();
    // a no longer owns x, so dropping everything from a's config leaves b's fields.
    let got = cms.patch("cfg", &apply("a", false), &Patch::Apply(cm(json!({})))).await.unwrap();
    let data = got.data.unwrap();
    assert_eq!((data.get("x").map(String::as_str), data.get("z").map(String::as_str)), (Some("9"), Some("3")));
    let managers: Vec<String> = got.metadata.managed_fields.unwrap().into_iter().filter_map(|m| m.manager).collect();
    assert!(managers.contains(&"b".to_owned()), "{managers:?}");
    // Apply without a field manager is refused, as by the real server.
    let err = cms.patch("cfg", &PatchParams::default(), &Patch::Apply(cm(json!({})))).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(e) if e.code == 400 || e.code == 422), "apply needs a field manager");
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version_and_expires_old_ones() {
    let api = ApiServer::start().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let created = cms.create(&PostParams::default(), &serde_json::from_value(cm(json!({"v": "1"}))).unwrap()).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    cms.patch("cfg", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "2"}}))).await.unwrap();
    // From the creation's resourceVersion: only the later change.
    let params = WatchParams::default().fields("metadata.name=cfg").timeout(2);
    let mut events = cms.watch(&params, &rv).await.unwrap().boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Modified(c)) => assert_eq!(c.data.unwrap()["v"], "2"),
        other => panic!("{other:?}"),
    }
    // From 0: the current state as ADDED.
    let mut events = cms.watch(&params, "0").await.unwrap().boxed();
    assert!(matches!(events.try_next().await.unwrap(), Some(WatchEvent::Added(_))));
    // A change while watching arrives.
    let mut events = cms.watch(&params, &cms.get("cfg").await.unwrap().metadata.resource_version.unwrap()).await.unwrap().boxed();
    cms.patch("cfg", &PatchParams::default(), &Patch::Merge(json!({"data": {"v": "3"}}))).await.unwrap();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Modified(c)) => assert_eq!(c.data.unwrap()["v"], "3"),
        other => panic!("{other:?}"),
    }
    // Deleting ends with DELETED.
    cms.delete("cfg", &Default::default()).await.unwrap();
    assert!(matches!(events.try_next().await.unwrap(), Some(WatchEvent::Deleted(_))));
}

fn named(api: &ApiServer, group: &str, plural: &str, name: &str) -> Option<serde_json::Value> {
    api.objects(group, plural).into_iter().find(|o| o["metadata"]["name"] == name)
}

fn owned_by(owner: &serde_json::Value, block: bool) -> serde_json::Value {
    json!([{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": true, "blockOwnerDeletion": block}])
}

#[tokio::test]
async fn the_garbage_collector_deletes_what_no_owner_here_holds() {
    let api = ApiServer::start().await;
    let deploy = api.seed(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": {}}));
    let rs = api.seed(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1", "namespace": "default", "ownerReferences": owned_by(&deploy, true)}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1-a", "namespace": "default", "ownerReferences": owned_by(&rs, true)}}));
    // An owner named right but with another UID (a restore that kept the source's UID) is not
    // its owner: the dependent goes. One with an owner here only loses the stale reference.
    let mut stale = deploy.clone();
    stale["metadata"]["uid"] = json!("0000-from-another-cluster");
    api.seed(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orphaned", "namespace": "default", "ownerReferences": owned_by(&stale, false)}}),
    );
    let both = [owned_by(&stale, false)[0].clone(), owned_by(&deploy, false)[0].clone()];
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "default", "ownerReferences": both}}));
    // An owner of a kind this server does not serve cannot be checked: left alone.
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unmapped", "namespace": "default",
                    "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "Nothing", "name": "x", "uid": "1"}]}}));
    // A cluster-scoped dependent naming a namespaced owner: unresolvable, left alone.
    api.seed(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "crossed", "ownerReferences": owned_by(&stale, false)}}));
    assert!(api.collect_garbage());
    assert!(named(&api, "", "configmaps", "orphaned").is_none());
    assert!(named(&api, "rbac.authorization.k8s.io", "clusterroles", "crossed").is_some());
    let shared = named(&api, "", "configmaps", "shared").unwrap();
    assert_eq!(shared["metadata"]["ownerReferences"], owned_by(&deploy, false), "{shared}");
    assert!(named(&api, "", "configmaps", "unmapped").is_some());
    assert!(!api.collect_garbage(), "a second pass finds nothing to do");

    // Background (the default for a Deployment): it goes at once, its chain soon after.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(api.client(), "default");
    deployments.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(named(&api, "apps", "deployments", "web").is_none());
    api.collect_garbage();
    assert!(named(&api, "apps", "replicasets", "web-1").is_none());
    assert!(named(&api, "", "pods", "web-1-a").is_none());
    assert!(named(&api, "", "configmaps", "shared").is_none(), "its last owner is gone");
}

#[tokio::test]
async fn deletes_honour_finalizers_and_the_propagation_policy() {
    let api = ApiServer::start().await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(api.client(), "default");
    let pod_of = |job: &serde_json::Value, name: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "ownerReferences": owned_by(job, true)}});
    // A Job deleted without a policy orphans its pods (batch/v1's default): they stay, unowned.
    let job = api.seed(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "a", "namespace": "default"}, "spec": {}}));
    api.seed(pod_of(&job, "a-1"));
    let marked = jobs.delete("a", &DeleteParams::default()).await.unwrap().left().expect("still there, being deleted");
    assert_eq!(marked.metadata.finalizers, Some(vec!["orphan".to_owned()]));
    assert!(marked.metadata.deletion_timestamp.is_some());
    api.collect_garbage();
    assert!(named(&api, "batch", "jobs", "a").is_none());
    let pod = named(&api, "", "pods", "a-1").expect("orphaned, not deleted");
    assert!(pod["metadata"].get("ownerReferences").is_none(), "{pod}");

    // Foreground: the Job stays until its pods are gone.
    let job = api.seed(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "b", "namespace": "default"}, "spec": {}}));
    let mut held = pod_of(&job, "b-1");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    api.seed(held);
    jobs.delete("b", &DeleteParams::foreground()).await.unwrap();
    api.collect_garbage();
    assert!(named(&api, "batch", "jobs", "b").is_some(), "a pod that blocks its deletion is still there");
    let pod = named(&api, "", "pods", "b-1").unwrap();
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "the pod is being deleted: {pod}");
    // Its finalizer removed, the pod goes, and with it the Job.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(api.client(), "default");
    pods.patch("b-1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    assert!(named(&api, "", "pods", "b-1").is_none());
    api.collect_garbage();
    assert!(named(&api, "batch", "jobs", "b").is_none());

    // Background, asked for: the Job goes at once and its pods with the next pass.
    let job = api.seed(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "c", "namespace": "default"}, "spec": {}}));
    api.seed(pod_of(&job, "c-1"));
    jobs.delete("c", &DeleteParams::background()).await.unwrap();
    assert!(named(&api, "batch", "jobs", "c").is_none());
    api.collect_garbage();
    assert!(named(&api, "", "pods", "c-1").is_none());

    // A create cannot set a deletionTimestamp.
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "default");
    let mut doomed = cm(json!({}));
    doomed["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let created = cms.create(&PostParams::default(), &serde_json::from_value(doomed).unwrap()).await.unwrap();
    assert!(created.metadata.deletion_timestamp.is_none());
}

#[test]
fn the_kubelet_keeps_the_last_4_kib_of_a_termination_message() {
    use support::kubelet::{termination_message, TERMINATION_MESSAGE_LIMIT};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("termination-log");
    let long = format!("{}{}", "a".repeat(5000), "the end");
    std::fs::write(&file, &long).unwrap();
    let kept = termination_message(&file, 1, true, "log");
    assert_eq!(kept.len(), TERMINATION_MESSAGE_LIMIT);
    assert!(kept.ends_with("the end"), "the kubelet reads the file's end");
    // An empty file: the log's last 80 lines, at most 2 KiB, if the policy falls back to it.
    std::fs::write(&file, "").unwrap();
    let log: String = (0..100).map(|i| format!("line {i}\n")).collect();
    let fallback = termination_message(&file, 1, true, &log);
    assert!(fallback.starts_with("line 20\n") && fallback.ends_with("line 99"), "{fallback}");
    assert_eq!(termination_message(&file, 1, false, &log), "");
    assert_eq!(termination_message(&file, 0, true, &log), "", "only a failed container falls back");
    let wide: String = (0..10).map(|i| format!("{i}{}\n", "x".repeat(400))).collect();
    assert_eq!(termination_message(&file, 1, true, &wide).len(), 2048);
}

#[tokio::test]
async fn names_and_generate_names_are_validated_as_the_real_server_validates_them() {
    let api = ApiServer::start().await;
    let client = api.client();
    let events: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource::from_gvk_with_plural(&kube::core::GroupVersionKind::gvk("events.k8s.io", "v1", "Event"), "events"),
    );
    let event = |meta: serde_json::Value| -> kube::api::DynamicObject {
        serde_json::from_value(json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta, "eventTime": "2026-12-04T10:00:00.000000Z",
            "reportingController": "x/y", "reportingInstance": "i", "action": "A", "reason": "R", "type": "Normal", "regarding": {"kind": "Job", "name": "dr-restore"}}))
        .unwrap()
    };
    // What a real 1.36 server answered the restore's Event with.
    let err = events.create(&PostParams::default(), &event(json!({"generateName": "dr-restore."}))).await.unwrap_err();
    let kube::Error::Api(status) = &err else { panic!("{err}") };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.starts_with(
            "Event.events.k8s.io \"dr-restore.\" is invalid: metadata.generateName: Invalid value: \"dr-restore.\": a lowercase RFC 1123 subdomain"
        ),
        "{}",
        status.message
    );
    // Said once, as the server said it, without kube's debug dump of the response.
    let text = dr_core::error_text(&err);
    assert!(!text.contains("Status {") && text.ends_with("(Invalid, HTTP 422)"), "{text}");
    // A prefix may end in '-'; the generated name follows it, and generateName is kept.
    let made = events.create(&PostParams::default(), &event(json!({"generateName": "dr-restore-"}))).await.unwrap();
    let name = made.metadata.name.clone().unwrap();
    assert!(name.starts_with("dr-restore-") && name.len() == "dr-restore-".len() + 5, "{name}");
    assert_eq!(made.metadata.generate_name.as_deref(), Some("dr-restore-"));
    // Names: a subdomain for most kinds, a label for Namespaces, any path segment for RBAC.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for bad in ["Upper", "ends-", "a..b", &"x".repeat(254)] {
        let e = cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": bad}})).unwrap()).await.unwrap_err();
        assert!(matches!(&e, kube::Error::Api(s) if s.code == 422 && s.message.contains("metadata.name: Invalid value")), "{bad}: {e}");
    }
    cms.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "a.b-c"}})).unwrap()).await.unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let e = namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "a.b"}})).unwrap()).await.unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 422 && s.message.contains("RFC 1123 label")), "{e}");
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(client.clone());
    roles.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "system:controller:Mixed.Case"}})).unwrap()).await.unwrap();
    // The product's own Events are accepted.
    dr_core::events::record(
        &client,
        "default",
        json!({"apiVersion": "batch/v1", "kind": "Job", "name": "dr-restore", "namespace": "default"}),
        "Restore",
        "RestoreSucceeded",
        false,
        "ok",
    )
    .await
    .unwrap();
    let listed = events.list(&Default::default()).await.unwrap();
    assert!(
        listed.items.iter().any(|e| e.metadata.name.as_deref().is_some_and(|n| n.starts_with("dr-restore."))),
        "{:?}",
        listed.items.iter().map(|e| e.metadata.name.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn every_namespace_gets_the_clusters_root_ca_config_map_and_keeps_it() {
    let (one, two) = (ApiServer::start().await, ApiServer::start().await);
    let ca = |api: &ApiServer, ns: &str| named_in(api, ns, support::apiserver::ROOT_CA_CONFIG_MAP).map(|cm| cm["data"]["ca.crt"].as_str().unwrap().to_owned());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(one.client());
    namespaces.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "shop"}})).unwrap()).await.unwrap();
    let published = wait_for(|| ca(&one, "shop")).await;
    assert!(published.starts_with("-----BEGIN CERTIFICATE-----"), "{published}");
    assert_eq!(ca(&one, "default").as_deref(), Some(published.as_str()), "the same CA in every namespace");
    assert_ne!(wait_for(|| ca(&two, "default")).await, published, "another cluster, another CA");
    // Changed or deleted, the publisher puts it back.
    let cms: Api<ConfigMap> = Api::namespaced(one.client(), "shop");
    cms.patch(support::apiserver::ROOT_CA_CONFIG_MAP, &PatchParams::default(), &Patch::Merge(json!({"data": {"ca.crt": "not the CA"}}))).await.unwrap();
    wait_for(|| ca(&one, "shop").filter(|c| *c == published)).await;
    cms.delete(support::apiserver::ROOT_CA_CONFIG_MAP, &DeleteParams::default()).await.unwrap();
    wait_for(|| ca(&one, "shop").filter(|c| *c == published)).await;
}

fn named_in(api: &ApiServer, namespace: &str, name: &str) -> Option<serde_json::Value> {
    api.objects("", "configmaps").into_iter().find(|o| o["metadata"]["name"] == name && o["metadata"]["namespace"] == namespace)
}

/// `f` until it gives something, for at most 5 s (the server's controllers run every 100 ms).
async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..50 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("not within 5 s")
}
