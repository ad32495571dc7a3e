//! `dr-job restore` end to end: a source cluster is backed up into a location; an empty
//! target cluster (a second test API server) gets it back. The restore runs as a process with
//! exactly what the `dr-restore` chart gives its container: the chart is rendered by the Helm
//! library with the test's values, its ServiceAccount and RBAC are created on the target
//! (RBAC enforced), and the Job's env, volume mounts and service-account token become the
//! process's environment, files and credentials.
//!
//! One file past 500 lines on purpose: every test runs the one process the chart's Job runs,
//! through the same harness (`dr_test_support::restore_fixture`), one restore behaviour each.

use dr_test_support as support;

use dr_core::catalog::Mode;
use dr_core::failure::ErrorKind;
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::restore::RestoreOutcome;
use serde_json::{json, Value};
use support::kubelet;
use support::restore_fixture::*;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_restore_brings_everything_back_and_a_rerun_duplicates_nothing() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, point_id) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();

    let run = restore(&target, &values(&cluster_id, json!({})), loc.path());
    let report = run.report();
    assert_eq!(report["restorePoint"], point_id.as_str());
    assert_eq!(report["failed"], 0);
    // The summary is the termination message too; the point was read once.
    assert_eq!(run.outcome.report.as_ref().unwrap().restored, report["restored"].as_u64().unwrap());
    assert_eq!(report["archiveReads"], 1, "{report}");

    // Application objects, with their data.
    let cm = find(&target, "", "configmaps", "shop", "settings").expect("ConfigMap restored");
    assert_eq!(cm["data"]["currency"], "EUR");
    assert_eq!(cm["metadata"]["annotations"]["dr.kubectl-dr.io/restored-from"], point_id.as_str());
    let secret = find(&target, "", "secrets", "shop", "db").expect("Secret restored");
    assert_eq!(kubelet::unb64(secret["data"]["password"].as_str().unwrap()), "s3cret");
    assert!(find(&target, "apps", "deployments", "shop", "web").is_some());
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterroles", "", "shop-reader").is_some());
    // The CRD came first, so its custom resource could be restored in the same run.
    assert!(find(&target, "apiextensions.k8s.io", "customresourcedefinitions", "", "widgets.shop.example.com").is_some());
    let widget = find(&target, "shop.example.com", "widgets", "shop", "w1").expect("custom resource restored");
    // The garbage collector has had its pass: an ownerReference left at a source UID would
    // have had its object deleted, as on a real cluster.
    target.collect_garbage();
    // The owned ConfigMap names the widget's new UID.
    let owned = find(&target, "", "configmaps", "shop", "w1-config").expect("owned ConfigMap restored");
    assert_eq!(owned["metadata"]["ownerReferences"][0]["uid"], widget["metadata"]["uid"]);
    let chained = find(&target, "", "secrets", "shop", "w1-token").expect("owned Secret restored");
    assert_eq!(chained["metadata"]["ownerReferences"][0]["uid"], owned["metadata"]["uid"], "a chain of owners is relinked");
    assert_ne!(widget["metadata"]["uid"], find(&source, "shop.example.com", "widgets", "shop", "w1").unwrap()["metadata"]["uid"]);
    // The DR platform: the policy restored, its CronJob suspended, ownership not taken.
    assert!(find(&target, "dr.kubectl-dr.io", "policies", NS, "k10-disaster-recovery-policy").is_some());
    let cron = find(&target, "batch", "cronjobs", NS, "k10-disaster-recovery-policy").unwrap();
    assert_eq!(cron["spec"]["suspend"], true);
    let ownership = find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").expect("ownership ConfigMap");
    assert_eq!(ownership["data"]["restorePoint"], point_id.as_str());
    // The Lease is released; what existed is reported as such.
    assert!(find(&target, "coordination.k8s.io", "leases", NS, "kubectl-dr-restore").is_none());
    // The restore is over, and so is its cluster-wide grant: the Job deleted its binding.
    let grant = format!("{RELEASE}-{NS}");
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", &grant).is_none(), "the cluster-wide grant outlived the restore");
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterroles", "", &grant).is_some());
    assert_eq!(report["byKind"]["Profile.dr.kubectl-dr.io"]["skipped"]["already exists"], 1, "{report}");
    assert_eq!(report["byKind"]["Secret"]["skipped"]["already exists"], 1, "k10-dr-secret exists: {report}");
    // The outcome is an Event on the restore Job too.
    let events = target.objects("events.k8s.io", "events");
    let event = events
        .iter()
        .find(|e| e["regarding"]["kind"] == "Job" && e["regarding"]["name"] == RELEASE)
        .unwrap_or_else(|| panic!("no Event on the Job: {events:?}"));
    assert_eq!((event["reason"].as_str(), event["type"].as_str()), (Some("RestoreSucceeded"), Some("Normal")), "{event}");
    assert!(event["note"].as_str().unwrap().contains(&point_id), "{event}");

    // A second run: nothing new, nothing duplicated, everything accounted for.
    let before = object_count(&target);
    let again = restore(&target, &values(&cluster_id, json!({})), loc.path()).report();
    assert_eq!(object_count(&target), before);
    assert_eq!(again["restored"], report["restored"], "{again}");
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", &grant).is_none(), "a re-run ends its grant too");
    assert_eq!(again["byKind"]["ConfigMap"]["alreadyRestored"], report["byKind"]["ConfigMap"]["restored"], "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_objects_are_left_and_listed_unless_overriding() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "USD"}}));
    // Patch is granted only when the restore may override (or write status back): the first
    // run works without it, the second gets it.
    target.enforce_rbac();

    let report = restore(&target, &values(&cluster_id, json!({})), loc.path()).report();
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "USD", "left as it was");
    assert!(report["byKind"]["ConfigMap"]["existing"].as_array().unwrap().contains(&json!("shop/settings")), "{report}");

    let report = restore(&target, &values(&cluster_id, json!({"quickMode": {"overrideResources": true}})), loc.path()).report();
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR", "replaced");
    assert!(report["replaced"].as_u64().unwrap() >= 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_must_match_the_point_and_restores_the_platform_only() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Quick).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();

    let message = restore(&target, &values(&cluster_id, json!({})), loc.path()).failure();
    assert!(message.contains("quick mode") && message.contains("quickMode.enabled=true"), "{message}");
    assert!(find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_none(), "nothing written");

    // The quick-mode chart has only namespace RBAC, and that is enough.
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    let report = restore(&target, &values(&cluster_id, json!({"quickMode": {"enabled": true, "overrideResources": true}})), loc.path()).report();
    assert_eq!(report["mode"], "quick");
    assert!(find(&target, "dr.kubectl-dr.io", "policies", NS, "k10-disaster-recovery-policy").is_some());
    assert_eq!(find(&target, "batch", "cronjobs", NS, "k10-disaster-recovery-policy").unwrap()["spec"]["suspend"], true);
    assert!(find(&target, "", "configmaps", "shop", "settings").is_none(), "quick points hold no applications");
    assert!(target.objects("rbac.authorization.k8s.io", "clusterroles").is_empty(), "quick mode gets no cluster-wide RBAC");

    // A full point restored in quick mode: refused, saying which setting to use.
    let (_, _) = backup(&source, loc.path(), Mode::Full).await;
    let message = restore(&target, &values(&cluster_id, json!({"quickMode": {"enabled": true, "overrideResources": true}})), loc.path()).failure();
    assert!(message.contains("full mode") && message.contains("leave quickMode.enabled unset"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_picks_the_newest_point_at_or_before_it() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, first) = backup(&source, loc.path(), Mode::Full).await;
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(source.client(), "shop");
    cms.patch("settings", &Default::default(), &kube::api::Patch::Merge(json!({"data": {"currency": "CHF"}}))).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, second) = backup(&source, loc.path(), Mode::Full).await;
    // A time between the two points (the first point's second, rounded up).
    let between = dr_core::point::point_time(&first).unwrap().replace_nanosecond(0).unwrap() + time::Duration::seconds(1);
    assert!(between <= dr_core::point::point_time(&second).unwrap());
    let between = between.format(&time::format_description::well_known::Rfc3339).unwrap();

    let target = target_cluster(raw_secret(PASS)).await;
    let report = restore(&target, &values(&cluster_id, json!({"pointInTime": between})), loc.path()).report();
    assert_eq!(report["restorePoint"], first.as_str());
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");

    // Before every point: the Job fails and lists what exists.
    let target = target_cluster(raw_secret(PASS)).await;
    let message = restore(&target, &values(&cluster_id, json!({"pointInTime": "2020-01-01T00:00:00Z"})), loc.path()).failure();
    assert!(message.contains("no complete restore point at or before 2020-01-01") && message.contains(&first) && message.contains(&second), "{message}");
    // Unset: the newest.
    let report = restore(&target, &values(&cluster_id, json!({})), loc.path()).report();
    assert_eq!(report["restorePoint"], second.as_str());
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "CHF");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_resource_leaves_out_whole_categories() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;

    // The seed's example: profiles and policies (the CronJob is part of the policy).
    let target = target_cluster(raw_secret(PASS)).await;
    let report = restore(&target, &values(&cluster_id, json!({"skipResource": "profiles,policies"})), loc.path()).report();
    assert!(find(&target, "dr.kubectl-dr.io", "policies", NS, "k10-disaster-recovery-policy").is_none());
    assert!(find(&target, "batch", "cronjobs", NS, "k10-disaster-recovery-policy").is_none());
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());
    assert_eq!(report["byKind"]["Policy.dr.kubectl-dr.io"]["skipped"]["skipResource"], 1, "{report}");

    // Cluster-scoped kinds skipped: namespaces stay (the applications live in them).
    let target = target_cluster(raw_secret(PASS)).await;
    let report = restore(&target, &values(&cluster_id, json!({"skipResource": "cluster"})), loc.path()).report();
    assert_eq!(report["byKind"]["Widget.shop.example.com"]["skipped"]["its CRD is skipped (skipResource)"], 1, "{report}");
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterroles", "", "shop-reader").is_none());
    assert!(find(&target, "", "namespaces", "", "shop").is_some());
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());

    // Applications and cluster: the DR platform only.
    let target = target_cluster(raw_secret(PASS)).await;
    restore(&target, &values(&cluster_id, json!({"skipResource": "applications,cluster"})), loc.path()).report();
    assert!(find(&target, "", "namespaces", "", "shop").is_none());
    assert!(find(&target, "dr.kubectl-dr.io", "policies", NS, "k10-disaster-recovery-policy").is_some());

    // An unknown name: the chart's schema refuses it, and so does the job (before any write).
    let target = target_cluster(raw_secret(PASS)).await;
    assert!(render(&values(&cluster_id, json!({"skipResource": "profiles,catalog"}))).unwrap_err().contains("skipResource"));
    let root = tempfile::tempdir().unwrap();
    let mut pod = install_chart(&target, &values(&cluster_id, json!({})), loc.path(), root.path());
    // Past the schema (values edited after rendering): the Job's own conversion refuses it.
    let rendered = pod.env.iter_mut().find(|(name, _)| name == "DR_RESTORE_VALUES").expect("the chart passes its values");
    let mut edited: Value = serde_json::from_str(&rendered.1).unwrap();
    edited["skipResource"] = json!("profiles,catalog");
    rendered.1 = edited.to_string();
    let out = spawn(&pod).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(i32::from(ErrorKind::BadInput.exit_code())));
    let message = RestoreOutcome::parse(&std::fs::read_to_string(&pod.termination).unwrap()).error;
    assert!(message.contains("\"catalog\"") && message.contains("applications"), "{message}");
    assert!(find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_passphrase_or_a_damaged_point_writes_nothing() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, point_id) = backup(&source, loc.path(), Mode::Full).await;

    let target = target_cluster(raw_secret("not the passphrase")).await;
    let before = object_count(&target);
    let run = restore(&target, &values(&cluster_id, json!({})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::WrongPassphrase), "a wrong passphrase fails the Job at once");
    assert_eq!(run.out.status.code(), Some(3));
    assert!(run.message.to_lowercase().contains("passphrase"), "{}", run.message);
    assert_eq!(object_count(&target), before, "nothing was written");
    assert!(find(&target, "coordination.k8s.io", "leases", NS, "kubectl-dr-restore").is_none());

    // Damage one byte in the middle of the archive.
    let archive = loc.path().join(&cluster_id).join("restore-points").join(&point_id).join("archive.kdr");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    // Points are write-once (read-only files); the test plays the attacker.
    let mut perms = std::fs::metadata(&archive).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&archive, perms).unwrap();
    std::fs::write(&archive, bytes).unwrap();
    let target = target_cluster(raw_secret(PASS)).await;
    let before = object_count(&target);
    let run = restore(&target, &values(&cluster_id, json!({})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::DamagedPoint));
    assert_eq!(run.out.status.code(), Some(4));
    assert!(run.message.contains(&point_id), "{}", run.message);
    assert_eq!(object_count(&target), before, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_passphrase_source_restores() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;
    let vault_secret = json!({"source": b64("vault"), "vault-kv-version": b64("KVv2"), "vault-mount-path": b64("secret"), "vault-secret-path": b64("k10"), "key": b64("passphrase")});

    // Vault, token auth: vault.secretName names a Secret with vault_token.
    let target = target_cluster(vault_secret.clone()).await;
    let vault = support::vault_with_kubernetes_auth(&target, PASS).await;
    target.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-creds", "namespace": NS}, "data": {"vault_token": b64(support::BAO_ROOT_TOKEN)}}));
    target.enforce_rbac();
    restore(&target, &values(&cluster_id, json!({"vault": {"enabled": true, "address": vault.url, "secretName": "vault-creds"}})), loc.path()).report();
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());

    // Vault, Kubernetes auth, with the default token path and with a projected token.
    for path in [None, Some("/var/run/secrets/vault-sa/token")] {
        let target = target_cluster(vault_secret.clone()).await;
        let vault = support::vault_with_kubernetes_auth(&target, PASS).await;
        target.enforce_rbac();
        let mut v = json!({"vault": {"enabled": true, "address": vault.url, "role": "dr"}});
        if let Some(p) = path {
            v["vault"]["serviceAccountTokenPath"] = json!(p);
        }
        restore(&target, &values(&cluster_id, v), loc.path()).report();
        assert!(find(&target, "", "configmaps", "shop", "settings").is_some());
        assert!(target.token_reviews() >= 1, "Vault checked the pod's token with the API server");
    }

    // AWS Secrets Manager, credentials from a Secret.
    let moto = support::moto();
    support::moto_setup(&moto, &["secret", "eu-west-1", "k10/dr/passphrase"], Some(PASS));
    let target = target_cluster(json!({"source": b64("aws"), "aws-region": b64("eu-west-1"), "key": b64("k10/dr/passphrase")})).await;
    target.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws-creds", "namespace": NS}, "data": {"aws_access_key_id": b64("test"), "aws_secret_access_key": b64("test")}}));
    restore(&target, &values(&cluster_id, json!({"aws": {"credentialsSecret": "aws-creds", "secretsManagerEndpoint": moto.url}})), loc.path()).report();
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());
}

