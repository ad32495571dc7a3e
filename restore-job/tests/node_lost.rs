//! A restore pod lost with its node: every container of the pod dies at once and nothing is
//! told (no SIGTERM: neither the restore nor the grant-keeper sidecar can clean up), the pod
//! garbage collector deletes the pod as a disruption, and the Job makes another pod. The
//! kubelet stand-in plays it (`PodFate::NodeLost`) on a target that enforces RBAC.

use std::path::Path;

use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::restore::RestoreOutcome;
use dr_test_support as support;
use serde_json::{json, Value};
use support::kubelet::{self, PodFate};
use support::restore_fixture::*;

/// A point with `n` ConfigMaps in namespace app-0.
async fn big_point(location: &Path, n: usize) -> String {
    let loc = Location::connect(&LocationConfig::File { path: location.into() }).await.unwrap();
    let mut entries = support::sample_entries(n, 16);
    for e in &mut entries {
        if e.object["kind"] == "ConfigMap" {
            e.object["metadata"]["namespace"] = json!("app-0");
        }
    }
    let cluster_id = "3f0c2a8e-node-lost";
    support::write_point(&loc, cluster_id, &Passphrase::new(PASS.into()).unwrap(), &entries).await;
    cluster_id.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_lost_with_its_node_is_replaced_and_the_next_pod_finishes_with_the_grant_kept_for_it() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 1500).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    // `helm install`: the chart's objects, then its Job. Slow enough (150 writes/s) for the
    // node to go partway.
    let rendered = render(&values(&cluster_id, json!({"restore": {"qps": 150}}))).unwrap_or_else(|e| panic!("chart did not render: {e}"));
    let manifests = rendered["manifests"].as_array().unwrap();
    for m in manifests.iter().filter(|m| m["kind"] != "Job") {
        target.upsert(m.clone());
    }
    let job = target.seed(manifests.iter().find(|m| m["kind"] == "Job").unwrap().clone());
    let grant = format!("{RELEASE}-{NS}");

    let codes = kubelet::run_job_with(&target, &job, env!("CARGO_BIN_EXE_dr-job"), loc.path(), &[PodFate::NodeLost(std::time::Duration::from_secs(4))]).await;
    assert_eq!(codes, vec![137, 0], "the lost pod died with SIGKILL; the next one finished");

    // The Job completed and counted no failure (a disruption is ignored).
    let job = find(&target, "batch", "jobs", NS, RELEASE).unwrap();
    let conditions = job["status"]["conditions"].as_array().cloned().unwrap_or_default();
    assert!(conditions.iter().any(|c| c["type"] == "Complete"), "{job}");
    assert!(job["status"]["failed"].is_null(), "{job}");
    // Every object once; the lost pod's writes were counted by the next pod, not duplicated.
    let restored: Vec<Value> = target
        .objects("", "configmaps")
        .into_iter()
        .filter(|c| c["metadata"]["namespace"] == "app-0" && c["metadata"]["name"] != support::apiserver::ROOT_CA_CONFIG_MAP)
        .collect();
    assert_eq!(restored.len(), 1500, "every object, once");
    let pods = target.objects("", "pods");
    assert_eq!(pods.len(), 1, "the lost pod was deleted: {pods:?}");
    let message = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["message"].as_str().unwrap().to_owned();
    let outcome = RestoreOutcome::parse(&message);
    let report = outcome.report.expect("the finishing pod's report");
    let k = &report.by_kind["ConfigMap"];
    assert!(k.already_restored > 0 && k.already_restored < 1500, "the lost pod got partway: {k:?}");
    assert_eq!(k.restored + k.already_restored, 1500, "{k:?}");
    assert_eq!(report.failed, 0);
    // The grant was kept for the next pod (its writes passed RBAC) and ended with the restore;
    // the lost pod's Lease was taken over and released.
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", &grant).is_none(), "the grant outlived the restore");
    assert!(find(&target, "coordination.k8s.io", "leases", NS, "kubectl-dr-restore").is_none());
}
