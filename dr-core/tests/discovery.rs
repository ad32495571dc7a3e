//! The one discovery the backup, the restore, drills and `diff --live` share, against the
//! test API server.

use dr_core::discovery::{self, ServedApis};
use dr_test_support::apiserver::ApiServer;
use serde_json::json;

fn crd(group: &str, kind: &str, plural: &str) -> serde_json::Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": format!("{plural}.{group}")},
           "spec": {"group": group, "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()}, "scope": "Namespaced",
                    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

#[tokio::test]
async fn every_version_is_read_and_an_unavailable_group_is_left_out_alone() {
    let api = ApiServer::start().await;
    api.seed(crd("shop.example.com", "Cart", "carts"));
    // An older version served beside the preferred one, and an aggregated API that is down.
    api.serve("policy", "v1beta1", "PodDisruptionBudget", "poddisruptionbudgets", true);
    api.break_group("metrics.k8s.io", "v1beta1", "PodMetrics", "pods");
    let client = api.client();

    let found = discovery::discover(&client).await.unwrap();
    assert_eq!(found.groups[0].name(), "", "the core group first");
    assert_eq!(found.unavailable, vec!["metrics.k8s.io/v1beta1".to_owned()]);
    let served = found.served();
    assert_eq!(served.versions("", "ConfigMap"), ["v1"]);
    assert_eq!(served.plural("shop.example.com", "Cart"), Some("carts"));
    let pdb = served.versions("policy", "PodDisruptionBudget");
    assert_eq!(pdb.len(), 2, "{pdb:?}");
    assert!(served.serves("policy/v1", "PodDisruptionBudget") && served.serves("policy/v1beta1", "PodDisruptionBudget"));
    assert!(!served.serves("metrics.k8s.io/v1beta1", "PodMetrics"), "the unavailable group's kinds are left out");
    assert!(!served.serves("apps/v1", "Widget"));

    // The restore's view is the same discovery.
    let again = ServedApis::discover(&client).await.unwrap();
    assert_eq!(again.versions("policy", "PodDisruptionBudget"), pdb);
}

#[tokio::test]
async fn a_kind_defined_a_moment_later_is_found_when_asked_again() {
    let api = ApiServer::start().await;
    let client = api.client();
    assert!(discovery::find_kind(&client, "shop.example.com/v1", "Cart", 1).await.unwrap().is_none(), "not served: none, not an error");
    // The CRD arrives while the lookup is asking (as discovery lags a CRD just Established).
    let seeded = api.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        seeded.seed(crd("shop.example.com", "Cart", "carts"));
    });
    let (resource, caps) = discovery::find_kind(&client, "shop.example.com/v1", "Cart", 10).await.unwrap().expect("found on a later attempt");
    later.await.unwrap();
    assert_eq!((resource.plural.as_str(), caps.scope == kube::discovery::Scope::Namespaced), ("carts", true));
}
