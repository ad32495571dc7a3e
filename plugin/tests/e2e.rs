//! The end-to-end flow: profile create (S3 with Object Lock) → enable → backup → restore-points
//! → verify → status → disable, through the real `kubectl-dr` binary. It runs against the
//! in-process test API server, and unchanged against a real cluster when DR_E2E_KUBECONFIG
//! names one (then in a fresh DR namespace, removed afterwards; the CRDs stay). Assertions
//! go through the Kubernetes API only, so both kinds of server are checked the same way.
//!
//! The backup runs with `--local` (the job's code from the test machine), so moto on
//! loopback serves as the bucket in both cases; Run Once needs the job image in a registry
//! the cluster can pull from and is covered by tests/cluster.rs.
//!
//! The restore flow loses an application's objects and the DR policy, plans the restore
//! (`restore --dry-run`), runs the restore Job's code (`dr-job restore`, with the chart's
//! `DR_*` settings, from the test machine: the job image need not be in a registry) against
//! the cluster, and takes ownership. On a real cluster it exercises the real API server's
//! create, server-side apply, discovery, Lease and status handling.

use dr_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams};
use serde_json::Value;

const PASS: &str = "e2e passphrase: correct horse battery staple";

/// Where the tests run: the in-process API server, or a real cluster.
enum Target {
    /// Held so the in-process server lives as long as the test.
    Local {
        _server: support::apiserver::ApiServer,
    },
    Real,
}

struct Cluster {
    _target: Target,
    kubeconfig: PathBuf,
    client: kube::Client,
    namespace: String,
}

async fn cluster(dir: &Path) -> Cluster {
    dr_core::init_crypto_provider();
    match std::env::var_os("DR_E2E_KUBECONFIG") {
        Some(path) => {
            let kubeconfig = PathBuf::from(path);
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
            let mut tag = [0u8; 3];
            dr_core::format::crypto::fill_random(&mut tag);
            eprintln!("running against the real cluster in DR_E2E_KUBECONFIG ({})", config.cluster_url);
            Cluster { _target: Target::Real, kubeconfig, client: dr_core::kube_client(config).unwrap(), namespace: format!("dr-e2e-{}", hex::encode(tag)) }
        }
        None => {
            eprintln!("running against the in-process test API server (set DR_E2E_KUBECONFIG to run against a real cluster)");
            let api = support::apiserver::ApiServer::start().await;
            let kubeconfig = dir.join("kubeconfig");
            api.write_kubeconfig(&kubeconfig, "default");
            let client = api.client();
            Cluster { _target: Target::Local { _server: api }, kubeconfig, client, namespace: "kasten-io".into() }
        }
    }
}

