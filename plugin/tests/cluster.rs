//! The cluster commands through the real `kubectl-dr` binary against the test API server:
//! profile create/list, enable (twice: idempotent), status, backup --local, Run Once,
//! disable. Run Once's Job is played out by the test (the test API server runs no Job
//! controller and no kubelet; `support::kubelet` plays both where a test starts it): it checks
//! the Job is the CronJob's template and reports a result the way a kubelet does, through the
//! pod's termination message.

use dr_test_support as support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};
use support::apiserver::ApiServer;

const NS: &str = "kasten-io";
const PASS: &str = "correct horse battery staple";

fn dr(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("DR_LOCATION_PATH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

use support::succeeded as ok;

fn one(api: &ApiServer, group: &str, plural: &str, name: &str) -> Option<Value> {
    api.objects(group, plural).into_iter().find(|o| o["metadata"]["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_status_backup_and_disable_on_a_cluster() {
    let api = ApiServer::start().await;
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "dr-nfs", "namespace": NS}, "spec": {"accessModes": ["ReadWriteMany"]}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc, "default");

    // A profile for an NFS share, through its PVC.
    let out = ok(&dr(&kc, &["profile", "create", "offsite", "--pvc", "dr-nfs"], ""));
    assert!(out.contains("profile offsite saved"), "{out}");
    let out = ok(&dr(&kc, &["profile", "list"], ""));
    assert!(out.contains("offsite") && out.contains("pvc/dr-nfs"), "{out}");
    let err = dr(&kc, &["profile", "create", "broken", "--pvc", "missing-claim"], "");
    assert_eq!(err.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&err.stderr).contains("PersistentVolumeClaim missing-claim not found"));

    // A weak raw passphrase is refused (a strength estimator, not a length rule: this one is
    // long), before anything is written; --allow-weak-passphrase takes it with a warning.
    let weak = dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-"], "passwordpassword123\n");
    assert_eq!(weak.status.code(), Some(2));
    let err = String::from_utf8_lossy(&weak.stderr);
    assert!(err.contains("weak") && err.contains("--allow-weak-passphrase") && !err.contains("passwordpassword123"), "{err}");
    assert!(one(&api, "", "secrets", "k10-dr-secret").is_none(), "nothing is written before the check");
    let out = dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-", "--allow-weak-passphrase"], "passwordpassword123\n");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("warning: the DR passphrase is weak"));

    // Enable, twice: the second run updates, never duplicates.
    let out = ok(&dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-"], &format!("{PASS}\n")));
    let cluster_id = one(&api, "", "namespaces", "default").unwrap()["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(out.contains(&format!("Cluster ID: {cluster_id}")) && out.contains("Keep these three"), "{out}");
    ok(&dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-", "--frequency", "0 3 * * *", "--image-tag", "1.2.3"], &format!("{PASS}\n")));
    assert_eq!(api.objects("batch", "cronjobs").len(), 1);
    assert_eq!(api.objects("dr.kubectl-dr.io", "policies").len(), 1);
    let cron = one(&api, "batch", "cronjobs", "k10-disaster-recovery-policy").unwrap();
    assert_eq!(cron["spec"]["schedule"], "0 3 * * *");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "kubectl-dr-backup");
    // The build's repository (localhost/kubectl-dr/dr-job unless DR_IMAGE_REPOSITORY was set).
    assert!(pod["containers"][0]["image"].as_str().unwrap().ends_with("/dr-job:1.2.3"), "{}", pod["containers"][0]["image"]);
    assert_eq!(pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["volumes"][1]["persistentVolumeClaim"]["claimName"], "dr-nfs");
    let secret = one(&api, "", "secrets", "k10-dr-secret").unwrap();
    assert!(secret["data"]["key"].is_string());
    assert!(one(&api, "rbac.authorization.k8s.io", "clusterroles", "kubectl-dr-backup-kasten-io").is_some());
    assert!(one(&api, "rbac.authorization.k8s.io", "rolebindings", "kubectl-dr-backup").is_some());
    // An air-gapped mirror: the image keeps its name and tag under the mirror's path.
    ok(&dr(
        &kc,
        &["enable", "--profile", "offsite", "--passphrase-file", "-", "--frequency", "0 3 * * *", "--airgapped-repository", "mirror.example.com:5000/dr"],
        &format!("{PASS}\n"),
    ));
    let cron = one(&api, "batch", "cronjobs", "k10-disaster-recovery-policy").unwrap();
    let image = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned();
    assert_eq!(image, format!("mirror.example.com:5000/dr/dr-job:{}", env!("CARGO_PKG_VERSION")));
    // A bad schedule is refused before anything changes.
    let bad = dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-", "--frequency", "every hour"], &format!("{PASS}\n"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid --frequency"));

    let status: Value = serde_json::from_str(&ok(&dr(&kc, &["status", "-o", "json"], ""))).unwrap();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["clusterId"], cluster_id);
    assert_eq!(status["schedule"], "0 3 * * *");
    assert!(status["nextRun"].as_str().unwrap().contains("T03:00:00"), "{status}");
    assert_eq!(status["ownsLocation"], true);

    // backup --local: the job's code from here, into the share mounted at `mnt`.
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let out = ok(&dr(&kc, &["backup", "--local", "--path", mnt.to_str().unwrap()], ""));
    assert!(out.contains("restore point") && out.contains(&cluster_id), "{out}");
    let listed =
        ok(&dr(&kc, &["restore-points", "--cluster-id", &cluster_id, "--path", mnt.to_str().unwrap(), "--passphrase-file", "-"], &format!("{PASS}\n")));
    assert!(listed.lines().nth(1).is_some_and(|l| l.contains("complete") && l.contains("full")), "{listed}");
    ok(&dr(&kc, &["verify", "--cluster-id", &cluster_id, "--path", mnt.to_str().unwrap(), "--passphrase-file", "-"], &format!("{PASS}\n")));
    let status: Value = serde_json::from_str(&ok(&dr(&kc, &["status", "-o", "json"], ""))).unwrap();
    assert_eq!(status["lastRuns"][0]["result"], "Succeeded", "{status}");
    // Prune keeps the only point, whatever the retention.
    let pruned: Value = serde_json::from_str(&ok(&dr(&kc, &["prune", "--path", mnt.to_str().unwrap(), "--dry-run", "-o", "json"], ""))).unwrap();
    assert_eq!(pruned["kept"].as_array().unwrap().len(), 1, "{pruned}");
    assert!(pruned["pruned"].as_array().unwrap().is_empty(), "{pruned}");

    // Run Once: a Job from the CronJob, watched to the end.
    let kc2 = kc.clone();
    let run = std::thread::spawn(move || dr(&kc2, &["backup", "--timeout", "60s"], ""));
    let jobs: Api<Job> = Api::namespaced(api.client(), NS);
    let job = loop {
        if let Some(j) = api.objects("batch", "jobs").pop() {
            break j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    let job_uid = job["metadata"]["uid"].clone();
    assert_eq!(job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"], "manual");
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(job["spec"]["template"]["spec"], cron_pod_spec(&api), "the Job runs the CronJob's pod template");
    api.seed(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{name}-abcde"), "namespace": NS, "labels": {"job-name": name, "batch.kubernetes.io/controller-uid": job_uid}},
                    "spec": {"containers": [{"name": "backup", "image": "x"}]},
                    "status": {"containerStatuses": [{"name": "backup", "state": {"terminated": {"exitCode": 0, "message": "{\"report\":{\"restorePoint\":\"20261121T100000.000Z-feedbeef\",\"objects\":7}}"}}}]}}));
    // What the Job controller writes when the pod succeeded: the count, then the conditions
    // that are its verdict.
    let complete = |ty: &str| json!({"type": ty, "status": "True", "reason": "CompletionsReached"});
    jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": {"succeeded": 1}}))).await.unwrap();
    jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": [complete("SuccessCriteriaMet"), complete("Complete")]}})))
        .await
        .unwrap();
    let out = run.join().unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("20261121T100000.000Z-feedbeef"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("succeeded"));

    // Disable: policy, CronJob and RBAC go; the secret and the points stay.
    let out = ok(&dr(&kc, &["disable"], ""));
    assert!(out.contains("removed cronjob") && out.contains("kept k10-dr-secret"), "{out}");
    assert!(api.objects("batch", "cronjobs").is_empty());
    assert!(api.objects("dr.kubectl-dr.io", "policies").is_empty());
    assert!(one(&api, "rbac.authorization.k8s.io", "clusterroles", "kubectl-dr-backup-kasten-io").is_none());
    assert!(one(&api, "", "secrets", "k10-dr-secret").is_some());
    let status: Value = serde_json::from_str(&ok(&dr(&kc, &["status", "-o", "json"], ""))).unwrap();
    assert_eq!(status["enabled"], false);
}

fn cron_pod_spec(api: &ApiServer) -> Value {
    one(api, "batch", "cronjobs", "k10-disaster-recovery-policy").unwrap()["spec"]["jobTemplate"]["spec"]["template"]["spec"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_cluster_reports_it_does_not_own_the_location_and_refuses_to_back_up() {
    let api = ApiServer::start().await;
    api.install_dr_crds();
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k10-dr-remove-to-get-ownership", "namespace": NS}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": NS}, "spec": {"file": {"claimName": "x"}}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Policy", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": NS}, "spec": {"profile": "offsite", "frequency": "@hourly"}}));
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc, NS);
    let status: Value = serde_json::from_str(&ok(&dr(&kc, &["status", "-o", "json"], ""))).unwrap();
    assert_eq!(status["ownsLocation"], false);
    // Busy (exit 5): another cluster owns the location.
    let out = dr(&kc, &["backup", "--local", "--path", dir.path().to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("take-ownership"));
    let out = dr(&kc, &["prune", "--path", dir.path().to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(5), "two owners must never prune one location");
    assert!(String::from_utf8_lossy(&out.stderr).contains("k10-dr-remove-to-get-ownership"));
    // Missing profile and unknown namespace also fail clearly.
    let out = dr(&kc, &["enable", "--profile", "nope", "--passphrase-file", "-"], &format!("{PASS}\n"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("location profile nope not found"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A store and a Vault behind a private CA: `profile create --s3-ca-bundle FILE` checks the
/// bucket with it and keeps it in a ConfigMap the profile names; `enable --vault-ca-bundle
/// FILE` keeps Vault's in a ConfigMap the CronJob mounts and names to the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_certificate_authorities_reach_the_cluster_side() {
    let api = ApiServer::start().await;
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc, "default");
    let ca = support::test_ca();
    let s3 = support::moto_tls_signed_by(&ca);
    support::moto_setup(&s3, &["bucket", "dr-private"], None);
    let creds = dir.path().join("credentials");
    std::fs::write(&creds, "[default]\naws_access_key_id = test\naws_secret_access_key = test\n").unwrap();
    let create = |extra: &[&str]| {
        let mut args =
            vec!["profile", "create", "private", "--s3-bucket", "dr-private", "--s3-region", "us-east-1", "--s3-endpoint", &s3.url, "--s3-path-style"];
        args.extend_from_slice(&["--s3-credentials-file", creds.to_str().unwrap()]);
        args.extend_from_slice(extra);
        dr(&kc, &args, "")
    };

    // Without the CA the check fails and says what to give.
    let out = create(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--s3-ca-bundle"), "{}", String::from_utf8_lossy(&out.stderr));
    // A file that is not a CA bundle is refused by name.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "junk").unwrap();
    let err = String::from_utf8_lossy(&create(&["--s3-ca-bundle", junk.to_str().unwrap()]).stderr).into_owned();
    assert!(err.contains("junk.pem") && err.contains("no certificate"), "{err}");
    // With it: checked, saved, and the profile names the ConfigMap holding it.
    ok(&create(&["--s3-ca-bundle", ca.ca.to_str().unwrap()]));
    let profile = one(&api, "dr.kubectl-dr.io", "profiles", "private").unwrap();
    assert_eq!(profile["spec"]["s3"]["caBundleConfigMap"], "private-ca-bundle");
    let map = one(&api, "", "configmaps", "private-ca-bundle").unwrap();
    assert_eq!(map["data"]["ca.crt"].as_str().unwrap(), std::fs::read_to_string(&ca.ca).unwrap());

    // Vault's CA: enable reads the passphrase with it, and keeps it for the DR CronJob.
    let (vault, vault_ca) = support::openbao_tls();
    support::wait_vault_healthy(&vault).await;
    support::bao(&vault, reqwest::Method::POST, "secret/data/k10", Some(json!({"data": {"passphrase": PASS}}))).await;
    let token = dir.path().join("token");
    std::fs::write(&token, support::BAO_ROOT_TOKEN).unwrap();
    let enable = |extra: &[&str]| {
        let mut args = vec!["enable", "--profile", "private", "--passphrase-source", "vault", "--vault-address", &vault.url, "--vault-kv-version", "KVv2"];
        args.extend_from_slice(&["--vault-mount-path", "secret", "--vault-secret-path", "k10", "--vault-key", "passphrase"]);
        args.extend_from_slice(&["--vault-token-file", token.to_str().unwrap(), "--vault-token-secret", "vault-creds"]);
        args.extend_from_slice(extra);
        dr(&kc, &args, "")
    };
    let err = String::from_utf8_lossy(&enable(&[]).stderr).into_owned();
    assert!(err.contains("not trusted") && err.contains("--vault-ca-bundle"), "{err}");
    ok(&enable(&["--vault-ca-bundle", vault_ca.to_str().unwrap()]));
    let map = one(&api, "", "configmaps", "kubectl-dr-vault-ca").unwrap();
    assert_eq!(map["data"]["ca.crt"].as_str().unwrap(), std::fs::read_to_string(&vault_ca).unwrap());
    let pod = cron_pod_spec(&api);
    let env = &pod["containers"][0]["env"];
    let ca_path = env.as_array().unwrap().iter().find(|e| e["name"] == "DR_VAULT_CA_BUNDLE").unwrap()["value"].as_str().unwrap().to_owned();
    let mount = pod["containers"][0]["volumeMounts"].as_array().unwrap().iter().find(|m| m["name"] == "vault-ca").unwrap().clone();
    assert_eq!(ca_path, format!("{}/ca.crt", mount["mountPath"].as_str().unwrap()));
    assert!(pod["volumes"].as_array().unwrap().iter().any(|v| v["configMap"]["name"] == "kubectl-dr-vault-ca"));
    // disable removes it with the rest.
    ok(&dr(&kc, &["disable"], ""));
    assert!(one(&api, "", "configmaps", "kubectl-dr-vault-ca").is_none());
}
