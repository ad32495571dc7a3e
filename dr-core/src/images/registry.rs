//! A client of the OCI distribution API for one repository: what `kubectl dr images mirror`
//! reads from and writes to. Bearer tokens and basic credentials from the container tools'
//! auth files; every manifest and blob checked against its digest as it is read.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::{check_digest, is_digest, ImageError, ImageRef, ImageSource, Manifest, MANIFEST_TYPES};

/// How to reach registries: plain HTTP for lab registries, extra CAs, credentials.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Speak HTTP, not HTTPS (a registry on loopback or in a lab).
    pub plain_http: bool,
    /// PEM file with the CA that signed the registry's certificate (besides the system's).
    pub ca_bundle: Option<PathBuf>,
}

/// A client of one repository of an OCI distribution registry.
pub struct Registry {
    http: reqwest::Client,
    image: ImageRef,
    base: String,
    /// `user:password` from the container tools' auth files, for this registry.
    basic: Option<String>,
    /// The authorization header that worked last (a bearer token, or basic).
    authorization: Option<String>,
}

impl Registry {
    pub fn new(image: &ImageRef, options: &RegistryOptions) -> Result<Self, ImageError> {
        crate::init_crypto_provider();
        let unreachable = |detail: String| ImageError::Unreachable { registry: image.registry.clone(), detail, hint: "" };
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).timeout(Duration::from_secs(300));
        if let Some(path) = &options.ca_bundle {
            builder = crate::tls::trust_pem_file(builder, path).map_err(|e| unreachable(format!("the CA bundle: {e}")))?;
        }
        let http = builder.build().map_err(|e| unreachable(e.to_string()))?;
        // Docker Hub's API lives on another host than its name.
        let host = if image.registry == "docker.io" { "registry-1.docker.io" } else { &image.registry };
        let scheme = if options.plain_http { "http" } else { "https" };
        Ok(Self {
            http,
            image: image.clone(),
            base: format!("{scheme}://{host}/v2/{}", image.repository),
            basic: registry_credentials(&image.registry),
            authorization: None,
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> ImageError {
        let detail = crate::error_text(e);
        let hint = if detail.contains("invalid peer certificate") {
            ", and give the CA that signed its certificate (--ca-bundle FILE)"
        } else if self.base.starts_with("https")
            && (detail.contains("InvalidContentType") || detail.contains("record overflow") || detail.contains("wrong version"))
        {
            ", and whether it speaks plain HTTP (--plain-http)"
        } else {
            ""
        };
        ImageError::Unreachable { registry: self.image.registry.clone(), detail, hint }
    }

    /// Sends a request, logging in when the registry asks (Bearer token or Basic), once.
    async fn send(&mut self, what: &str, build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder) -> Result<reqwest::Response, ImageError> {
        for attempt in 0..2 {
            let mut req = build(&self.http);
            if let Some(a) = &self.authorization {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
            if resp.status() != reqwest::StatusCode::UNAUTHORIZED || attempt == 1 {
                return Ok(resp);
            }
            let challenge = resp.headers().get(reqwest::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            self.authorization = Some(self.login(&challenge, what).await?);
        }
        unreachable!("the loop returns on its second attempt")
    }

    async fn login(&self, challenge: &str, what: &str) -> Result<String, ImageError> {
        use base64::Engine;
        let denied = |detail: String| ImageError::Denied { registry: self.image.registry.clone(), what: what.into(), status: 401, detail };
        let basic = self.basic.as_ref().map(|c| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(c)));
        let Some(params) = challenge.strip_prefix("Bearer ") else {
            return basic.ok_or_else(|| denied("no credentials for this registry".into()));
        };
        let param = |key: &str| params.split(',').find_map(|p| p.trim().strip_prefix(&format!("{key}=")).map(|v| v.trim_matches('"').to_owned()));
        let realm = param("realm").ok_or_else(|| denied(format!("an authentication challenge without a realm: {challenge}")))?;
        let mut req = self.http.get(&realm);
        let mut query = Vec::new();
        if let Some(service) = param("service") {
            query.push(("service", service));
        }
        query.push(("scope", format!("repository:{}:pull,push", self.image.repository)));
        req = req.query(&query);
        if let Some(b) = &basic {
            req = req.header(reqwest::header::AUTHORIZATION, b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            return Err(ImageError::Denied {
                registry: self.image.registry.clone(),
                what: "a token".into(),
                status,
                detail: resp.text().await.unwrap_or_default(),
            });
        }
        let body: Value = resp.json().await.map_err(|e| denied(format!("the token answer is not JSON: {e}")))?;
        let token = body["token"].as_str().or(body["access_token"].as_str()).ok_or_else(|| denied("the token answer holds no token".into()))?;
        Ok(format!("Bearer {token}"))
    }

    async fn fail(&self, resp: reqwest::Response, what: &str) -> ImageError {
        let status = resp.status().as_u16();
        let detail = resp.text().await.unwrap_or_default();
        let registry = self.image.registry.clone();
        match status {
            401 | 403 => ImageError::Denied { registry, what: what.into(), status, detail },
            404 => ImageError::NotFound { registry, what: what.into() },
            _ => ImageError::Registry { registry, what: what.into(), status, detail: detail.chars().take(300).collect() },
        }
    }

    /// Whether the registry already has the blob.
    pub(super) async fn has_blob(&mut self, digest: &str) -> Result<bool, ImageError> {
        let url = format!("{}/blobs/{digest}", self.base);
        let resp = self.send("a blob check", |c| c.head(&url)).await?;
        Ok(resp.status().is_success())
    }

    /// Uploads a blob in one request (monolithic upload).
    pub(super) async fn push_blob(&mut self, digest: &str, bytes: Vec<u8>) -> Result<(), ImageError> {
        let what = format!("uploading blob {digest} to {}", self.image.name());
        let start = format!("{}/blobs/uploads/", self.base);
        let resp = self.send(&what, |c| c.post(&start)).await?;
        if resp.status() != reqwest::StatusCode::ACCEPTED {
            return Err(self.fail(resp, &what).await);
        }
        let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let mut url = reqwest::Url::parse(&start).expect("the base is a URL").join(&location).map_err(|e| ImageError::Registry {
            registry: self.image.registry.clone(),
            what: what.clone(),
            status: 202,
            detail: format!("an upload location that is not a URL ({location:?}): {e}"),
        })?;
        url.query_pairs_mut().append_pair("digest", digest);
        let resp = self.send(&what, |c| c.put(url.clone()).header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(bytes.clone())).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, &what).await);
        }
        Ok(())
    }

    pub(super) async fn push_manifest(&mut self, reference: &str, manifest: &Manifest) -> Result<(), ImageError> {
        let what = format!("the manifest {}:{reference}", self.image.name());
        let url = format!("{}/manifests/{reference}", self.base);
        let resp = self.send(&what, |c| c.put(&url).header(reqwest::header::CONTENT_TYPE, &manifest.media_type).body(manifest.bytes.clone())).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, &what).await);
        }
        Ok(())
    }

    /// The manifest `reference` (a tag or a digest) names, with the digest the registry
    /// reports for it (`Docker-Content-Digest`).
    pub async fn get_manifest(&mut self, reference: &str) -> Result<(Manifest, Option<String>), ImageError> {
        let what = format!("manifest {}:{reference}", self.image.name());
        let url = format!("{}/manifests/{reference}", self.base);
        let accept = MANIFEST_TYPES.join(", ");
        let resp = self.send(&what, |c| c.get(&url).header(reqwest::header::ACCEPT, &accept)).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, &what).await);
        }
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let media_type = header("content-type").unwrap_or_else(|| MANIFEST_TYPES[0].into());
        let served_digest = header("docker-content-digest");
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?.to_vec();
        let manifest = Manifest { media_type, bytes };
        if is_digest(reference) {
            check_digest(&manifest.bytes, reference, "manifest", &self.image.name())?;
        }
        Ok((manifest, served_digest))
    }
}

