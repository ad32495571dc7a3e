//! The restore Job against a Kubernetes API server on a bad day (docs/faults.md): the
//! chart's container (`dr-job restore`) talks to the test API server through the scripted
//! fault proxy (`dr_test_support::fault_proxy`), which answers chosen requests as an
//! overloaded or failing kube-apiserver does — 500 with etcd's "too many requests", 503 and
//! 429 with Retry-After (API priority and fairness), 504, an admission webhook that times out
//! — while everything else reaches the real test server.

use std::time::Duration;

use dr_test_support as support;

use dr_core::failure::ErrorKind;
use serde_json::{json, Value};
use support::fault_proxy::{Fault, FaultProxy, RequestHead};
use support::restore_fixture::*;

const OBJECTS: usize = 200;

fn creates_configmap(h: &RequestHead) -> bool {
    h.method == "POST" && h.path().ends_with("/namespaces/app-0/configmaps")
}

/// The chart installed on `target`, its pod's API traffic sent through `proxy`; runs it.
fn restore_through(target: &support::apiserver::ApiServer, proxy: &FaultProxy, values: &Value, location: &std::path::Path) -> (Run, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let pod = install_chart(target, values, location, root.path());
    let kubeconfig = std::fs::read_to_string(&pod.kubeconfig).unwrap().replace(&target.url, &proxy.url);
    std::fs::write(&pod.kubeconfig, kubeconfig).unwrap();
    let out = spawn(&pod).wait_with_output().unwrap();
    let raw = std::fs::read_to_string(&pod.termination).unwrap_or_default();
    let outcome = dr_core::restore::RestoreOutcome::parse(&raw);
    assert_eq!(out.status.code(), Some(outcome.kind.map_or(0, |k| i32::from(k.exit_code()))), "{raw}");
    (Run { out, message: outcome.error.clone(), outcome }, root)
}

fn app_configmaps(target: &support::apiserver::ApiServer) -> Vec<String> {
    let mut names: Vec<String> = target
        .objects("", "configmaps")
        .into_iter()
        .filter(|c| c["metadata"]["namespace"] == "app-0" && c["metadata"]["name"] != support::apiserver::ROOT_CA_CONFIG_MAP)
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_api_server_and_a_slow_webhook_are_ridden_out_within_the_retry_budget() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), OBJECTS).await;
    let target = target_cluster(raw_secret(PASS)).await;
    let proxy = FaultProxy::start(&target.url);
    // etcd behind the API server is overloaded (a kube-apiserver passes its error on as 500).
    proxy.on(creates_configmap, Fault::kube_status(500, "InternalError", "etcdserver: too many requests"), 3);
    // API priority and fairness rejects (429 with Retry-After), the server is briefly unavailable.
    proxy.on(creates_configmap, Fault::kube_status(429, "TooManyRequests", "Too many requests, please try again later.").with_header("Retry-After", "1"), 3);
    proxy.on(
        creates_configmap,
        Fault::kube_status(503, "ServiceUnavailable", "the server is currently unable to handle the request").with_header("Retry-After", "1"),
        2,
    );
    proxy.on(creates_configmap, Fault::kube_status(504, "Timeout", "the server was unable to return a response in the time allotted"), 1);
    // A validating webhook that does not answer within its timeout: the API server answers 500
    // only after waiting for it.
    let webhook = "Internal error occurred: failed calling webhook \"validate.policy.example.com\": failed to call webhook: Post \"https://policy.policy-system.svc:443/validate?timeout=2s\": context deadline exceeded";
    proxy.on(creates_configmap, Fault::Slow(Duration::from_secs(2), Box::new(Fault::kube_status(500, "InternalError", webhook))), 2);
    let (run, _root) = restore_through(&target, &proxy, &values(&cluster_id, json!({})), loc.path());
    let report = run.report();
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(proxy.applied("Respond"), 11, "every scripted fault met a request");
    assert_eq!(app_configmaps(&target).len(), OBJECTS, "every object, once");
    assert_eq!(report["byKind"]["ConfigMap"]["restored"].as_u64().unwrap() as usize, OBJECTS, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_failing_beyond_the_retry_budget_fails_by_name_and_a_rerun_finishes_without_duplicates() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), OBJECTS).await;
    let target = target_cluster(raw_secret(PASS)).await;
    let proxy = FaultProxy::start(&target.url);
    // Every create of cm-7 is answered 503, however often it is tried.
    let message = "the server is currently unable to handle the request";
    proxy.on(|h| creates_configmap(h) && h.body_contains("\"name\":\"cm-7\""), Fault::kube_status(503, "ServiceUnavailable", message), 10_000);
    let started = std::time::Instant::now();
    let (run, _root) = restore_through(&target, &proxy, &values(&cluster_id, json!({})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::Incomplete), "{}", run.message);
    assert_eq!(run.out.status.code(), Some(7));
    let report = serde_json::to_value(run.outcome.report.as_ref().expect("a report")).unwrap();
    assert_eq!(report["failed"], 1, "{report}");
    let failures = report["byKind"]["ConfigMap"]["failures"].to_string();
    assert!(failures.contains("cm-7") && failures.contains(message), "the object and the fault are named: {failures}");
    // Tried as api_retry says (the first try and six retries), then given up, well within the timeout.
    let tries = proxy.seen().iter().filter(|s| s.fault.is_some()).count();
    assert_eq!(tries, 7, "{tries} tries");
    assert!(started.elapsed() < Duration::from_secs(60), "{:?}", started.elapsed());
    assert_eq!(app_configmaps(&target).len(), OBJECTS - 1);

    // The API server recovers; the restore is run again (as `kubectl dr restore` or the
    // chart is): it finishes the job, writing only what is missing.
    proxy.clear();
    let (run, _root) = restore_through(&target, &proxy, &values(&cluster_id, json!({})), loc.path());
    let report = run.report();
    assert_eq!(report["failed"], 0, "{report}");
    let k = &report["byKind"]["ConfigMap"];
    assert_eq!((k["restored"].as_u64().unwrap(), k["alreadyRestored"].as_u64().unwrap()), (1, OBJECTS as u64 - 1), "{report}");
    let names = app_configmaps(&target);
    assert_eq!(names.len(), OBJECTS, "every object, once");
    assert!(names.contains(&"cm-7".to_owned()));
}
