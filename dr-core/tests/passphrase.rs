//! Passphrase sources against real servers: OpenBao (the Vault API) for KV v1, KV v2 and
//! token auth; moto for AWS Secrets Manager. Every failure names what it looked for.

use dr_test_support as support;

use dr_core::passphrase::{AwsSecret, KvVersion, PassphraseError, PassphraseSource, ResolveOptions, VaultAuth, VaultConfig, VaultSecret};
use reqwest::Method;
use serde_json::json;
use support::{bao, moto, moto_setup, openbao, BAO_ROOT_TOKEN};
use zeroize::Zeroizing;

const PASSPHRASE: &str = "vault-held passphrase 42";

fn vault_opts(server: &support::Server, token: &str) -> ResolveOptions {
    ResolveOptions {
        vault: Some(VaultConfig { address: server.url.clone(), auth: VaultAuth::Token(Zeroizing::new(token.into())), namespace: None, ca_bundle: None }),
        aws_endpoint: None,
    }
}

fn vault_source(kv: KvVersion, mount: &str, path: &str, field: &str) -> PassphraseSource {
    PassphraseSource::Vault(VaultSecret { kv_version: kv, mount_path: mount.into(), secret_path: path.into(), field: field.into() })
}

/// OpenBao with a KV v1 mount `kv1/` and the dev server's KV v2 `secret/`, each holding the
/// passphrase in field `passphrase` at `k10`, and a token that may read only `kv1/k10`.
async fn vault_with_secrets() -> (support::Server, String) {
    let server = openbao();
    bao(&server, Method::POST, "sys/mounts/kv1", Some(json!({"type": "kv", "options": {"version": "1"}}))).await;
    bao(&server, Method::POST, "kv1/k10", Some(json!({"passphrase": PASSPHRASE, "other": "x"}))).await;
    bao(&server, Method::POST, "secret/data/k10", Some(json!({"data": {"passphrase": PASSPHRASE}}))).await;
    bao(&server, Method::PUT, "sys/policies/acl/kv1-only", Some(json!({"policy": "path \"kv1/k10\" { capabilities = [\"read\"] }"}))).await;
    let token = bao(&server, Method::POST, "auth/token/create", Some(json!({"policies": ["kv1-only"]}))).await;
    let limited = token["auth"]["client_token"].as_str().unwrap().to_owned();
    (server, limited)
}

fn assert_secret_free(err: &PassphraseError, token: &str) {
    let msg = err.to_string();
    assert!(!msg.contains(PASSPHRASE) && !msg.contains(token) && !msg.contains(BAO_ROOT_TOKEN), "{msg}");
}

#[tokio::test]
async fn vault_kv_v1_and_v2_with_token_auth() {
    let (server, limited) = vault_with_secrets().await;
    let p = vault_source(KvVersion::V1, "kv1", "k10", "passphrase").resolve(&vault_opts(&server, &limited)).await.unwrap();
    assert_eq!(format!("{p:?}"), "Passphrase([redacted])");
    let v2 = vault_source(KvVersion::V2, "secret", "k10", "passphrase").resolve(&vault_opts(&server, BAO_ROOT_TOKEN)).await.unwrap();
    // Both resolve to the same passphrase: a point sealed with one opens with the other.
    let loc_dir = tempfile::tempdir().unwrap();
    let loc = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc_dir.path().into() }).await.unwrap();
    let m = support::write_point(&loc, "c1", &p, &support::sample_entries(2, 5)).await;
    dr_core::point::verify_point(&loc, "c1", &m.point_id, &dr_core::point::Unlocker::new(v2)).await.unwrap();
}