impl ImageSource for Registry {
    async fn manifest(&mut self, reference: &str) -> Result<Manifest, ImageError> {
        Ok(self.get_manifest(reference).await?.0)
    }

    async fn blob(&mut self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let what = format!("blob {digest} of {}", self.image.name());
        let url = format!("{}/blobs/{digest}", self.base);
        let resp = self.send(&what, |c| c.get(&url)).await?;
        if !resp.status().is_success() {
            return Err(self.fail(resp, &what).await);
        }
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?.to_vec();
        check_digest(&bytes, digest, "blob", &self.image.name())?;
        Ok(bytes)
    }

    fn describe(&self) -> String {
        self.image.to_string()
    }
}

/// `user:password` for `registry` from the auth files podman, buildah, skopeo and docker write
/// (`REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.docker/config.json`).
/// Credential helpers (`credsStore`) are not run.
fn registry_credentials(registry: &str) -> Option<String> {
    use base64::Engine;
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
        files.push(f.into());
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        files.push(PathBuf::from(d).join("containers/auth.json"));
    }
    match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => files.push(PathBuf::from(d).join("config.json")),
        None => files.extend(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))),
    }
    let keys = [registry.to_owned(), format!("https://{registry}"), format!("http://{registry}")];
    let hub = ["https://index.docker.io/v1/".to_owned(), "index.docker.io".to_owned()];
    files.iter().find_map(|f| {
        let config: Value = serde_json::from_slice(
            &crate::local_file::read(f, "registry credentials", crate::local_file::MAX_FILE_BYTES, crate::local_file::Links::Follow).ok()?,
        )
        .ok()?;
        let auths = config["auths"].as_object()?;
        let entry = keys.iter().chain(if registry == "docker.io" { &hub[..] } else { &[] }).find_map(|k| auths.get(k))?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(entry["auth"].as_str()?).ok()?;
        String::from_utf8(decoded).ok().filter(|s| s.contains(':'))
    })
}
