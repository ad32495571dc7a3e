//! An Azure Blob Storage container, through the Blob service's REST API: create-only writes
//! (`If-None-Match: *` on Put Blob and Put Block List), version-pinned reads where the
//! account keeps blob versions, a locked version-level immutability policy on every write when
//! the profile is immutable, blocks of [`PART_SIZE`] for large objects.
//!
//! Requests are signed here (Shared Key, with aws-lc-rs's HMAC), carry a SAS, or a workload
//! identity's bearer token: Azure's Rust SDK has no Shared Key and `object_store` neither lists
//! versions nor writes create-only blocks (docs/decisions.md). Metadata names must be C#
//! identifiers on Azure, so `-` in a name is sent as `_` and read back as `-`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::download::{Answer, Refusal, Rest};
use super::rest::{body_reader, header, transport_text, ATTEMPTS};
use super::{
    AzureConfig, AzureCredentials, History, Inventory, KeyHistory, LocationError, ObjectInfo, ObjectReader, ObjectVersion, StoredObject, IMMUTABLE_DAYS,
    PART_SIZE, VERSION_LISTING_LIMIT,
};

/// The Blob service API version sent: version-level immutability needs 2020-06-12 or later.
const API_VERSION: &str = "2023-11-03";
/// The service, in messages.
const SERVICE: &str = "Azure Blob storage";

/// A container and prefix with a client.
#[derive(Clone)]
pub struct AzureLocation {
    http: reqwest::Client,
    /// The Blob service's URL, without a trailing slash.
    base: String,
    account: String,
    container: String,
    prefix: String,
    auth: Arc<Auth>,
    pub(super) immutable_days: Option<u32>,
    pub(super) replica: bool,
}

impl fmt::Debug for AzureLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How requests are authorized.
enum Auth {
    /// The account key, decoded.
    SharedKey(Zeroizing<Vec<u8>>),
    /// A SAS query string, without its `?`.
    Sas(Zeroizing<String>),
    WorkloadIdentity(WorkloadIdentity),
}

/// A Microsoft Entra workload identity: the federated token file AKS mounts, exchanged for an
/// access token to storage, kept until shortly before it expires.
struct WorkloadIdentity {
    client_id: String,
    tenant_id: String,
    token_file: std::path::PathBuf,
    authority: String,
    token: tokio::sync::Mutex<Option<(Zeroizing<String>, Instant)>>,
}

/// What one request does, for messages and for the permission a refusal names.
#[derive(Clone, Copy, Debug)]
enum Op {
    ListBlobs,
    GetContainerProperties,
    GetBlob,
    GetBlobProperties,
    PutBlob,
    PutBlock,
    PutBlockList,
    DeleteBlob,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::ListBlobs => "List Blobs",
            Op::GetContainerProperties => "Get Container Properties",
            Op::GetBlob => "Get Blob",
            Op::GetBlobProperties => "Get Blob Properties",
            Op::PutBlob => "Put Blob",
            Op::PutBlock => "Put Block",
            Op::PutBlockList => "Put Block List",
            Op::DeleteBlob => "Delete Blob",
        }
    }

    /// What the credentials need for it: the SAS permission letter and the data action.
    fn permission(self) -> &'static str {
        match self {
            Op::ListBlobs | Op::GetContainerProperties => {
                "listing the container (SAS `l`; Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read)"
            }
            Op::GetBlob | Op::GetBlobProperties => "reading blobs (SAS `r`; .../blobs/read)",
            Op::PutBlob | Op::PutBlock | Op::PutBlockList => "creating blobs (SAS `c` or `w`; .../blobs/write)",
            Op::DeleteBlob => "deleting blobs and their versions (SAS `d` and `x`; .../blobs/delete and .../blobs/deleteBlobVersion/action)",
        }
    }
}

/// One request, signed anew for each try.
struct Call<'a> {
    op: Op,
    method: Method,
    /// The blob (relative to the location's prefix); `None`: the container.
    key: Option<&'a str>,
    query: Vec<(&'static str, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl<'a> Call<'a> {
    fn new(op: Op, method: Method, key: Option<&'a str>) -> Self {
        Self { op, method, key, query: Vec::new(), headers: Vec::new(), body: Bytes::new() }
    }

    fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// `versionid=<id>` when a stored version is addressed (an empty ID: the current blob).
    fn version(self, version: Option<&str>) -> Self {
        match version.filter(|v| !v.is_empty()) {
            Some(v) => self.query("versionid", v),
            None => self,
        }
    }
}

/// Why a request failed, before it is said as a [`LocationError`].
#[derive(Debug)]
enum Failure {
    /// No answer: the connection failed, timed out or was cut.
    Transport(String),
    /// The service answered with an error status (`x-ms-error-code`, its message).
    Status { status: u16, code: String, message: String },
}