/// Vault behind a private CA: the chart's `vault.caBundle` (a ConfigMap here) mounts the CA
/// for the Job; without it the Job fails and says which value to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_behind_a_private_ca_is_trusted_through_the_charts_ca_bundle() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;
    let (vault, ca) = support::openbao_tls();
    support::wait_vault_healthy(&vault).await;
    support::bao(&vault, reqwest::Method::POST, "secret/data/k10", Some(json!({"data": {"passphrase": PASS}}))).await;
    let target = target_cluster(json!({"source": b64("vault"), "vault-kv-version": b64("KVv2"), "vault-mount-path": b64("secret"), "vault-secret-path": b64("k10"), "key": b64("passphrase")})).await;
    target.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-creds", "namespace": NS}, "data": {"vault_token": b64(support::BAO_ROOT_TOKEN)}}));
    target.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vault-ca", "namespace": NS}, "data": {"root.pem": std::fs::read_to_string(&ca).unwrap()}}));
    let vault_values = json!({"enabled": true, "address": vault.url, "secretName": "vault-creds"});

    let message = restore(&target, &values(&cluster_id, json!({"vault": vault_values})), loc.path()).failure();
    assert!(message.contains("not trusted") && message.contains("vault.caBundle"), "{message}");
    assert!(find(&target, "", "configmaps", "shop", "settings").is_none());

    let mut with_ca = vault_values.clone();
    with_ca["caBundle"] = json!({"configMap": "vault-ca", "key": "root.pem"});
    restore(&target, &values(&cluster_id, json!({"vault": with_ca})), loc.path()).report();
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());
}

