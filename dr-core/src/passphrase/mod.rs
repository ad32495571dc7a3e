//! Where the DR passphrase comes from: the keys of `k10-dr-secret`, exactly as the source
//! documents give them.
//!
//! - raw: `key` holds the passphrase;
//! - HashiCorp Vault: `source=vault`, `vault-kv-version` (`KVv1`|`KVv2`), `vault-mount-path`,
//!   `vault-secret-path`, `key` (the field holding the passphrase);
//! - AWS Secrets Manager: `source=aws`, `aws-region`, `key` (the secret's name).
//!
//! No error message ever contains the passphrase or a token.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::format::crypto::Passphrase;
use aws::read_aws_secret;
use vault::VaultClient;

mod aws;
mod vault;

/// Default path of a pod's service-account token (Vault Kubernetes auth).
pub const DEFAULT_SA_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Default mount of Vault's Kubernetes auth method.
pub const DEFAULT_K8S_AUTH_MOUNT: &str = "kubernetes";

/// A passphrase source as `k10-dr-secret` describes it.
#[derive(Clone, Debug)]
pub enum PassphraseSource {
    Raw(Passphrase),
    Vault(VaultSecret),
    Aws(AwsSecret),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvVersion {
    V1,
    V2,
}

impl KvVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            KvVersion::V1 => "KVv1",
            KvVersion::V2 => "KVv2",
        }
    }
    pub fn parse(s: &str) -> Result<Self, PassphraseError> {
        match s.trim() {
            "KVv1" => Ok(KvVersion::V1),
            "KVv2" => Ok(KvVersion::V2),
            other => Err(PassphraseError::InvalidSecret(format!(
                "vault-kv-version is {other:?}: use KVv1 or KVv2 (the version of the key-value secrets engine at vault-mount-path)"
            ))),
        }
    }
}

/// A passphrase held in a field of a Vault KV secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultSecret {
    pub kv_version: KvVersion,
    pub mount_path: String,
    pub secret_path: String,
    /// The field of the secret that holds the passphrase.
    pub field: String,
}

/// A passphrase held as an AWS Secrets Manager secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsSecret {
    pub region: String,
    /// The secret's name (or ARN).
    pub name: String,
}

/// How to reach and log in to Vault (chart values `vault.*`).
#[derive(Clone)]
pub struct VaultConfig {
    pub address: String,
    pub auth: VaultAuth,
    /// Vault Enterprise / OpenBao namespace, if any.
    pub namespace: Option<String>,
    /// PEM file with the CA certificates that signed Vault's TLS certificate, trusted besides
    /// the system's roots (the chart's `vault.caBundle`, `--vault-ca-bundle`).
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Clone)]
pub enum VaultAuth {
    /// A Vault token (the `vault_token` key of `vault.secretName`).
    Token(Zeroizing<String>),
    /// Kubernetes auth: log in with the pod's service-account token.
    Kubernetes { role: String, token_path: PathBuf, mount: String },
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            VaultAuth::Token(_) => "token([redacted])".to_owned(),
            VaultAuth::Kubernetes { role, mount, .. } => format!("kubernetes(role={role}, mount={mount})"),
        };
        write!(f, "VaultConfig {{ address: {}, auth: {auth} }}", self.address)
    }
}