impl AzureLocation {
    pub(super) fn connect(cfg: &AzureConfig) -> Result<Self, LocationError> {
        crate::init_crypto_provider();
        let valid_account = (3..=24).contains(&cfg.account.len()) && cfg.account.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid_account {
            return Err(LocationError::Invalid(format!("{:?} is not an Azure storage account name: 3 to 24 lower-case letters and digits", cfg.account)));
        }
        let c = cfg.container.as_bytes();
        let valid_container = (3..=63).contains(&c.len())
            && c.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && c[0] != b'-'
            && c[c.len() - 1] != b'-'
            && !cfg.container.contains("--");
        if !valid_container {
            return Err(LocationError::Invalid(format!(
                "{:?} is not an Azure container name: 3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit",
                cfg.container
            )));
        }
        if let Some(days) = cfg.immutable_days {
            if !IMMUTABLE_DAYS.contains(&days) {
                return Err(LocationError::Invalid(format!("protection period {days} days is out of range: choose 1 to 90 days")));
            }
        }
        let base = match &cfg.endpoint {
            Some(endpoint) => super::rest::endpoint(endpoint, "Azure endpoint")?,
            None => format!("https://{}.blob.core.windows.net", cfg.account),
        };
        let auth = match &cfg.credentials {
            AzureCredentials::SharedKey(key) => {
                use base64::Engine;
                let decoded = base64::engine::general_purpose::STANDARD.decode(key.trim().as_bytes()).map_err(|_| {
                    LocationError::Invalid("the Azure storage account key is not base64: copy key1 or key2 of the storage account as the portal or `az storage account keys list` shows it".into())
                })?;
                Auth::SharedKey(Zeroizing::new(decoded))
            }
            AzureCredentials::Sas(sas) => Auth::Sas(Zeroizing::new(sas.trim().trim_start_matches('?').to_owned())),
            AzureCredentials::WorkloadIdentity => Auth::WorkloadIdentity(WorkloadIdentity::from_env()?),
        };
        let http = super::rest::client()?;
        Ok(Self {
            http,
            base,
            account: cfg.account.clone(),
            container: cfg.container.clone(),
            prefix: cfg.prefix.trim_matches('/').to_owned(),
            auth: Arc::new(auth),
            immutable_days: cfg.immutable_days,
            replica: cfg.replica,
        })
    }

    /// The same container, read as a replication destination.
    pub(super) fn as_replica(&self) -> Self {
        Self { replica: true, ..self.clone() }
    }

    pub(super) fn describe(&self) -> String {
        let at = format!("azure://{}/{}", self.account, self.container);
        if self.prefix.is_empty() {
            at
        } else {
            format!("{at}/{}", self.prefix)
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn strip<'k>(&self, full: &'k str) -> Option<&'k str> {
        if self.prefix.is_empty() {
            Some(full)
        } else {
            full.strip_prefix(&self.prefix)?.strip_prefix('/')
        }
    }

