//! HashiCorp Vault (and OpenBao): token or Kubernetes auth, then a KV v1 or v2 read of the field
//! that holds the passphrase. Vault's own error messages are passed on; tokens never are.

use super::{KvVersion, PassphraseError, VaultAuth, VaultConfig, VaultSecret, WipedJson};
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::format::crypto::Passphrase;

/// A minimal Vault HTTP API client: login and KV reads.
pub(super) struct VaultClient<'a> {
    http: reqwest::Client,
    cfg: &'a VaultConfig,
    base: String,
}

impl<'a> VaultClient<'a> {
    pub(super) fn new(cfg: &'a VaultConfig) -> Result<Self, PassphraseError> {
        crate::init_crypto_provider();
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(Duration::from_secs(30));
        if let Some(path) = &cfg.ca_bundle {
            builder = crate::tls::trust_pem_file(builder, path).map_err(PassphraseError::VaultCaBundle)?;
        }
        let http = builder.build().map_err(|e| PassphraseError::VaultUnreachable { address: cfg.address.clone(), detail: e.to_string() })?;
        if cfg.address.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://")) {
            tracing::warn!(
                address = %cfg.address,
                "the Vault address is plain HTTP: the Vault token and the DR passphrase cross the network unencrypted; use https://"
            );
        }
        Ok(Self { http, cfg, base: cfg.address.trim_end_matches('/').to_owned() })
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, WipedJson), PassphraseError> {
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

    pub(super) async fn token(&self) -> Result<Zeroizing<String>, PassphraseError> {
        match &self.cfg.auth {
            VaultAuth::Token(t) => Ok(t.clone()),
            VaultAuth::Kubernetes { role, token_path, mount } => {
                let jwt = Zeroizing::new(
                    crate::local_file::read_to_string(
                        token_path,
                        "the service account token",
                        crate::local_file::MAX_SECRET_BYTES as u64,
                        crate::local_file::Links::Follow,
                    )
                    .map_err(|e| PassphraseError::TokenFile {
                        path: token_path.clone(),
                        // The message names the path already.
                        detail: match e {
                            crate::local_file::LocalFileError::Io { source, .. } => source.to_string(),
                            crate::local_file::LocalFileError::NotRegular { kind, .. } => format!("it is {kind}, not a regular file"),
                            crate::local_file::LocalFileError::TooLarge { .. } => "it is too large to be a token".into(),
                        },
                    })?
                    .trim()
                    .to_owned(),
                );
                let what = format!("Kubernetes auth login as role {role:?} at auth/{mount}");
                let (status, body) = self
                    .call(reqwest::Method::POST, &format!("auth/{mount}/login"), None, Some(serde_json::json!({"role": role, "jwt": jwt.as_str()})))
                    .await?;
                match status {
                    200 => body["auth"]["client_token"].as_str().map(|t| Zeroizing::new(t.to_owned())).ok_or_else(|| PassphraseError::VaultOther {
                        what,
                        status,
                        detail: "no client_token in the response".into(),
                    }),
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

    pub(super) async fn read_passphrase(&self, secret: &VaultSecret) -> Result<Passphrase, PassphraseError> {
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
                    VaultAuth::Token(_) => {
                        format!("the token (key vault_token of vault.secretName) is invalid or expired, or its policy lacks read on {api_path}")
                    }
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
            Some(p) => Passphrase::new(p.to_owned()).map_err(|_| PassphraseError::Empty(format!("Vault {mount}/{path} field {}", secret.field))),
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
    pub(super) async fn mount_kv_version(&self, mount: &str, token: &str) -> Option<KvVersion> {
        let (status, body) = self.call(reqwest::Method::GET, &format!("sys/internal/ui/mounts/{mount}"), Some(token), None).await.ok()?;
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

pub(super) fn vault_errors(body: &Value) -> String {
    let errs: Vec<&str> = body["errors"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if errs.is_empty() {
        "no error message".into()
    } else {
        errs.join("; ")
    }
}
