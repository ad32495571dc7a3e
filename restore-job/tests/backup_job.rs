//! `dr-job backup` run as a process, as the DR policy's CronJob runs it, against the test
//! API server: it reads the Policy, Profile and k10-dr-secret, writes a point, records the
//! run in the Policy's status and reports through its exit status and termination message.
//!
//! Against a real cluster the job uses its service account; here `KUBECONFIG` points at the
//! test API server (which serves plain HTTP), the one variable a pod would not have.
//!
//! One file past 500 lines on purpose: every test runs the one process the CronJob runs,
//! through the same two helpers (`run_job`, `run_as_cronjob`).

use dr_test_support as support;

use std::path::Path;
use std::process::{Command, Output};

use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig, S3Config, StaticCredentials};
use dr_core::point::{self, Unlocker};
use serde_json::{json, Value};
use support::apiserver::ApiServer;

const NS: &str = "kasten-io";
const PASS: &str = "correct horse battery staple";

fn b64(s: &str) -> String {
    support::apiserver::base64(s.as_bytes(), false)
}

/// A source cluster with the DR platform set up for `profile_spec`.
async fn source_cluster(profile_spec: Value) -> ApiServer {
    let api = ApiServer::start().await;
    api.install_dr_crds();
    for ns in [NS, "shop"] {
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": NS}, "spec": profile_spec}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Policy", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": NS},
                    "spec": {"profile": "offsite", "frequency": "@hourly", "mode": "full"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": NS}, "data": {"key": b64(PASS)}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    api
}

/// Runs `dr-job backup` with the CronJob's environment.
fn run_job(api: &ApiServer, dir: &Path, extra_env: &[(&str, String)]) -> (Output, String) {
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, NS);
    let termination = dir.join("termination-log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dr-job"));
    cmd.arg("backup")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", &kubeconfig)
        .env("DR_NAMESPACE", NS)
        .env("DR_LOCATION_MOUNT", dir.join("mnt"))
        .env("DR_TERMINATION_LOG", &termination)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    // What a kubelet keeps of it (the last 4 KiB); without the fallback to the log the
    // CronJob's container has, so an assertion on it sees only what the job wrote.
    let message = support::kubelet::termination_message(&termination, out.status.code().unwrap_or(137), false, "");
    (out, message)
}

/// The report of a successful run's termination message (`dr_core::job::outcome`).
fn report_of(message: &str) -> Value {
    let outcome: Value = serde_json::from_str(message).unwrap_or_else(|e| panic!("{e}: {message}"));
    assert!(outcome.get("error").is_none() && outcome.get("kind").is_none(), "{outcome}");
    outcome["report"].clone()
}

fn last_run(api: &ApiServer) -> Value {
    let policy = api.objects("dr.kubectl-dr.io", "policies").pop().unwrap();
    policy["status"]["lastRuns"][0].clone()
}

// Multi-threaded: the test blocks on the job process while the API server serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_backs_up_to_a_file_profile_and_records_the_run() {
    let api = source_cluster(json!({"file": {"claimName": "dr-nfs", "path": "cluster-a"}})).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mnt/cluster-a")).unwrap();
    let (out, message) = run_job(&api, dir.path(), &[]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report_of(&message), summary, "the termination message is the outcome, with the summary as its report");
    let cluster_id = summary["clusterId"].as_str().unwrap();
    let point_id = summary["restorePoint"].as_str().unwrap();
    // The point is where the file profile says, and sound.
    let loc = Location::connect(&LocationConfig::File { path: dir.path().join("mnt/cluster-a") }).await.unwrap();
    let objects = point::verify_point(&loc, cluster_id, point_id, &Unlocker::new(Passphrase::new(PASS.into()).unwrap())).await.unwrap();
    assert_eq!(objects, summary["objects"].as_u64().unwrap());
    assert!(summary["byCategory"]["profiles"] == 1 && summary["byCategory"]["secrets"] == 1, "{summary}");
    // The run is in the policy's status.
    let run = last_run(&api);
    assert_eq!(run["result"], "Succeeded");
    assert_eq!(run["restorePoint"], point_id);
    // Logs are JSON lines.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().filter(|l| !l.is_empty()).all(|l| serde_json::from_str::<Value>(l).is_ok()), "{stderr}");
    assert!(!stderr.contains(PASS) && !String::from_utf8_lossy(&out.stdout).contains(PASS));
}