    /// The URL a call goes to: the container, or a blob in it.
    fn url(&self, call: &Call<'_>) -> Result<reqwest::Url, LocationError> {
        let mut url = reqwest::Url::parse(&self.base).map_err(|e| LocationError::Invalid(format!("Azure endpoint {}: {e}", self.base)))?;
        {
            let mut path = url.path_segments_mut().map_err(|_| LocationError::Invalid(format!("Azure endpoint {} cannot hold a path", self.base)))?;
            path.pop_if_empty().push(&self.container);
            if let Some(key) = call.key {
                let full = self.full_key(key);
                // The URL parser drops `.` and `..` segments silently: such a key would name
                // another blob than the one asked for.
                if full.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                    return Err(LocationError::Invalid(format!("{full:?} is not a blob name kubectl-dr uses (an empty, `.` or `..` segment)")));
                }
                path.extend(full.split('/'));
            }
        }
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &call.query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    /// Sends `call`, signed, trying again on transport failures, 408, 429 and 5xx (with
    /// backoff, `Retry-After` honoured up to 30 s), Entra's included, and once on a 401 with a
    /// fresh workload identity token; an answer of 2xx is returned.
    async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response, Failure> {
        let url = self.url(call).map_err(|e| Failure::Transport(crate::error_text(&e)))?;
        let mut delay = Duration::from_millis(200);
        let mut refreshed = false;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let request = match self.sign(call, url.clone()).await {
                Ok(request) => request,
                // Microsoft Entra fails like any other service: its transient failures are tried again.
                Err(Failure::Transport(_) | Failure::Status { status: 408 | 429 | 500 | 502 | 503 | 504, .. }) if !last => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(failure) => return Err(failure),
            };
            let wait = match self.http.execute(request).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = super::rest::retry_after(&response);
                    let failure = failure_of(response).await;
                    if status == 401 && !refreshed {
                        if let Auth::WorkloadIdentity(identity) = &*self.auth {
                            // The kept token may have been revoked or expired early.
                            refreshed = true;
                            *identity.token.lock().await = None;
                            continue;
                        }
                    }
                    if last || !super::rest::is_transient(status) {
                        return Err(failure);
                    }
                    tracing::debug!(operation = call.op.name(), status, "the Blob service answered with a transient error; trying again");
                    retry_after.unwrap_or(delay)
                }
                Err(e) => {
                    let failure = Failure::Transport(transport_text(e));
                    if last {
                        return Err(failure);
                    }
                    delay
                }
            };
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        unreachable!("the last attempt returns")
    }

    /// The request for one try of `call`: dated now and authorized.
    async fn sign(&self, call: &Call<'_>, mut url: reqwest::Url) -> Result<reqwest::Request, Failure> {
        let date = http_date(OffsetDateTime::now_utc());
        let mut headers: Vec<(&str, String)> = vec![("x-ms-date", date), ("x-ms-version", API_VERSION.into())];
        headers.extend(call.headers.iter().map(|(n, v)| (n.as_str(), v.clone())));
        let authorization = match &*self.auth {
            Auth::SharedKey(key) => {
                let to_sign = string_to_sign(&self.account, &call.method, &url, &headers, call.body.len());
                let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key), to_sign.as_bytes());
                use base64::Engine;
                Some(Zeroizing::new(format!("SharedKey {}:{}", self.account, base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))))
            }
            Auth::Sas(sas) => {
                let query = match url.query() {
                    Some(q) if !q.is_empty() => format!("{q}&{}", sas.as_str()),
                    _ => sas.to_string(),
                };
                url.set_query(Some(&query));
                None
            }
            Auth::WorkloadIdentity(identity) => Some(Zeroizing::new(format!("Bearer {}", identity.token(&self.http).await?.as_str()))),
        };
        let mut builder = self.http.request(call.method.clone(), url);
        for (name, value) in &headers {
            builder = builder.header(*name, value);
        }
        if let Some(value) = &authorization {
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| Failure::Transport("the authorization header is not valid".into()))?;
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        if call.method == Method::PUT {
            builder = builder.header(reqwest::header::CONTENT_LENGTH, call.body.len()).body(call.body.clone());
        }
        builder.build().map_err(|e| Failure::Transport(transport_text(e)))
    }

    /// Says a failure as what to check.
    fn error(&self, failure: Failure, op: Op, key: &str) -> LocationError {
        let location = self.describe();
        match failure {
            Failure::Transport(detail) => LocationError::ServiceUnreachable { service: SERVICE, endpoint: self.base.clone(), detail },
            Failure::Status { status, code, message } => {
                let blob = format!("{location}/{key}");
                let refused = |check: String| LocationError::Refused { operation: op.name(), object: blob.clone(), status, code: code.clone(), check };
                match (status, code.as_str()) {
                    (404, "BlobNotFound") => LocationError::NotFound { location, key: key.to_owned() },
                    (409, "BlobAlreadyExists") | (412, "ConditionNotMet") if matches!(op, Op::PutBlob | Op::PutBlockList) => {
                        LocationError::AlreadyExists { location, key: key.to_owned() }
                    }
                    (404, "ContainerNotFound") => refused(format!("container {} does not exist in account {}: check the account and container names", self.container, self.account)),
                    (404, "ResourceNotFound") => refused(format!("the endpoint {} has no such account or container: check the endpoint and account name", self.base)),
                    // Azure says AuthenticationFailed; Azurite AuthorizationFailure with this message.
                    (403, "AuthenticationFailed") | (403, "AuthorizationFailure") if code == "AuthenticationFailed" || message.starts_with("Server failed to authenticate") => refused(
                        "the credentials were not accepted: check the account key (azure_storage_key) or that the SAS (azure_storage_sas_token) is whole and not expired, and that this machine's clock is right"
                            .into(),
                    ),
                    (403, _) => refused(format!("these credentials are not allowed {}", op.permission())),
                    (409, "BlobArchived") => refused(
                        "the blob was moved to the Archive tier, where it cannot be read (someone with write rights on the container did it): rehydrate it (Set Blob Tier to Hot; it takes hours) and run again".into(),
                    ),
                    (409, "BlobImmutableDueToPolicy") => refused("an immutability policy protects this blob until its date; it can be deleted only after".into()),
                    (s, _) if s >= 500 || s == 429 || s == 408 => {
                        LocationError::ServiceFailed { operation: op.name(), object: blob, status, code, detail: message }
                    }
                    _ => refused(format!("the service said: {message}")),
                }
            }
        }
    }

    pub(super) async fn validate(&self) -> Result<(), LocationError> {
        let list = Call::new(Op::ListBlobs, Method::GET, None)
            .query("restype", "container")
            .query("comp", "list")
            .query("prefix", self.full_key(""))
            .query("maxresults", "1");
        self.send(&list).await.map_err(|e| self.error(e, Op::ListBlobs, ""))?;
        if self.immutable_days.is_some() {
            let props = Call::new(Op::GetContainerProperties, Method::GET, None).query("restype", "container");
            let response = self.send(&props).await.map_err(|e| self.error(e, Op::GetContainerProperties, ""))?;
            let enabled = header(&response, "x-ms-immutable-storage-with-versioning-enabled").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if !enabled {
                return Err(LocationError::ImmutabilityUnsupported { location: self.describe() });
            }
        }
        Ok(())
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, LocationError> {
        let listed = self.list_blobs(prefix, false).await?;
        Ok(listed.into_iter().map(|b| StoredObject { key: b.key, size: b.size, stored_at: b.created }).collect())
    }

    /// Every blob under `prefix`, paged to the end within [`VERSION_LISTING_LIMIT`]; with
    /// `versions`, every stored version of each.
    async fn list_blobs(&self, prefix: &str, versions: bool) -> Result<Vec<ListedBlob>, LocationError> {
        let started = Instant::now();
        let mut out = Vec::new();
        let mut marker = String::new();
        loop {
            let mut call =
                Call::new(Op::ListBlobs, Method::GET, None).query("restype", "container").query("comp", "list").query("prefix", self.full_key(prefix));
            if versions {
                call = call.query("include", "versions");
            }
            if !marker.is_empty() {
                call = call.query("marker", marker.clone());
            }
            let response = self.send(&call).await.map_err(|e| self.error(e, Op::ListBlobs, prefix))?;
            let text = response.text().await.map_err(|e| self.error(Failure::Transport(transport_text(e)), Op::ListBlobs, prefix))?;
            let page = parse_listing(&text).map_err(|detail| LocationError::ServiceFailed {
                operation: Op::ListBlobs.name(),
                object: format!("{}/{prefix}", self.describe()),
                status: 200,
                code: "UnreadableListing".into(),
                detail,
            })?;
            out.extend(page.blobs.into_iter().filter_map(|mut b| {
                b.key = self.strip(&b.key)?.to_owned();
                Some(b)
            }));
            match page.next_marker {
                Some(next) if !next.is_empty() => marker = next,
                _ => return Ok(out),
            }
            if started.elapsed() > VERSION_LISTING_LIMIT {
                return Err(LocationError::ServiceFailed {
                    operation: Op::ListBlobs.name(),
                    object: format!("{}/{prefix}", self.describe()),
                    status: 200,
                    code: "ListingTooLong".into(),
                    detail: format!(
                        "listing did not finish in {} s: the prefix holds far more blobs or versions than kubectl-dr writes (someone flooded it); the oldest version of each blob is the one kubectl-dr wrote",
                        VERSION_LISTING_LIMIT.as_secs()
                    ),
                });
            }
        }
    }

    /// Every key under `prefix` with its stored versions, oldest first. A version's ID is the
    /// time the service created it, which no writer chooses. A blob whose current version was
    /// deleted (its versions all noncurrent) gets a delete marker after them, as S3 would show
    /// it. An account without blob versioning lists no version IDs: then only what is current
    /// is known, and the history says so.
    pub(super) async fn inventory(&self, prefix: &str) -> Result<Inventory, LocationError> {
        let (keys, unversioned) = histories(self.list_blobs(prefix, true).await?);
        let history = if unversioned {
            History::CurrentOnly {
                why: format!(
                    "the storage account of {} keeps no blob versions (versioning is off), so an overwrite cannot be told from the original: turn blob versioning on",
                    self.describe()
                ),
            }
        } else {
            History::Versions
        };
        Ok(Inventory { keys, history, anomalies: Vec::new() })
    }

    /// A Get Blob of `key` (its `version`, else the current blob), of `range` when given.
    fn get_call<'k>(key: &'k str, version: Option<&str>, range: Option<String>) -> Call<'k> {
        let call = Call::new(Op::GetBlob, Method::GET, Some(key)).version(version);
        match range {
            Some(range) => call.header("x-ms-range", range),
            None => call,
        }
    }

    pub(super) async fn open(&self, key: &str, version: Option<&str>) -> Result<(u64, ObjectReader), LocationError> {
        let response = self.send(&Self::get_call(key, version, None)).await.map_err(|e| self.error(e, Op::GetBlob, key))?;
        // Without a length a cut body could not be told from the end of the blob.
        let len = response.content_length().ok_or_else(|| LocationError::ServiceUnreachable {
            service: SERVICE,
            endpoint: self.base.clone(),
            detail: format!("the service answered Get Blob of {} without a Content-Length", self.full_key(key)),
        })?;
        Ok((len, self.resuming(key, version, response, len, len)))
    }

    pub(super) async fn open_start(&self, key: &str, version: Option<&str>, n: u64) -> Result<(u64, ObjectReader), LocationError> {
        let sent = self.send(&Self::get_call(key, version, Some(format!("bytes=0-{}", n.max(1) - 1)))).await;
        let altered = |detail: String| LocationError::ServiceUnreachable {
            service: SERVICE,
            endpoint: self.base.clone(),
            detail: format!("the service answered a ranged Get Blob of {} with {detail}: something on the path alters answers", self.full_key(key)),
        };
        let response = match sent {
            Ok(response) => response,
            // An empty blob has no first byte to send; any other has, so its size tells.
            Err(Failure::Status { status: 416, .. }) => {
                return match self.head(key, version).await?.size {
                    0 => Ok((0, Box::new(tokio::io::empty()))),
                    size => Err(altered(format!("416 for a blob of {size} bytes"))),
                };
            }
            Err(e) => return Err(self.error(e, Op::GetBlob, key)),
        };
        let (len, total) = super::download::first_bytes(header(&response, "content-range").as_deref(), response.content_length(), n).map_err(altered)?;
        Ok((total, self.resuming(key, version, response, len, total)))
    }

    /// The body of a Get Blob answer as a download that asks for the rest of the same version
    /// (or ETag) when it is cut: the first `len` bytes of a blob of `total`.
    fn resuming(&self, key: &str, version: Option<&str>, response: reqwest::Response, len: u64, total: u64) -> ObjectReader {
        let pinned = version.filter(|v| !v.is_empty()).map(str::to_owned).or_else(|| header(&response, "x-ms-version-id"));
        let etag = header(&response, "etag");
        let (location, full_key, if_match, version) = (self.clone(), key.to_owned(), etag.clone(), pinned.clone());
        let reopen: super::download::Reopener = Arc::new(move |rest: Rest| {
            let (location, key, if_match, version) = (location.clone(), full_key.clone(), if_match.clone(), version.clone());
            Box::pin(async move {
                let mut call = Self::get_call(&key, version.as_deref(), Some(rest.range));
                if version.is_none() {
                    if let Some(etag) = if_match {
                        call = call.header("if-match", etag);
                    }
                }
                let sent = tokio::time::timeout(rest.within, location.send(&call))
                    .await
                    .map_err(|_| Refusal::Retry(format!("no answer within {} s", rest.within.as_secs())))?;
                let response = sent.map_err(|failure| match failure {
                    Failure::Status { status: 412, message, .. } => Refusal::Changed(message),
                    Failure::Status { status: 403 | 404 | 416, code, .. } => Refusal::Final(code),
                    Failure::Status { status, code, .. } => Refusal::Retry(format!("{status} {code}")),
                    Failure::Transport(detail) => Refusal::Retry(detail),
                })?;
                Ok(Answer {
                    content_range: header(&response, "content-range"),
                    version: header(&response, "x-ms-version-id"),
                    etag: header(&response, "etag"),
                    body: body_reader(response),
                })
            })
        });
        let source = super::download::Source { name: format!("{}/{key}", self.describe()), version: pinned, etag, reopen };
        Box::new(super::download::ResumingBody::new(source, len, total, body_reader(response)))
    }

    pub(super) async fn delete(&self, key: &str, version: Option<&str>) -> Result<(), LocationError> {
        if let Some(id) = version.filter(|v| !v.is_empty()) {
            // The service refuses to delete the current version by its ID: the blob is deleted
            // first (its current version becomes a previous one, kept), then that version.
            let head = Call::new(Op::GetBlobProperties, Method::HEAD, Some(key)).version(Some(id));
            let current = self.send(&head).await.ok().is_some_and(|r| header(&r, "x-ms-is-current-version").is_some_and(|c| c == "true"));
            if current {
                match self.send(&Call::new(Op::DeleteBlob, Method::DELETE, Some(key))).await {
                    Ok(_) | Err(Failure::Status { status: 404, .. }) => {}
                    Err(e) => return Err(self.error(e, Op::DeleteBlob, key)),
                }
            }
        }
        let call = Call::new(Op::DeleteBlob, Method::DELETE, Some(key)).version(version);
        self.send(&call).await.map_err(|e| self.error(e, Op::DeleteBlob, key))?;
        Ok(())
    }

    pub(super) async fn head(&self, key: &str, version: Option<&str>) -> Result<ObjectInfo, LocationError> {
        let call = Call::new(Op::GetBlobProperties, Method::HEAD, Some(key)).version(version);
        let response = match self.send(&call).await {
            Ok(response) => response,
            // A HEAD's error has no body to name it: 404 is the blob missing.
            Err(Failure::Status { status: 404, .. }) => return Err(LocationError::NotFound { location: self.describe(), key: key.to_owned() }),
            Err(e) => return Err(self.error(e, Op::GetBlobProperties, key)),
        };
        let size = header(&response, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let retention = match (header(&response, "x-ms-immutability-policy-mode"), header(&response, "x-ms-immutability-policy-until-date")) {
            (Some(mode), Some(until)) => parse_http_date(&until).map(|until| (mode, until)),
            _ => None,
        };
        let metadata = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().strip_prefix("x-ms-meta-")?.replace('_', "-"), value.to_str().ok()?.to_owned())))
            .collect();
        Ok(ObjectInfo { size, retention, metadata })
    }
}

