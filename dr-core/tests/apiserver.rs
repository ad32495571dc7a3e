//! The test API server itself behaves like the real one where the product relies on it:
//! server-side apply with field managers, and watch resuming from a resourceVersion.

use dr_test_support as support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
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