impl Cluster {
    fn dr(&self, args: &[&str], env: &[(String, String)], stdin: &str) -> Output {
        use std::io::Write;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"));
        cmd.args(args)
            .args(["--kubeconfig", self.kubeconfig.to_str().unwrap(), "-n", &self.namespace])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    async fn cleanup(&self) {
        if matches!(self._target, Target::Real) {
            let _ = Api::<Namespace>::all(self.client.clone()).delete(&self.namespace, &DeleteParams::background()).await;
        }
    }
}

use support::succeeded as ok;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_backup_list_verify_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path()).await;
    let s3 = support::moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "7".into())]);
    support::moto_setup(&s3, &["bucket", "dr-e2e", "lock"], None);
    let users = support::moto_setup(&s3, &["users", "dr-e2e"], None);
    let creds = |u: &str| {
        vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), users[u]["access_key_id"].as_str().unwrap().to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), users[u]["secret_access_key"].as_str().unwrap().to_owned()),
        ]
    };
    let (writer, reader) = (creds("writer"), creds("reader"));
    let bucket = ["--s3-bucket", "dr-e2e", "--s3-prefix", "e2e", "--s3-endpoint", &s3.url, "--s3-path-style", "--s3-region", "us-east-1"];

    // The namespace, then a profile with write-only credentials (which cannot be validated).
    let ns = Api::<Namespace>::all(c.client.clone());
    if ns.get_opt(&c.namespace).await.unwrap().is_none() {
        let mut n = Namespace::default();
        n.metadata.name = Some(c.namespace.clone());
        ns.create(&Default::default(), &n).await.unwrap();
    }
    let mut args = vec!["profile", "create", "offsite", "--s3-credentials-from-env", "--immutable-days", "1"];
    args.extend(bucket);
    let refused = c.dr(&args, &writer, "");
    assert_eq!(refused.status.code(), Some(2), "write-only credentials cannot list, so validation fails");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--skip-validation"));
    args.push("--skip-validation");
    ok(&c.dr(&args, &writer, ""));
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), &c.namespace);
    assert!(secrets.get_opt("offsite-credentials").await.unwrap().is_some());
    // Read credentials from an AWS credentials file can list, so that profile validates.
    let creds_file = dir.path().join("aws-credentials");
    std::fs::write(&creds_file, format!("[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n", reader[0].1, reader[1].1)).unwrap();
    let mut args = vec!["profile", "create", "offsite-reader", "--s3-credentials-file", creds_file.to_str().unwrap(), "--immutable-days", "1"];
    args.extend(bucket);
    ok(&c.dr(&args, &[], ""));
    assert!(secrets.get_opt("offsite-reader-credentials").await.unwrap().is_some());

    let out = ok(&c.dr(&["enable", "--profile", "offsite", "--passphrase-file", "-", "--mode", "quick"], &[], &format!("{PASS}\n")));
    let cluster_id = out.lines().find_map(|l| l.strip_prefix("Cluster ID: ")).unwrap().to_owned();
    let default_uid = ns.get("default").await.unwrap().metadata.uid.unwrap();
    assert_eq!(cluster_id, default_uid, "the cluster ID is the default namespace's UID");
    assert!(Api::<CronJob>::namespaced(c.client.clone(), &c.namespace).get_opt("k10-disaster-recovery-policy").await.unwrap().is_some());

    // The backup writes with the profile's write-only credentials.
    let out = ok(&c.dr(&["backup", "--local"], &[], ""));
    assert!(out.contains("restore point"), "{out}");

    // Reading needs read credentials: list and verify what the backup wrote.
    let mut list = vec!["restore-points", "--cluster-id", &cluster_id, "--passphrase-file", "-", "-o", "json"];
    list.extend(bucket);
    let points: Value = serde_json::from_str(&ok(&c.dr(&list, &reader, &format!("{PASS}\n")))).unwrap();
    assert_eq!(points.as_array().unwrap().len(), 1, "{points}");
    assert_eq!(points[0]["status"], "complete");
    assert_eq!(points[0]["mode"], "quick");
    // Quick mode: the two profiles and their credentials Secrets, k10-dr-secret, the policy
    // and its CronJob.
    assert_eq!(points[0]["objects"], 7, "{points}");
    let mut verify = vec!["verify", "--cluster-id", &cluster_id, "--passphrase-file", "-"];
    verify.extend(bucket);
    assert!(ok(&c.dr(&verify, &reader, &format!("{PASS}\n"))).contains("OK "));

    let status: Value = serde_json::from_str(&ok(&c.dr(&["status", "-o", "json"], &[], ""))).unwrap();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["ownsLocation"], true);
    assert_eq!(status["lastRuns"][0]["result"], "Succeeded", "{status}");
    assert_eq!(status["lastRuns"][0]["restorePoint"], points[0]["id"]);

    ok(&c.dr(&["disable"], &[], ""));
    let status: Value = serde_json::from_str(&ok(&c.dr(&["status", "-o", "json"], &[], ""))).unwrap();
    assert_eq!(status["enabled"], false);
    assert!(secrets.get_opt("k10-dr-secret").await.unwrap().is_some(), "disable keeps the secret");
    c.cleanup().await;
}