/// Each key's versions, oldest first, from a listing with versions; and whether every blob was
/// listed without a version ID (an account that keeps no versions). Blobs without an ID next to
/// versioned ones were written before versioning was turned on, and not since.
fn histories(listed: Vec<ListedBlob>) -> (BTreeMap<String, KeyHistory>, bool) {
    let mut unversioned = false;
    let mut versioned = false;
    let mut keys: BTreeMap<String, (Vec<ObjectVersion>, bool)> = BTreeMap::new();
    for blob in listed {
        let entry = keys.entry(blob.key).or_default();
        // A listing with versions marks the current one; without versions every blob is.
        entry.1 |= blob.is_current.unwrap_or(blob.version_id.is_none());
        // A version's ID is when the service made it. A blob written before versioning was
        // turned on becomes a version only when it is next written, with that write's time as
        // its ID: its Creation-Time, which the service sets, keeps the earlier truth.
        let stored_at = match &blob.version_id {
            Some(id) => {
                let made = OffsetDateTime::parse(id, &time::format_description::well_known::Rfc3339).ok();
                match (made, blob.created) {
                    (Some(made), Some(created)) => Some(made.min(created)),
                    (made, created) => made.or(created),
                }
            }
            None => {
                unversioned = true;
                blob.created
            }
        };
        versioned |= blob.version_id.is_some();
        entry.0.push(ObjectVersion { id: blob.version_id.unwrap_or_default(), size: blob.size, stored_at, delete_marker: false });
    }
    let keys = keys
        .into_iter()
        .map(|(key, (mut versions, any_current))| {
            // Version IDs are times of one fixed format: their order is the order of writes. A
            // blob without an ID is the current one of an account whose versioning was turned
            // off after these versions were made: the latest.
            versions.sort_by(|a, b| (a.id.is_empty(), &a.id).cmp(&(b.id.is_empty(), &b.id)));
            if !any_current {
                versions.push(ObjectVersion { id: String::new(), size: 0, stored_at: None, delete_marker: true });
            }
            (key, KeyHistory { versions })
        })
        .collect();
    (keys, unversioned && !versioned)
}