/// What is needed besides the secret to resolve it.
#[derive(Clone, Debug, Default)]
pub struct ResolveOptions {
    pub vault: Option<VaultConfig>,
    /// Endpoint override for Secrets Manager (tests, VPC endpoints); the SDK's default otherwise.
    pub aws_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("k10-dr-secret is invalid: {0}")]
    InvalidSecret(String),
    #[error("k10-dr-secret has source=vault, but Vault is not configured: set vault.enabled=true with vault.address and either vault.secretName (token auth) or vault.role (Kubernetes auth)")]
    VaultNotConfigured,
    #[error("cannot reach Vault at {address}: {detail}. Check vault.address and the network path to Vault")]
    VaultUnreachable { address: String, detail: String },
    #[error("the TLS certificate of Vault at {address} is not trusted ({detail}): give the CA that signed it (chart value vault.caBundle, or --vault-ca-bundle FILE)")]
    VaultUntrusted { address: String, detail: String },
    #[error("cannot use the Vault CA bundle: {0}")]
    VaultCaBundle(String),
    #[error("Vault at {address} is sealed: unseal it, then run again")]
    VaultSealed { address: String },
    #[error("Vault refused {what} (403 permission denied): {hint}")]
    VaultDenied { what: String, hint: String },
    #[error("Vault has no secret at {mount}/{path} ({version}): check vault-mount-path and vault-secret-path in k10-dr-secret")]
    VaultSecretNotFound { mount: String, path: String, version: &'static str },
    #[error("Vault mount {mount} is a {actual} key-value engine but k10-dr-secret says vault-kv-version={configured}: set vault-kv-version={actual}")]
    VaultWrongKvVersion { mount: String, configured: &'static str, actual: &'static str },
    #[error("the Vault secret {mount}/{path} has no field {field:?} (it has: {fields}): set key in k10-dr-secret to the field that holds the passphrase")]
    VaultFieldMissing { mount: String, path: String, field: String, fields: String },
    #[error("Vault answered {status} for {what}: {detail}")]
    VaultOther { what: String, status: u16, detail: String },
    #[error("cannot read the service-account token {path}: {detail}. Check vault.serviceAccountTokenPath and that the pod mounts its token")]
    TokenFile { path: PathBuf, detail: String },
    #[error("AWS Secrets Manager has no secret {name:?} in region {region}: check key (the secret's name) and aws-region in k10-dr-secret")]
    AwsNotFound { name: String, region: String },
    #[error("AWS Secrets Manager refused to read secret {name:?} in region {region}: the credentials need secretsmanager:GetSecretValue (and kms:Decrypt for its key)")]
    AwsDenied { name: String, region: String },
    #[error("cannot reach AWS Secrets Manager in region {region}: {detail}. Check aws-region and the network path")]
    AwsUnreachable { region: String, detail: String },
    #[error("no AWS credentials found to read secret {name:?}: use IRSA / a web identity, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")]
    AwsNoCredentials { name: String },
    #[error("reading secret {name:?} from AWS Secrets Manager in region {region} failed: {detail}")]
    AwsOther { name: String, region: String, detail: String },
    #[error("the passphrase found at {0} is empty or not text: store the DR passphrase there")]
    Empty(String),
}

impl crate::failure::Classify for PassphraseError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        use PassphraseError as E;
        match self {
            E::VaultUnreachable { .. } | E::VaultSealed { .. } | E::AwsUnreachable { .. } => ErrorKind::Transient,
            E::VaultOther { status, .. } if *status >= 500 || *status == 429 => ErrorKind::Transient,
            _ => ErrorKind::BadInput,
        }
    }
}

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Result<Option<String>, PassphraseError> {
    data.get(key)
        .map(|v| {
            String::from_utf8(v.clone()).map(|s| s.trim().to_owned()).map_err(|_| PassphraseError::InvalidSecret(format!("key {key:?} is not UTF-8 text")))
        })
        .transpose()
}

fn required(data: &BTreeMap<String, Vec<u8>>, key: &str, source: &str, what: &str) -> Result<String, PassphraseError> {
    match text(data, key)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(PassphraseError::InvalidSecret(format!("source={source} needs key {key:?} ({what})"))),
    }
}

/// The data of a `k10-dr-secret`. With a raw source one value is the passphrase, so every
/// value is wiped when this is dropped.
#[derive(Default, PartialEq)]
pub struct SecretData(pub BTreeMap<String, Vec<u8>>);

impl Drop for SecretData {
    fn drop(&mut self) {
        wipe_values(&mut self.0);
    }
}

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretData {{ keys: {:?} }}", self.0.keys().collect::<Vec<_>>())
    }
}

/// Wipes the values of a Secret's data (the keys are names, not secrets).
pub fn wipe_values(data: &mut BTreeMap<String, Vec<u8>>) {
    for v in data.values_mut() {
        v.zeroize();
    }
}