/// Waits (at most 60 s) until the restore running against `target` has written `n` of them.
async fn wait_until_restored(target: &support::apiserver::ApiServer, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while restored_apps(target) < n {
        assert!(std::time::Instant::now() < deadline, "restore made no progress");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_restore_finishes_when_run_again_without_duplicates() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 1500).await;
    let target = target_cluster(raw_secret(PASS)).await;
    // Slow enough to interrupt halfway.
    let vals = values(&cluster_id, json!({"restore": {"qps": 150}}));
    let root = tempfile::tempdir().unwrap();
    let pod = install_chart(&target, &vals, loc.path(), root.path());
    let mut child = spawn(&pod);
    wait_until_restored(&target, 300).await;
    child.kill().unwrap(); // the node died
    child.wait().unwrap();
    let partial = target.objects("", "configmaps").len();
    assert!(partial < 1500, "interrupted halfway ({partial})");
    // The killed pod's Lease is still there; the Job's next pod (same holder) takes it over.
    assert!(find(&target, "coordination.k8s.io", "leases", NS, "kubectl-dr-restore").is_some());

    let report = restore(&target, &values(&cluster_id, json!({})), loc.path()).report();
    let cms: Vec<Value> = target
        .objects("", "configmaps")
        .into_iter()
        .filter(|c| c["metadata"]["namespace"] == "app-0" && c["metadata"]["name"] != support::apiserver::ROOT_CA_CONFIG_MAP)
        .collect();
    assert_eq!(cms.len(), 1500, "every object, once");
    let k = &report["byKind"]["ConfigMap"];
    assert_eq!(k["restored"].as_u64().unwrap() + k["alreadyRestored"].as_u64().unwrap(), 1500, "{report}");
    assert!(k["alreadyRestored"].as_u64().unwrap() >= 300, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_rides_out_its_api_server_restarting_for_30_seconds() {
    // What failed on a real 1.36 server: kube-apiserver stopped mid-restore (same etcd), 16 of
    // 5,000 objects failed on "Connection refused" and the Job ended incomplete.
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 1500).await;
    let target = target_cluster(raw_secret(PASS)).await;
    let vals = values(&cluster_id, json!({"restore": {"qps": 150}}));
    let root = tempfile::tempdir().unwrap();
    let pod = install_chart(&target, &vals, loc.path(), root.path());
    let child = spawn(&pod);
    wait_until_restored(&target, 300).await;
    // Connections cut, then refused for 30 s; then the same store answers again.
    let started = std::time::Instant::now();
    target.restart(std::time::Duration::from_secs(30)).await;
    let during = restored_apps(&target);
    assert!(during < 1500, "the outage came mid-restore ({during})");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let raw = std::fs::read_to_string(&pod.termination).unwrap_or_default();
    assert!(out.status.success(), "one pod finished it: {raw}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(started.elapsed() < std::time::Duration::from_secs(120), "within its timeout");
    let cms = target
        .objects("", "configmaps")
        .into_iter()
        .filter(|c| c["metadata"]["namespace"] == "app-0" && c["metadata"]["name"] != support::apiserver::ROOT_CA_CONFIG_MAP)
        .count();
    assert_eq!(cms, 1500, "every object, once");
    let report = serde_json::to_value(RestoreOutcome::parse(&raw).report.expect("a report")).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    // kube-client's own per-request error lines stay out of the log.
    assert!(!String::from_utf8_lossy(&out.stderr).contains("kube_client::client::builder"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_restore_at_the_same_time_is_refused() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 10).await;
    let target = target_cluster(raw_secret(PASS)).await;
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    target.seed(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "kubectl-dr-restore", "namespace": NS},
                       "spec": {"holderIdentity": "other-restore", "leaseDurationSeconds": 30, "renewTime": now}}));
    let run = restore(&target, &values(&cluster_id, json!({})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::Busy));
    assert_eq!(run.out.status.code(), Some(5));
    assert!(run.message.contains("another restore (other-restore)"), "{}", run.message);
    assert!(find(&target, "", "configmaps", "app-0", "cm-0").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_fails_the_job_and_says_what_is_left() {
    let loc = tempfile::tempdir().unwrap();
    // 1,000 objects at 10 per second cannot finish within restore.timeout=1 (minute).
    let cluster_id = big_point(loc.path(), 1000).await;
    let target = target_cluster(raw_secret(PASS)).await;
    let run = restore(&target, &values(&cluster_id, json!({"restore": {"timeout": 1, "qps": 10}})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::TimedOut));
    assert_eq!(run.out.status.code(), Some(6));
    assert!(run.message.contains("restore.timeout (1 min) reached") && run.message.contains("left"), "{}", run.message);
    let report: Value = serde_json::from_slice(&run.out.stdout).unwrap();
    let done = report["byKind"]["ConfigMap"]["restored"].as_u64().unwrap();
    assert!(done > 0 && done < 1000, "{report}");
    assert!(find(&target, "coordination.k8s.io", "leases", NS, "kubectl-dr-restore").is_none(), "the Lease is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fips_values_make_a_non_fips_build_refuse_to_run() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 1).await;
    let target = target_cluster(raw_secret(PASS)).await;
    let run = restore(&target, &values(&cluster_id, json!({"fips": {"enabled": true}})), loc.path());
    if dr_core::format::crypto::fips_mode() {
        // Built with `--features fips` (scripts/build-fips): it runs.
        run.report();
    } else {
        assert_eq!(run.outcome.kind, Some(ErrorKind::BadInput));
        assert!(run.message.contains("not in FIPS mode") && run.message.contains("values-fips.yaml"), "{}", run.message);
        assert!(find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_none(), "nothing was written");
        // Refused for good (bad input): the restore is over, and so is its grant.
        assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", &format!("{RELEASE}-{NS}")).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_location_is_transient_and_objects_that_fail_make_the_restore_incomplete() {
    let loc = tempfile::tempdir().unwrap();
    let cluster_id = big_point(loc.path(), 3).await;
    // An S3 profile whose endpoint does not answer (a closed port): an outage, so the Job
    // starts another pod (exit 1) rather than failing.
    let target = target_cluster(raw_secret(PASS)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    target.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "down", "namespace": NS},
                       "spec": {"s3": {"bucket": "dr", "region": "us-east-1", "endpoint": format!("http://{closed}"), "credentialsSecret": "s3-creds"}}}));
    target.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds", "namespace": NS},
                       "data": {"aws_access_key_id": b64("AKIDEXAMPLE"), "aws_secret_access_key": b64("example")}}));
    let run = restore(&target, &values(&cluster_id, json!({"profile": {"name": "down"}, "fileProfile": {"claimName": ""}})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::Transient), "{}", run.message);
    assert_eq!(run.out.status.code(), Some(1));
    assert!(run.message.contains("cannot reach S3"), "{}", run.message);
    // The Job runs another pod, which needs the grant.
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", &format!("{RELEASE}-{NS}")).is_some(), "kept for the retry");

    // A point holding a kind this cluster does not serve: everything else is restored, the
    // Job fails as incomplete (exit 7) with the object named.
    let loc = tempfile::tempdir().unwrap();
    let location = Location::connect(&LocationConfig::File { path: loc.path().into() }).await.unwrap();
    let mut entries = support::sample_entries(3, 16);
    entries.push(dr_core::catalog::Entry {
        category: dr_core::catalog::Category::Cluster,
        object: json!({"apiVersion": "gone.example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}}),
        source_uid: None,
    });
    let cluster_id = "5a1d-incomplete";
    support::write_point(&location, cluster_id, &Passphrase::new(PASS.into()).unwrap(), &entries).await;
    let target = target_cluster(raw_secret(PASS)).await;
    // The chart's monitoring.pushgatewayURL: the Job pushes its outcome to a real Pushgateway.
    dr_core::init_crypto_provider();
    let gateway = support::pushgateway();
    let run = restore(&target, &values(cluster_id, json!({"monitoring": {"pushgatewayURL": gateway.url}})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::Incomplete));
    assert_eq!(run.out.status.code(), Some(7));
    let metrics = reqwest::get(format!("{}/metrics", gateway.url)).await.unwrap().text().await.unwrap();
    let value = |metric: &str| {
        let found = support::samples(&metrics, metric);
        assert!(
            found.len() == 1 && found[0].0.contains(&format!("release=\"{RELEASE}\"")) && found[0].0.contains(&format!("namespace=\"{NS}\"")),
            "{metric}: {found:?}"
        );
        found[0].1
    };
    let pushed = run.outcome.report.as_ref().unwrap();
    assert_eq!(value("kubectl_dr_restore_success"), 0.0);
    assert_eq!((value("kubectl_dr_restore_failed_objects"), value("kubectl_dr_restore_restored_objects")), (pushed.failed as f64, pushed.restored as f64));
    assert!(pushed.failed >= 1 && pushed.restored >= 1, "{pushed:?}");
    assert_eq!(value("kubectl_dr_restore_objects"), pushed.objects as f64);
    // Another pod would fail the same way: the restore is over, and so is the grant.
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", &format!("{RELEASE}-{NS}")).is_none());
    let report = run.outcome.report.unwrap();
    assert_eq!(report.by_kind["Gadget.gone.example.com"].failed, 1);
    assert!(report.by_kind["Gadget.gone.example.com"].failures[0].contains("not served by this cluster"), "{report:?}");
    assert!(report.restored > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_keep_their_node_ports_unless_taken_here() {
    let source = source_cluster().await;
    source.seed(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                       "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "admin", "port": 81, "nodePort": 30081}]}}));
    let src_ip = find(&source, "", "services", "shop", "web").unwrap()["spec"]["clusterIP"].clone();
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    // Another service on the target already has 30081.
    target.seed(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other", "namespace": NS},
                       "spec": {"type": "NodePort", "ports": [{"port": 9000, "nodePort": 30081}]}}));
    let run = restore(&target, &values(&cluster_id, json!({})), loc.path());
    let report = run.report();
    let web = find(&target, "", "services", "shop", "web").expect("the Service is restored");
    assert_eq!(web["spec"]["ports"][0]["nodePort"], 30080, "the node port it had is kept");
    let admin = web["spec"]["ports"][1]["nodePort"].as_u64().unwrap();
    assert_ne!(admin, 30081, "a taken port is allocated anew");
    // The cluster IP is this cluster's to allocate (the source's was dropped).
    assert!(web["spec"]["clusterIP"].as_str().is_some_and(|ip| ip.starts_with("10.96.")), "{web}");
    assert!(src_ip.as_str().is_some_and(|ip| ip.starts_with("10.96.")), "the source allocated one too");
    let changed = report["byKind"]["Service"]["nodePortsChanged"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{report}");
    let line = changed[0].as_str().unwrap();
    assert!(line.contains("shop/web") && line.contains("30081") && line.contains(&admin.to_string()), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_get_their_status_back_when_asked() {
    let source = source_cluster().await;
    source.seed(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "certs.shop.example.com"},
                       "spec": {"group": "shop.example.com", "scope": "Namespaced", "names": {"kind": "Cert", "plural": "certs", "singular": "cert", "listKind": "CertList"},
                                "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                                              "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}));
    // An operator set the status (seeding keeps it, as a controller's /status write would).
    source.seed(
        json!({"apiVersion": "shop.example.com/v1", "kind": "Cert", "metadata": {"name": "tls", "namespace": "shop"}, "spec": {"dns": "shop.example.com"},
                       "status": {"serial": "0a1b2c", "notAfter": "2027-01-01T00:00:00Z"}}),
    );
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, _) = backup(&source, loc.path(), Mode::Full).await;

    // By default status is not restored: the server drops it on create.
    let target = target_cluster(raw_secret(PASS)).await;
    restore(&target, &values(&cluster_id, json!({})), loc.path()).report();
    assert!(find(&target, "shop.example.com", "certs", "shop", "tls").unwrap().get("status").is_none());

    // Named (by resource name), it comes back through /status.
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    let report = restore(&target, &values(&cluster_id, json!({"restore": {"status": "certs.shop.example.com"}})), loc.path()).report();
    let cert = find(&target, "shop.example.com", "certs", "shop", "tls").unwrap();
    assert_eq!(cert["status"]["serial"], "0a1b2c", "{cert}");
    assert_eq!(report["byKind"]["Cert.shop.example.com"]["statusRestored"], 1, "{report}");
    // Only the kinds named: the Deployment's status stays the cluster's.
    assert!(find(&target, "apps", "deployments", "shop", "web").unwrap().get("status").is_none());
    // A value that is not a list of kinds is refused by the chart's schema.
    assert!(render(&values(&cluster_id, json!({"restore": {"status": "certs; rm -rf"}}))).is_err());
}

#[test]
fn the_charts_pod_failure_policy_fails_the_job_on_exactly_the_final_kinds() {
    let rendered = render(&values("0b6bd9b4-2c4a-4d1e-9a3e-3b7f0f6a1c2d", json!({}))).unwrap();
    let job = rendered["manifests"].as_array().unwrap().iter().find(|m| m["kind"] == "Job").unwrap().clone();
    let rule = job["spec"]["podFailurePolicy"]["rules"].as_array().unwrap().iter().find(|r| r["action"] == "FailJob").unwrap().clone();
    let codes: Vec<u8> = rule["onExitCodes"]["values"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
    assert_eq!(codes, ErrorKind::final_exit_codes(), "the chart and dr_core::failure agree");
    assert!(!codes.contains(&ErrorKind::Transient.exit_code()), "a transient failure gets another pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_newest_point_is_passed_over_and_restorepointid_names_the_point_exactly() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, point_id) = backup(&source, loc.path(), Mode::Full).await;
    // A writer to the location (the source cluster's backup credentials) adds a newer point
    // under its own key, and a header-only forgery at the genuine point's very millisecond.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let location = Location::connect(&LocationConfig::File { path: loc.path().into() }).await.unwrap();
    let newer = support::write_point(&location, &cluster_id, &Passphrase::new("the attacker's own key".into()).unwrap(), &support::sample_entries(3, 16)).await;
    let (stamp, _) = point_id.split_once('-').unwrap();
    let twin = format!("{stamp}-ffffffff");
    support::plant_forged_point(loc.path(), &cluster_id, dr_core::format::VERSION, &twin);
    // Unset, and at the genuine point's own time: the genuine point, restored.
    let target = target_cluster(raw_secret(PASS)).await;
    let report = restore(&target, &values(&cluster_id, json!({})), loc.path()).report();
    assert_eq!(report["restorePoint"], point_id.as_str());
    assert_eq!(find(&target, "", "configmaps", "shop", "settings").unwrap()["data"]["currency"], "EUR");
    let at = dr_core::point::rfc3339(dr_core::point::point_time(&point_id).unwrap());
    let target = target_cluster(raw_secret(PASS)).await;
    assert_eq!(restore(&target, &values(&cluster_id, json!({"pointInTime": at})), loc.path()).report()["restorePoint"], point_id.as_str());
    // The forgery named by ID: refused, nothing written, and the way out is the genuine ID.
    let target = target_cluster(raw_secret(PASS)).await;
    let run = restore(&target, &values(&cluster_id, json!({"restorePointID": newer.point_id})), loc.path());
    assert_eq!(run.outcome.kind, Some(ErrorKind::DamagedPoint), "{}", run.message);
    assert!(run.message.contains(&format!("--point {point_id}")) && run.message.contains("restorePointID"), "{}", run.message);
    assert!(find(&target, "", "configmaps", "shop", "settings").is_none(), "nothing was written");
    // The genuine point by its ID.
    let report = restore(&target, &values(&cluster_id, json!({"restorePointID": point_id})), loc.path()).report();
    assert_eq!(report["restorePoint"], point_id.as_str());
}

/// The Job's settings are clap arguments read from `DR_*` variables: values that do not parse
/// refuse the restore as bad input before anything is read or written, name the variable
/// (not a flag the pod spec never sets) and the value, end the restore's cluster-wide grant,
/// and an empty variable counts as unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_do_not_parse_refuse_the_restore_and_name_the_variable() {
    let target = target_cluster(raw_secret(PASS)).await;
    let binding = "k10-restore-kasten-io";
    target.seed(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": binding},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}, "subjects": []}));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    target.write_kubeconfig(&kubeconfig, NS);
    let termination = dir.path().join("termination-log");
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(support::workspace_binary("dr-job"));
        cmd.arg("restore")
            .env_clear()
            .env("KUBECONFIG", &kubeconfig)
            .env("DR_TERMINATION_LOG", &termination)
            .env("DR_NAMESPACE", NS)
            .env("DR_RBAC_BINDING", binding);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), std::fs::read_to_string(&termination).unwrap_or_default())
    };
    let values = |extra: Value| {
        let mut v = json!({"sourceClusterID": "00000000-0000-0000-0000-000000000000", "profile": {"name": "offsite"}});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v.to_string()
    };
    let (code, message) = run(&[("DR_RESTORE_VALUES", &values(json!({"quickMode": {"enabled": "maybe"}})))]);
    assert_eq!(code, Some(i32::from(ErrorKind::BadInput.exit_code())), "{message}");
    let outcome = RestoreOutcome::parse(&message);
    assert_eq!(outcome.kind, Some(ErrorKind::BadInput), "{message}");
    assert!(
        outcome.error.contains("DR_RESTORE_VALUES") && outcome.error.contains("expected a boolean") && !outcome.error.contains("--restore-values"),
        "{message}"
    );
    assert!(find(&target, "rbac.authorization.k8s.io", "clusterrolebindings", "", binding).is_none(), "a refused restore ends its grant");
    assert!(find(&target, "", "configmaps", NS, "k10-dr-remove-to-get-ownership").is_none(), "nothing was written");

    // Values that parse but do not make a restore: the same conversion as the plugin's, which
    // names the value and the flag.
    let (code, message) = run(&[("DR_RESTORE_VALUES", &values(json!({"pointInTime": "yesterday"})))]);
    assert_eq!(code, Some(i32::from(ErrorKind::BadInput.exit_code())), "{message}");
    assert!(message.contains("pointInTime (--point-in-time)") && message.contains("RFC 3339"), "{message}");

    let (code, message) = run(&[("DR_RESTORE_VALUES", "")]);
    assert_eq!(code, Some(i32::from(ErrorKind::BadInput.exit_code())), "{message}");
    assert!(message.contains("DR_RESTORE_VALUES"), "an empty variable is a missing one: {message}");
}