/// One blob (or stored version) as List Blobs shows it.
#[derive(Debug, Default, PartialEq)]
struct ListedBlob {
    key: String,
    version_id: Option<String>,
    is_current: Option<bool>,
    size: u64,
    created: Option<OffsetDateTime>,
}

#[derive(Debug, Default)]
struct ListingPage {
    blobs: Vec<ListedBlob>,
    next_marker: Option<String>,
}

/// Reads a List Blobs answer (`EnumerationResults`).
fn parse_listing(xml: &str) -> Result<ListingPage, String> {
    use xmlparser::Token;
    let mut page = ListingPage::default();
    let mut path: Vec<String> = Vec::new();
    let mut blob: Option<ListedBlob> = None;
    let mut encoded = false;
    for token in xmlparser::Tokenizer::from(xml) {
        match token.map_err(|e| format!("the listing is not XML: {e}"))? {
            Token::ElementStart { local, .. } => {
                path.push(local.as_str().to_owned());
                if path.len() == 3 && path[1] == "Blobs" && local.as_str() == "Blob" {
                    blob = Some(ListedBlob::default());
                }
            }
            Token::Attribute { local, value, .. } if path.last().is_some_and(|p| p == "Name") && local.as_str() == "Encoded" && value.as_str() == "true" => {
                encoded = true;
            }
            Token::ElementEnd { end, .. } => {
                let closes = match end {
                    xmlparser::ElementEnd::Open => false,
                    xmlparser::ElementEnd::Close(..) | xmlparser::ElementEnd::Empty => true,
                };
                if closes {
                    if path.len() == 3 && path[2] == "Blob" {
                        let b = blob.take().ok_or("a Blob closed twice")?;
                        // A name the service had to encode holds characters kubectl-dr never
                        // writes: not one of its blobs, so left out (as any foreign name is).
                        if !encoded {
                            page.blobs.push(b);
                        }
                        encoded = false;
                    }
                    path.pop();
                }
            }
            Token::Text { text } | Token::Cdata { text, .. } => {
                let text = unescape(text.as_str());
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                match (names.as_slice(), blob.as_mut()) {
                    ([_, "NextMarker"], _) => page.next_marker = Some(text),
                    ([_, "Blobs", "Blob", "Name"], Some(b)) => b.key.push_str(&text),
                    ([_, "Blobs", "Blob", "VersionId"], Some(b)) => b.version_id = Some(text),
                    ([_, "Blobs", "Blob", "IsCurrentVersion"], Some(b)) => b.is_current = Some(text == "true"),
                    ([_, "Blobs", "Blob", "Properties", "Content-Length"], Some(b)) => {
                        b.size = text.trim().parse().map_err(|_| format!("a blob's length {text:?}"))?
                    }
                    ([_, "Blobs", "Blob", "Properties", "Creation-Time"], Some(b)) => b.created = parse_http_date(&text),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(page)
}

/// XML's five entities and character references, as the service escapes text.
fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(end) = after.find(';') else {
            out.push_str(&rest[at..]);
            return out;
        };
        let entity = &after[..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&rest[at..at + 1 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The Shared Key string to sign (Blob service, version 2015-02-21 and later): the verb, the
/// standard headers in their fixed order, the `x-ms-*` headers sorted, then the resource.
fn string_to_sign(account: &str, method: &Method, url: &reqwest::Url, headers: &[(&str, String)], body_len: usize) -> String {
    let get = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap_or("");
    let length = if body_len == 0 { String::new() } else { body_len.to_string() };
    let mut out = format!(
        "{method}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        get("content-encoding"),
        get("content-language"),
        get("content-md5"),
        get("content-type"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    );
    let mut ms: Vec<(String, String)> =
        headers.iter().filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-ms-")).map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned())).collect();
    ms.sort();
    for (name, value) in ms {
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push_str(&format!("/{account}{}", url.path()));
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        params.entry(name.to_lowercase()).or_default().push(value.into_owned());
    }
    for (name, mut values) in params {
        values.sort();
        out.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    out
}

/// An HTTP date (RFC 1123, GMT), as `x-ms-date` and the immutability headers take it.
fn http_date(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    t.to_offset(time::UtcOffset::UTC).format(&format).unwrap_or_default()
}

fn parse_http_date(text: &str) -> Option<OffsetDateTime> {
    let format = time::macros::format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");
    time::PrimitiveDateTime::parse(text.trim(), &format).ok().map(|t| t.assume_utc())
}

/// An error answer: its code (`x-ms-error-code`, else the body's `<Code>`) and message.
async fn failure_of(response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let code = header(&response, "x-ms-error-code");
    let body = response.text().await.unwrap_or_default();
    let between = |open: &str, close: &str| Some(body.split_once(open)?.1.split_once(close)?.0.to_owned());
    let code = code.or_else(|| between("<Code>", "</Code>")).unwrap_or_default();
    // The first line: the rest is a request ID and time, or (for a refused signature) the
    // string the service signed.
    let message = between("<Message>", "</Message>").map(|m| m.lines().next().unwrap_or_default().to_owned()).unwrap_or_default();
    Failure::Status { status, code, message }
}

impl WorkloadIdentity {
    fn from_env() -> Result<Self, LocationError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match (var("AZURE_CLIENT_ID"), var("AZURE_TENANT_ID"), var("AZURE_FEDERATED_TOKEN_FILE")) {
            (Some(client_id), Some(tenant_id), Some(file)) => Ok(Self {
                client_id,
                tenant_id,
                token_file: file.into(),
                authority: var("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com/".into()),
                token: tokio::sync::Mutex::new(None),
            }),
            _ => Err(LocationError::Invalid(
                "no Azure credentials: give the profile a credentials Secret with azure_storage_key (the account key) or azure_storage_sas_token (a SAS); for the plugin set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN; or run with a workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, which AKS's workload identity webhook sets)".into(),
            )),
        }
    }

    /// An access token to storage: the kept one, or a new one when it has less than five
    /// minutes left. The federated token is read anew each time (the kubelet rotates it).
    async fn token(&self, http: &reqwest::Client) -> Result<Zeroizing<String>, Failure> {
        let mut kept = self.token.lock().await;
        if let Some((token, until)) = kept.as_ref() {
            if Instant::now() + Duration::from_secs(300) < *until {
                return Ok(token.clone());
            }
        }
        let assertion = Zeroizing::new(
            tokio::fs::read_to_string(&self.token_file)
                .await
                .map_err(|e| Failure::Transport(format!("cannot read the federated token {}: {e}", self.token_file.display())))?,
        );
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority.trim_end_matches('/'), self.tenant_id);
        let form = [
            ("client_id", self.client_id.as_str()),
            ("scope", "https://storage.azure.com/.default"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.trim()),
            ("grant_type", "client_credentials"),
        ];
        let response = http.post(&url).form(&form).send().await.map_err(|e| Failure::Transport(format!("Microsoft Entra at {url}: {}", transport_text(e))))?;
        let status = response.status().as_u16();
        #[derive(serde::Deserialize)]
        struct Granted {
            access_token: String,
            expires_in: u64,
        }
        if !(200..300).contains(&status) {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let code = body["error"].as_str().unwrap_or("").to_owned();
            let message = body["error_description"].as_str().unwrap_or("").lines().next().unwrap_or("").to_owned();
            return Err(Failure::Status {
                status,
                code: format!("WorkloadIdentity:{code}"),
                message: format!("Microsoft Entra refused the workload identity's token: {message}"),
            });
        }
        let granted: Granted = response.json().await.map_err(|e| Failure::Transport(format!("Microsoft Entra's answer: {}", transport_text(e))))?;
        let token = Zeroizing::new(granted.access_token);
        // At most a day: a longer lifetime is not Entra's.
        *kept = Some((token.clone(), Instant::now() + Duration::from_secs(granted.expires_in.min(86_400))));
        Ok(token)
    }
}

/// Buffers up to one block; small objects go up in one Put Blob, large ones as blocks
/// committed by one Put Block List. Both carry `If-None-Match: *`, the metadata and, when the
/// location is immutable, the locked immutability policy.
pub struct AzureUpload {
    loc: AzureLocation,
    key: String,
    pending: Vec<u8>,
    blocks: Vec<String>,
    metadata: BTreeMap<String, String>,
    retain_until: Option<OffsetDateTime>,
    /// Random, per upload: sent as metadata with the create ([`WRITE_NONCE`]) so that a retry
    /// refused because the blob exists can tell its own earlier try from another writer's
    /// blob, and the prefix of its block IDs (no other upload's blocks can be committed).
    nonce: String,
}

/// The metadata name (sent as `kubectl_dr_write`) holding an upload's nonce.
const WRITE_NONCE: &str = "kubectl-dr-write";

impl AzureUpload {
    pub(super) fn new(loc: AzureLocation, key: &str, metadata: BTreeMap<String, String>) -> Self {
        let retain_until = loc.immutable_days.map(|days| OffsetDateTime::now_utc() + time::Duration::days(days as i64));
        let mut random = [0u8; 12];
        crate::format::crypto::fill_random(&mut random);
        Self { loc, key: key.to_owned(), pending: Vec::new(), blocks: Vec::new(), metadata, retain_until, nonce: hex::encode(random) }
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), LocationError> {
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= PART_SIZE {
            let rest = self.pending.split_off(PART_SIZE);
            let block = std::mem::replace(&mut self.pending, rest);
            self.put_block(block).await?;
        }
        Ok(())
    }

    async fn put_block(&mut self, block: Vec<u8>) -> Result<(), LocationError> {
        use base64::Engine;
        // Every ID of a blob must have the same length.
        let id = base64::engine::general_purpose::STANDARD.encode(format!("{}-{:06}", self.nonce, self.blocks.len()));
        let mut call = Call::new(Op::PutBlock, Method::PUT, Some(&self.key)).query("comp", "block").query("blockid", id.clone());
        call.body = Bytes::from(block);
        self.loc.send(&call).await.map_err(|e| self.loc.error(e, Op::PutBlock, &self.key))?;
        self.blocks.push(id);
        Ok(())
    }

    /// `call` with what every create carries.
    fn creating<'k>(&self, mut call: Call<'k>) -> Call<'k> {
        call = call.header("if-none-match", "*").header(&format!("x-ms-meta-{}", WRITE_NONCE.replace('-', "_")), self.nonce.clone());
        for (name, value) in &self.metadata {
            call = call.header(&format!("x-ms-meta-{}", name.replace('-', "_")), value.clone());
        }
        if let Some(until) = self.retain_until {
            call = call.header("x-ms-immutability-policy-until-date", http_date(until)).header("x-ms-immutability-policy-mode", "Locked");
        }
        call
    }

    pub(super) async fn finish(mut self) -> Result<(), LocationError> {
        let pending = std::mem::take(&mut self.pending);
        if self.blocks.is_empty() {
            let body = Bytes::from(pending);
            let mut call = self.creating(Call::new(Op::PutBlob, Method::PUT, Some(&self.key)).header("x-ms-blob-type", "BlockBlob"));
            call.body = body;
            return self.create(call, Op::PutBlob).await;
        }
        if !pending.is_empty() {
            self.put_block(pending).await?;
        }
        let mut list = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in &self.blocks {
            list.push_str(&format!("<Latest>{id}</Latest>"));
        }
        list.push_str("</BlockList>");
        let mut call = self.creating(Call::new(Op::PutBlockList, Method::PUT, Some(&self.key)).query("comp", "blocklist"));
        call.body = Bytes::from(list);
        self.create(call, Op::PutBlockList).await
    }

    /// Sends a create. Refused because the blob exists: when a try of this very call was
    /// first (its answer lost, the retry refused), the blob carries this upload's nonce and the
    /// write is done; another nonce is another writer's blob; credentials that may not read
    /// it cannot tell.
    async fn create(&self, call: Call<'_>, op: Op) -> Result<(), LocationError> {
        match self.loc.send(&call).await.map_err(|e| self.loc.error(e, op, &self.key)) {
            Err(LocationError::AlreadyExists { location, key }) => match self.loc.head(&self.key, None).await {
                Ok(info) if info.metadata.get(WRITE_NONCE) == Some(&self.nonce) => {
                    tracing::info!(location = %location, key = %key, "the store already holds this write: its first answer was lost and the retry found it");
                    Ok(())
                }
                Ok(_) | Err(LocationError::NotFound { .. }) => Err(LocationError::AlreadyExists { location, key }),
                Err(_) => Err(LocationError::WriteUnconfirmed { location, key }),
            },
            other => other.map(drop),
        }
    }

    /// Uncommitted blocks cannot be removed by a call: the service drops them after a week.
    pub(super) async fn abort(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A List Blobs answer with versions, in the form the service documents: a manifest written
    /// over (two versions, the later current), an archive whose current version was deleted,
    /// and a name the service had to encode.
    const LISTING: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="https://acct.blob.core.windows.net/" ContainerName="points">
  <Prefix>dr/c/restore-points/</Prefix>
  <Blobs>
    <Blob>
      <Name>dr/c/restore-points/p1/manifest</Name>
      <VersionId>2026-12-07T11:00:00.0000001Z</VersionId>
      <IsCurrentVersion>true</IsCurrentVersion>
      <Properties><Creation-Time>Mon, 07 Dec 2026 10:00:00 GMT</Creation-Time><Content-Length>5</Content-Length></Properties>
    </Blob>
    <Blob>
      <Name>dr/c/restore-points/p1/manifest</Name>
      <VersionId>2026-12-07T10:00:00.1234567Z</VersionId>
      <Properties><Creation-Time>Mon, 07 Dec 2026 10:00:00 GMT</Creation-Time><Content-Length>100</Content-Length></Properties>
    </Blob>
    <Blob>
      <Name>dr/c/restore-points/p&amp;2/archive</Name>
      <VersionId>2026-12-07T10:00:01.0000000Z</VersionId>
      <Properties><Creation-Time>Mon, 07 Dec 2026 10:00:01 GMT</Creation-Time><Content-Length>7</Content-Length></Properties>
    </Blob>
    <Blob>
      <Name Encoded="true">dr%2Fc%2F%00</Name>
      <VersionId>2026-12-07T10:00:02.0000000Z</VersionId>
      <IsCurrentVersion>true</IsCurrentVersion>
      <Properties><Content-Length>1</Content-Length></Properties>
    </Blob>
  </Blobs>
  <NextMarker>2!96!MDAwMDE</NextMarker>
</EnumerationResults>"#;

    #[test]
    fn a_listing_with_versions_gives_each_key_its_versions_oldest_first() {
        let page = parse_listing(LISTING).unwrap();
        assert_eq!(page.next_marker.as_deref(), Some("2!96!MDAwMDE"));
        assert_eq!(page.blobs.len(), 3, "the encoded name is left out: {:?}", page.blobs);
        assert_eq!(page.blobs[2].key, "dr/c/restore-points/p&2/archive");
        assert_eq!(page.blobs[0].created, parse_http_date("Mon, 07 Dec 2026 10:00:00 GMT"));
        let (keys, unversioned) = histories(page.blobs);
        assert!(!unversioned);
        let manifest = &keys["dr/c/restore-points/p1/manifest"];
        // The first version written is the one kubectl-dr wrote, whatever the listing's order.
        assert_eq!(manifest.pinned().map(|v| (v.id.as_str(), v.size)), Some(("2026-12-07T10:00:00.1234567Z", 100)));
        assert_eq!(manifest.later().iter().map(|v| v.size).collect::<Vec<_>>(), vec![5]);
        assert_eq!(manifest.pinned().unwrap().stored_at.map(|t| t.unix_timestamp()), Some(1_796_637_600));
        // No current version left: the key reads as deleted, its version kept.
        let archive = &keys["dr/c/restore-points/p&2/archive"];
        assert_eq!(archive.pinned().map(|v| v.size), Some(7));
        assert!(archive.later().len() == 1 && archive.later()[0].delete_marker);
    }

    #[test]
    fn a_listing_without_version_ids_is_an_account_that_keeps_none() {
        let xml = "<EnumerationResults><Blobs><Blob><Name>k</Name><Properties><Creation-Time>Mon, 07 Dec 2026 10:00:00 GMT</Creation-Time><Content-Length>3</Content-Length></Properties></Blob></Blobs><NextMarker/></EnumerationResults>";
        let page = parse_listing(xml).unwrap();
        assert_eq!(page.next_marker, None);
        let (keys, unversioned) = histories(page.blobs);
        assert!(unversioned);
        let only = &keys["k"].versions;
        assert_eq!(only.len(), 1);
        assert_eq!((only[0].id.as_str(), only[0].size, only[0].delete_marker), ("", 3, false));
        assert_eq!(only[0].stored_at, parse_http_date("Mon, 07 Dec 2026 10:00:00 GMT"));
        assert!(parse_listing("<EnumerationResults><Blobs><Blob><Name>k</Name><Properties><Content-Length>x</Content-Length>").is_err());
    }

    #[test]
    fn blobs_written_before_versioning_was_turned_on_keep_their_time_and_the_history_stays_versioned() {
        let blob = |key: &str, id: Option<&str>, current: Option<bool>, size: u64, created: &str| ListedBlob {
            key: key.into(),
            version_id: id.map(str::to_owned),
            is_current: current,
            size,
            created: parse_http_date(created),
        };
        let (keys, unversioned) = histories(vec![
            // Written before versioning, not since: no version ID.
            blob("old/manifest", None, None, 10, "Mon, 07 Dec 2026 09:00:00 GMT"),
            // Written before versioning, then written over after it: the first content became a
            // version whose ID is the overwrite's time; its Creation-Time keeps the truth.
            blob("p/manifest", Some("2026-12-07T12:00:00.0000000Z"), None, 100, "Mon, 07 Dec 2026 09:00:00 GMT"),
            blob("p/manifest", Some("2026-12-07T12:00:00.0000001Z"), Some(true), 5, "Mon, 07 Dec 2026 09:00:00 GMT"),
            // Versions, then versioning turned off and the blob written over: the current blob
            // has no ID and is the latest.
            blob("q/manifest", None, None, 6, "Mon, 07 Dec 2026 13:00:00 GMT"),
            blob("q/manifest", Some("2026-12-07T10:00:00.0000000Z"), Some(false), 60, "Mon, 07 Dec 2026 10:00:00 GMT"),
        ]);
        assert!(!unversioned, "one versioned blob makes the listing one of versions");
        assert_eq!(keys["old/manifest"].pinned().map(|v| v.size), Some(10));
        let p = &keys["p/manifest"];
        assert_eq!(p.pinned().map(|v| (v.size, v.stored_at)), Some((100, parse_http_date("Mon, 07 Dec 2026 09:00:00 GMT"))));
        assert_eq!(p.later().len(), 1);
        let q = &keys["q/manifest"];
        assert_eq!(q.pinned().map(|v| v.size), Some(60));
        assert_eq!(q.later().iter().map(|v| (v.id.as_str(), v.size)).collect::<Vec<_>>(), vec![("", 6)]);
    }

    #[test]
    fn the_shared_key_string_to_sign_follows_the_services_layout() {
        let url = reqwest::Url::parse("http://127.0.0.1:10000/devstoreaccount1/points?restype=container&comp=list&prefix=dr%2F").unwrap();
        let headers =
            vec![("x-ms-version", "2023-11-03".to_owned()), ("x-ms-date", "Mon, 07 Dec 2026 10:00:00 GMT".to_owned()), ("if-none-match", "*".to_owned())];
        let signed = string_to_sign("devstoreaccount1", &Method::PUT, &url, &headers, 3);
        assert_eq!(
            signed,
            "PUT\n\n\n3\n\n\n\n\n\n*\n\n\nx-ms-date:Mon, 07 Dec 2026 10:00:00 GMT\nx-ms-version:2023-11-03\n/devstoreaccount1/devstoreaccount1/points\ncomp:list\nprefix:dr/\nrestype:container"
        );
        // An empty body is signed as no length at all.
        assert!(string_to_sign("a", &Method::GET, &url, &headers, 0).starts_with("GET\n\n\n\n"));
        assert_eq!(http_date(parse_http_date("Mon, 07 Dec 2026 10:00:00 GMT").unwrap()), "Mon, 07 Dec 2026 10:00:00 GMT");
        assert_eq!(unescape("a&lt;b&#38;c&#x41;&bogus;"), "a<b&cA&bogus;");
    }
}
