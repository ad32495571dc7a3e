//! Credentials that expire or change, through the Job's own binary: a Vault token whose TTL
//! ends while the restore runs, the location's S3 keys rotated between two backups (the old key
//! deleted in moto's IAM), and the DR passphrase rotated between two backups.

use dr_test_support as support;

use std::process::Output;
use std::time::{Duration, Instant};

use dr_core::catalog::Mode;
use dr_core::failure::ErrorKind;
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::point::{self, PointError, Standing, Unlocker};
use serde_json::{json, Value};
use support::apiserver::ApiServer;
use support::restore_fixture::*;

/// The point a successful backup Job wrote.
fn point_written(out: &Output) -> String {
    assert!(out.status.success(), "backup failed: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    summary["restorePoint"].as_str().unwrap().to_owned()
}

/// Calls the Vault API with `token`: (status, body).
async fn vault_call(vault: &support::Server, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}/v1/{path}", vault.url)).header("X-Vault-Token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The restore reads the passphrase once, before it reads the point, and never goes back to
/// Vault: a token whose TTL ends while the restore writes does not stop it. A later pod of the
/// same Job (after a transient failure) reads it again: with the token expired, it fails at
/// once and says the token may have expired; with Kubernetes auth it logs in anew and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_token_that_expires_during_the_restore_does_not_stop_it() {
    let source = source_cluster().await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, point_id) = backup(&source, loc.path(), Mode::Full).await;
    let vault_secret = json!({"source": b64("vault"), "vault-kv-version": b64("KVv2"), "vault-mount-path": b64("secret"), "vault-secret-path": b64("k10"), "key": b64("passphrase")});
    let target = target_cluster(vault_secret).await;
    let vault = support::vault_with_kubernetes_auth(&target, PASS).await;
    // A token that may read the passphrase for 2 s, not renewable.
    let ttl = Duration::from_secs(2);
    let created = support::bao(
        &vault,
        reqwest::Method::POST,
        "auth/token/create",
        Some(json!({"policies": ["dr-read"], "ttl": "2s", "explicit_max_ttl": "2s", "renewable": false, "no_default_policy": true})),
    )
    .await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let issued = Instant::now();
    target.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-creds", "namespace": NS}, "data": {"vault_token": b64(&token)}}));
    target.enforce_rbac();
    // Every API request of the restore takes 150 ms: the restore outlasts the token.
    target.set_latency(Duration::from_millis(150));
    let token_values = json!({"vault": {"enabled": true, "address": vault.url, "secretName": "vault-creds"}});

    let target_for_run = &target;
    let run = tokio::task::block_in_place(|| restore(target_for_run, &values(&cluster_id, token_values.clone()), loc.path()));
    let restore_took = issued.elapsed();
    let first = run.report();
    assert_eq!(first["restorePoint"], point_id.as_str());
    assert_eq!(first["failed"], 0, "{first}");
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());
    let count = object_count(&target);
    // The token's TTL ended before the restore did: it is refused now.
    assert!(restore_took > ttl + Duration::from_secs(1), "the restore took {restore_took:?}, not longer than the token's {ttl:?} TTL");
    let (status, body) = vault_call(&vault, &token, reqwest::Method::GET, "auth/token/lookup-self", None).await;
    assert_eq!(status, 403, "the token expired: {body}");

    // The Job's next pod, with the expired token: a clear error, bad input (no retry).
    let run = tokio::task::block_in_place(|| restore(target_for_run, &values(&cluster_id, token_values), loc.path()));
    let message = run.failure();
    assert_eq!(run.outcome.kind, Some(ErrorKind::BadInput), "{message}");
    assert!(message.contains("invalid or expired") && message.contains("vault.secretName"), "{message}");
    assert_eq!(message.matches("expired").count(), 1, "said once: {message}");
    assert!(!message.contains(&token), "the token is never in a message");
    // With Kubernetes auth each pod logs in: the next pod finishes (nothing duplicated).
    let run = tokio::task::block_in_place(|| {
        restore(target_for_run, &values(&cluster_id, json!({"vault": {"enabled": true, "address": vault.url, "role": "dr"}})), loc.path())
    });
    let again = run.report();
    assert_eq!(again["failed"], 0, "{again}");
    assert_eq!(object_count(&target), count, "nothing duplicated");
    assert_eq!(again["byKind"]["ConfigMap"]["alreadyRestored"], first["byKind"]["ConfigMap"]["restored"], "{again}");
}

