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
use std::time::Duration;

use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::format::crypto::Passphrase;

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

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Result<Option<String>, PassphraseError> {
    data.get(key)
        .map(|v| {
            String::from_utf8(v.clone())
                .map(|s| s.trim().to_owned())
                .map_err(|_| PassphraseError::InvalidSecret(format!("key {key:?} is not UTF-8 text")))
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
                    PassphraseError::InvalidSecret("it has no key \"key\": create it with --from-literal key=<passphrase>, or set source=vault or source=aws".into())
                })?;
                Passphrase::from_bytes(raw.clone())
                    .map(PassphraseSource::Raw)
                    .map_err(|_| PassphraseError::Empty("k10-dr-secret key \"key\"".into()))
            }
            Some("vault") => Ok(PassphraseSource::Vault(VaultSecret {
                kv_version: KvVersion::parse(&required(data, "vault-kv-version", "vault", "KVv1 or KVv2")?)?,
                mount_path: required(data, "vault-mount-path", "vault", "where the key-value engine is mounted")?
                    .trim_matches('/')
                    .to_owned(),
                secret_path: required(data, "vault-secret-path", "vault", "the path from the mount to the secret")?
                    .trim_matches('/')
                    .to_owned(),
                field: required(data, "key", "vault", "the field holding the passphrase")?,
            })),
            Some("aws") => Ok(PassphraseSource::Aws(AwsSecret {
                region: required(data, "aws-region", "aws", "the secret's region")?,
                name: required(data, "key", "aws", "the secret's name")?,
            })),
            Some(other) => Err(PassphraseError::InvalidSecret(format!(
                "source is {other:?}: leave it out for a raw passphrase in key, or use vault or aws"
            ))),
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

/// A minimal Vault HTTP API client: login and KV reads.
struct VaultClient<'a> {
    http: reqwest::Client,
    cfg: &'a VaultConfig,
    base: String,
}

