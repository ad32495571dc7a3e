//! The restore's cluster-wide grant ends however the restore ends (issue #22). Each test
//! renders the `dr-restore` chart with the Helm library, creates its objects and its Job on a
//! target cluster whose API server enforces RBAC for service-account tokens, and lets the
//! kubelet stand-in play the Job to its end as a kubelet and the Job controller do (pods
//! retried up to `backoffLimit`, the `podFailurePolicy`, `activeDeadlineSeconds`, SIGKILL,
//! native sidecars). Nothing follows the Job (no `kubectl dr restore`): this is `helm install`
//! alone. At the end the ClusterRoleBinding must be gone, and while the Job will run another
//! pod it must still be there.

use std::path::Path;

use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_test_support as support;
use serde_json::{json, Value};
use support::apiserver::ApiServer;
use support::kubelet::{self, PodFate};
use support::restore_fixture::*;

fn grant() -> String {
    format!("{RELEASE}-{NS}")
}

fn has_grant(api: &ApiServer) -> bool {
    find(api, "rbac.authorization.k8s.io", "clusterrolebindings", "", &grant()).is_some()
}

/// `helm install`: the chart's objects, then its Job (as created, with its UID). `job` edits
/// the rendered Job first (a deadline a test can wait for).
fn install(api: &ApiServer, values: &Value, job: impl FnOnce(&mut Value)) -> Value {
    let rendered = render(values).unwrap_or_else(|e| panic!("chart did not render: {e}"));
    let manifests = rendered["manifests"].as_array().unwrap();
    for m in manifests.iter().filter(|m| m["kind"] != "Job") {
        api.upsert(m.clone());
    }
    let mut rendered_job = manifests.iter().find(|m| m["kind"] == "Job").unwrap().clone();
    job(&mut rendered_job);
    api.seed(rendered_job)
}

async fn run(api: &ApiServer, job: &Value, location: &Path, fates: &[PodFate]) -> Vec<i32> {
    kubelet::run_job_with(api, job, env!("CARGO_BIN_EXE_dr-job"), location, fates).await
}

/// The Job's terminal condition's reason (`Complete`, or `Failed`'s reason).
fn verdict(api: &ApiServer) -> String {
    let job = find(api, "batch", "jobs", NS, RELEASE).unwrap();
    let conditions = job["status"]["conditions"].as_array().cloned().unwrap_or_default();
    if conditions.iter().any(|c| c["type"] == "Complete") {
        return "Complete".into();
    }
    conditions.iter().find(|c| c["type"] == "Failed").map(|c| c["reason"].as_str().unwrap().to_owned()).unwrap_or_else(|| format!("no verdict: {job}"))
}