#[tokio::test]
async fn vault_failures_say_what_was_looked_for() {
    let (server, limited) = vault_with_secrets().await;
    let root = vault_opts(&server, BAO_ROOT_TOKEN);

    // The token's policy does not cover the path.
    let err = vault_source(KvVersion::V2, "secret", "k10", "passphrase").resolve(&vault_opts(&server, &limited)).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultDenied { .. }), "{err}");
    assert!(err.to_string().contains("secret/data/k10") && err.to_string().contains("vault_token"), "{err}");
    assert_secret_free(&err, &limited);

    // A token Vault does not know.
    let err = vault_source(KvVersion::V1, "kv1", "k10", "passphrase").resolve(&vault_opts(&server, "not-a-token")).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultDenied { .. }), "{err}");
    assert_secret_free(&err, "not-a-token");

    // Missing path.
    let err = vault_source(KvVersion::V1, "kv1", "nope", "passphrase").resolve(&root).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultSecretNotFound { .. }), "{err}");
    assert!(err.to_string().contains("kv1/nope") && err.to_string().contains("vault-secret-path"), "{err}");

    // Missing field: names the fields that exist.
    let err = vault_source(KvVersion::V1, "kv1", "k10", "pass").resolve(&root).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultFieldMissing { .. }), "{err}");
    assert!(err.to_string().contains("\"pass\"") && err.to_string().contains("other, passphrase"), "{err}");
    assert_secret_free(&err, BAO_ROOT_TOKEN);

    // Wrong KV version, both ways.
    let err = vault_source(KvVersion::V1, "secret", "k10", "passphrase").resolve(&root).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultWrongKvVersion { actual: "KVv2", .. }), "{err}");
    assert!(err.to_string().contains("vault-kv-version=KVv2"), "{err}");
    let err = vault_source(KvVersion::V2, "kv1", "k10", "passphrase").resolve(&root).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultWrongKvVersion { actual: "KVv1", .. }), "{err}");

    // Sealed.
    bao(&server, Method::PUT, "sys/seal", None).await;
    let err = vault_source(KvVersion::V1, "kv1", "k10", "passphrase").resolve(&root).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultSealed { .. }), "{err}");
    assert!(err.to_string().contains("unseal"), "{err}");
}

#[tokio::test]
async fn unreachable_or_unconfigured_vault_is_a_clear_error() {
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let opts = ResolveOptions {
        vault: Some(VaultConfig { address: closed.clone(), auth: VaultAuth::Token(Zeroizing::new("t".into())), namespace: None, ca_bundle: None }),
        aws_endpoint: None,
    };
    let err = vault_source(KvVersion::V2, "secret", "k10", "passphrase").resolve(&opts).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultUnreachable { .. }), "{err}");
    assert!(err.to_string().contains(&closed) && err.to_string().contains("vault.address"), "{err}");
    let err = vault_source(KvVersion::V2, "secret", "k10", "passphrase").resolve(&ResolveOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("vault.enabled=true"), "{err}");
}