impl<'a> VaultClient<'a> {
    fn new(cfg: &'a VaultConfig) -> Result<Self, PassphraseError> {
        crate::init_crypto_provider();
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(Duration::from_secs(30));
        if let Some(path) = &cfg.ca_bundle {
            builder = crate::tls::trust_pem_file(builder, path).map_err(PassphraseError::VaultCaBundle)?;
        }
        let http = builder
            .build()
            .map_err(|e| PassphraseError::VaultUnreachable { address: cfg.address.clone(), detail: e.to_string() })?;
        if cfg.address.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://")) {
            tracing::warn!(
                address = %cfg.address,
                "the Vault address is plain HTTP: the Vault token and the DR passphrase cross the network unencrypted; use https://"
            );
        }
        Ok(Self { http, cfg, base: cfg.address.trim_end_matches('/').to_owned() })
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Result<(u16, WipedJson), PassphraseError> {
        let mut req = self.http.request(method, format!("{}/v1/{path}", self.base));
        if let Some(t) = token {
            // Sensitive: left out of HTTP debug output and HPACK-indexed as never-indexed.
            let mut value = reqwest::header::HeaderValue::from_str(t).map_err(|_| PassphraseError::VaultOther {
                what: "sending the Vault token".into(),
                status: 0,
                detail: "the token holds characters an HTTP header cannot carry".into(),
            })?;
            value.set_sensitive(true);
            req = req.header("X-Vault-Token", value);
        }
        if let Some(ns) = &self.cfg.namespace {
            req = req.header("X-Vault-Namespace", ns);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            let detail = crate::error_text(&e);
            // rustls says "invalid peer certificate: UnknownIssuer" (or BadSignature, NotValidForName...).
            if detail.contains("invalid peer certificate") {
                PassphraseError::VaultUntrusted { address: self.cfg.address.clone(), detail }
            } else {
                PassphraseError::VaultUnreachable { address: self.cfg.address.clone(), detail }
            }
        })?;
        let status = resp.status().as_u16();
        // The reply may hold the passphrase or a token: keep our copy where it can be wiped.
        // (`Vec::from(Bytes)` takes over the buffer when nothing else shares it.)
        let raw = Zeroizing::new(resp.bytes().await.map(Vec::from).unwrap_or_default());
        let body = WipedJson(serde_json::from_slice(&raw).unwrap_or(Value::Null));
        if status == 503 && vault_errors(&body).contains("sealed") {
            return Err(PassphraseError::VaultSealed { address: self.cfg.address.clone() });
        }
        Ok((status, body))
    }

    async fn token(&self) -> Result<Zeroizing<String>, PassphraseError> {
        match &self.cfg.auth {
            VaultAuth::Token(t) => Ok(t.clone()),
            VaultAuth::Kubernetes { role, token_path, mount } => {
                let jwt = Zeroizing::new(
                    tokio::fs::read_to_string(token_path)
                        .await
                        .map_err(|e| PassphraseError::TokenFile { path: token_path.clone(), detail: e.to_string() })?
                        .trim()
                        .to_owned(),
                );
                let what = format!("Kubernetes auth login as role {role:?} at auth/{mount}");
                let (status, body) = self
                    .call(reqwest::Method::POST, &format!("auth/{mount}/login"), None, Some(serde_json::json!({"role": role, "jwt": jwt.as_str()})))
                    .await?;
                match status {
                    200 => body["auth"]["client_token"]
                        .as_str()
                        .map(|t| Zeroizing::new(t.to_owned()))
                        .ok_or_else(|| PassphraseError::VaultOther { what, status, detail: "no client_token in the response".into() }),
                    400 | 403 => Err(PassphraseError::VaultDenied {
                        what,
                        hint: format!(
                            "{}. Check that vault.role names a role bound to this service account and namespace, and that the auth method can review tokens",
                            vault_errors(&body)
                        ),
                    }),
                    _ => Err(PassphraseError::VaultOther { what, status, detail: vault_errors(&body) }),
                }
            }
        }
    }

    async fn read_passphrase(&self, secret: &VaultSecret) -> Result<Passphrase, PassphraseError> {
        let token = self.token().await?;
        let (mount, path) = (&secret.mount_path, &secret.secret_path);
        let api_path = match secret.kv_version {
            KvVersion::V1 => format!("{mount}/{path}"),
            KvVersion::V2 => format!("{mount}/data/{path}"),
        };
        let what = format!("reading {api_path}");
        let (status, body) = self.call(reqwest::Method::GET, &api_path, Some(&token), None).await?;
        match status {
            200 => {}
            403 => {
                let hint = match &self.cfg.auth {
                    VaultAuth::Token(_) => format!("the token (key vault_token of vault.secretName) is invalid or expired, or its policy lacks read on {api_path}"),
                    VaultAuth::Kubernetes { role, .. } => format!("the policy of Vault role {role:?} lacks read on {api_path}"),
                };
                return Err(PassphraseError::VaultDenied { what, hint });
            }
            404 => {
                if let Some(actual) = self.mount_kv_version(mount, &token).await {
                    if actual != secret.kv_version {
                        return Err(PassphraseError::VaultWrongKvVersion {
                            mount: mount.clone(),
                            configured: secret.kv_version.as_str(),
                            actual: actual.as_str(),
                        });
                    }
                }
                return Err(PassphraseError::VaultSecretNotFound { mount: mount.clone(), path: path.clone(), version: secret.kv_version.as_str() });
            }
            _ => return Err(PassphraseError::VaultOther { what, status, detail: vault_errors(&body) }),
        }
        let data = match secret.kv_version {
            KvVersion::V1 => &body["data"],
            KvVersion::V2 => &body["data"]["data"],
        };
        let Some(fields) = data.as_object() else {
            // A KV v1 read of a v2 mount's `data/...` shape, or a deleted v2 version.
            return Err(PassphraseError::VaultSecretNotFound { mount: mount.clone(), path: path.clone(), version: secret.kv_version.as_str() });
        };
        match fields.get(&secret.field).and_then(Value::as_str) {
            Some(p) => Passphrase::new(p.to_owned())
                .map_err(|_| PassphraseError::Empty(format!("Vault {mount}/{path} field {}", secret.field))),
            None => {
                // A v2 secret read through the v1 API looks like {data: {...}, metadata: {...}}.
                if secret.kv_version == KvVersion::V1 && fields.contains_key("data") && fields.contains_key("metadata") {
                    return Err(PassphraseError::VaultWrongKvVersion { mount: mount.clone(), configured: "KVv1", actual: "KVv2" });
                }
                Err(PassphraseError::VaultFieldMissing {
                    mount: mount.clone(),
                    path: path.clone(),
                    field: secret.field.clone(),
                    fields: fields.keys().cloned().collect::<Vec<_>>().join(", "),
                })
            }
        }
    }

    /// The KV version of a mount, from the endpoint every token may read.
    async fn mount_kv_version(&self, mount: &str, token: &str) -> Option<KvVersion> {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("sys/internal/ui/mounts/{mount}"), Some(token), None)
            .await
            .ok()?;
        if status != 200 {
            return None;
        }
        let data = &body["data"];
        if data["type"].as_str()? != "kv" {
            return None;
        }
        match data["options"]["version"].as_str() {
            Some("2") => Some(KvVersion::V2),
            _ => Some(KvVersion::V1),
        }
    }
}

