//! `kubectl dr restore` and `take-ownership` through the real binary, as the issue's "done
//! when" describes: on one cluster `profile create` + `enable` + `backup`; on an empty second
//! cluster `kubectl dr restore --cluster-id ...` installs the embedded chart with helm (here a
//! helm built on the Helm v4 library, `charts/tests/helm`) and follows the Job, which the test's
//! kubelet stand-in runs as the real `dr-job` process with the chart's environment.
//!
//! One file past 500 lines on purpose: each test is one user journey through the same harness
//! (two test API servers, the binary, helm, the kubelet stand-in), and a journey reads best
//! whole, next to the harness it runs on.

use dr_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use support::apiserver::ApiServer;

const NS: &str = "kasten-io";
const PASS: &str = "correct horse battery staple";

/// The job binary, built next to this test's binary by the workspace build.
fn dr_job() -> String {
    support::workspace_binary("dr-job")
}

fn dr(kubeconfig: &Path, args: &[&str], stdin: &str, env: &[(&str, String)]) -> Output {
    use std::io::Write;
    let path = format!("{}:{}", support::venv_bin("python").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"));
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .env("DR_HELM", support::workspace_root().join("charts/tests/helm"))
        .env_remove("DR_LOCATION_PATH")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // A command that fails before it reads its stdin closes it: what it printed says why.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

use support::succeeded as ok;

fn find(api: &ApiServer, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
    api.objects(group, plural).into_iter().find(|o| o["metadata"]["name"] == name && o["metadata"]["namespace"].as_str().unwrap_or("") == namespace)
}

/// A cluster with the DR namespace and the NFS share's PVC, and a kubeconfig for it.
async fn cluster(dir: &Path, name: &str) -> (ApiServer, PathBuf) {
    let api = ApiServer::start().await;
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "dr-nfs", "namespace": NS}, "spec": {"accessModes": ["ReadWriteMany"]}}));
    let kc = dir.join(format!("{name}.kubeconfig"));
    api.write_kubeconfig(&kc, "default");
    (api, kc)
}

/// The source: profile, enable, an application, a backup into `location`. Returns the cluster ID.
async fn source(dir: &Path, location: &Path) -> (ApiServer, String) {
    source_with(dir, location, &[]).await
}

