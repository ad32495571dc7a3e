//! A Google Cloud Storage bucket, through the JSON API: create-only writes
//! (`ifGenerationMatch=0` on a multipart upload for small objects and on the resumable
//! session of large ones), reads pinned to the generation, every generation listed where the
//! bucket keeps them (object versioning), and a locked object retention on every write when
//! the profile is immutable.
//!
//! Requests carry an OAuth access token: from a service account's JSON key (a JWT signed with
//! its RSA key by aws-lc-rs, exchanged at the key's `token_uri`) or from the metadata server
//! (GKE's workload identity). Google's Rust SDK reaches listing and deletes over gRPC and
//! `object_store` neither lists generations nor writes create-only large objects
//! (docs/decisions.md).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::download::{Answer, Refusal, Rest};
use super::rest::{body_reader, header, transport_text, ATTEMPTS};
use super::{
    GcsConfig, GcsCredentials, History, Inventory, KeyHistory, LocationError, ObjectInfo, ObjectReader, ObjectVersion, StoredObject, IMMUTABLE_DAYS, PART_SIZE,
    VERSION_LISTING_LIMIT,
};

/// The service, in messages.
const SERVICE: &str = "Google Cloud Storage";
/// The OAuth scope asked for, as Google's own storage libraries ask (IAM decides what the
/// account may do).
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.full_control";

/// A bucket and prefix with a client.
#[derive(Clone)]
pub struct GcsLocation {
    http: reqwest::Client,
    /// The JSON API's base URL, without a trailing slash.
    base: String,
    bucket: String,
    prefix: String,
    auth: Arc<Auth>,
    pub(super) immutable_days: Option<u32>,
    pub(super) replica: bool,
}

impl fmt::Debug for GcsLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Where access tokens come from, and the one kept until shortly before it expires.
struct Auth {
    source: TokenSource,
    token: tokio::sync::Mutex<Option<(Zeroizing<String>, Instant)>>,
}

enum TokenSource {
    ServiceAccount(ServiceAccount),
    /// The metadata server's base URL (`http://metadata.google.internal`).
    MetadataServer(String),
}

/// The parts of a service account's JSON key that sign a token request.
struct ServiceAccount {
    email: String,
    key_id: String,
    key: aws_lc_rs::signature::RsaKeyPair,
    token_uri: String,
}

/// What one request does, for messages and for the permission a refusal names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    ListObjects,
    GetBucket,
    GetObject,
    GetObjectMetadata,
    InsertObject,
    UploadChunk,
    DeleteObject,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::ListObjects => "objects.list",
            Op::GetBucket => "buckets.get",
            Op::GetObject => "objects.get (media)",
            Op::GetObjectMetadata => "objects.get",
            Op::InsertObject => "objects.insert",
            Op::UploadChunk => "a resumable upload's chunk",
            Op::DeleteObject => "objects.delete",
        }
    }

    /// The IAM permission it needs.
    fn permission(self) -> &'static str {
        match self {
            Op::ListObjects => "storage.objects.list",
            Op::GetBucket => "storage.buckets.get",
            Op::GetObject | Op::GetObjectMetadata => "storage.objects.get",
            Op::InsertObject | Op::UploadChunk => "storage.objects.create (and storage.objects.setRetention for an immutable profile)",
            Op::DeleteObject => "storage.objects.delete",
        }
    }
}