/// `k10-dr-secret`'s passphrase changed between two backups: the point made under the old
/// passphrase, named by its ID, fails with one error that names it and says the passphrase
/// may have changed (not "forged"), nothing is written, the newest point restores, and the old
/// point restores with the old passphrase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_dr_passphrase_is_named_as_the_cause_for_older_points_and_the_new_point_restores() {
    const NEW_PASS: &str = "a new passphrase after the rotation";
    let source = source_cluster().await;
    // Cluster-scoped objects too (the namespaces), so that a point restores onto an empty target.
    source.upsert(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Policy", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": NS},
                         "spec": {"profile": "offsite", "frequency": "@hourly", "mode": "full", "selection": {"clusterScoped": true}}}));
    let loc = tempfile::tempdir().unwrap();
    let old_point = point_written(&tokio::task::block_in_place(|| backup_job(&source, loc.path())).0);
    source.upsert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": NS}, "data": {"key": b64(NEW_PASS)}}));
    let new_point = point_written(&tokio::task::block_in_place(|| backup_job(&source, loc.path())).0);
    let cluster_id = dr_core::ownership::cluster_id(&source.client()).await.unwrap();

    // Listed as another passphrase's point, not as forged.
    let location = Location::connect(&LocationConfig::File { path: loc.path().into() }).await.unwrap();
    let listed = point::list_points(&location, &cluster_id).await.unwrap();
    let judged = point::judge_all(&location, &cluster_id, &listed, &Unlocker::new(Passphrase::new(NEW_PASS.into()).unwrap())).await.unwrap();
    let old = judged.iter().find(|j| j.point.id == old_point).unwrap();
    assert!(matches!(&old.standing, Standing::Refused(PointError::OlderThanPassphrase { opens, .. }) if *opens == new_point), "{:?}", old.standing);

    let target = target_cluster(raw_secret(NEW_PASS)).await;
    target.enforce_rbac();
    let before = object_count(&target);
    let run = tokio::task::block_in_place(|| restore(&target, &values(&cluster_id, json!({"restorePointID": old_point})), loc.path()));
    let message = run.failure();
    // Not "wrong passphrase" (exit 3 says no point opens: newer ones do): exit 4, with the cause named.
    assert_eq!(run.outcome.kind, Some(ErrorKind::DamagedPoint), "{message}");
    assert!(message.contains(&format!("restore point {old_point} does not open with this passphrase")), "{message}");
    assert!(message.contains("was changed after") && message.contains(&format!("--point {new_point}")), "{message}");
    assert_eq!(message.matches(&old_point).count(), 3, "one error about the point: {message}");
    assert_eq!(object_count(&target), before, "nothing was written");

    let run = tokio::task::block_in_place(|| restore(&target, &values(&cluster_id, json!({})), loc.path()));
    assert_eq!(run.report()["restorePoint"], new_point.as_str());
    assert!(find(&target, "", "configmaps", "shop", "settings").is_some());

    // The old point with the passphrase it was written under.
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    let run = tokio::task::block_in_place(|| restore(&target, &values(&cluster_id, json!({"restorePointID": old_point})), loc.path()));
    assert_eq!(run.report()["restorePoint"], old_point.as_str());
}

/// The location's S3 credentials Secret rotated between two backups, the old key deleted in
/// moto's IAM: a run that still has the old key fails with one clear error and leaves no
/// point; once the Secret holds the new key, the next run uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_s3_credentials_are_used_by_the_next_backup() {
    // The bucket (1 request) and three users (3 each), then IAM holds.
    let s3 = support::moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "10".into())]);
    support::moto_setup(&s3, &["bucket", "dr-offsite"], None);
    let users = support::moto_setup(&s3, &["users", "dr-offsite", "admin"], None);
    let key = |u: &Value, k: &str| u[k].as_str().unwrap().to_owned();
    let api = ApiServer::start().await;
    api.install_dr_crds();
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": NS},
                    "spec": {"s3": {"bucket": "dr-offsite", "prefix": support::moto_bucket::PREFIX, "region": "us-east-1", "endpoint": s3.url, "pathStyle": true, "credentialsSecret": "offsite-writer"}}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Policy", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": NS},
                    "spec": {"profile": "offsite", "frequency": "@hourly", "mode": "full"}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": NS}, "data": {"key": b64(PASS)}}));
    let writer_secret = |u: &Value| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "offsite-writer", "namespace": NS},
               "data": {"aws_access_key_id": b64(&key(u, "access_key_id")), "aws_secret_access_key": b64(&key(u, "secret_access_key"))}})
    };
    api.seed(writer_secret(&users["writer"]));
    let mount = tempfile::tempdir().unwrap();
    let reader =
        support::moto_bucket::s3_location(&s3, "dr-offsite", &key(&users["reader"], "access_key_id"), &key(&users["reader"], "secret_access_key"), None).await;
    let cluster_id = dr_core::ownership::cluster_id(&api.client()).await.unwrap();
    let complete = || async {
        let mut ids: Vec<String> = point::list_points(&reader, &cluster_id).await.unwrap().into_iter().filter(|p| p.complete).map(|p| p.id).collect();
        ids.sort();
        ids
    };

    let first = point_written(&tokio::task::block_in_place(|| backup_job(&api, mount.path())).0);
    assert_eq!(complete().await, vec![first.clone()]);

    // Rotation: a new key for the writer, the old one deleted; the Secret not updated yet.
    let rotated = support::moto_setup(&s3, &["rotate", "writer", &key(&users["admin"], "access_key_id"), &key(&users["admin"], "secret_access_key")], None);
    assert_eq!(rotated["deleted"][0], users["writer"]["access_key_id"], "{rotated}");
    let (out, message) = tokio::task::block_in_place(|| backup_job(&api, mount.path()));
    assert!(!out.status.success(), "the deleted key was refused");
    assert!(message.contains(&format!("s3://dr-offsite/{}/", support::moto_bucket::PREFIX)) && message.contains("credentials"), "{message}");
    assert!(!message.contains(&key(&users["writer"], "secret_access_key")), "no secret in the message");
    assert_eq!(complete().await, vec![first.clone()], "the refused run left no point");

    // The Secret rotated: the next run reads it anew and succeeds.
    api.upsert(writer_secret(&rotated));
    let second = point_written(&tokio::task::block_in_place(|| backup_job(&api, mount.path())).0);
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(complete().await, expected);
}