/// [`source`] with more objects on the source cluster.
async fn source_with(dir: &Path, location: &Path, extra: &[Value]) -> (ApiServer, String) {
    let (api, kc) = cluster(dir, "source").await;
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    for object in extra {
        api.seed(object.clone());
    }
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    ok(&dr(&kc, &["profile", "create", "offsite", "--pvc", "dr-nfs"], "", &[]));
    let out = ok(&dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-"], PASS, &[]));
    let cluster_id = out.lines().find_map(|l| l.strip_prefix("Cluster ID: ")).unwrap().to_owned();
    ok(&dr(&kc, &["backup", "--local", "--path", location.to_str().unwrap()], "", &[]));
    (api, cluster_id)
}

/// An empty target cluster where the operator has created the location profile.
async fn target(dir: &Path) -> (ApiServer, PathBuf) {
    let (api, kc) = cluster(dir, "target").await;
    ok(&dr(&kc, &["profile", "create", "offsite", "--pvc", "dr-nfs"], "", &[]));
    (api, kc)
}

/// Runs the restore Job when helm creates it, as the kubelet would.
fn kubelet(api: &ApiServer, location: &Path) -> tokio::task::JoinHandle<i32> {
    let pods = kubelet_with(api, location, &[]);
    tokio::spawn(async move { *pods.await.unwrap().last().unwrap() })
}

/// [`kubelet`] with the fate of the Job's first pods (killed, or run): each pod's exit code.
fn kubelet_with(api: &ApiServer, location: &Path, fates: &[support::kubelet::PodFate]) -> tokio::task::JoinHandle<Vec<i32>> {
    let fates = fates.to_vec();
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(api.client(), NS);
    let api = api.clone();
    let location = location.to_owned();
    tokio::spawn(async move {
        for _ in 0..600 {
            // A Job not yet run (a re-run's Job replaces the finished one).
            if let Some(job) =
                jobs.get_opt("k10-restore").await.unwrap().filter(|j| j.status.as_ref().is_none_or(|s| s.succeeded.is_none() && s.failed.is_none()))
            {
                let job = serde_json::to_value(job).unwrap();
                return support::kubelet::run_job_with(&api, &job, &dr_job(), &location, &fates).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("helm never created the restore Job");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_onto_an_empty_cluster_then_take_ownership() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (_source, cluster_id) = source(dir.path(), &loc).await;

    let (target, kc) = target(dir.path()).await;
    let restore = |extra: &[&str], stdin: &str, env: &[(&str, String)]| {
        let mut args = vec!["restore", "--cluster-id", cluster_id.as_str(), "--profile", "offsite", "--passphrase-file", "-", "--path", loc.to_str().unwrap()];
        args.extend_from_slice(extra);
        dr(&kc, &args, stdin, env)
    };

    // The plan first: nothing is written.
    let out = ok(&restore(&["--dry-run"], PASS, &[]));
    assert!(out.contains("what would be done") && out.contains("ConfigMap"), "{out}");
    assert!(find(&target, "", "secrets", NS, "k10-dr-secret").is_none(), "dry run writes nothing");
    assert!(find(&target, "", "configmaps", "shop", "settings").is_none());

    // Bad input fails before any write.
    let wrong = restore(&[], "not the passphrase", &[]);
    assert_eq!(wrong.status.code(), Some(3), "a wrong passphrase has its own exit status");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("passphrase"), "{}", String::from_utf8_lossy(&wrong.stderr));
    let too_early = restore(&["--point-in-time", "2020-01-01T00:00:00Z"], PASS, &[]);
    assert!(String::from_utf8_lossy(&too_early.stderr).contains("no complete restore point at or before 2020-01-01"));
    let unknown = restore(&["--skip-resource", "profiles,catalog"], PASS, &[]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("\"catalog\""));
    let quick = restore(&["--quick-mode"], PASS, &[]);
    assert!(String::from_utf8_lossy(&quick.stderr).contains("--override-resources"));
    let no_helm = restore(&[], PASS, &[("DR_HELM", "/nonexistent/helm".into())]);
    assert!(String::from_utf8_lossy(&no_helm.stderr).contains("helm is not installed"), "{}", String::from_utf8_lossy(&no_helm.stderr));
    let no_profile = dr(&kc, &["restore", "--cluster-id", &cluster_id, "--profile", "nope", "--passphrase-file", "-"], PASS, &[]);
    assert!(String::from_utf8_lossy(&no_profile.stderr).contains("kubectl dr profile create nope"));
    assert!(find(&target, "", "secrets", NS, "k10-dr-secret").is_none(), "no bad input wrote anything");

    // The restore, with the Job's RBAC enforced: its cluster-wide grant names each resource
    // the point holds (from the manifest), no wildcard, and ends with the restore.
    target.enforce_rbac();
    let job = kubelet(&target, &loc);
    let out = restore(&[], PASS, &[]);
    assert_eq!(job.await.unwrap(), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let grant = find(&target, "rbac.authorization.k8s.io", "clusterroles", "", &format!("k10-restore-{NS}")).unwrap();
    let rules = grant["rules"].as_array().unwrap();
    assert!(rules.iter().all(|r| !r["resources"].as_array().unwrap().contains(&json!("*"))), "{rules:?}");
    assert!(rules.iter().any(|r| r["apiGroups"] == json!([""]) && r["resources"] == json!(["configmaps"])), "{rules:?}");
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", &format!("k10-restore-{NS}")).is_none());
    let stdout = ok(&out);
    assert!(stdout.contains("ConfigMap") && stdout.contains("take-ownership"), "{stdout}");
    assert!(stdout.contains("already on this cluster, left as they were: ") && stdout.contains("Profile.dr.kubectl-dr.io kasten-io/offsite"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("succeeded") && !stderr.contains(PASS), "{stderr}");
    // Live progress from the Job's log, as plain lines (stderr is not a terminal): each tier
    // as it starts, objects done of the point's total.
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("restore: ")).collect();
    assert!(progress.iter().any(|l| l.starts_with("restore: workloads (5/7): ") && l.contains("objects")), "{stderr}");
    assert!(progress.last().is_some_and(|l| l.starts_with("restore: done: ")), "{stderr}");
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
    assert!(find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_some());
    let cron = find(&target, "batch", "cronjobs", NS, "k10-disaster-recovery-policy").unwrap();
    assert_eq!(cron["spec"]["suspend"], true);
    // Helm installed the chart: its Job carries Helm's release annotations.
    let helm_job = find(&target, "batch", "jobs", NS, "k10-restore").unwrap();
    assert_eq!(helm_job["metadata"]["annotations"]["meta.helm.sh/release-name"], "k10-restore");

    // Running it again replaces the finished Job and duplicates nothing.
    let job = kubelet(&target, &loc);
    let out = restore(&[], PASS, &[]);
    assert_eq!(job.await.unwrap(), 0);
    let stdout = ok(&out);
    assert!(stdout.contains("by an earlier run"), "{stdout}");

    // Taking ownership needs a confirmation.
    let refused = dr(&kc, &["take-ownership"], "", &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_some());
    let out = ok(&dr(&kc, &["take-ownership", "--yes"], "", &[]));
    assert!(out.contains("resume CronJob") && out.contains(&cluster_id), "{out}");
    assert!(find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_none());
    assert_eq!(find(&target, "batch", "cronjobs", NS, "k10-disaster-recovery-policy").unwrap()["spec"]["suspend"], false);
    let out = ok(&dr(&kc, &["take-ownership", "--yes"], "", &[]));
    assert!(out.contains("already owns"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_restore_job_fails_the_command_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (_source, cluster_id) = source(dir.path(), &loc).await;
    let (target, kc) = target(dir.path()).await;
    // An AWS Secrets Manager source whose secret does not exist: only the Job can find out.
    let moto = support::moto();
    target.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-creds", "namespace": NS},
                       "data": {"aws_access_key_id": support::apiserver::base64(b"test", false), "aws_secret_access_key": support::apiserver::base64(b"test", false)}}));
    let job = kubelet(&target, &loc);
    let out = dr(
        &kc,
        &[
            "restore",
            "--cluster-id",
            &cluster_id,
            "--profile",
            "offsite",
            "--passphrase-source",
            "aws",
            "--aws-region",
            "eu-west-1",
            "--aws-secret-name",
            "k10/dr/missing",
            "--aws-endpoint",
            &moto.url,
            "--aws-credentials-secret",
            "aws-creds",
        ],
        "",
        &[],
    );
    assert_eq!(job.await.unwrap(), 2);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("restore job k10-restore failed") && stderr.contains("k10/dr/missing"), "{stderr}");
    assert!(find(&target, "", "configmaps", "shop", "settings").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_first_pod_is_killed_is_followed_to_the_jobs_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (_source, cluster_id) = source(dir.path(), &loc).await;
    let (target, kc) = target(dir.path()).await;
    // The first pod is OOM-killed; the Job controller waits its backoff and starts another.
    let job = kubelet_with(&target, &loc, &[support::kubelet::PodFate::Killed]);
    let out = dr(&kc, &["restore", "--cluster-id", &cluster_id, "--profile", "offsite", "--passphrase-file", "-"], PASS, &[]);
    assert_eq!(job.await.unwrap(), vec![137, 0]);
    let stdout = ok(&out);
    assert!(stdout.contains("Restored."), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pod 1 of 4 ended: OOMKilled (exit 137); the Job retries"), "{stderr}");
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_job_rides_out_the_api_server_restarting_and_says_what_it_waits_for() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (_source, cluster_id) = source(dir.path(), &loc).await;
    let (target, kc) = target(dir.path()).await;
    // The first pod is killed, so the Job controller waits its backoff before the next: the
    // API server restarts (down 8 s) while the plugin follows the Job.
    let job = kubelet_with(&target, &loc, &[support::kubelet::PodFate::Killed]);
    let restarting = target.clone();
    let outage = tokio::spawn(async move {
        while restarting.objects("", "pods").is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        restarting.restart(std::time::Duration::from_secs(8)).await;
    });
    let kc2 = kc.clone();
    let cluster = cluster_id.clone();
    let out =
        tokio::task::spawn_blocking(move || dr(&kc2, &["restore", "--cluster-id", &cluster, "--profile", "offsite", "--passphrase-file", "-"], PASS, &[]))
            .await
            .unwrap();
    outage.await.unwrap();
    assert_eq!(job.await.unwrap(), vec![137, 0]);
    let stdout = ok(&out);
    assert!(stdout.contains("Restored."), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Said once, plainly: no kube-client error lines, no terminal colour codes.
    assert!(stderr.contains("the API server stopped answering") && stderr.contains("waiting for the API server to come back"), "{stderr}");
    assert!(stderr.contains("the API server answers again after"), "{stderr}");
    assert_eq!(stderr.matches("stopped answering").count(), 1, "{stderr}");
    assert!(!stderr.contains("kube_client") && !stderr.contains('\x1b'), "{stderr}");
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_job_rides_out_a_watch_answered_410_gone_and_a_watch_cut_mid_stream() {
    use support::fault_proxy::{Fault, FaultProxy, RequestHead};
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (_source, cluster_id) = source(dir.path(), &loc).await;
    let (target, kc) = target(dir.path()).await;
    // The plugin (and its helm) reach the API server through the fault proxy; the kubelet
    // stand-in and the Job's pod reach it directly.
    let proxy = FaultProxy::start(&target.url);
    let through_proxy = dir.path().join("kubeconfig-through-proxy");
    std::fs::write(&through_proxy, std::fs::read_to_string(&kc).unwrap().replace(&target.url, &proxy.url)).unwrap();
    let watches_the_job =
        |h: &RequestHead| h.method == "GET" && h.path().ends_with("/jobs") && h.query().contains("watch=") && h.query().contains("k10-restore");
    // The first watch of the Job: 410 Gone (its resourceVersion is older than the server keeps),
    // as a kube-apiserver answers before streaming. The next: cut before any event.
    proxy.on(watches_the_job, Fault::kube_status(410, "Expired", "too old resource version: 1 (2041)"), 1);
    proxy.on(watches_the_job, Fault::CutBody { after: 0 }, 1);
    // The first pod is killed, so the Job runs long enough to be watched again.
    let job = kubelet_with(&target, &loc, &[support::kubelet::PodFate::Killed]);
    let cluster = cluster_id.clone();
    let out = tokio::task::spawn_blocking(move || {
        dr(&through_proxy, &["restore", "--cluster-id", &cluster, "--profile", "offsite", "--passphrase-file", "-"], PASS, &[])
    })
    .await
    .unwrap();
    assert_eq!(job.await.unwrap(), vec![137, 0]);
    let stdout = ok(&out);
    assert!(stdout.contains("Restored."), "{stdout}");
    assert_eq!((proxy.applied("Respond"), proxy.applied("CutBody")), (1, 1), "both faults met the plugin's watches");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("410") && !stderr.contains("kube_client"), "nothing to report: {stderr}");
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_custom_resources_whose_crd_is_in_the_point() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
                     "spec": {"group": "example.com", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                              "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "shop"}, "spec": {"size": 3}});
    let (_source, cluster_id) = source_with(dir.path(), &loc, &[crd, widget]).await;
    let (target, kc) = target(dir.path()).await;
    // The target serves no example.com/v1 yet: the plan takes it from the point's CRD.
    let out = dr(
        &kc,
        &["restore", "--cluster-id", &cluster_id, "--profile", "offsite", "--passphrase-file", "-", "--path", loc.to_str().unwrap(), "--dry-run", "-o", "json"],
        PASS,
        &[],
    );
    let report: dr_core::restore::RestoreReport = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.by_kind["Widget.example.com"].restored, 1, "{report:?}");
    assert_eq!(report.by_kind["CustomResourceDefinition.apiextensions.k8s.io"].restored, 1, "{report:?}");
    assert_eq!(report.archive_reads, 1);
    // The plugin's check opened the point and its dry-run planned from it: no second open.
    assert_eq!(report.point_opens, dr_core::point::PointOpens { key_derivations: 1, manifest_reads: 1 }, "{report:?}");
    assert!(find(&target, "apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.example.com").is_none(), "a dry run writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubeconfig_that_skips_tls_verification_is_not_warned_about_on_every_command() {
    // A TLS server with a certificate nobody trusts; the kubeconfig says to skip verification.
    let server = support::moto_tls();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("insecure.kubeconfig");
    std::fs::write(
        &kc,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n", server.url),
    )
    .unwrap();
    let out = dr(&kc, &["status"], "", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The connection was made (TLS accepted, so the server's answer is what fails)...
    assert!(!stderr.contains("certificate"), "{stderr}");
    // ...and kube-rs's "Server cert bypassed" warning is not printed, as kubectl prints nothing.
    assert!(!stderr.contains("Server cert bypassed"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_finds_what_would_stop_or_block_the_restore_and_bad_flags_fail_first() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    // The source has a kind the target will not serve (an aggregated API, no CRD in the point),
    // a claim on a StorageClass the target lacks, and two ConfigMaps.
    let (source, kc) = cluster(dir.path(), "source").await;
    source.serve("metrics.example.io", "v1", "Gadget", "gadgets", true);
    source.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    source.seed(json!({"apiVersion": "metrics.example.io/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "shop"}}));
    source.seed(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"}, "spec": {"storageClassName": "gp2"}}),
    );
    source.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    source.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "more", "namespace": "shop"}, "data": {"x": "1"}}));
    ok(&dr(&kc, &["profile", "create", "offsite", "--pvc", "dr-nfs"], "", &[]));
    let out = ok(&dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-"], PASS, &[]));
    let cluster_id = out.lines().find_map(|l| l.strip_prefix("Cluster ID: ")).unwrap().to_owned();
    ok(&dr(&kc, &["backup", "--local", "--path", loc.to_str().unwrap()], "", &[]));

    // The target runs next to production: the namespace is there with one of the ConfigMaps,
    // a quota, and a webhook on ConfigMaps whose service is down.
    let (target, kc) = target(dir.path()).await;
    target.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "USD"}}));
    target.seed(
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "small", "namespace": "shop"}, "spec": {"hard": {"count/configmaps": "2"}},
                       "status": {"hard": {"count/configmaps": "2"}, "used": {"count/configmaps": "1"}}}),
    );
    target.seed(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "guard"},
        "webhooks": [{"name": "guard.example.com", "clientConfig": {"service": {"namespace": "guard", "name": "guard"}}, "sideEffects": "None", "admissionReviewVersions": ["v1"],
                      "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]}]}));
    let base = ["restore", "--cluster-id", &cluster_id, "--profile", "offsite", "--passphrase-file", "-", "--path", loc.to_str().unwrap()];
    let run = |extra: &[&str]| dr(&kc, &[&base[..], extra].concat(), PASS, &[]);

    let out = run(&["--preflight"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(8), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |check: &str| {
        stdout.lines().find(|l| l.starts_with(&format!("finding {check}: "))).unwrap_or_else(|| panic!("no {check} finding:\n{stdout}")).to_owned()
    };
    assert!(line("api").contains("metrics.example.io/v1 Gadget is not served by this cluster") && line("api").contains("shop/g"));
    assert!(line("class").contains("StorageClass gp2") && line("class").contains("PersistentVolumeClaim shop/data"));
    assert!(line("collision").contains("1 ConfigMap objects already exist on this cluster and differ") && line("collision").contains("shop/settings"));
    assert!(line("webhook").contains("guard.example.com") && line("webhook").contains("configmaps shop/more"));
    assert!(line("quota").contains("ResourceQuota shop/small allows 2 count/configmaps and 1 are used"));
    assert!(find(&target, "", "secrets", NS, "k10-dr-secret").is_none(), "a preflight writes nothing");

    // Leaving out what the findings name and mapping the class clears the way.
    target.seed(json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "standard"}, "provisioner": "x"}));
    let out = run(&["--preflight", "--include-namespaces", "shop", "--exclude-kinds", "Gadget,ConfigMap", "--storage-class-mapping", "gp2=standard"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));

    // Bad values fail before anything is asked of the cluster, with one clear message.
    for (flags, says) in [
        (&["--namespace-mapping", "shop"][..], "--namespace-mapping: \"shop\" is not old=new"),
        (&["--selector", "app in web"][..], "selector \"app in web\""),
        (&["--object", "web"][..], "use KIND/NAMESPACE/NAME"),
    ] {
        let out = run(flags);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert_eq!(stderr.matches(says).count(), 1, "{flags:?}: {stderr}");
    }
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, "version: v1\nrules:\n- match: {kinds: [ConfigMap]}\n  patches: [{op: replace, path: data}]\n").unwrap();
    let out = run(&["--resource-modifiers", rules.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a JSON pointer"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(find(&target, "", "secrets", NS, "k10-dr-secret").is_none(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controls_flags_reach_the_job_through_helm() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let extra = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "noisy"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "chatter", "namespace": "noisy"}}),
    ];
    let (_source, cluster_id) = source_with(dir.path(), &loc, &extra).await;
    let (target, kc) = target(dir.path()).await;
    target.enforce_rbac();
    // An existing object in the mapped namespace that differs from the point.
    target.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop-dr"}}));
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop-dr"}, "data": {"currency": "USD"}}));
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "version: v1\nrules:\n- match: {kinds: [ConfigMap], namespaces: [shop-dr]}\n  patches: [{op: add, path: /data/restored, value: \"yes\"}]\n",
    )
    .unwrap();

    let job = kubelet(&target, &loc);
    let out = dr(
        &kc,
        &[
            "restore",
            "--cluster-id",
            &cluster_id,
            "--profile",
            "offsite",
            "--passphrase-file",
            "-",
            "--path",
            loc.to_str().unwrap(),
            "--exclude-namespaces",
            "noisy",
            "--namespace-mapping",
            "shop=shop-dr",
            "--existing",
            "update",
            "--resource-modifiers",
            rules.to_str().unwrap(),
        ],
        PASS,
        &[],
    );
    assert_eq!(job.await.unwrap(), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = ok(&out);
    let settings = find(&target, "", "configmaps", "shop-dr", "settings").unwrap();
    assert_eq!(settings["data"], json!({"currency": "EUR", "restored": "yes"}), "mapped, updated, modified");
    assert!(find(&target, "", "namespaces", "", "shop").is_none());
    assert!(find(&target, "", "configmaps", "noisy", "chatter").is_none());
    assert!(stdout.contains("existing objects that differ from the point: ConfigMap shop-dr/settings"), "{stdout}");
    assert!(find(&target, "", "configmaps", NS, "k10-restore-modifiers").is_some(), "the rules are kept for the Job (and a re-run)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_shows_what_changed_between_points_and_since_a_point_without_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "type": "Opaque",
                        "data": {"password": support::apiserver::base64(b"hunter2", false), "user": support::apiserver::base64(b"app", false)}});
    let (source, cluster_id) = source_with(dir.path(), &loc, std::slice::from_ref(&secret)).await;
    let kc = dir.path().join("source.kubeconfig");
    let good = dr_core::point::list_points(
        &dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc.clone() }).await.unwrap(),
        &cluster_id,
    )
    .await
    .unwrap()[0]
        .id
        .clone();

    // The attacker: a changed setting, a new workload, a deleted object, a stolen password.
    let client = source.client();
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client.clone(), "shop");
    cms.patch("settings", &Default::default(), &kube::api::Patch::Merge(json!({"data": {"currency": "XMR"}}))).await.unwrap();
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client.clone(), "shop");
    secrets
        .patch("db", &Default::default(), &kube::api::Patch::Merge(json!({"data": {"password": support::apiserver::base64(b"stolen!", false)}})))
        .await
        .unwrap();
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> = kube::Api::namespaced(client.clone(), "shop");
    deployments
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "miner"}, "spec": {"selector": {"matchLabels": {"a": "m"}},
            "template": {"metadata": {"labels": {"a": "m"}}, "spec": {"containers": [{"name": "m", "image": "evil/miner"}]}}}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let sas: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> = kube::Api::namespaced(client.clone(), "shop");
    sas.create(&Default::default(), &serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap()).await.unwrap();

    // Against the live cluster, from the last good point.
    let base = ["diff", "--cluster-id", &cluster_id, "--path", loc.to_str().unwrap(), "--passphrase-file", "-"];
    let live = ok(&dr(&kc, &[&base[..], &[&good, "--live"]].concat(), PASS, &[]));
    assert!(live.contains("~ ConfigMap shop/settings\n    /data/currency: \"EUR\" -> \"XMR\""), "{live}");
    assert!(live.contains("+ Deployment.apps shop/miner"), "{live}");
    assert!(live.contains("+ ServiceAccount shop/gone"), "{live}");
    assert!(live.contains("~ Secret shop/db\n    /data/password: \"hmac:"), "{live}");
    assert!(!live.contains("hunter2") && !live.contains("stolen!") && !live.contains(&support::apiserver::base64(b"hunter2", false)), "{live}");
    assert!(!live.contains("/data/user"), "an unchanged value is not listed: {live}");

    // Between two points: a later backup, after one more removal.
    sas.delete("gone", &Default::default()).await.unwrap();
    ok(&dr(&kc, &["backup", "--local", "--path", loc.to_str().unwrap()], "", &[]));
    let points = dr_core::point::list_points(
        &dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc.clone() }).await.unwrap(),
        &cluster_id,
    )
    .await
    .unwrap();
    let later = points.iter().map(|p| p.id.clone()).find(|id| *id != good).unwrap();
    let json_out = ok(&dr(&kc, &[&base[..], &[&good, &later, "-o", "json"]].concat(), PASS, &[]));
    let d: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(d["added"], json!([{"kind": "Deployment.apps", "namespace": "shop", "name": "miner"}]), "{d}");
    assert_eq!(d["removed"], json!([]), "{d}");
    let changed: Vec<&str> = d["changed"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(changed.contains(&"settings") && changed.contains(&"db"), "{d}");
    // The point's passphrase is needed: a wrong one opens nothing.
    let wrong = dr(&kc, &[&base[..], &[&good, &later]].concat(), "not it", &[]);
    assert_eq!(wrong.status.code(), Some(3), "{}", String::from_utf8_lossy(&wrong.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_replicated_off_site_are_write_once_verified_and_restore_with_read_only_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (source_api, cluster_id) = source(dir.path(), &loc).await;
    let kc = dir.path().join("source.kubeconfig");
    // The off-site bucket, with Object Lock; a writer that may only put objects, a reader.
    let s3 = support::moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "7".into())]);
    support::moto_setup(&s3, &["bucket", "dr-offsite", "lock"], None);
    let users = support::moto_setup(&s3, &["users", "dr-offsite"], None);
    let env = |u: &str| {
        vec![
            ("AWS_ACCESS_KEY_ID", users[u]["access_key_id"].as_str().unwrap().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", users[u]["secret_access_key"].as_str().unwrap().to_owned()),
        ]
    };
    let reader_file = dir.path().join("reader-credentials");
    std::fs::write(&reader_file, format!("[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n", env("reader")[0].1, env("reader")[1].1)).unwrap();
    let bucket = ["--s3-bucket", "dr-offsite", "--s3-endpoint", &s3.url, "--s3-path-style", "--s3-region", "us-east-1", "--immutable-days", "1"];
    let profile = |kc: &Path, name: &str, creds: &[&str], env: &[(&str, String)]| {
        ok(&dr(kc, &[&["profile", "create", name][..], creds, &bucket, &["--skip-validation"]].concat(), "", env));
    };
    profile(&kc, "vault-copy", &["--s3-credentials-from-env"], &env("writer"));
    profile(&kc, "vault-reader", &["--s3-credentials-file", reader_file.to_str().unwrap()], &[]);

    let replicate = [
        "replicate",
        "--cluster-id",
        &cluster_id,
        "--from",
        "offsite",
        "--from-path",
        loc.to_str().unwrap(),
        "--to",
        "vault-copy",
        "--verify-with",
        "vault-reader",
    ];
    // A point planted at the source by someone holding its write credentials (no passphrase).
    let forged = dr_core::point::new_point_id(time::OffsetDateTime::now_utc());
    support::plant_forged_point(&loc, &cluster_id, 3, &forged);
    let run = dr(&kc, &replicate, "", &[]);
    let (out, err) = (String::from_utf8_lossy(&run.stdout).into_owned(), String::from_utf8_lossy(&run.stderr).into_owned());
    assert!(run.status.success(), "{out}\n{err}");
    assert!(out.contains("copied (") && out.contains("authenticated at the destination"), "{out}");
    assert!(out.contains(&format!("{forged}  NOT COPIED: ")), "{out}");
    assert!(err.contains("1 point(s) at") && err.contains("were not copied"), "{err}");
    let again = ok(&dr(&kc, &replicate, "", &[]));
    assert!(again.contains("already there, identical") && !again.contains("copied ("), "{again}");
    std::fs::remove_dir_all(loc.join(dr_core::point::points_prefix(&cluster_id)).join(&forged)).unwrap();
    // Copied as they are (the same bytes), under the destination's Object Lock retention.
    let offsite = dr_core::location::Location::connect(&dr_core::location::LocationConfig::S3(dr_core::location::S3Config {
        bucket: "dr-offsite".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(s3.url.clone()),
        path_style: true,
        credentials: Some(dr_core::location::StaticCredentials {
            access_key_id: env("reader")[0].1.clone(),
            secret_access_key: zeroize::Zeroizing::new(env("reader")[1].1.clone()),
            session_token: None,
        }),
        ..Default::default()
    }))
    .await
    .unwrap();
    let points = dr_core::point::list_points(&offsite, &cluster_id).await.unwrap();
    assert_eq!(points.len(), 1);
    let key = dr_core::point::object_key(&cluster_id, &points[0].id, dr_core::point::MANIFEST_OBJECT);
    assert!(offsite.head(&key, None).await.unwrap().retention.is_some(), "the copy is under Object Lock");
    let local = std::fs::read(loc.join(&key)).unwrap();
    let (_, mut reader) = offsite.open(&key).await.unwrap();
    let mut remote = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut remote).await.unwrap();
    assert_eq!(local, remote, "encrypted bytes copied as they are");

    // As a CronJob of the DR policy: enabled with replication, a new backup, then the
    // CronJob's pod (run by the kubelet stand-in with the CronJob's own pod template) copies
    // it, reading the destination's credentials from their Secrets.
    let file_dest = dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-", "--replicate-to", "offsite"], PASS, &[]);
    assert_eq!(file_dest.status.code(), Some(2), "{}", String::from_utf8_lossy(&file_dest.stderr));
    assert!(
        String::from_utf8_lossy(&file_dest.stderr).contains("S3, Azure Blob and Google Cloud Storage profiles only"),
        "{}",
        String::from_utf8_lossy(&file_dest.stderr)
    );
    ok(&dr(
        &kc,
        &[
            "enable",
            "--profile",
            "offsite",
            "--passphrase-file",
            "-",
            "--replicate-to",
            "vault-copy",
            "--replicate-verify-with",
            "vault-reader",
            "--replicate-frequency",
            "30 * * * *",
        ],
        PASS,
        &[],
    ));
    let cron = find(&source_api, "batch", "cronjobs", NS, "k10-disaster-recovery-replication").expect("the replication CronJob");
    assert_eq!(cron["spec"]["schedule"], "30 * * * *");
    assert_eq!(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"], json!(["replicate"]));
    ok(&dr(&kc, &["backup", "--local", "--path", loc.to_str().unwrap()], "", &[]));
    let job = source_api.seed(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "replication-run", "namespace": NS}, "spec": cron["spec"]["jobTemplate"]["spec"]}),
    );
    assert_eq!(support::kubelet::run_job(&source_api, &job, &dr_job(), &loc).await, 0);
    assert_eq!(dr_core::point::list_points(&offsite, &cluster_id).await.unwrap().len(), 2, "the new point was copied");
    let pod = source_api.objects("", "pods").into_iter().find(|p| p["metadata"]["labels"]["job-name"] == "replication-run").unwrap();
    let outcome: Value = serde_json::from_str(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"].as_str().unwrap()).unwrap();
    assert!(outcome.get("error").is_none(), "{outcome}");
    let message = &outcome["report"];
    // One point already there, the new one copied: [[id, {"present": ...}], [id, {"copied": ...}]].
    let points = message["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{message}");
    assert!(points[1][1].get("copied").is_some() || points[0][1].get("copied").is_some(), "{message}");
    // Enabled again without it, the replication CronJob goes.
    ok(&dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-"], PASS, &[]));
    assert!(find(&source_api, "batch", "cronjobs", NS, "k10-disaster-recovery-replication").is_none());

    // A new cluster restores from the off-site copy with read-only credentials.
    let (target, tkc) = target(dir.path()).await;
    // Marked as holding copies: each is judged by when the source received it.
    profile(&tkc, "vault-reader", &["--s3-credentials-file", reader_file.to_str().unwrap(), "--s3-replica"], &[]);
    let marked = find(&target, "dr.kubectl-dr.io", "profiles", NS, "vault-reader").expect("the profile");
    assert_eq!(marked["spec"]["s3"]["replica"], true, "{marked}");
    let job = kubelet(&target, &loc);
    let out = dr(&tkc, &["restore", "--cluster-id", &cluster_id, "--profile", "vault-reader", "--passphrase-file", "-"], PASS, &[]);
    assert_eq!(job.await.unwrap(), 0, "{}", String::from_utf8_lossy(&out.stderr));
    ok(&out);
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
}

/// What a person sees on a terminal (tmux, from Debian): while the Job runs, one redrawn line
/// with a bar, objects done of the point's total, the tier, the rate, elapsed time and ETA,
/// from the Job's own log; at the end the per-kind table, whole, with the Job's state on
/// lines of their own. The test API server answers each request after 15 ms, so 3000 objects
/// take a few seconds, as a real cluster's would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_on_a_terminal_shows_a_live_progress_bar_then_the_whole_report() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let location = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc.clone() }).await.unwrap();
    let mut entries = support::sample_entries(3000, 16);
    for e in &mut entries {
        if e.object["kind"] == "ConfigMap" {
            e.object["metadata"]["namespace"] = json!("app-0");
        }
    }
    let cluster_id = "7c1e-terminal";
    support::write_point(&location, cluster_id, &dr_core::format::crypto::Passphrase::new(PASS.into()).unwrap(), &entries).await;
    let (target, kc) = target(dir.path()).await;
    target.set_latency(std::time::Duration::from_millis(15));
    let job = kubelet(&target, &loc);

    let pass_file = dir.path().join("passphrase");
    std::fs::write(&pass_file, PASS).unwrap();
    let script = dir.path().join("restore.sh");
    let path = format!("{}:{}", support::venv_bin("python").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport KUBECONFIG='{}' PATH='{path}' DR_HELM='{}' AWS_EC2_METADATA_DISABLED=true\n'{}' restore --cluster-id {cluster_id} --profile offsite --passphrase-file '{}' --path '{}'\necho \"EXIT=$?\"\nsleep 600\n",
            kc.display(),
            support::workspace_root().join("charts/tests/helm").display(),
            env!("CARGO_BIN_EXE_kubectl-dr"),
            pass_file.display(),
            loc.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&script).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = format!("kubectl-dr-test-{}", std::process::id());
    let tmux = |args: &[&str]| Command::new("tmux").arg("-L").arg(&socket).args(args).output().expect("tmux (Debian's tmux; scripts/test installs it)");
    let started = tmux(&["new-session", "-d", "-s", "dr", "-x", "160", "-y", "50", script.to_str().unwrap()]);
    assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));

    // The screen, a few times a second, until the command has ended.
    let mut screens: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let screen = String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "dr"]).stdout).into_owned();
        let done = screen.contains("EXIT=");
        screens.push(screen);
        if done || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tmux(&["kill-server"]);
    assert_eq!(job.await.unwrap(), 0);
    let last = screens.last().unwrap().clone();
    assert!(last.contains("EXIT=0"), "{last}");

    // While it ran: the bar, part way, on one line of its own.
    let bars: Vec<String> = screens.iter().flat_map(|s| s.lines().filter(|l| l.starts_with("restore [")).map(str::to_owned).collect::<Vec<_>>()).collect();
    let part_way = bars.iter().find(|l| {
        let percent: u32 = l.split('%').next().and_then(|h| h.rsplit(' ').next()).and_then(|p| p.parse().ok()).unwrap_or(0);
        (1..100).contains(&percent) && l.contains("/3004 objects") && l.contains("/s") && l.contains("ETA")
    });
    assert!(part_way.is_some(), "no bar part way through; screens:\n{}", screens.join("\n-----\n"));
    // At the end: the bar's last state, the Job's verdict on its own line, the whole table.
    assert!(last.lines().any(|l| l.starts_with("job k10-restore: succeeded")), "{last}");
    assert!(last.lines().any(|l| l.starts_with("restore [########################] 100%  3004/3004 objects")), "{last}");
    assert!(last.lines().any(|l| l.starts_with("ConfigMap") && l.split_whitespace().nth(1) == Some("3000")), "{last}");
    assert!(last.contains("Restored."), "{last}");
}