/// Where a request goes.
enum Target<'a> {
    /// The bucket's own resource.
    Bucket,
    /// The bucket's object collection (listing).
    Objects,
    /// One object (relative to the location's prefix).
    Object(&'a str),
    /// The upload endpoint of the bucket's objects.
    Upload,
    /// A resumable upload's session URI, as the service gave it.
    Session(&'a str),
}

/// One request, authorized anew for each try.
struct Call<'a> {
    op: Op,
    method: Method,
    target: Target<'a>,
    query: Vec<(&'static str, String)>,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
}

impl<'a> Call<'a> {
    fn new(op: Op, method: Method, target: Target<'a>) -> Self {
        Self { op, method, target, query: Vec::new(), headers: Vec::new(), body: Bytes::new() }
    }

    fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// `generation=<g>` when a stored generation is addressed (empty: the live object).
    fn generation(self, generation: Option<&str>) -> Self {
        match generation.filter(|g| !g.is_empty()) {
            Some(g) => self.query("generation", g),
            None => self,
        }
    }
}

/// Why a request failed, before it is said as a [`LocationError`].
#[derive(Debug)]
enum Failure {
    /// No answer: the connection failed, timed out or was cut.
    Transport(String),
    /// The service answered with an error status (the first error's `reason`, the message).
    Status { status: u16, code: String, message: String },
}

/// An object (or one of its generations) as the JSON API shows it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Resource {
    name: String,
    generation: String,
    size: String,
    time_created: Option<String>,
    /// Set on a generation that is no longer live.
    time_deleted: Option<String>,
    metadata: BTreeMap<String, String>,
    retention: Option<Retention>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Retention {
    mode: String,
    retain_until_time: String,
}

impl GcsLocation {
    pub(super) fn connect(cfg: &GcsConfig) -> Result<Self, LocationError> {
        crate::init_crypto_provider();
        let b = cfg.bucket.as_bytes();
        let valid_bucket = (3..=63).contains(&b.len())
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric();
        if !valid_bucket {
            return Err(LocationError::Invalid(format!(
                "{:?} is not a GCS bucket name: 3 to 63 lower-case letters, digits, hyphens, underscores and dots, starting and ending with a letter or digit",
                cfg.bucket
            )));
        }
        if let Some(days) = cfg.immutable_days {
            if !IMMUTABLE_DAYS.contains(&days) {
                return Err(LocationError::Invalid(format!("protection period {days} days is out of range: choose 1 to 90 days")));
            }
        }
        let prefix = cfg.prefix.trim_matches('/');
        if !prefix.is_empty() && prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(LocationError::Invalid(format!("GCS prefix {prefix:?} has an empty, `.` or `..` segment")));
        }
        let base = match &cfg.endpoint {
            Some(endpoint) => super::rest::endpoint(endpoint, "GCS endpoint")?,
            None => "https://storage.googleapis.com".to_owned(),
        };
        let source = match &cfg.credentials {
            GcsCredentials::ServiceAccountKey(json) => TokenSource::ServiceAccount(ServiceAccount::from_json(json)?),
            GcsCredentials::MetadataServer => {
                // Google's libraries honour GCE_METADATA_HOST (host[:port]) the same way.
                let host = std::env::var("GCE_METADATA_HOST").ok().filter(|h| !h.trim().is_empty());
                TokenSource::MetadataServer(format!("http://{}", host.as_deref().unwrap_or("metadata.google.internal").trim()))
            }
        };
        Ok(Self {
            http: super::rest::client()?,
            base,
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.trim_matches('/').to_owned(),
            auth: Arc::new(Auth { source, token: tokio::sync::Mutex::new(None) }),
            immutable_days: cfg.immutable_days,
            replica: cfg.replica,
        })
    }

    /// The same bucket, read as a replication destination.
    pub(super) fn as_replica(&self) -> Self {
        Self { replica: true, ..self.clone() }
    }

    pub(super) fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("gs://{}", self.bucket)
        } else {
            format!("gs://{}/{}", self.bucket, self.prefix)
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

    /// The URL a call goes to.
    fn url(&self, call: &Call<'_>) -> Result<reqwest::Url, LocationError> {
        let invalid = |e: String| LocationError::Invalid(format!("GCS endpoint {}: {e}", self.base));
        let mut url = match call.target {
            Target::Session(uri) => {
                // The session URI comes from the service; the token goes nowhere else.
                let url = reqwest::Url::parse(uri).map_err(|e| invalid(e.to_string()))?;
                let base = reqwest::Url::parse(&self.base).map_err(|e| invalid(e.to_string()))?;
                if url.origin() != base.origin() {
                    return Err(LocationError::ServiceUnreachable {
                        service: SERVICE,
                        endpoint: self.base.clone(),
                        detail: "the service named an upload session at another address than its own: something on the path alters answers".into(),
                    });
                }
                url
            }
            _ => reqwest::Url::parse(&self.base).map_err(|e| invalid(e.to_string()))?,
        };
        if !matches!(call.target, Target::Session(_)) {
            let mut path = url.path_segments_mut().map_err(|_| invalid("cannot hold a path".into()))?;
            path.pop_if_empty();
            if matches!(call.target, Target::Upload) {
                path.push("upload");
            }
            path.extend(["storage", "v1", "b", &self.bucket]);
            match call.target {
                Target::Objects | Target::Upload => {
                    path.push("o");
                }
                Target::Object(key) => {
                    let full = self.full_key(key);
                    if full.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                        return Err(LocationError::Invalid(format!("{full:?} is not an object name kubectl-dr uses (an empty, `.` or `..` segment)")));
                    }
                    // The whole name is one path segment: its slashes are sent as %2F.
                    path.extend(["o", &full]);
                }
                Target::Bucket | Target::Session(_) => {}
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

    /// Sends `call`, trying again on transport failures, 408, 429 and 5xx (with backoff,
    /// `Retry-After` honoured up to 30 s) and once on a 401 with a fresh token; an answer of
    /// 2xx, or a resumable upload's 308, is returned.
    async fn send(&self, call: &Call<'_>) -> Result<reqwest::Response, Failure> {
        let url = self.url(call).map_err(|e| Failure::Transport(crate::error_text(&e)))?;
        let mut delay = Duration::from_millis(200);
        let mut refreshed = false;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let request = match self.authorize(call, url.clone()).await {
                Ok(request) => request,
                // The token service fails like any other: its transient failures are tried again.
                Err(Failure::Transport(_) | Failure::Status { status: 408 | 429 | 500 | 502 | 503 | 504, .. }) if !last => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(failure) => return Err(failure),
            };
            // A 308 is a resumable session's "go on"; to anything else it is a redirect, not done.
            let go_on = |status: reqwest::StatusCode| status.as_u16() == 308 && call.op == Op::UploadChunk;
            let wait = match self.http.execute(request).await {
                Ok(response) if response.status().is_success() || go_on(response.status()) => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = super::rest::retry_after(&response);
                    let failure = failure_of(response).await;
                    if status == 401 && !refreshed {
                        // The kept token may have been revoked or expired early.
                        refreshed = true;
                        *self.auth.token.lock().await = None;
                        continue;
                    }
                    if last || !super::rest::is_transient(status) {
                        return Err(failure);
                    }
                    tracing::debug!(operation = call.op.name(), status, "GCS answered with a transient error; trying again");
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

    async fn authorize(&self, call: &Call<'_>, url: reqwest::Url) -> Result<reqwest::Request, Failure> {
        let token = self.auth.token(&self.http).await?;
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
            .map_err(|_| Failure::Transport("the access token is not a valid header value".into()))?;
        value.set_sensitive(true);
        let mut builder = self.http.request(call.method.clone(), url).header(reqwest::header::AUTHORIZATION, value);
        for (name, v) in &call.headers {
            builder = builder.header(*name, v);
        }
        if matches!(call.method, Method::POST | Method::PUT) {
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
                let object = format!("{location}/{key}");
                let refused = |check: String| LocationError::Refused { operation: op.name(), object: object.clone(), status, code: code.clone(), check };
                let no_bucket = message.contains("bucket does not exist") || (status == 404 && matches!(op, Op::ListObjects | Op::GetBucket));
                match status {
                    404 if no_bucket => refused(format!("bucket {} does not exist: check the bucket name (and the endpoint)", self.bucket)),
                    404 => LocationError::NotFound { location, key: key.to_owned() },
                    412 if matches!(op, Op::InsertObject | Op::UploadChunk) => LocationError::AlreadyExists { location, key: key.to_owned() },
                    401 => refused(format!(
                        "the credentials were not accepted ({message}): check that the service account key (service-account.json) is whole and not deleted, or that workload identity maps this pod's Kubernetes service account to a Google service account, and that this machine's clock is right"
                    )),
                    403 if op == Op::DeleteObject && (code == "retentionPolicyNotMet" || message.to_lowercase().contains("retention")) => {
                        refused("an object retention or the bucket's retention policy protects this object until its date; it can be deleted only after".into())
                    }
                    403 => refused(format!("these credentials lack {} ({message})", op.permission())),
                    s if super::rest::is_transient(s) => LocationError::ServiceFailed { operation: op.name(), object, status, code, detail: message },
                    _ => refused(format!("the service said: {message}")),
                }
            }
        }
    }

    pub(super) async fn validate(&self) -> Result<(), LocationError> {
        let list = Call::new(Op::ListObjects, Method::GET, Target::Objects).query("prefix", self.full_key("")).query("maxResults", "1");
        self.send(&list).await.map_err(|e| self.error(e, Op::ListObjects, ""))?;
        if self.immutable_days.is_some() {
            let bucket = self.bucket_settings().await.map_err(|e| self.error(e, Op::GetBucket, ""))?;
            if bucket.object_retention.mode != "Enabled" {
                return Err(LocationError::RetentionUnsupported { location: self.describe() });
            }
        }
        Ok(())
    }

    async fn bucket_settings(&self) -> Result<BucketSettings, Failure> {
        let call = Call::new(Op::GetBucket, Method::GET, Target::Bucket).query("fields", "versioning,objectRetention");
        let response = self.send(&call).await?;
        response.json().await.map_err(|e| Failure::Transport(format!("the bucket's settings: {}", transport_text(e))))
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, LocationError> {
        let listed = self.list_objects(prefix, false).await?;
        Ok(listed.into_iter().map(|o| StoredObject { key: o.name, size: o.size.parse().unwrap_or(0), stored_at: rfc3339(o.time_created.as_deref()) }).collect())
    }

    /// Every object under `prefix`, paged to the end within [`VERSION_LISTING_LIMIT`]; with
    /// `versions`, every stored generation of each. Names are returned relative to the location.
    async fn list_objects(&self, prefix: &str, versions: bool) -> Result<Vec<Resource>, LocationError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct Page {
            items: Vec<Resource>,
            next_page_token: Option<String>,
        }
        let failed = |code: &str, detail: String| LocationError::ServiceFailed {
            operation: Op::ListObjects.name(),
            object: format!("{}/{prefix}", self.describe()),
            status: 200,
            code: code.into(),
            detail,
        };
        let started = Instant::now();
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut call = Call::new(Op::ListObjects, Method::GET, Target::Objects).query("prefix", self.full_key(prefix));
            if versions {
                call = call.query("versions", "true");
            }
            if !token.is_empty() {
                call = call.query("pageToken", token.clone());
            }
            let response = self.send(&call).await.map_err(|e| self.error(e, Op::ListObjects, prefix))?;
            let page: Page =
                response.json().await.map_err(|e| failed("UnreadableListing", format!("the listing is not the JSON API's: {}", transport_text(e))))?;
            out.extend(page.items.into_iter().filter_map(|mut o| {
                o.name = self.strip(&o.name)?.to_owned();
                Some(o)
            }));
            match page.next_page_token {
                Some(next) if next == token => {
                    return Err(failed("ListingStuck", "the service answered the same page again: the listing does not advance".into()));
                }
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
            if started.elapsed() > VERSION_LISTING_LIMIT {
                return Err(failed(
                    "ListingTooLong",
                    format!(
                        "listing did not finish in {} s: the prefix holds far more objects or generations than kubectl-dr writes (someone flooded it); the oldest generation of each object is the one kubectl-dr wrote",
                        VERSION_LISTING_LIMIT.as_secs()
                    ),
                ));
            }
        }
    }

    /// Every key under `prefix` with its stored generations, oldest first. A generation's
    /// number and its `timeCreated` are the service's, which no writer chooses. An object
    /// whose generations are all noncurrent (deleted while versioning kept them) gets a delete
    /// marker after them, as S3 would show it. Whether the bucket keeps generations is read
    /// from its settings: without versioning (or without the right to read the settings) only
    /// what is current is known, and the history says so.
    pub(super) async fn inventory(&self, prefix: &str) -> Result<Inventory, LocationError> {
        let listed = self.list_objects(prefix, true).await?;
        let any_noncurrent = listed.iter().any(|o| o.time_deleted.is_some());
        let keys = histories(listed).map_err(|detail| LocationError::ServiceFailed {
            operation: Op::ListObjects.name(),
            object: format!("{}/{prefix}", self.describe()),
            status: 200,
            code: "UnreadableListing".into(),
            detail,
        })?;
        // The bucket's setting, not noncurrent generations seen: those outlive versioning
        // being turned off, after which an overwrite leaves no trace.
        let history = {
            match self.bucket_settings().await {
                Ok(settings) if settings.versioning.enabled => History::Versions,
                Ok(_) => History::CurrentOnly {
                    why: format!(
                        "the bucket of {} keeps no noncurrent generations (object versioning is off), so an overwrite cannot be told from the original: turn object versioning on",
                        self.describe()
                    ),
                },
                Err(failure) => History::CurrentOnly {
                    why: format!(
                        "whether the bucket of {} keeps generations could not be read ({}){}, so an overwrite cannot be told from the original: grant storage.buckets.get",
                        self.describe(),
                        crate::error_text(&self.error(failure, Op::GetBucket, "")),
                        if any_noncurrent { "; it kept some once" } else { "" }
                    ),
                },
            }
        };
        Ok(Inventory { keys, history, anomalies: Vec::new() })
    }

    /// A media download of `key` (its `generation`, else the live object), of `range` when given.
    fn get_call<'k>(key: &'k str, generation: Option<&str>, range: Option<String>) -> Call<'k> {
        // `Accept-Encoding: gzip` gets the stored bytes as they are: without it GCS decompresses
        // an object whose contentEncoding says gzip (anyone with storage.objects.update can
        // set it on a generation), and ignores Range and Content-Length while it does.
        let call = Call::new(Op::GetObject, Method::GET, Target::Object(key)).query("alt", "media").header("accept-encoding", "gzip").generation(generation);
        match range {
            Some(range) => call.header("range", range),
            None => call,
        }
    }

    pub(super) async fn open(&self, key: &str, generation: Option<&str>) -> Result<(u64, ObjectReader), LocationError> {
        let response = self.send(&Self::get_call(key, generation, None)).await.map_err(|e| self.error(e, Op::GetObject, key))?;
        // Without a length a cut body could not be told from the end of the object.
        let len = response.content_length().ok_or_else(|| LocationError::ServiceUnreachable {
            service: SERVICE,
            endpoint: self.base.clone(),
            detail: format!("the service answered a download of {} without a Content-Length", self.full_key(key)),
        })?;
        Ok((len, self.resuming(key, generation, response, len, len)))
    }

    pub(super) async fn open_start(&self, key: &str, generation: Option<&str>, n: u64) -> Result<(u64, ObjectReader), LocationError> {
        let sent = self.send(&Self::get_call(key, generation, Some(format!("bytes=0-{}", n.max(1) - 1)))).await;
        let altered = |detail: String| LocationError::ServiceUnreachable {
            service: SERVICE,
            endpoint: self.base.clone(),
            detail: format!("the service answered a ranged download of {} with {detail}: something on the path alters answers", self.full_key(key)),
        };
        let response = match sent {
            Ok(response) => response,
            // An empty object has no first byte to send; any other has, so its size tells.
            Err(Failure::Status { status: 416, .. }) => {
                return match self.head(key, generation).await?.size {
                    0 => Ok((0, Box::new(tokio::io::empty()))),
                    size => Err(altered(format!("416 for an object of {size} bytes"))),
                };
            }
            Err(e) => return Err(self.error(e, Op::GetObject, key)),
        };
        let (len, total) = super::download::first_bytes(header(&response, "content-range").as_deref(), response.content_length(), n).map_err(altered)?;
        Ok((total, self.resuming(key, generation, response, len, total)))
    }

    /// The body of a download as one that asks for the rest of the same generation when it is
    /// cut: the first `len` bytes of an object of `total`.
    fn resuming(&self, key: &str, generation: Option<&str>, response: reqwest::Response, len: u64, total: u64) -> ObjectReader {
        let pinned = generation.filter(|g| !g.is_empty()).map(str::to_owned).or_else(|| header(&response, "x-goog-generation"));
        let etag = header(&response, "etag");
        let (location, full_key, if_match, generation) = (self.clone(), key.to_owned(), etag.clone(), pinned.clone());
        let reopen: super::download::Reopener = Arc::new(move |rest: Rest| {
            let (location, key, if_match, generation) = (location.clone(), full_key.clone(), if_match.clone(), generation.clone());
            Box::pin(async move {
                let mut call = Self::get_call(&key, generation.as_deref(), Some(rest.range));
                if generation.is_none() {
                    if let Some(etag) = if_match {
                        call = call.header("if-match", etag);
                    }
                }
                let sent = tokio::time::timeout(rest.within, location.send(&call))
                    .await
                    .map_err(|_| Refusal::Retry(format!("no answer within {} s", rest.within.as_secs())))?;
                let response = sent.map_err(|failure| match failure {
                    Failure::Status { status: 412, message, .. } => Refusal::Changed(message),
                    Failure::Status { status: 401 | 403 | 404 | 416, code, .. } => Refusal::Final(code),
                    Failure::Status { status, code, .. } => Refusal::Retry(format!("{status} {code}")),
                    Failure::Transport(detail) => Refusal::Retry(detail),
                })?;
                Ok(Answer {
                    content_range: header(&response, "content-range"),
                    version: header(&response, "x-goog-generation"),
                    etag: header(&response, "etag"),
                    body: body_reader(response),
                })
            })
        });
        let source = super::download::Source { name: format!("{}/{key}", self.describe()), version: pinned, etag, reopen };
        Box::new(super::download::ResumingBody::new(source, len, total, body_reader(response)))
    }

    /// Deletes `generation` of `key` for good (a delete with a generation removes it, noncurrent
    /// or live), or the live object (on a versioned bucket it becomes noncurrent and stays).
    pub(super) async fn delete(&self, key: &str, generation: Option<&str>) -> Result<(), LocationError> {
        let call = Call::new(Op::DeleteObject, Method::DELETE, Target::Object(key)).generation(generation);
        self.send(&call).await.map_err(|e| self.error(e, Op::DeleteObject, key))?;
        Ok(())
    }

    async fn resource(&self, key: &str, generation: Option<&str>) -> Result<Resource, LocationError> {
        let call = Call::new(Op::GetObjectMetadata, Method::GET, Target::Object(key)).generation(generation);
        let response = self.send(&call).await.map_err(|e| self.error(e, Op::GetObjectMetadata, key))?;
        response.json().await.map_err(|e| self.error(Failure::Transport(transport_text(e)), Op::GetObjectMetadata, key))
    }

    pub(super) async fn head(&self, key: &str, generation: Option<&str>) -> Result<ObjectInfo, LocationError> {
        let resource = self.resource(key, generation).await?;
        let retention = resource.retention.and_then(|r| Some((r.mode, rfc3339(Some(&r.retain_until_time))?)));
        Ok(ObjectInfo { size: resource.size.parse().unwrap_or(0), retention, metadata: resource.metadata })
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct BucketSettings {
    versioning: Versioning,
    object_retention: ObjectRetention,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Versioning {
    enabled: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ObjectRetention {
    mode: String,
}

fn rfc3339(text: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text?, &time::format_description::well_known::Rfc3339).ok()
}

/// Each key's generations, oldest first, from a listing with versions. Generation numbers
/// grow with each write of a name, so their order is the order of writes.
fn histories(listed: Vec<Resource>) -> Result<BTreeMap<String, KeyHistory>, String> {
    let mut keys: BTreeMap<String, (Vec<(u64, ObjectVersion)>, bool)> = BTreeMap::new();
    for object in listed {
        let number: u64 = object.generation.parse().map_err(|_| format!("object {:?} has generation {:?}, not a number", object.name, object.generation))?;
        let size = object.size.parse().map_err(|_| format!("object {:?} has size {:?}, not a number", object.name, object.size))?;
        let entry = keys.entry(object.name).or_default();
        entry.1 |= object.time_deleted.is_none();
        let version = ObjectVersion { id: object.generation, size, stored_at: rfc3339(object.time_created.as_deref()), delete_marker: false };
        entry.0.push((number, version));
    }
    Ok(keys
        .into_iter()
        .map(|(key, (mut generations, any_live))| {
            generations.sort_by_key(|(n, _)| *n);
            let mut versions: Vec<ObjectVersion> = generations.into_iter().map(|(_, v)| v).collect();
            if !any_live {
                versions.push(ObjectVersion { id: String::new(), size: 0, stored_at: None, delete_marker: true });
            }
            (key, KeyHistory { versions })
        })
        .collect())
}

/// An error answer: the first error's `reason` (else the status's) and the message.
async fn failure_of(response: reqwest::Response) -> Failure {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let error = &body["error"];
    let code = error["errors"][0]["reason"].as_str().or(error["status"].as_str()).unwrap_or("").to_owned();
    let message = error["message"].as_str().unwrap_or("").lines().next().unwrap_or("").to_owned();
    Failure::Status { status, code, message }
}

impl ServiceAccount {
    fn from_json(json: &str) -> Result<Self, LocationError> {
        #[derive(Deserialize)]
        struct Key {
            #[serde(rename = "type")]
            kind: String,
            client_email: String,
            #[serde(default)]
            private_key_id: String,
            /// Skipped here (serde_json unescapes strings in a buffer it frees unwiped): read by
            /// [`json_string_member`] into wiped memory.
            #[serde(default)]
            private_key: serde::de::IgnoredAny,
            #[serde(default)]
            token_uri: Option<String>,
        }
        let invalid = |what: &str| {
            LocationError::Invalid(format!(
                "the GCS service account key {what}: give the JSON key file `gcloud iam service-accounts keys create` writes (its \"type\" is \"service_account\")"
            ))
        };
        // serde's error would quote the input, and the input holds the private key.
        let key: Key = serde_json::from_str(json).map_err(|_| invalid("is not a service account's JSON key"))?;
        if key.kind != "service_account" {
            return Err(invalid(&format!("is of type {:?}", key.kind)));
        }
        let _ = key.private_key;
        let pem = json_string_member(json, "private_key").ok_or_else(|| invalid("has no private_key"))?;
        let der = pem_body(&pem).ok_or_else(|| invalid("has no PEM private_key"))?;
        let pair = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&der).map_err(|_| invalid("has a private_key that is not a PKCS#8 RSA key"))?;
        let token_uri = key.token_uri.unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
        super::rest::endpoint(&token_uri, "the service account key's token_uri")?;
        Ok(Self { email: key.client_email, key_id: key.private_key_id, key: pair, token_uri })
    }

    /// A signed JWT asking for a token (RFC 7523, as Google's OAuth server takes it).
    fn assertion(&self) -> Result<Zeroizing<String>, Failure> {
        use base64::Engine;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let head = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.key_id});
        let claims = serde_json::json!({"iss": self.email, "scope": SCOPE, "aud": self.token_uri, "iat": now, "exp": now + 3600});
        let signed = format!("{}.{}", b64(head.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), signed.as_bytes(), &mut signature)
            .map_err(|_| Failure::Transport("cannot sign the token request with the service account key".into()))?;
        Ok(Zeroizing::new(format!("{signed}.{}", b64(&signature))))
    }
}

/// A secret string read from JSON straight into memory that is wiped when dropped.
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Zeroizing<String>, D::Error> {
    String::deserialize(d).map(Zeroizing::new)
}

/// The value of the string member `name` of a JSON object, unescaped into memory that is wiped
/// when dropped (the PEM of a private key holds `\n` escapes). `None` when it is missing or
/// not a plain string.
fn json_string_member(json: &str, name: &str) -> Option<Zeroizing<String>> {
    let quoted = format!("\"{name}\"");
    let at = json.find(&quoted)?;
    let rest = json[at + quoted.len()..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let mut out = Zeroizing::new(String::with_capacity(rest.len().min(16 * 1024)));
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '/' => out.push('/'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Option<Zeroizing<Vec<u8>>> {
    use base64::Engine;
    let body = pem.split("-----BEGIN PRIVATE KEY-----").nth(1)?.split("-----END PRIVATE KEY-----").next()?;
    let mut text = Zeroizing::new(String::with_capacity(body.len()));
    text.extend(body.chars().filter(|c| !c.is_whitespace()));
    base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).ok().map(Zeroizing::new)
}

impl Auth {
    /// An access token: the kept one, or a new one when it has less than five minutes left.
    async fn token(&self, http: &reqwest::Client) -> Result<Zeroizing<String>, Failure> {
        let mut kept = self.token.lock().await;
        if let Some((token, until)) = kept.as_ref() {
            if Instant::now() + Duration::from_secs(300) < *until {
                return Ok(token.clone());
            }
        }
        let (what, sent) = match &self.source {
            TokenSource::ServiceAccount(account) => {
                let assertion = account.assertion()?;
                let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
                ("Google's OAuth server", http.post(&account.token_uri).form(&form).send().await)
            }
            TokenSource::MetadataServer(base) => {
                let url = format!("{base}/computeMetadata/v1/instance/service-accounts/default/token");
                ("the metadata server (GKE workload identity)", http.get(url).header("Metadata-Flavor", "Google").send().await)
            }
        };
        let response = sent.map_err(|e| {
            Failure::Transport(format!(
                "{what}: {}{}",
                transport_text(e),
                match self.source {
                    TokenSource::MetadataServer(_) => "; without a service account key (a profile's Secret with service-account.json; for the plugin the file GOOGLE_APPLICATION_CREDENTIALS names) the token comes from the metadata server, which only GKE and GCE serve",
                    TokenSource::ServiceAccount(_) => "",
                }
            ))
        })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let code = body["error"].as_str().unwrap_or("").to_owned();
            let message = body["error_description"].as_str().unwrap_or("").lines().next().unwrap_or("").to_owned();
            return Err(Failure::Status {
                status: if status == 400 { 401 } else { status },
                code: format!("token:{code}"),
                message: format!("{what} refused a token: {message}"),
            });
        }
        #[derive(Deserialize)]
        struct Granted {
            #[serde(deserialize_with = "secret")]
            access_token: Zeroizing<String>,
            expires_in: u64,
        }
        let granted: Granted = response.json().await.map_err(|e| Failure::Transport(format!("{what}'s answer: {}", transport_text(e))))?;
        // At most a day: the answer comes from wherever the key's token_uri points.
        *kept = Some((granted.access_token.clone(), Instant::now() + Duration::from_secs(granted.expires_in.min(86_400))));
        Ok(granted.access_token)
    }
}

/// Buffers up to one chunk; a small object goes up in one multipart upload, a large one through
/// a resumable session in chunks of [`PART_SIZE`]. Both are created with `ifGenerationMatch=0`
/// (only while no live object has the name), carry the metadata, a per-upload nonce and, when
/// the location is immutable, the locked retention.
pub struct GcsUpload {
    loc: GcsLocation,
    key: String,
    pending: Vec<u8>,
    /// The resumable session once one is started, and how many bytes it has taken.
    session: Option<String>,
    sent: u64,
    metadata: BTreeMap<String, String>,
    retain_until: Option<OffsetDateTime>,
    /// Random, per upload, sent as metadata ([`WRITE_NONCE`]): a retry refused because the
    /// object exists tells its own earlier try from another writer's object by it.
    nonce: String,
}

/// The metadata name holding an upload's nonce.
const WRITE_NONCE: &str = "kubectl-dr-write";

impl GcsUpload {
    pub(super) fn new(loc: GcsLocation, key: &str, metadata: BTreeMap<String, String>) -> Self {
        let retain_until = loc.immutable_days.map(|days| OffsetDateTime::now_utc() + time::Duration::days(days as i64));
        let mut random = [0u8; 12];
        crate::format::crypto::fill_random(&mut random);
        Self { loc, key: key.to_owned(), pending: Vec::new(), session: None, sent: 0, metadata, retain_until, nonce: hex::encode(random) }
    }

    /// The object resource every create sends: name, metadata with the nonce, retention.
    fn resource(&self) -> serde_json::Value {
        let mut metadata = self.metadata.clone();
        metadata.insert(WRITE_NONCE.into(), self.nonce.clone());
        let mut resource = serde_json::json!({"name": self.loc.full_key(&self.key), "metadata": metadata});
        if let Some(until) = self.retain_until {
            let until = until.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            resource["retention"] = serde_json::json!({"mode": "Locked", "retainUntilTime": until});
        }
        resource
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), LocationError> {
        self.pending.extend_from_slice(bytes);
        while self.pending.len() > PART_SIZE {
            // A chunk is sent only once more bytes follow it: the last chunk carries the total.
            let rest = self.pending.split_off(PART_SIZE);
            let chunk = std::mem::replace(&mut self.pending, rest);
            self.send_chunk(chunk, false).await?;
        }
        Ok(())
    }

    pub(super) async fn finish(mut self) -> Result<(), LocationError> {
        let pending = std::mem::take(&mut self.pending);
        if self.session.is_none() {
            return self.insert(pending).await;
        }
        self.send_chunk(pending, true).await
    }

    /// One multipart upload (the resource and the bytes in one request).
    async fn insert(&self, bytes: Vec<u8>) -> Result<(), LocationError> {
        // A boundary the bytes do not hold.
        let boundary = loop {
            let mut random = [0u8; 16];
            crate::format::crypto::fill_random(&mut random);
            let boundary = format!("kubectl-dr-{}", hex::encode(random));
            if !bytes.windows(boundary.len()).any(|w| w == boundary.as_bytes()) {
                break boundary;
            }
        };
        let mut body = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n",
            self.resource()
        )
        .into_bytes();
        body.extend_from_slice(&bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let call = Call::new(Op::InsertObject, Method::POST, Target::Upload)
            .query("uploadType", "multipart")
            .query("ifGenerationMatch", "0")
            .header("content-type", format!("multipart/related; boundary={boundary}"))
            .body(body);
        match self.loc.send(&call).await {
            Ok(_) => Ok(()),
            Err(failure) => self.refused(failure, Op::InsertObject).await,
        }
    }

    /// A create refused. Because the object exists: when a try of this very upload was first
    /// (its answer lost, the retry refused), the object carries this upload's nonce and the
    /// write is done; another nonce is another writer's object; credentials that may not read
    /// it cannot tell.
    async fn refused(&self, failure: Failure, op: Op) -> Result<(), LocationError> {
        match self.loc.error(failure, op, &self.key) {
            LocationError::AlreadyExists { .. } => self.confirm().await,
            other => Err(other),
        }
    }

    /// Whether the live object at the key is this upload's (its nonce): after a refusal
    /// because it exists, or a last chunk whose answer was lost and whose session is over.
    async fn confirm(&self) -> Result<(), LocationError> {
        let (location, key) = (self.loc.describe(), self.key.clone());
        match self.loc.head(&self.key, None).await {
            Ok(info) if info.metadata.get(WRITE_NONCE) == Some(&self.nonce) => {
                tracing::info!(location = %location, key = %key, "the store already holds this write: its first answer was lost and the retry found it");
                Ok(())
            }
            Ok(_) => Err(LocationError::AlreadyExists { location, key }),
            Err(LocationError::NotFound { .. }) => Err(LocationError::ServiceFailed {
                operation: Op::UploadChunk.name(),
                object: format!("{location}/{key}"),
                status: 404,
                code: "sessionGone".into(),
                detail: "the upload session ended without making the object".into(),
            }),
            Err(_) => Err(LocationError::WriteUnconfirmed { location, key }),
        }
    }

    /// Starts the resumable session: the resource, create-only.
    async fn start_session(&mut self) -> Result<String, LocationError> {
        let call = Call::new(Op::InsertObject, Method::POST, Target::Upload)
            .query("uploadType", "resumable")
            .query("ifGenerationMatch", "0")
            .header("content-type", "application/json; charset=UTF-8")
            .body(self.resource().to_string());
        // No byte is sent yet: a refusal because the object exists is another writer's.
        let response = self.loc.send(&call).await.map_err(|failure| self.loc.error(failure, Op::InsertObject, &self.key))?;
        let session = header(&response, "location").ok_or_else(|| LocationError::ServiceUnreachable {
            service: SERVICE,
            endpoint: self.loc.base.clone(),
            detail: "the service started a resumable upload without naming its session".into(),
        })?;
        self.session = Some(session.clone());
        Ok(session)
    }

    /// Sends `chunk` into the session (starting it first): bytes `sent..sent+len` of an object
    /// whose total is known only with the `last` chunk. A try that gets no answer asks the
    /// session how much it holds and sends the rest from there.
    async fn send_chunk(&mut self, chunk: Vec<u8>, last: bool) -> Result<(), LocationError> {
        let session = match &self.session {
            Some(s) => s.clone(),
            None => self.start_session().await?,
        };
        let chunk = Bytes::from(chunk);
        let end = self.sent + chunk.len() as u64;
        let mut from = self.sent;
        let mut tries = 0;
        loop {
            tries += 1;
            let total = if last { end.to_string() } else { "*".into() };
            let range = if from == end { format!("bytes */{total}") } else { format!("bytes {from}-{}/{total}", end - 1) };
            let body = chunk.slice((from - self.sent) as usize..);
            let call = Call::new(Op::UploadChunk, Method::PUT, Target::Session(&session)).header("content-range", range).body(body);
            match self.loc.send(&call).await {
                Ok(response) if response.status().as_u16() == 308 => {
                    let held = persisted(&response);
                    if !last && held == end {
                        self.sent = end;
                        return Ok(());
                    }
                    if held < from || held > end || tries >= ATTEMPTS {
                        return Err(self.loc.error(
                            Failure::Transport(format!("the upload session holds {held} bytes where {end} were sent")),
                            Op::UploadChunk,
                            &self.key,
                        ));
                    }
                    from = held;
                }
                Ok(_) if last => return Ok(()),
                Ok(_) => {
                    return Err(self.loc.error(Failure::Transport("the upload session finished before its last chunk".into()), Op::UploadChunk, &self.key));
                }
                Err(Failure::Transport(_)) if tries < ATTEMPTS => {
                    // Ask the session what arrived.
                    let status = Call::new(Op::UploadChunk, Method::PUT, Target::Session(&session)).header("content-range", "bytes */*");
                    match self.loc.send(&status).await {
                        Ok(response) if response.status().as_u16() == 308 => from = persisted(&response).clamp(self.sent, end),
                        // The session finished with this upload's bytes (no one else has its URI).
                        Ok(_) if last => return Ok(()),
                        // The session is gone: whether it finished first, the nonce tells.
                        Err(Failure::Status { status: 404 | 410, .. }) if last => return self.confirm().await,
                        _ => {}
                    }
                }
                // The session is over (a retry after its last chunk's answer was lost): done,
                // or gone. The nonce tells.
                Err(Failure::Status { status: 404 | 410, .. }) if last => return self.confirm().await,
                // A 412 here is another writer's object: this session's own retry would have been
                // answered as done.
                Err(failure) => return Err(self.loc.error(failure, Op::UploadChunk, &self.key)),
            }
        }
    }

    /// Nothing to remove: an unfinished resumable session holds no object, and the service
    /// drops it after a week.
    pub(super) async fn abort(self) {}
}

/// How many bytes a session holds, from a 308's `Range: bytes=0-N` (none: 0).
fn persisted(response: &reqwest::Response) -> u64 {
    header(response, "range").and_then(|r| r.strip_prefix("bytes=0-").and_then(|n| n.trim().parse::<u64>().ok())).map(|n| n.saturating_add(1)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, generation: &str, deleted: bool) -> Resource {
        Resource {
            name: name.into(),
            generation: generation.into(),
            size: "5".into(),
            time_created: Some("2026-12-07T10:00:00Z".into()),
            time_deleted: deleted.then(|| "2026-12-07T11:00:00Z".into()),
            ..Default::default()
        }
    }

    #[test]
    fn generations_are_ordered_by_number_and_a_name_without_a_live_one_ends_deleted() {
        let keys = histories(vec![
            resource("p/manifest", "1700000000000010", false),
            resource("p/manifest", "1700000000000002", true),
            resource("q/manifest", "9", true),
        ])
        .unwrap();
        let p = &keys["p/manifest"];
        assert_eq!(p.pinned().unwrap().id, "1700000000000002");
        assert_eq!(p.later().len(), 1);
        let q = &keys["q/manifest"];
        assert_eq!(q.pinned().unwrap().id, "9");
        assert!(q.later()[0].delete_marker, "{q:?}");
    }

    #[test]
    fn a_listing_with_a_generation_that_is_not_a_number_is_refused() {
        assert!(histories(vec![resource("p", "abc", false)]).unwrap_err().contains("not a number"));
    }

    #[test]
    fn a_json_string_member_is_unescaped() {
        let json = r#"{"private_key_id": "x", "private_key" : "-----BEGIN\nA\/B\u0041\"\\-----", "n": 1}"#;
        assert_eq!(json_string_member(json, "private_key").unwrap().as_str(), "-----BEGIN\nA/BA\"\\-----");
        assert!(json_string_member(json, "client_email").is_none());
        assert!(json_string_member(r#"{"private_key": "cut"#, "private_key").is_none());
    }

    #[test]
    fn a_session_says_what_it_holds() {
        let response = |range: Option<&str>| {
            let mut builder = http::Response::builder().status(308);
            if let Some(r) = range {
                builder = builder.header("range", r);
            }
            reqwest::Response::from(builder.body(Vec::<u8>::new()).unwrap())
        };
        assert_eq!(persisted(&response(Some("bytes=0-8388607"))), 8 * 1024 * 1024);
        assert_eq!(persisted(&response(None)), 0);
    }
}