fn has_sidecar(job: &Value) -> bool {
    job["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["name"] == "grant-keeper" && c["restartPolicy"] == "Always"))
}

const NO_SIDECAR: fn() -> Value = || json!({"grantKeeper": {"enabled": false}});

/// A point with `n` ConfigMaps in one namespace.
async fn big_point(location: &Path, n: usize) -> String {
    let loc = Location::connect(&LocationConfig::File { path: location.into() }).await.unwrap();
    let mut entries = support::sample_entries(n, 16);
    for e in &mut entries {
        if e.object["kind"] == "ConfigMap" {
            e.object["metadata"]["namespace"] = json!("app-0");
        }
    }
    let cluster_id = "3f0c2a8e-grant-point";
    support::write_point(&loc, cluster_id, &Passphrase::new(PASS.into()).unwrap(), &entries).await;
    cluster_id.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_alone_ends_the_every_resource_grant_when_the_restore_succeeds() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 3).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    // No rbac.resources: helm install alone grants every resource.
    let job = install(&target, &values(&cluster_id, json!({})), |_| {});
    assert!(has_sidecar(&job), "the grant keeper runs on a 1.29+ cluster");
    let role = find(&target, "rbac.authorization.k8s.io", "clusterroles", "", &grant()).unwrap();
    assert_eq!(role["rules"][0]["resources"], json!(["*"]), "{role}");
    assert!(has_grant(&target));

    assert_eq!(run(&target, &job, loc.path(), &[]).await, vec![0]);
    assert_eq!(verdict(&target), "Complete");
    assert!(find(&target, "", "configmaps", "app-0", "cm-0").is_some(), "restored");
    assert!(!has_grant(&target), "the cluster-wide grant outlived a successful restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_succeeds_ends_its_grant_without_the_sidecar() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), dr_core::catalog::Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    // As kubectl dr restore sets it: the grant names each resource of the point.
    let mut extra = NO_SIDECAR();
    extra["rbac"] = scoped_rbac(loc.path(), &cluster_id).await;
    let job = install(&target, &values(&cluster_id, extra), |_| {});
    assert!(!has_sidecar(&job));
    assert_eq!(run(&target, &job, loc.path(), &[]).await, vec![0]);
    assert_eq!(verdict(&target), "Complete");
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());
    assert!(!has_grant(&target), "the restore container ends the grant itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_the_job_at_once_and_ends_the_grant() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 3).await;
    // A passphrase that does not open the point: no other pod would do better.
    let target = target_cluster(raw_secret("not the passphrase of this point")).await;
    target.enforce_rbac();
    let job = install(&target, &values(&cluster_id, NO_SIDECAR()), |_| {});
    assert_eq!(run(&target, &job, loc.path(), &[]).await, vec![3]);
    assert_eq!(verdict(&target), "PodFailurePolicy");
    assert!(!has_grant(&target), "a restore refused for good ends its grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_keeps_the_grant_for_the_next_pod_and_the_last_attempt_ends_it() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 3).await;
    // An S3 profile whose endpoint does not answer: an outage (exit 1), retried by the Job.
    let target = target_cluster(raw_secret(PASS)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    target.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "down", "namespace": NS},
                       "spec": {"s3": {"bucket": "dr", "region": "us-east-1", "endpoint": format!("http://{closed}"), "credentialsSecret": "s3-creds"}}}));
    target.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds", "namespace": NS},
                       "data": {"aws_access_key_id": b64("AKIDEXAMPLE"), "aws_secret_access_key": b64("example")}}));
    target.enforce_rbac();
    // Without the sidecar: the restore container decides from its Job (two attempts).
    let mut extra = NO_SIDECAR();
    merge(&mut extra, json!({"profile": {"name": "down"}, "fileProfile": {"claimName": ""}, "restore": {"backoffLimit": 1}}));
    let job = install(&target, &values(&cluster_id, extra), |_| {});
    let job_run = tokio::spawn({
        let (target, job, loc) = (target.clone(), job.clone(), loc.path().to_owned());
        async move { run(&target, &job, &loc, &[]).await }
    });
    // Between the first pod's failure and the second pod (the controller's 10 s backoff).
    let mut kept = None;
    for _ in 0..600 {
        let status = find(&target, "batch", "jobs", NS, RELEASE).unwrap()["status"].clone();
        if status["failed"] == 1 && status["active"].is_null() {
            kept = Some(has_grant(&target));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(kept, Some(true), "the grant is kept for the Job's next pod");
    assert_eq!(job_run.await.unwrap(), vec![1, 1]);
    assert_eq!(verdict(&target), "BackoffLimitExceeded");
    assert!(!has_grant(&target), "the last attempt ends the grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_near_its_jobs_deadline_stops_in_time_and_ends_its_grant() {
    let loc = tempfile::tempdir().unwrap();
    // 200 objects at 10 requests per second: longer than the deadline below.
    let cluster_id = big_point(loc.path(), 200).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    let mut extra = NO_SIDECAR();
    merge(&mut extra, json!({"restore": {"qps": 10}}));
    // A deadline a test can wait for (the chart's is restore.timeout plus ten minutes).
    let job = install(&target, &values(&cluster_id, extra), |job| job["spec"]["activeDeadlineSeconds"] = json!(15));
    let started = std::time::Instant::now();
    assert_eq!(run(&target, &job, loc.path(), &[]).await, vec![6], "timed out, bounded by the deadline");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(verdict(&target), "PodFailurePolicy", "the pod ended before the deadline");
    let restored = target.objects("", "configmaps").iter().filter(|c| c["metadata"]["namespace"] == "app-0").count();
    assert!(restored > 0 && restored < 200, "{restored}");
    assert!(!has_grant(&target), "the restore ended its grant before its deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_pod_stopped_at_the_jobs_deadline_has_its_grant_ended_by_the_sidecar() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 3).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    let job = install(&target, &values(&cluster_id, json!({})), |job| job["spec"]["activeDeadlineSeconds"] = json!(4));
    assert!(has_sidecar(&job));
    // The restore container never ends by itself: the deadline deletes the pod (SIGTERM).
    assert_eq!(run(&target, &job, loc.path(), &[PodFate::Hangs]).await, vec![143]);
    assert_eq!(verdict(&target), "DeadlineExceeded");
    assert!(!has_grant(&target), "the grant outlived the Job's deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_pod_killed_with_sigkill_has_its_grant_ended_by_the_sidecar() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 3).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    // Two attempts, both OOM-killed: the restore process never gets to end anything.
    let job = install(&target, &values(&cluster_id, json!({"restore": {"backoffLimit": 1}})), |_| {});
    let job_run = tokio::spawn({
        let (target, job, loc) = (target.clone(), job.clone(), loc.path().to_owned());
        async move { run(&target, &job, &loc, &[PodFate::Killed, PodFate::Killed]).await }
    });
    let mut kept = None;
    for _ in 0..600 {
        let status = find(&target, "batch", "jobs", NS, RELEASE).unwrap()["status"].clone();
        if status["failed"] == 1 && status["active"].is_null() {
            kept = Some(has_grant(&target));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(kept, Some(true), "a killed pod that is not the last keeps the grant for the next");
    assert_eq!(job_run.await.unwrap(), vec![137, 137]);
    assert_eq!(verdict(&target), "BackoffLimitExceeded");
    assert!(!has_grant(&target), "the grant outlived a Job whose last pod was killed");
}