/// A report larger than the 4 KiB a termination message keeps still comes back whole, from
/// the Job's log: here 60 kinds the target does not serve, each with its reason, which the
/// termination message can only carry as totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_larger_than_the_termination_message_is_shown_whole() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let location = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc.clone() }).await.unwrap();
    let mut entries = support::sample_entries(3, 16);
    for i in 0..60 {
        entries.push(dr_core::catalog::Entry {
            category: dr_core::catalog::Category::Cluster,
            object: json!({"apiVersion": format!("gone{i}.example.com/v1"), "kind": "Gadget", "metadata": {"name": format!("gadget-{i}")}}),
            source_uid: None,
        });
    }
    let cluster_id = "9b2d-large-report";
    support::write_point(&location, cluster_id, &dr_core::format::crypto::Passphrase::new(PASS.into()).unwrap(), &entries).await;
    let (target, kc) = target(dir.path()).await;
    let job = kubelet(&target, &loc);
    let out = dr(&kc, &["restore", "--cluster-id", cluster_id, "--profile", "offsite", "--passphrase-file", "-", "--path", loc.to_str().unwrap()], PASS, &[]);
    assert_eq!(job.await.unwrap(), 7, "incomplete: the kinds are not served");
    assert_eq!(out.status.code(), Some(7));
    // The termination message could not hold the kinds...
    let pods = target.objects("", "pods");
    let message = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["message"].as_str().unwrap();
    assert!(message.len() <= 4096 && !message.contains("gone59.example.com"), "{message}");
    // ...the command shows every one, with its reason.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for i in 0..60 {
        let row = stdout.lines().find(|l| l.starts_with(&format!("Gadget.gone{i}.example.com "))).unwrap_or_else(|| panic!("no row for gone{i}:\n{stdout}"));
        assert_eq!(row.split_whitespace().nth(4), Some("1"), "{row}");
    }
    assert!(stdout.contains("not served by this cluster"), "{stdout}");
}