#[tokio::test]
async fn vault_kubernetes_auth_with_a_missing_token_file_names_the_path() {
    let server = openbao();
    let opts = ResolveOptions {
        vault: Some(VaultConfig {
            address: server.url.clone(),
            auth: VaultAuth::Kubernetes { role: "dr".into(), token_path: "/nonexistent/token".into(), mount: "kubernetes".into() },
            namespace: None,
            ca_bundle: None,
        }),
        aws_endpoint: None,
    };
    let err = vault_source(KvVersion::V2, "secret", "k10", "passphrase").resolve(&opts).await.unwrap_err();
    assert!(matches!(err, PassphraseError::TokenFile { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/token") && err.to_string().contains("vault.serviceAccountTokenPath"), "{err}");
}

#[tokio::test]
async fn aws_secrets_manager_source() {
    let server = moto();
    moto_setup(&server, &["secret", "us-east-1", "k10/dr/passphrase"], Some(PASSPHRASE));
    // moto accepts any credentials; the SDK still needs some to sign with.
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    let opts = ResolveOptions { vault: None, aws_endpoint: Some(server.url.clone()) };
    let source = |region: &str, name: &str| PassphraseSource::Aws(AwsSecret { region: region.into(), name: name.into() });

    let p = source("us-east-1", "k10/dr/passphrase").resolve(&opts).await.unwrap();
    let loc_dir = tempfile::tempdir().unwrap();
    let loc = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc_dir.path().into() }).await.unwrap();
    let m = support::write_point(&loc, "c1", &p, &support::sample_entries(2, 5)).await;
    let same = dr_core::format::crypto::Passphrase::new(PASSPHRASE.into()).unwrap();
    dr_core::point::verify_point(&loc, "c1", &m.point_id, &dr_core::point::Unlocker::new(same)).await.unwrap();

    let err = source("us-east-1", "k10/dr/other").resolve(&opts).await.unwrap_err();
    assert!(matches!(err, PassphraseError::AwsNotFound { .. }), "{err}");
    assert!(err.to_string().contains("k10/dr/other") && err.to_string().contains("aws-region"), "{err}");
    // The right name in the wrong region is not found there, and the message names the region.
    let err = source("eu-west-1", "k10/dr/passphrase").resolve(&opts).await.unwrap_err();
    assert!(matches!(err, PassphraseError::AwsNotFound { .. }), "{err}");
    assert!(err.to_string().contains("eu-west-1"), "{err}");
    assert!(!err.to_string().contains(PASSPHRASE));

    let closed = ResolveOptions { vault: None, aws_endpoint: Some(format!("http://127.0.0.1:{}", support::free_port())) };
    let err = source("us-east-1", "k10/dr/passphrase").resolve(&closed).await.unwrap_err();
    assert!(matches!(err, PassphraseError::AwsUnreachable { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kubernetes_auth_against_token_review() {
    let api = support::apiserver::ApiServer::start().await;
    let vault = support::vault_with_kubernetes_auth(&api, PASSPHRASE).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = |token: &str, role: &str| {
        let path = dir.path().join(format!("token-{role}-{}", token.len()));
        std::fs::write(&path, token).unwrap();
        ResolveOptions {
            vault: Some(VaultConfig {
                address: vault.url.clone(),
                auth: VaultAuth::Kubernetes { role: role.into(), token_path: path, mount: "kubernetes".into() },
                namespace: None,
                ca_bundle: None,
            }),
            aws_endpoint: None,
        }
    };
    let source = vault_source(KvVersion::V2, "secret", "k10", "passphrase");
    // The DR service account's token logs in and reads the passphrase.
    let token = api.issue_token("kasten-io", "kubectl-dr-backup");
    let reviews = api.token_reviews();
    let p = source.resolve(&opts(&token, "dr")).await.unwrap();
    assert_eq!(format!("{p:?}"), "Passphrase([redacted])");
    assert!(api.token_reviews() > reviews, "OpenBao asked the API server to review the token");
    // Another service account is not bound to the role.
    let other = api.issue_token("shop", "default");
    let err = source.resolve(&opts(&other, "dr")).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultDenied { .. }), "{err}");
    assert!(err.to_string().contains("role \"dr\"") && err.to_string().contains("vault.role"), "{err}");
    assert_secret_free(&err, &other);
    // A token the API server never issued fails its review.
    let err = source.resolve(&opts("not.a.token", "dr")).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultDenied { .. } | PassphraseError::VaultOther { .. }), "{err}");
    // An unknown role.
    let err = source.resolve(&opts(&token, "nope")).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultDenied { .. } | PassphraseError::VaultOther { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");
}

/// A Vault whose certificate a private CA signed: trusted with that CA (the chart's
/// `vault.caBundle`), refused without it, with a message that says what to set.
#[tokio::test]
async fn vault_over_tls_is_trusted_through_its_ca_bundle() {
    let (server, ca) = support::openbao_tls();
    support::wait_vault_healthy(&server).await;
    bao(&server, Method::POST, "secret/data/k10", Some(json!({"data": {"passphrase": PASSPHRASE}}))).await;
    let source = vault_source(KvVersion::V2, "secret", "k10", "passphrase");
    let mut opts = vault_opts(&server, BAO_ROOT_TOKEN);

    let err = source.resolve(&opts).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultUntrusted { .. }), "{err}");
    assert!(err.to_string().contains("vault.caBundle"), "{err}");
    assert_secret_free(&err, BAO_ROOT_TOKEN);

    opts.vault.as_mut().unwrap().ca_bundle = Some(ca);
    let pass = source.resolve(&opts).await.unwrap();
    // It is the passphrase Vault holds: a point sealed with it opens with the raw one.
    let loc_dir = tempfile::tempdir().unwrap();
    let loc = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc_dir.path().into() }).await.unwrap();
    let m = support::write_point(&loc, "c1", &pass, &support::sample_entries(2, 5)).await;
    let raw = dr_core::format::crypto::Passphrase::new(PASSPHRASE.into()).unwrap();
    dr_core::point::verify_point(&loc, "c1", &m.point_id, &dr_core::point::Unlocker::new(raw)).await.unwrap();

    // A file that holds no certificate is named before Vault is asked anything.
    let bogus = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bogus.path(), "not a certificate").unwrap();
    opts.vault.as_mut().unwrap().ca_bundle = Some(bogus.path().into());
    let err = source.resolve(&opts).await.unwrap_err();
    assert!(matches!(err, PassphraseError::VaultCaBundle(_)) && err.to_string().contains("no certificate"), "{err}");
}