/// The restore Job's code, run from here with the chart's settings and the given kubeconfig.
fn run_restore_job(c: &Cluster, cluster_id: &str, location: &Path, termination: &Path) -> Output {
    Command::new(support::workspace_binary("dr-job"))
        .arg("restore")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", &c.kubeconfig)
        .env("DR_NAMESPACE", &c.namespace)
        .env("DR_RESTORE_VALUES", serde_json::json!({"sourceClusterID": cluster_id, "profile": {"name": "nfs"}, "restore": {"timeout": 5}}).to_string())
        .env("DR_RESTORE_HOLDER", "k10-restore")
        .env("DR_LOCATION_MOUNT", location)
        .env("DR_TERMINATION_LOG", termination)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lose_an_application_then_restore_it_and_take_ownership() {
    use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim};
    let dir = tempfile::tempdir().unwrap();
    let c = cluster(dir.path()).await;
    let location = dir.path().join("nfs");
    std::fs::create_dir_all(&location).unwrap();
    let app_ns = format!("{}-app", c.namespace);
    let namespaces = Api::<Namespace>::all(c.client.clone());
    for name in [&c.namespace, &app_ns] {
        if namespaces.get_opt(name).await.unwrap().is_none() {
            let mut n = Namespace::default();
            n.metadata.name = Some(name.clone());
            namespaces.create(&Default::default(), &n).await.unwrap();
        }
    }
    // A file profile needs its PVC to exist (it need not be bound: the backup and the restore
    // run from here, on `location`).
    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({"metadata": {"name": "dr-nfs"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(c.client.clone(), &c.namespace).create(&Default::default(), &pvc).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), &app_ns);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "settings"}, "data": {"currency": "EUR"}})).unwrap();
    cms.create(&Default::default(), &cm).await.unwrap();

    ok(&c.dr(&["profile", "create", "nfs", "--pvc", "dr-nfs"], &[], ""));
    let out =
        ok(&c.dr(&["enable", "--profile", "nfs", "--passphrase-file", "-", "--include-namespaces", &app_ns, "--no-cluster-scoped"], &[], &format!("{PASS}\n")));
    let cluster_id = out.lines().find_map(|l| l.strip_prefix("Cluster ID: ")).unwrap().to_owned();
    ok(&c.dr(&["backup", "--local", "--path", location.to_str().unwrap()], &[], ""));

    // The disaster: the application's ConfigMap and the DR policy are gone.
    cms.delete("settings", &DeleteParams::default()).await.unwrap();
    ok(&c.dr(&["disable"], &[], ""));

    // The plan writes nothing.
    let plan = ok(&c.dr(
        &[
            "restore",
            "--cluster-id",
            &cluster_id,
            "--profile",
            "nfs",
            "--passphrase-file",
            "-",
            "--path",
            location.to_str().unwrap(),
            "--dry-run",
            "-o",
            "json",
        ],
        &[],
        &format!("{PASS}\n"),
    ));
    let plan: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["byKind"]["ConfigMap"]["restored"], 1, "the lost ConfigMap would be created: {plan}");
    assert!(cms.get_opt("settings").await.unwrap().is_none());

    // The restore Job's code brings it back, with the policy's CronJob suspended.
    let termination = dir.path().join("termination-log");
    let out = run_restore_job(&c, &cluster_id, &location, &termination);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), std::fs::read_to_string(&termination).unwrap_or_default());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    // The Job's process opens the point once: one key derivation, one manifest read.
    assert_eq!(report["pointOpens"], serde_json::json!({"keyDerivations": 1, "manifestReads": 1}), "{report}");
    assert_eq!(cms.get("settings").await.unwrap().data.unwrap()["currency"], "EUR");
    let crons = Api::<CronJob>::namespaced(c.client.clone(), &c.namespace);
    assert_eq!(crons.get("k10-disaster-recovery-policy").await.unwrap().spec.unwrap().suspend, Some(true));
    let dr_cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), &c.namespace);
    assert!(dr_cms.get_opt("k10-dr-remove-to-get-ownership").await.unwrap().is_some());
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(c.client.clone(), &c.namespace);
    assert!(leases.get_opt("kubectl-dr-restore").await.unwrap().is_none(), "the Lease is released");

    // Run again: nothing new, nothing duplicated.
    let again = run_restore_job(&c, &cluster_id, &location, &termination);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["byKind"]["ConfigMap"]["alreadyRestored"], 1, "{again}");

    ok(&c.dr(&["take-ownership", "--yes"], &[], ""));
    assert!(dr_cms.get_opt("k10-dr-remove-to-get-ownership").await.unwrap().is_none());
    assert_eq!(crons.get("k10-disaster-recovery-policy").await.unwrap().spec.unwrap().suspend, Some(false));
    if matches!(c._target, Target::Real) {
        let _ = namespaces.delete(&app_ns, &DeleteParams::background()).await;
    }
    c.cleanup().await;
}