/// `kubectl dr backup` (Run Once) follows the Job's own log: the resource it reads, step of
/// steps, and objects written so far, then the summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_run_shows_its_progress_from_the_jobs_log() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (source, _cluster_id) = source(dir.path(), &loc).await;
    let kc = dir.path().join("source.kubeconfig");
    // The kubelet: runs the Job Run Once creates, with the CronJob's pod template.
    let kubelet = {
        let api = source.clone();
        let loc = loc.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                if let Some(job) = api.objects("batch", "jobs").pop() {
                    return support::kubelet::run_job(&api, &job, &dr_job(), &loc).await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("no backup Job was created");
        })
    };
    let out = dr(&kc, &["backup", "--timeout", "120s"], "", &[]);
    assert_eq!(kubelet.await.unwrap(), 0);
    let stdout = ok(&out);
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("backup: ")).collect();
    assert!(progress.iter().any(|l| l.contains("ConfigMap") && l.contains(" objects, ")), "{stderr}");
    let last = progress.last().unwrap_or_else(|| panic!("no progress: {stderr}"));
    assert!(last.starts_with(&format!("backup: done: {} objects", summary["objects"])), "{last}\n{stderr}");
}

/// Renders `page` in headless Chromium (Debian's): the DOM after rendering, and a screenshot.
fn chromium_render(page: &Path, out_dir: &Path) -> (String, Vec<u8>) {
    let profile = tempfile::tempdir().unwrap();
    let flags = |extra: &[String]| {
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend_from_slice(extra);
        args.push(format!("file://{}", page.display()));
        Command::new("chromium").args(&args).output().expect("chromium (Debian's chromium; scripts/test installs it)")
    };
    let dom = flags(&["--dump-dom".into()]);
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let png = out_dir.join("drill.png");
    let shot = flags(&[format!("--screenshot={}", png.display()), "--window-size=1200,900".into()]);
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    (String::from_utf8_lossy(&dom.stdout).into_owned(), std::fs::read(&png).unwrap())
}