// Multi-threaded: the test blocks on the job process while the API server serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_refuses_while_the_ownership_configmap_exists() {
    let api = source_cluster(json!({"file": {"claimName": "dr-nfs"}})).await;
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k10-dr-remove-to-get-ownership", "namespace": NS}}));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mnt")).unwrap();
    let (out, message) = run_job(&api, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(5), "busy: another cluster owns the location");
    assert!(message.contains("k10-dr-remove-to-get-ownership") && message.contains("take-ownership"), "{message}");
    assert_eq!(last_run(&api)["result"], "Failed");
    assert_eq!(std::fs::read_dir(dir.path().join("mnt")).unwrap().count(), 0, "nothing was written");
}

// Multi-threaded: the test blocks on the job process while the API server serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_passphrase_fails_before_anything_is_written() {
    let api = source_cluster(json!({"file": {"claimName": "dr-nfs"}})).await;
    // Replace the raw passphrase with a Vault source the job was given no Vault for.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mnt")).unwrap();
    let client = api.client();
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, NS);
    secrets.delete("k10-dr-secret", &Default::default()).await.unwrap();
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": NS},
                    "data": {"source": b64("vault"), "vault-kv-version": b64("KVv2"), "vault-mount-path": b64("secret"), "vault-secret-path": b64("k10"), "key": b64("passphrase")}}));
    let (out, message) = run_job(&api, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "bad input");
    assert!(message.contains("vault.enabled=true"), "{message}");
    assert_eq!(std::fs::read_dir(dir.path().join("mnt")).unwrap().count(), 0, "nothing was written");
}

/// An S3 endpoint whose certificate a private CA signed: the profile names a ConfigMap with
/// that CA (`caBundleConfigMap`), which the job reads through the API; without it the job
/// fails with a message that says what to set, and a ConfigMap without the key is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_trusts_the_ca_bundle_its_profile_names() {
    let ca = support::test_ca();
    let s3 = support::moto_tls_signed_by(&ca);
    support::moto_setup(&s3, &["bucket", "dr-private"], None);
    let spec = |config_map: Option<&str>| {
        let mut s3_spec = json!({"bucket": "dr-private", "region": "us-east-1", "endpoint": s3.url, "pathStyle": true});
        if let Some(name) = config_map {
            s3_spec["caBundleConfigMap"] = json!(name);
        }
        json!({"s3": s3_spec})
    };
    let env = [("AWS_ACCESS_KEY_ID", "test".to_owned()), ("AWS_SECRET_ACCESS_KEY", "test".to_owned())];

    let api = source_cluster(spec(None)).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, message) = run_job(&api, dir.path(), &env);
    assert!(!out.status.success());
    assert!(message.contains("not trusted") && message.contains("--s3-ca-bundle"), "{message}");

    let api = source_cluster(spec(Some("private-ca"))).await;
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "private-ca", "namespace": NS}, "data": {"other": "x"}}));
    let (out, message) = run_job(&api, dir.path(), &env);
    assert!(!out.status.success());
    assert!(message.contains("ConfigMap private-ca") && message.contains("lacks the key ca.crt"), "{message}");

    let api = source_cluster(spec(Some("private-ca"))).await;
    let pem = std::fs::read_to_string(&ca.ca).unwrap();
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "private-ca", "namespace": NS}, "data": {"ca.crt": pem}}));
    let (out, message) = run_job(&api, dir.path(), &env);
    assert!(out.status.success(), "{message}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(last_run(&api)["result"], "Succeeded");
}