fn vault_errors(body: &Value) -> String {
    let errs: Vec<&str> = body["errors"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if errs.is_empty() {
        "no error message".into()
    } else {
        errs.join("; ")
    }
}

async fn read_aws_secret(secret: &AwsSecret, endpoint: Option<&str>) -> Result<Passphrase, PassphraseError> {
    use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    crate::init_crypto_provider();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(secret.region.clone()))
        .load()
        .await;
    let mut conf = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
        .timeout_config(aws_config::timeout::TimeoutConfig::builder().connect_timeout(Duration::from_secs(10)).build());
    if let Some(e) = endpoint {
        conf = conf.endpoint_url(e);
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(conf.build());
    let (name, region) = (secret.name.clone(), secret.region.clone());
    let out = client.get_secret_value().secret_id(&secret.name).send().await.map_err(|err| {
        let detail = DisplayErrorContext(&err).to_string();
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) if detail.contains("credentials") => {
                PassphraseError::AwsNoCredentials { name: name.clone() }
            }
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => PassphraseError::AwsUnreachable { region: region.clone(), detail: detail.chars().take(300).collect() },
            SdkError::ConstructionFailure(_) if detail.contains("credentials") => PassphraseError::AwsNoCredentials { name: name.clone() },
            _ => match err.code() {
                Some("ResourceNotFoundException") => PassphraseError::AwsNotFound { name: name.clone(), region: region.clone() },
                Some("AccessDeniedException") | Some("UnrecognizedClientException") | Some("InvalidSignatureException") => {
                    PassphraseError::AwsDenied { name: name.clone(), region: region.clone() }
                }
                _ => PassphraseError::AwsOther { name: name.clone(), region: region.clone(), detail: detail.chars().take(300).collect() },
            },
        }
    })?;
    let where_ = format!("AWS Secrets Manager secret {} in {}", secret.name, secret.region);
    let mut out = out;
    // Moved out, not copied: `Passphrase` wipes what it is given.
    if let Some(s) = out.secret_string.take() {
        Passphrase::new(s).map_err(|_| PassphraseError::Empty(where_))
    } else if let Some(b) = out.secret_binary.take() {
        Passphrase::from_bytes(b.into_inner()).map_err(|_| PassphraseError::Empty(where_))
    } else {
        Err(PassphraseError::Empty(where_))
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
        let err = PassphraseSource::from_secret_data(&data(&[("source", "vault"), ("vault-kv-version", "v3"), ("vault-mount-path", "m"), ("vault-secret-path", "p"), ("key", "k")])).unwrap_err().to_string();
        assert!(err.contains("KVv1 or KVv2"), "{err}");
        let err = PassphraseSource::from_secret_data(&data(&[("source", "gcp"), ("key", "x")])).unwrap_err().to_string();
        assert!(err.contains("vault or aws"), "{err}");
        let err = PassphraseSource::from_secret_data(&data(&[])).unwrap_err().to_string();
        assert!(err.contains("--from-literal key="), "{err}");
    }
}