/// A drill into sandbox namespaces of the source cluster itself: the point's namespaces come
/// back as drill-<ns>, every object is checked, the report is written (the HTML page as
/// Chromium renders it), the sandbox is removed, and the live cluster is left as it was (no
/// ownership ConfigMap, which would stop its backups). A point that cannot be restored whole
/// fails the drill, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_drill_restores_checks_reports_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (api, cluster_id) = source_with(
        dir.path(),
        &loc,
        &[
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "data": {"password": "aHVudGVyMg=="}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}),
        ],
    )
    .await;
    let kc = dir.path().join("source.kubeconfig");
    let before = api.objects("", "configmaps").len();
    let reports = dir.path().join("reports");
    let drill = |extra: &[&str]| {
        let mut args = vec![
            "drill",
            "--cluster-id",
            cluster_id.as_str(),
            "--profile",
            "offsite",
            "--sandbox-prefix",
            "drill-",
            "--passphrase-file",
            "-",
            "--path",
            loc.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        dr(&kc, &args, PASS, &[])
    };
    let out = drill(&["--report-dir", reports.to_str().unwrap()]);
    let stdout = ok(&out);
    assert!(stdout.starts_with("# DR drill: PASSED"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let removed = stderr.lines().find_map(|l| l.strip_prefix("removed the sandbox namespaces: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(removed.split(", ").any(|n| n == "drill-shop") && !removed.contains("kube-system"), "{removed}");
    // The report, owner-only.
    let report: Value = serde_json::from_str(&std::fs::read_to_string(reports.join("drill.json")).unwrap()).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    // The drill and its restore share one opened point.
    assert_eq!(report["pointOpens"], json!({"keyDerivations": 1, "manifestReads": 1}), "{report}");
    for kind in ["ConfigMap", "Secret", "Service", "Deployment.apps", "Namespace"] {
        let k = &report["byKind"][kind];
        let compared = k["inPoint"].as_u64().unwrap() - k["ignored"].as_u64().unwrap();
        assert!(k["matching"].as_u64() >= Some(1) && k["matching"].as_u64() == Some(compared) && k["failed"] == 0, "{kind}: {report}");
    }
    // The sandbox namespaces' kube-root-ca.crt (this cluster's CA, not the point's) is listed
    // as not compared; before, it failed a drill on a real cluster as "2 restored objects differ".
    assert!(report["ignored"].as_array().unwrap().iter().any(|i| i.as_str().unwrap().contains("drill-shop/kube-root-ca.crt")), "{report}");
    assert!(report["rtoSeconds"].as_f64().unwrap() > 0.0 && report["rpoSeconds"].as_f64().unwrap() >= 0.0, "{report}");
    assert!(report["byKind"].get("Profile.dr.kubectl-dr.io").is_none(), "the DR namespace is not part of a sandbox drill: {report}");
    for name in ["drill.json", "drill.md", "drill.html"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(reports.join(name)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{name}");
        assert!(!std::fs::read_to_string(reports.join(name)).unwrap().contains("hunter2"), "no Secret value in {name}");
    }
    // The sandbox is gone, the live cluster as it was.
    assert!(api.objects("", "namespaces").iter().all(|n| !n["metadata"]["name"].as_str().unwrap().starts_with("drill-")));
    assert!(api.objects("", "configmaps").iter().all(|c| c["metadata"]["namespace"] != "drill-shop"));
    assert_eq!(api.objects("", "configmaps").len(), before);
    assert!(find(&api, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_none(), "a drill never claims the location");
    // The page as a person sees it.
    let (dom, png) = chromium_render(&reports.join("drill.html"), dir.path());
    assert!(dom.contains(r#"id="verdict">PASSED</span>"#), "{dom}");
    assert!(dom.contains("<td>Deployment.apps</td>") && dom.contains("RTO (drill start to the restore verified)"), "{dom}");
    assert!(dom.contains("<h2>Not compared</h2>") && dom.contains("drill-shop/kube-root-ca.crt"), "{dom}");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a rendered page, {} bytes", png.len());

    // A point with an object the cluster cannot take: the drill fails, says why, and still
    // removes its sandbox.
    let location = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc.clone() }).await.unwrap();
    let entries = vec![
        dr_core::catalog::Entry {
            category: dr_core::catalog::Category::Cluster,
            object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            source_uid: None,
        },
        dr_core::catalog::Entry {
            category: dr_core::catalog::Category::Applications,
            object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}),
            source_uid: None,
        },
        dr_core::catalog::Entry {
            category: dr_core::catalog::Category::Applications,
            object: json!({"apiVersion": "gone.example.com/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": "shop"}}),
            source_uid: None,
        },
    ];
    support::write_point(&location, &cluster_id, &dr_core::format::crypto::Passphrase::new(PASS.into()).unwrap(), &entries).await;
    let failed_reports = dir.path().join("failed");
    let out = drill(&["--report-dir", failed_reports.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(failed_reports.join("drill.json")).unwrap()).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["byKind"]["Gadget.gone.example.com"]["failed"], 1, "{report}");
    assert!(report["reasons"][0].as_str().unwrap().contains("the restore failed"), "{report}");
    assert!(api.objects("", "namespaces").iter().all(|n| !n["metadata"]["name"].as_str().unwrap().starts_with("drill-")));
    let (dom, _) = chromium_render(&failed_reports.join("drill.html"), dir.path());
    assert!(dom.contains(r#"id="verdict">FAILED</span>"#) && dom.contains("not served by this cluster"), "{dom}");

    // A sandbox namespace that exists already is not clobbered.
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "drill-shop"}}));
    let out = drill(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sandbox namespace drill-shop already exists"));
}

/// A drill onto a scratch cluster (`--target-context`): the whole point, as a real restore,
/// checked and reported; the source cluster is not touched. The scratch cluster's own
/// Profile, which the point also holds, is left as it was and counts as skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_onto_a_scratch_cluster_restores_the_whole_point() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (source_api, cluster_id) = source(dir.path(), &loc).await;
    let (scratch, _) = target(dir.path()).await;
    let kc = dir.path().join("both.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: source\n  cluster:\n    server: {}\n- name: scratch\n  cluster:\n    server: {}\nusers:\n- name: admin\n  user: {{}}\ncontexts:\n- name: source\n  context: {{cluster: source, user: admin}}\n- name: scratch\n  context: {{cluster: scratch, user: admin}}\ncurrent-context: source\n",
            source_api.url, scratch.url
        ),
    )
    .unwrap();
    let source_objects = source_api.objects("", "configmaps").len();
    let reports = dir.path().join("reports");
    let out = dr(
        &kc,
        &[
            "drill",
            "--cluster-id",
            &cluster_id,
            "--profile",
            "offsite",
            "--target-context",
            "scratch",
            "--passphrase-file",
            "-",
            "--path",
            loc.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
            "-o",
            "json",
        ],
        PASS,
        &[],
    );
    let report: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["target"], "cluster scratch");
    // Each namespace's kube-root-ca.crt holds the target's CA: not compared, and listed.
    let cm = &report["byKind"]["ConfigMap"];
    assert_eq!(cm["matching"].as_u64().unwrap() + cm["ignored"].as_u64().unwrap(), cm["inPoint"].as_u64().unwrap(), "{report}");
    assert!(
        cm["ignored"].as_u64() >= Some(1) && report["ignored"].as_array().unwrap().iter().any(|i| i.as_str().unwrap().contains("/kube-root-ca.crt")),
        "{report}"
    );
    assert_eq!(report["byKind"]["Profile.dr.kubectl-dr.io"]["skipped"], 1, "{report}");
    assert_eq!(find(&scratch, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
    assert!(find(&scratch, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_some(), "a scratch cluster restored as a real one is");
    assert_eq!(source_api.objects("", "configmaps").len(), source_objects, "the source is not touched");
    assert!(reports.join("drill.html").exists());
}

/// Azure Blob end to end, on Azurite: a profile whose Secret holds the account's key (made
/// from the environment, checked against the container before it is saved), a backup to it,
/// the points listed from the plugin with the key in the environment only, and a new cluster
/// restoring from the same container through the restore Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_backs_up_to_azure_blob_and_a_new_cluster_restores_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let nfs = dir.path().join("nfs");
    std::fs::create_dir_all(&nfs).unwrap();
    let azurite = support::azurite();
    support::azure_setup(&azurite, &["container", "dr-points"], b"");
    let key = vec![("AZURE_STORAGE_KEY", support::AZURITE_KEY.to_owned())];
    let container = ["--azure-account", support::AZURITE_ACCOUNT, "--azure-container", "dr-points", "--azure-endpoint", &azurite.url, "--azure-prefix", "prod"];
    let (source_api, kc) = cluster(dir.path(), "source").await;
    source_api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    source_api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    // A container that does not exist is found before the profile is saved.
    let missing = dr(
        &kc,
        &[
            "profile",
            "create",
            "blob",
            "--azure-account",
            support::AZURITE_ACCOUNT,
            "--azure-container",
            "nothere",
            "--azure-endpoint",
            &azurite.url,
            "--azure-credentials-from-env",
        ],
        "",
        &key,
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("container nothere does not exist"), "{}", String::from_utf8_lossy(&missing.stderr));
    ok(&dr(&kc, &[&["profile", "create", "blob"][..], &container, &["--azure-credentials-from-env"]].concat(), "", &key));
    let secret = find(&source_api, "", "secrets", NS, "blob-credentials").expect("the credentials Secret");
    assert!(secret["data"]["azure_storage_key"].is_string(), "{secret}");
    let out = ok(&dr(&kc, &["enable", "--profile", "blob", "--passphrase-file", "-"], PASS, &[]));
    let cluster_id = out.lines().find_map(|l| l.strip_prefix("Cluster ID: ")).unwrap().to_owned();
    let backup = ok(&dr(&kc, &["backup", "--local"], "", &[]));
    assert!(backup.contains("azure://devstoreaccount1/dr-points/prod"), "{backup}");

    // From the plugin, the key only in the environment.
    let listed = ok(&dr(&kc, &[&["restore-points", "--cluster-id", &cluster_id, "--passphrase-file", "-"][..], &container].concat(), PASS, &key));
    assert_eq!(listed.lines().filter(|l| l.contains("complete")).count(), 1, "{listed}");
    let unkeyed = dr(&kc, &[&["restore-points", "--cluster-id", &cluster_id, "--passphrase-file", "-"][..], &container].concat(), PASS, &[]);
    assert!(!unkeyed.status.success());
    assert!(String::from_utf8_lossy(&unkeyed.stderr).contains("AZURE_STORAGE_KEY"), "{}", String::from_utf8_lossy(&unkeyed.stderr));

    // A new cluster restores from the container, the Job reading the key from its Secret.
    let (target, tkc) = cluster(dir.path(), "target").await;
    ok(&dr(&tkc, &[&["profile", "create", "blob"][..], &container, &["--azure-credentials-from-env"]].concat(), "", &key));
    let job = kubelet(&target, &nfs);
    let out = dr(&tkc, &["restore", "--cluster-id", &cluster_id, "--profile", "blob", "--passphrase-file", "-"], PASS, &[]);
    assert_eq!(job.await.unwrap(), 0, "{}", String::from_utf8_lossy(&out.stderr));
    ok(&out);
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
}

/// Google Cloud Storage end to end, on fake-gcs-server behind the gateway that checks Google's
/// side of authentication: a profile whose Secret holds a service account's JSON key (made
/// from the file GOOGLE_APPLICATION_CREDENTIALS names, checked against the bucket before it is
/// saved), a backup to it, the points listed from the plugin with the key file named in the
/// environment only, and a new cluster restoring from the same bucket through the restore Job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_backs_up_to_gcs_and_a_new_cluster_restores_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let nfs = dir.path().join("nfs");
    std::fs::create_dir_all(&nfs).unwrap();
    let emulator = support::fake_gcs();
    support::gcs_bucket(&emulator, "dr-points", true);
    let (gateway, key) = support::gcs_gateway(&emulator);
    let key_file = dir.path().join("dr-writer.json");
    std::fs::write(&key_file, &key).unwrap();
    let env = vec![("GOOGLE_APPLICATION_CREDENTIALS", key_file.display().to_string())];
    let bucket = ["--gcs-bucket", "dr-points", "--gcs-endpoint", &gateway.url, "--gcs-prefix", "prod"];
    let (source_api, kc) = cluster(dir.path(), "source").await;
    source_api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    source_api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    // A bucket that does not exist is found before the profile is saved.
    let missing = dr(&kc, &["profile", "create", "gcs", "--gcs-bucket", "nothere", "--gcs-endpoint", &gateway.url, "--gcs-credentials-from-env"], "", &env);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("bucket nothere does not exist"), "{}", String::from_utf8_lossy(&missing.stderr));
    ok(&dr(&kc, &[&["profile", "create", "gcs"][..], &bucket, &["--gcs-credentials-from-env"]].concat(), "", &env));
    let secret = find(&source_api, "", "secrets", NS, "gcs-credentials").expect("the credentials Secret");
    assert!(secret["data"]["service-account.json"].is_string(), "{secret}");
    let out = ok(&dr(&kc, &["enable", "--profile", "gcs", "--passphrase-file", "-"], PASS, &[]));
    let cluster_id = out.lines().find_map(|l| l.strip_prefix("Cluster ID: ")).unwrap().to_owned();
    let backup = ok(&dr(&kc, &["backup", "--local"], "", &[]));
    assert!(backup.contains("gs://dr-points/prod"), "{backup}");

    // From the plugin, the key file named only in the environment.
    let listed = ok(&dr(&kc, &[&["restore-points", "--cluster-id", &cluster_id, "--passphrase-file", "-"][..], &bucket].concat(), PASS, &env));
    assert_eq!(listed.lines().filter(|l| l.contains("complete")).count(), 1, "{listed}");
    let unkeyed = dr(&kc, &[&["restore-points", "--cluster-id", &cluster_id, "--passphrase-file", "-"][..], &bucket].concat(), PASS, &[]);
    assert!(!unkeyed.status.success());
    assert!(String::from_utf8_lossy(&unkeyed.stderr).contains("GOOGLE_APPLICATION_CREDENTIALS"), "{}", String::from_utf8_lossy(&unkeyed.stderr));

    // A new cluster restores from the bucket, the Job reading the key from its Secret.
    let (target, tkc) = cluster(dir.path(), "target").await;
    ok(&dr(&tkc, &[&["profile", "create", "gcs"][..], &bucket, &["--gcs-credentials-from-env"]].concat(), "", &env));
    let job = kubelet(&target, &nfs);
    let out = dr(&tkc, &["restore", "--cluster-id", &cluster_id, "--profile", "gcs", "--passphrase-file", "-"], PASS, &[]);
    assert_eq!(job.await.unwrap(), 0, "{}", String::from_utf8_lossy(&out.stderr));
    ok(&out);
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
    // Every request the product made reached the bucket with a token the gateway issued.
    let stats: Value = reqwest::get(format!("{}/gateway/stats", gateway.url)).await.unwrap().json().await.unwrap();
    assert_eq!(stats["refused"], 0, "{stats}");
    assert!(stats["issued"].as_u64() >= Some(4), "{stats}");
}