// Multi-threaded: the test blocks on the job process while the API server serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_writes_to_an_immutable_bucket_with_put_object_only_credentials() {
    let s3 = support::moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "7".into())]);
    support::moto_setup(&s3, &["bucket", "dr-offsite", "lock"], None);
    let users = support::moto_setup(&s3, &["users", "dr-offsite"], None);
    let api = source_cluster(json!({"s3": {"bucket": "dr-offsite", "prefix": "prod", "region": "us-east-1", "endpoint": s3.url, "pathStyle": true, "credentialsSecret": "offsite-writer"},
                                    "immutability": {"protectionDays": 1}})).await;
    let key = |u: &str, k: &str| users[u][k].as_str().unwrap().to_owned();
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "offsite-writer", "namespace": NS},
                    "data": {"aws_access_key_id": b64(&key("writer", "access_key_id")), "aws_secret_access_key": b64(&key("writer", "secret_access_key"))}}));
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run_job(&api, dir.path(), &[]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Read back with read-only credentials.
    let reader = Location::connect(&LocationConfig::S3(S3Config {
        bucket: "dr-offsite".into(),
        prefix: "prod".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(s3.url.clone()),
        path_style: true,
        credentials: Some(StaticCredentials {
            access_key_id: key("reader", "access_key_id"),
            secret_access_key: zeroize::Zeroizing::new(key("reader", "secret_access_key")),
            session_token: None,
        }),
        ..Default::default()
    }))
    .await
    .unwrap();
    let cluster_id = summary["clusterId"].as_str().unwrap();
    let points = point::list_points(&reader, cluster_id).await.unwrap();
    assert_eq!(points.len(), 1);
    assert!(points[0].complete);
    let head = reader.head(&point::object_key(cluster_id, &points[0].id, point::MANIFEST_OBJECT), None).await.unwrap();
    assert_eq!(head.retention.map(|r| r.0).as_deref(), Some("COMPLIANCE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_resolves_a_vault_passphrase_with_kubernetes_auth() {
    let api = source_cluster(json!({"file": {"claimName": "dr-nfs"}})).await;
    let vault = support::vault_with_kubernetes_auth(&api, PASS).await;
    // k10-dr-secret names the Vault secret, exactly as the seed documents it.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(api.client(), NS);
    secrets.delete("k10-dr-secret", &Default::default()).await.unwrap();
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": NS},
                    "data": {"source": b64("vault"), "vault-kv-version": b64("KVv2"), "vault-mount-path": b64("secret"), "vault-secret-path": b64("k10"), "key": b64("passphrase")}}));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mnt")).unwrap();
    // The pod's service-account token, where the chart's vault.serviceAccountTokenPath points.
    let token_path = dir.path().join("sa-token");
    std::fs::write(&token_path, api.issue_token(NS, "kubectl-dr-backup")).unwrap();
    let env = [("DR_VAULT_ADDRESS", vault.url.clone()), ("DR_VAULT_ROLE", "dr".to_owned()), ("DR_VAULT_SA_TOKEN_PATH", token_path.display().to_string())];
    let (out, _) = run_job(&api, dir.path(), &env);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Sealed with the Vault-held passphrase: it opens with the same passphrase given raw.
    let loc = Location::connect(&LocationConfig::File { path: dir.path().join("mnt") }).await.unwrap();
    let unlocker = Unlocker::new(Passphrase::new(PASS.into()).unwrap());
    point::verify_point(&loc, summary["clusterId"].as_str().unwrap(), summary["restorePoint"].as_str().unwrap(), &unlocker).await.unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PASS));
}

/// The environment a kubelet would give the CronJob's container: its `env`, with the
/// downward-API namespace resolved, and the location volume's mount at `mount`.
fn cronjob_environment(api: &ApiServer, mount: &Path) -> (Vec<(String, String)>, String) {
    let cron = api.objects("batch", "cronjobs").into_iter().find(|c| c["metadata"]["name"] == "k10-disaster-recovery-policy").unwrap();
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"], json!(["backup"]));
    let mut env = Vec::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = match (&e["value"], &e["valueFrom"]["fieldRef"]["fieldPath"]) {
            (Value::String(v), _) => v.clone(),
            (_, Value::String(f)) if f == "metadata.namespace" => NS.to_owned(),
            other => panic!("unexpected env source {other:?}"),
        };
        // The volume is mounted where the pod spec says; here that path is `mount`.
        let value = if name == "DR_LOCATION_MOUNT" { mount.display().to_string() } else { value };
        env.push((name, value));
    }
    (env, pod["serviceAccountName"].as_str().unwrap().to_owned())
}