impl PassphraseSource {
    /// Reads the source from the data of `k10-dr-secret`.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, PassphraseError> {
        match text(data, "source")?.as_deref() {
            None | Some("") | Some("raw") => {
                let raw = data.get("key").ok_or_else(|| {
                    PassphraseError::InvalidSecret(
                        "it has no key \"key\": create it with --from-literal key=<passphrase>, or set source=vault or source=aws".into(),
                    )
                })?;
                Passphrase::from_bytes(raw.clone()).map(PassphraseSource::Raw).map_err(|_| PassphraseError::Empty("k10-dr-secret key \"key\"".into()))
            }
            Some("vault") => Ok(PassphraseSource::Vault(VaultSecret {
                kv_version: KvVersion::parse(&required(data, "vault-kv-version", "vault", "KVv1 or KVv2")?)?,
                mount_path: required(data, "vault-mount-path", "vault", "where the key-value engine is mounted")?.trim_matches('/').to_owned(),
                secret_path: required(data, "vault-secret-path", "vault", "the path from the mount to the secret")?.trim_matches('/').to_owned(),
                field: required(data, "key", "vault", "the field holding the passphrase")?,
            })),
            Some("aws") => Ok(PassphraseSource::Aws(AwsSecret {
                region: required(data, "aws-region", "aws", "the secret's region")?,
                name: required(data, "key", "aws", "the secret's name")?,
            })),
            Some(other) => Err(PassphraseError::InvalidSecret(format!("source is {other:?}: leave it out for a raw passphrase in key, or use vault or aws"))),
        }
    }

    /// The data of a `k10-dr-secret` for this source (the inverse of `from_secret_data`).
    pub fn to_secret_data(&self) -> SecretData {
        let mut d = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            d.insert(k.to_owned(), v.as_bytes().to_vec());
        };
        match self {
            PassphraseSource::Raw(p) => put("key", std::str::from_utf8(p.expose()).expect("UTF-8")),
            PassphraseSource::Vault(v) => {
                put("source", "vault");
                put("vault-kv-version", v.kv_version.as_str());
                put("vault-mount-path", &v.mount_path);
                put("vault-secret-path", &v.secret_path);
                put("key", &v.field);
            }
            PassphraseSource::Aws(a) => {
                put("source", "aws");
                put("aws-region", &a.region);
                put("key", &a.name);
            }
        }
        SecretData(d)
    }

    /// Fetches the passphrase.
    pub async fn resolve(&self, opts: &ResolveOptions) -> Result<Passphrase, PassphraseError> {
        match self {
            PassphraseSource::Raw(p) => Ok(p.clone()),
            PassphraseSource::Vault(secret) => {
                let cfg = opts.vault.as_ref().ok_or(PassphraseError::VaultNotConfigured)?;
                VaultClient::new(cfg)?.read_passphrase(secret).await
            }
            PassphraseSource::Aws(secret) => read_aws_secret(secret, opts.aws_endpoint.as_deref()).await,
        }
    }

    /// Where the passphrase comes from, for messages (never the passphrase itself).
    pub fn describe(&self) -> String {
        match self {
            PassphraseSource::Raw(_) => "a raw passphrase".into(),
            PassphraseSource::Vault(v) => format!("Vault {}/{} field {} ({})", v.mount_path, v.secret_path, v.field, v.kv_version.as_str()),
            PassphraseSource::Aws(a) => format!("AWS Secrets Manager secret {} in {}", a.name, a.region),
        }
    }
}

/// A Vault reply, whose strings (a token, the passphrase) are wiped when it is dropped.
struct WipedJson(Value);

impl std::ops::Deref for WipedJson {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.0
    }
}

impl Drop for WipedJson {
    fn drop(&mut self) {
        fn wipe(v: &mut Value) {
            match v {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(wipe),
                Value::Object(fields) => fields.values_mut().for_each(wipe),
                _ => {}
            }
        }
        wipe(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn reads_the_seed_examples() {
        let vault = PassphraseSource::from_secret_data(&data(&[
            ("source", "vault"),
            ("vault-kv-version", "KVv1"),
            ("vault-mount-path", "secret"),
            ("vault-secret-path", "k10"),
            ("key", "passphrase"),
        ]))
        .unwrap();
        let PassphraseSource::Vault(v) = &vault else { panic!("not vault") };
        assert_eq!((v.kv_version, v.mount_path.as_str(), v.secret_path.as_str(), v.field.as_str()), (KvVersion::V1, "secret", "k10", "passphrase"));
        let aws = PassphraseSource::from_secret_data(&data(&[("source", "aws"), ("aws-region", "us-east-1"), ("key", "k10/dr/passphrase")])).unwrap();
        assert!(matches!(&aws, PassphraseSource::Aws(a) if a.region == "us-east-1" && a.name == "k10/dr/passphrase"));
        let raw = PassphraseSource::from_secret_data(&data(&[("key", "s3cret phrase")])).unwrap();
        assert!(matches!(raw, PassphraseSource::Raw(_)));
        // Round trip through the secret's data.
        assert!(PassphraseSource::from_secret_data(&vault.to_secret_data().0).unwrap().to_secret_data() == vault.to_secret_data());
    }

    #[test]
    fn incomplete_secrets_say_which_key_is_missing() {
        let err = PassphraseSource::from_secret_data(&data(&[("source", "vault"), ("vault-kv-version", "KVv2"), ("key", "p")])).unwrap_err().to_string();
        assert!(err.contains("vault-mount-path"), "{err}");
        let err = PassphraseSource::from_secret_data(&data(&[
            ("source", "vault"),
            ("vault-kv-version", "v3"),
            ("vault-mount-path", "m"),
            ("vault-secret-path", "p"),
            ("key", "k"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("KVv1 or KVv2"), "{err}");
        let err = PassphraseSource::from_secret_data(&data(&[("source", "gcp"), ("key", "x")])).unwrap_err().to_string();
        assert!(err.contains("vault or aws"), "{err}");
        let err = PassphraseSource::from_secret_data(&data(&[])).unwrap_err().to_string();
        assert!(err.contains("--from-literal key="), "{err}");
    }
}