fn run_as_cronjob(api: &ApiServer, dir: &Path) -> (Output, String) {
    let mount = dir.join("mnt");
    std::fs::create_dir_all(&mount).unwrap();
    let (env, service_account) = cronjob_environment(api, &mount);
    let kubeconfig = dir.join("sa-kubeconfig");
    api.write_token_kubeconfig(&kubeconfig, NS, &api.issue_token(NS, &service_account));
    let termination = dir.join("termination-log");
    let out = Command::new(env!("CARGO_BIN_EXE_dr-job"))
        .arg("backup")
        .env_clear()
        .envs(env)
        .env("KUBECONFIG", &kubeconfig)
        .env("DR_TERMINATION_LOG", &termination)
        .output()
        .unwrap();
    let message = support::kubelet::termination_message(&termination, out.status.code().unwrap_or(137), false, "");
    (out, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_runs_with_the_cronjobs_environment_and_least_privilege_service_account() {
    let api = ApiServer::start().await;
    api.install_dr_crds();
    for ns in [NS, "shop"] {
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": NS}, "spec": {"file": {"claimName": "dr-nfs"}}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}}));
    api.enforce_rbac();
    let settings = |mode| dr_core::dr_policy::EnableSettings {
        pushgateway_url: None,
        namespace: NS.into(),
        profile: "offsite".into(),
        source: dr_core::passphrase::PassphraseSource::Raw(Passphrase::new(PASS.into()).unwrap()),
        frequency: "@hourly".into(),
        policy: dr_core::resources::PolicySpec { profile: "offsite".into(), frequency: "@hourly".into(), mode, ..Default::default() },
        image: "localhost/kubectl-dr/dr-job:test".into(),
        image_pull_secrets: vec![],
        vault_address: None,
        vault_token_secret: None,
        vault_role: None,
        vault_ca_bundle: None,
    };
    dr_core::dr_policy::enable(&api.client(), &settings(dr_core::catalog::Mode::Quick)).await.unwrap();

    // Quick mode under quick-mode RBAC: works.
    let dir = tempfile::tempdir().unwrap();
    let (out, message) = run_as_cronjob(&api, dir.path());
    assert!(out.status.success(), "stderr: {}\nmessage: {message}", String::from_utf8_lossy(&out.stderr));
    let summary = report_of(&message);
    assert!(summary["byCategory"].get("applications").is_none(), "{summary}");

    // Full mode still under quick-mode RBAC: the account may not list application kinds,
    // and the job says so (the RBAC is enforced, and is as narrow as quick mode needs).
    let policies: kube::Api<dr_core::resources::Policy> = kube::Api::namespaced(api.client(), NS);
    policies.patch("k10-disaster-recovery-policy", &Default::default(), &kube::api::Patch::Merge(json!({"spec": {"mode": "full"}}))).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, message) = run_as_cronjob(&api, dir.path());
    assert_eq!(out.status.code(), Some(2), "bad input: the RBAC must change");
    assert!(message.contains("may not list") && message.contains("kubectl dr enable"), "{message}");

    // Re-enabling in full mode grants what full mode reads: now it works.
    dr_core::dr_policy::enable(&api.client(), &settings(dr_core::catalog::Mode::Full)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, message) = run_as_cronjob(&api, dir.path());
    assert!(out.status.success(), "stderr: {}\nmessage: {message}", String::from_utf8_lossy(&out.stderr));
    let summary = report_of(&message);
    // The shop ConfigMap, the DR namespace's own ServiceAccount, Role and RoleBinding, and the
    // kube-root-ca.crt the cluster publishes in each of the 3 namespaces read (a restore leaves
    // those to the target).
    assert_eq!(summary["byCategory"]["applications"].as_u64(), Some(4 + 3), "{summary}");

    // The grant names each resource it reads: no `*`, which would also grant subresources
    // such as nodes/proxy, pods/exec or serviceaccounts/token.
    let role =
        api.objects("rbac.authorization.k8s.io", "clusterroles").into_iter().find(|r| r["metadata"]["name"] == format!("kubectl-dr-backup-{NS}")).unwrap();
    let rules = role["rules"].as_array().unwrap();
    assert!(rules.iter().all(|r| !r["resources"].as_array().unwrap().iter().any(|x| x == "*" || x.as_str().unwrap().contains('/'))), "{rules:?}");
    assert!(rules.iter().all(|r| !r["apiGroups"].as_array().unwrap().contains(&json!("*"))), "{rules:?}");
    assert!(rules.iter().any(|r| r["apiGroups"] == json!(["apps"]) && r["resources"].as_array().unwrap().contains(&json!("deployments"))), "{rules:?}");

    // A kind installed after enable is not granted: the backup fails and says what to do;
    // enable again grants it.
    api.seed(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.shop.example.com"},
        "spec": {"group": "shop.example.com", "scope": "Namespaced", "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}));
    let dir = tempfile::tempdir().unwrap();
    let (out, message) = run_as_cronjob(&api, dir.path());
    assert_eq!(out.status.code(), Some(2), "{message}");
    assert!(message.contains("widgets.shop.example.com") && message.contains("kubectl dr enable"), "{message}");
    // The failure is in the Policy's conditions and Events, for people and monitoring; the
    // last good backup is still the one before.
    let policy = api.objects("dr.kubectl-dr.io", "policies").pop().unwrap();
    let condition = |t: &str| policy["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap().clone();
    assert_eq!(condition("LastBackupSucceeded")["status"], "False", "{policy}");
    assert_eq!(condition("Ready")["reason"], "LastBackupFailed", "{policy}");
    assert!(condition("Ready")["message"].as_str().unwrap().contains("widgets.shop.example.com"), "{policy}");
    let good = policy["status"]["lastSuccessfulRestorePoint"].as_str().expect("the earlier good backup").to_owned();
    assert_eq!(policy["status"]["lastRuns"][1]["restorePoint"], good.as_str());
    let events = api.objects("events.k8s.io", "events");
    let regarding_policy = |reason: &str| {
        events.iter().filter(|e| e["reason"] == reason && e["regarding"]["kind"] == "Policy" && e["regarding"]["uid"] == policy["metadata"]["uid"]).count()
    };
    assert!(regarding_policy("BackupSucceeded") >= 2 && regarding_policy("BackupFailed") >= 2, "{events:?}");
    assert!(events.iter().any(|e| e["type"] == "Warning" && e["note"].as_str().unwrap().contains("kubectl dr enable")), "{events:?}");
    dr_core::dr_policy::enable(&api.client(), &settings(dr_core::catalog::Mode::Full)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, message) = run_as_cronjob(&api, dir.path());
    assert!(out.status.success(), "stderr: {}\nmessage: {message}", String::from_utf8_lossy(&out.stderr));
    let policy = api.objects("dr.kubectl-dr.io", "policies").pop().unwrap();
    let ready = policy["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    assert_eq!((ready["status"].as_str(), ready["reason"].as_str()), (Some("True"), Some("BackupSucceeded")), "{policy}");
    assert_eq!(policy["status"]["lastSuccessfulRestorePoint"], report_of(&message)["restorePoint"]);
}

/// The series `deploy/monitoring/kube-state-metrics.yaml` makes of `object`, as
/// kube-state-metrics' custom-resource-state gauges do (no kube-state-metrics binary is in a
/// package registry): `metricNamePrefix` + `_` + name; the resource's `labelsFromPath`; a
/// path to a list gives one series per element, with the metric's `labelsFromPath` and
/// `valueFrom` relative to it; values are numbers, booleans, "True"/"False" (any case) or
/// RFC 3339 times (Unix seconds). A path that is absent gives no series.
fn kube_state_metrics_series(config: &Value, object: &Value) -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    fn at<'a>(v: &'a Value, path: &Value) -> Option<&'a Value> {
        path.as_array().unwrap().iter().try_fold(v, |v, k| v.get(k.as_str().unwrap()))
    }
    fn number(v: &Value) -> f64 {
        match v {
            Value::Number(n) => n.as_f64().unwrap(),
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::String(s) if s.eq_ignore_ascii_case("true") => 1.0,
            Value::String(s) if s.eq_ignore_ascii_case("false") => 0.0,
            Value::String(s) => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| t.unix_timestamp() as f64)
                .unwrap_or_else(|_| s.parse().unwrap()),
            other => panic!("kube-state-metrics cannot make a value of {other}"),
        }
    }
    let mut series = Vec::new();
    for resource in config["spec"]["resources"].as_array().unwrap() {
        let gvk = &resource["groupVersionKind"];
        assert_eq!(object["apiVersion"], format!("{}/{}", gvk["group"].as_str().unwrap(), gvk["version"].as_str().unwrap()));
        assert_eq!(object["kind"], gvk["kind"]);
        let mut common = std::collections::BTreeMap::new();
        for (label, path) in resource["labelsFromPath"].as_object().unwrap() {
            common.insert(label.clone(), at(object, path).unwrap().as_str().unwrap().to_owned());
        }
        for metric in resource["metrics"].as_array().unwrap() {
            let name = format!("{}_{}", resource["metricNamePrefix"].as_str().unwrap(), metric["name"].as_str().unwrap());
            let gauge = &metric["each"]["gauge"];
            assert_eq!(metric["each"]["type"], "Gauge");
            let Some(found) = at(object, &gauge["path"]) else { continue };
            let elements = found.as_array().cloned().unwrap_or_else(|| vec![found.clone()]);
            for element in elements {
                let mut labels = common.clone();
                for (label, path) in gauge["labelsFromPath"].as_object().into_iter().flatten() {
                    labels.insert(label.clone(), at(&element, path).unwrap().as_str().unwrap().to_owned());
                }
                let value = match gauge.get("valueFrom") {
                    Some(path) => at(&element, path).unwrap(),
                    None => &element,
                };
                series.push((name.clone(), labels, number(value)));
            }
        }
    }
    series
}

/// The monitoring kit end to end, as far as one machine can take it: the Policy status that
/// real backup runs leave goes through the kube-state-metrics configuration, and Prometheus'
/// rule checker (promtool) evaluates the alert rules on those series: the failed run raises
/// KubectlDrLastBackupFailed at once, and once twice the hourly schedule has gone by without
/// a good backup, KubectlDrNoRecentBackup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policys_status_feeds_the_monitoring_configuration_and_its_alerts_fire() {
    let monitoring = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring");
    let api = source_cluster(json!({"file": {"claimName": "dr-nfs"}})).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mnt")).unwrap();
    let (out, _) = run_job(&api, dir.path(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The next run fails: the passphrase secret is gone.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(api.client(), NS);
    secrets.delete("k10-dr-secret", &Default::default()).await.unwrap();
    let (out, _) = run_job(&api, dir.path(), &[]);
    assert!(!out.status.success());

    let policy = api.objects("dr.kubectl-dr.io", "policies").pop().unwrap();
    let config: Value = serde_yaml::from_str(&std::fs::read_to_string(monitoring.join("kube-state-metrics.yaml")).unwrap()).unwrap();
    let series = kube_state_metrics_series(&config, &policy);
    let value = |name: &str, label: Option<(&str, &str)>| {
        series.iter().find(|(n, l, _)| n == name && label.is_none_or(|(k, v)| l.get(k).map(String::as_str) == Some(v))).map(|s| s.2)
    };
    assert_eq!(value("kubectl_dr_policy_backup_interval_seconds", None), Some(3600.0), "{series:?}");
    assert_eq!(value("kubectl_dr_policy_condition", Some(("type", "LastBackupSucceeded"))), Some(0.0), "{series:?}");
    assert_eq!(value("kubectl_dr_policy_condition", Some(("type", "Ready"))), Some(0.0), "{series:?}");
    let last_good = value("kubectl_dr_policy_last_successful_backup_timestamp_seconds", None).expect("the good run's time");
    let created = value("kubectl_dr_policy_created_timestamp_seconds", None).unwrap();
    assert!(last_good >= created && last_good - created < 600.0, "{series:?}");

    // promtool's clock starts at 0: times are shifted so that the good backup is at 0.
    let mut input = Vec::new();
    for (name, labels, v) in &series {
        let v = if name.ends_with("_timestamp_seconds") { v - last_good } else { *v };
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        input.push(json!({"series": format!("{name}{{{}}}", labels.join(",")), "values": format!("{v}x300")}));
    }
    let alert = |name: &str, labels: Value, annotations: Value| json!({"alertname": name, "exp_labels": labels, "exp_annotations": annotations});
    let stale = |at: &str| {
        alert(
            "KubectlDrNoRecentBackup",
            json!({"severity": "critical", "namespace": NS, "policy": "k10-disaster-recovery-policy"}),
            json!({"summary": format!("No good DR backup of {NS}/k10-disaster-recovery-policy within twice its schedule"),
                   "description": format!("The last good backup finished {at} ago (or the policy never backed up since its creation that long ago). Check `kubectl dr status -n {NS}` and the policy's Events.")}),
        )
    };
    let failed = alert(
        "KubectlDrLastBackupFailed",
        json!({"severity": "warning", "namespace": NS, "policy": "k10-disaster-recovery-policy", "reason": "BackupFailed"}),
        json!({"summary": format!("The last DR backup of {NS}/k10-disaster-recovery-policy failed (BackupFailed)"),
               "description": format!("`kubectl describe policy -n {NS} k10-disaster-recovery-policy` shows the error; `kubectl dr backup -n {NS}` runs it again.")}),
    );
    let case = |at: &str, name: &str, expected: Vec<Value>| {
        let alerts: Vec<Value> = expected
            .into_iter()
            .map(|mut a| {
                a.as_object_mut().unwrap().remove("alertname");
                a
            })
            .collect();
        json!({"eval_time": at, "alertname": name, "exp_alerts": alerts})
    };
    let tests = json!({
        "rule_files": [monitoring.join("prometheus-rules.yaml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input, "alert_rule_test": [
            case("10m", "KubectlDrLastBackupFailed", vec![failed.clone()]),
            case("1h", "KubectlDrNoRecentBackup", vec![]),
            case("2h", "KubectlDrNoRecentBackup", vec![]),
            case("2h10m", "KubectlDrNoRecentBackup", vec![stale("2h 10m 0s")]),
        ]}],
    });
    let file = dir.path().join("alerts-test.yaml");
    std::fs::write(&file, serde_yaml::to_string(&tests).unwrap()).unwrap();
    let promtool =
        Command::new("promtool").args(["test", "rules"]).arg(&file).output().expect("promtool (Debian's prometheus package; scripts/test installs it)");
    assert!(
        promtool.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr),
        std::fs::read_to_string(&file).unwrap()
    );
}

/// With `DR_PUSHGATEWAY_URL` (the CronJob's, from `enable --pushgateway-url`) each run pushes
/// its metrics to a real Pushgateway; a failed run says so and keeps the last good run's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_run_pushes_its_metrics_to_the_pushgateway() {
    dr_core::init_crypto_provider();
    let gateway = support::pushgateway();
    let api = source_cluster(json!({"file": {"claimName": "dr-nfs"}})).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mnt")).unwrap();
    let env = [("DR_PUSHGATEWAY_URL", gateway.url.clone())];
    let scrape = || async { reqwest::get(format!("{}/metrics", gateway.url)).await.unwrap().text().await.unwrap() };
    let one = |text: &str, metric: &str| {
        let found = support::samples(text, metric);
        assert_eq!(found.len(), 1, "{metric} in:\n{text}");
        let (labels, value) = found[0].clone();
        assert!(
            labels.contains(&format!("namespace=\"{NS}\""))
                && labels.contains("policy=\"k10-disaster-recovery-policy\"")
                && labels.contains("job=\"kubectl_dr_backup\""),
            "{labels}"
        );
        value
    };

    let (out, message) = run_job(&api, dir.path(), &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = report_of(&message);
    let text = scrape().await;
    assert_eq!(one(&text, "kubectl_dr_backup_success"), 1.0);
    assert_eq!(one(&text, "kubectl_dr_backup_objects"), summary["objects"].as_f64().unwrap());
    assert_eq!(one(&text, "kubectl_dr_backup_stored_bytes"), summary["storedBytes"].as_f64().unwrap());
    let good = one(&text, "kubectl_dr_backup_last_success_timestamp_seconds");
    assert!((good - time::OffsetDateTime::now_utc().unix_timestamp() as f64).abs() < 120.0, "{good}");

    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(api.client(), NS);
    secrets.delete("k10-dr-secret", &Default::default()).await.unwrap();
    let (out, _) = run_job(&api, dir.path(), &env);
    assert!(!out.status.success());
    let text = scrape().await;
    assert_eq!(one(&text, "kubectl_dr_backup_success"), 0.0);
    assert_eq!(one(&text, "kubectl_dr_backup_last_success_timestamp_seconds"), good, "the last good run's time stays");
    assert!(one(&text, "kubectl_dr_backup_last_run_timestamp_seconds") >= good);

    // A Pushgateway that is not there never fails a backup.
    let gone = format!("http://127.0.0.1:{}", support::free_port());
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": NS}, "data": {"key": b64(PASS)}}));
    let (out, _) = run_job(&api, dir.path(), &[("DR_PUSHGATEWAY_URL", gone)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not push metrics"));
}
