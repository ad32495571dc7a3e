//! An S3 or S3-compatible bucket: create-only writes (`If-None-Match: *`), Object Lock
//! retention on every write when the profile is immutable, multipart for large objects.

use super::s3_error::S3Op;
use super::{
    History, Inventory, KeyHistory, LocationError, ObjectInfo, ObjectReader, ObjectVersion, S3Config, StoredObject, IMMUTABLE_DAYS, PART_SIZE,
    VERSION_LISTING_LIMIT,
};
use std::fmt;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockEnabled, ObjectLockMode};
use time::OffsetDateTime;

/// An S3 bucket and prefix with a client.
#[derive(Clone)]
pub struct S3Location {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
    pub(super) endpoint: String,
    pub(super) region: String,
    pub(super) immutable_days: Option<u32>,
    pub(super) replica: bool,
}

impl fmt::Debug for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl S3Location {
    pub(super) async fn connect(cfg: &S3Config) -> Result<Self, LocationError> {
        crate::init_crypto_provider();
        if cfg.bucket.is_empty() {
            return Err(LocationError::Invalid("an S3 location needs a bucket name".into()));
        }
        if let Some(days) = cfg.immutable_days {
            if !IMMUTABLE_DAYS.contains(&days) {
                return Err(LocationError::Invalid(format!("protection period {days} days is out of range: choose 1 to 90 days")));
            }
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &cfg.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(c) = &cfg.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.as_str().to_owned(),
                c.session_token.as_ref().map(|t| t.as_str().to_owned()),
                None,
                "kubectl-dr-profile",
            ));
        }
        if cfg.skip_tls_verify {
            if cfg.ca_bundle.is_some() {
                return Err(LocationError::Invalid("give either a CA bundle or skip-TLS-verify, not both".into()));
            }
            tracing::warn!(bucket = %cfg.bucket, "TLS certificates of the S3 endpoint are not verified (skip-TLS-verify)");
            loader = loader.http_client(crate::insecure_http::client().map_err(LocationError::Invalid)?);
        } else if let Some(ca) = &cfg.ca_bundle {
            loader = loader.http_client(crate::tls::aws_https_client_with_ca(ca.read().await?));
        }
        let sdk = loader.load().await;
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk)
            .region(aws_config::Region::new(region.clone()))
            .force_path_style(cfg.path_style)
            // Throttling (503 SlowDown) and 5xx are retried with jittered exponential backoff;
            // the cap keeps an unreachable endpoint from stalling a command for long.
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(300))
                    .build(),
            );
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.trim_matches('/').to_owned(),
            endpoint: cfg.endpoint.clone().unwrap_or_else(|| format!("AWS S3 ({region})")),
            region,
            immutable_days: cfg.immutable_days,
            replica: cfg.replica,
        })
    }

    /// Turns an SDK error into one that says what to check (`s3_error`).
    pub(super) fn error<E>(&self, err: aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>, op: S3Op, key: &str) -> LocationError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let at = super::s3_error::Target { bucket: &self.bucket, endpoint: &self.endpoint, region: &self.region, location: self.describe() };
        super::s3_error::explain(err, op, self.full_key(key), at)
    }

    pub(super) fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    pub(super) fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    pub(super) fn strip(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_owned()
        } else {
            full.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(full).to_owned()
        }
    }

    pub(super) async fn validate(&self) -> Result<(), LocationError> {
        // A one-key listing of our prefix: it needs s3:ListBucket, like HeadBucket on AWS, but
        // every S3 implementation authorizes it the same way and it proves the prefix is readable.
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(""))
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.error(e, S3Op::ListObjects, ""))?;
        if self.immutable_days.is_some() {
            let lock = self
                .client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send()
                .await
                .map_err(|e| self.error(e, S3Op::GetObjectLockConfiguration, ""))?;
            let enabled = lock.object_lock_configuration().and_then(|c| c.object_lock_enabled()).is_some_and(|e| *e == ObjectLockEnabled::Enabled);
            if !enabled {
                return Err(LocationError::ObjectLockDisabled { bucket: self.bucket.clone() });
            }
        }
        Ok(())
    }

    pub(super) fn retain_until(&self) -> Option<aws_smithy_types::DateTime> {
        self.immutable_days.map(|days| {
            let until = OffsetDateTime::now_utc() + time::Duration::days(days as i64);
            aws_smithy_types::DateTime::from_secs(until.unix_timestamp())
        })
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, LocationError> {
        let mut out = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(self.full_key(prefix)).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(e, S3Op::ListObjects, prefix))?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    out.push(StoredObject {
                        key: self.strip(key),
                        size: obj.size().unwrap_or(0).max(0) as u64,
                        stored_at: obj.last_modified().and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok()),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Starts the download of `key`: its current version, or the `version` given.
    pub(super) async fn open(&self, key: &str, version: Option<&str>) -> Result<(u64, ObjectReader), LocationError> {
        let resp = self.get_object(key, version).send().await.map_err(|e| self.error(e, get_op(version), key))?;
        let len = resp.content_length().unwrap_or(0).max(0) as u64;
        Ok((len, self.resuming(key, version, resp, len, len)))
    }

    /// A GetObject of `key`: its current version, or the `version` given.
    fn get_object(&self, key: &str, version: Option<&str>) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder {
        self.client.get_object().bucket(&self.bucket).key(self.full_key(key)).set_version_id(addressed(version))
    }

    /// The body of a GetObject answer as a download that asks for the rest of the same version
    /// (or ETag) when it is cut: the first `len` bytes of an object of `total`.
    fn resuming(&self, key: &str, version: Option<&str>, resp: aws_sdk_s3::operation::get_object::GetObjectOutput, len: u64, total: u64) -> ObjectReader {
        let version = addressed(version).or_else(|| resp.version_id().filter(|v| *v != "null").map(str::to_owned));
        let etag = resp.e_tag().map(str::to_owned);
        let (client, bucket, full_key) = (self.client.clone(), self.bucket.clone(), self.full_key(key));
        let (pinned, if_match) = (version.clone(), etag.clone());
        let reopen: super::download::Reopener = std::sync::Arc::new(move |rest: super::download::Rest| {
            let mut request = client.get_object().bucket(&bucket).key(&full_key).range(rest.range).set_version_id(pinned.clone());
            if pinned.is_none() {
                request = request.set_if_match(if_match.clone());
            }
            Box::pin(async move {
                use super::download::Refusal;
                // Within what is left of the budget, whatever the SDK's own tries would take.
                let sent = tokio::time::timeout(rest.within, request.send())
                    .await
                    .map_err(|_| Refusal::Retry(format!("no answer within {} s", rest.within.as_secs())))?;
                let response = sent.map_err(|e| {
                    let status = e.raw_response().map(|r| r.status().as_u16());
                    let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                    match status {
                        Some(412) => Refusal::Changed(text),
                        Some(403 | 404 | 416) => Refusal::Final(text),
                        _ => Refusal::Retry(text),
                    }
                })?;
                Ok(super::download::Answer {
                    content_range: response.content_range().map(str::to_owned),
                    version: response.version_id().map(str::to_owned),
                    etag: response.e_tag().map(str::to_owned),
                    body: Box::pin(response.body.into_async_read()),
                })
            })
        });
        let source = super::download::Source { name: format!("s3://{}/{}", self.bucket, self.full_key(key)), version, etag, reopen };
        Box::new(super::download::ResumingBody::new(source, len, total, Box::pin(resp.body.into_async_read())))
    }

    /// Starts the download of the first `n` (at least 1) bytes of `key` (a ranged GetObject):
    /// the object's whole size, and a stream of at most `n` bytes.
    pub(super) async fn open_start(&self, key: &str, version: Option<&str>, n: u64) -> Result<(u64, ObjectReader), LocationError> {
        let sent = self.get_object(key, version).range(format!("bytes=0-{}", n.max(1) - 1)).send().await;
        // An answer that is not the first bytes asked for comes from a faulty store or
        // something on the path, never from what a writer stored: it stops the reader (the
        // location), rather than making the object look damaged.
        let altered = |detail: String| LocationError::Unreachable {
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
            detail: format!("the store answered a ranged GetObject of {} with {detail}: something on the path alters answers", self.full_key(key)),
        };
        let resp = match sent {
            Ok(resp) => resp,
            // 416 InvalidRange: an empty object has no first byte to send. Any other object
            // has, so the size is asked for to tell the two apart.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return match self.head(key, version).await?.size {
                    0 => Ok((0, Box::new(tokio::io::empty()))),
                    size => Err(altered(format!("416 for an object of {size} bytes"))),
                };
            }
            Err(e) => return Err(self.error(e, get_op(version), key)),
        };
        let length = resp.content_length().map(|l| l.max(0) as u64);
        let (len, total) = super::download::first_bytes(resp.content_range(), length, n).map_err(altered)?;
        Ok((total, self.resuming(key, version, resp, len, total)))
    }

    /// Every version under `prefix`, paged to the end (a flood of versions must not hide the
    /// oldest), within [`VERSION_LISTING_LIMIT`]. Without version rights (or on a store that
    /// does not implement the call) the current objects, said in the history.
    pub(super) async fn inventory(&self, prefix: &str) -> Result<Inventory, LocationError> {
        let started = std::time::Instant::now();
        let mut versions: std::collections::BTreeMap<String, Vec<ObjectVersion>> = Default::default();
        let mut markers: std::collections::BTreeMap<String, Vec<ObjectVersion>> = Default::default();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let sent = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(self.full_key(prefix))
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await;
            let page = match sent {
                Ok(page) => page,
                Err(e) => {
                    let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e).map(str::to_owned);
                    let err = self.error(e, S3Op::ListObjectVersions, prefix);
                    let unsupported = matches!(code.as_deref(), Some("NotImplemented" | "MethodNotAllowed"));
                    if matches!(err, LocationError::AccessDenied { .. }) || unsupported {
                        return self.current_only(prefix, &err).await;
                    }
                    return Err(err);
                }
            };
            let to_version = |key: Option<&str>, id: Option<&str>, size: Option<i64>, at: Option<&aws_smithy_types::DateTime>, delete_marker: bool| {
                key.map(|k| {
                    (
                        self.strip(k),
                        ObjectVersion {
                            id: id.unwrap_or("null").to_owned(),
                            size: size.unwrap_or(0).max(0) as u64,
                            stored_at: at.and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok()),
                            delete_marker,
                        },
                    )
                })
            };
            for v in page.versions() {
                if let Some((key, version)) = to_version(v.key(), v.version_id(), v.size(), v.last_modified(), false) {
                    versions.entry(key).or_default().push(version);
                }
            }
            for m in page.delete_markers() {
                if let Some((key, version)) = to_version(m.key(), m.version_id(), None, m.last_modified(), true) {
                    markers.entry(key).or_default().push(version);
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            if started.elapsed() > VERSION_LISTING_LIMIT {
                return Err(LocationError::S3 {
                    operation: S3Op::ListObjectVersions.name(),
                    bucket: self.bucket.clone(),
                    key: self.full_key(prefix),
                    detail: format!(
                        "listing the versions did not finish in {} s: the prefix holds far more versions than kubectl-dr writes (someone flooded it); the oldest of each key is the one kubectl-dr wrote",
                        VERSION_LISTING_LIMIT.as_secs()
                    ),
                });
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        let mut keys: std::collections::BTreeMap<String, KeyHistory> = Default::default();
        for (key, mut list) in versions {
            // S3 lists a key's versions newest first.
            list.reverse();
            keys.entry(key).or_default().versions = list;
        }
        // Delete markers after the versions they hide: whatever their order, each is later
        // evidence than the version kubectl-dr wrote.
        for (key, mut list) in markers {
            list.reverse();
            keys.entry(key).or_default().versions.extend(list);
        }
        Ok(Inventory { keys, history: History::Versions, anomalies: Vec::new() })
    }

    async fn current_only(&self, prefix: &str, why: &LocationError) -> Result<Inventory, LocationError> {
        tracing::debug!(prefix, error = %crate::error_text(why), "cannot list versions; listing current objects only");
        let keys = self
            .list(prefix)
            .await?
            .into_iter()
            .map(|o| {
                let version = ObjectVersion { id: String::new(), size: o.size, stored_at: o.stored_at, delete_marker: false };
                (o.key, KeyHistory { versions: vec![version] })
            })
            .collect();
        let why = format!(
            "these credentials may not list object versions (s3:ListBucketVersions on {}), so an overwrite cannot be told from the original",
            self.describe()
        );
        Ok(Inventory { keys, history: History::CurrentOnly { why }, anomalies: Vec::new() })
    }

    /// Deletes `key`: the stored `version` for good, or (without one) the current object.
    pub(super) async fn delete(&self, key: &str, version: Option<&str>) -> Result<(), LocationError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .set_version_id(addressed(version))
            .send()
            .await
            .map_err(|e| self.error(e, S3Op::DeleteObject, key))?;
        Ok(())
    }

    pub(super) async fn head(&self, key: &str, version: Option<&str>) -> Result<ObjectInfo, LocationError> {
        let head = |version: Option<String>| self.client.head_object().bucket(&self.bucket).key(self.full_key(key)).set_version_id(version).send();
        let resp = match head(addressed(version)).await {
            Ok(resp) => resp,
            // On a bucket that never had versioning, some stores (moto) refuse a HEAD of
            // version `null` (400), and the current object is that version.
            Err(e) if version == Some("null") && e.raw_response().is_some_and(|r| r.status().as_u16() == 400) => {
                head(None).await.map_err(|e| self.error(e, S3Op::HeadObject, key))?
            }
            Err(e) => return Err(self.error(e, S3Op::HeadObject, key)),
        };
        // Read retention from HeadObject's x-amz-object-lock-* headers: it is what every
        // S3 implementation returns consistently (GetObjectRetention is not, in moto).
        let retention = match (resp.object_lock_mode(), resp.object_lock_retain_until_date()) {
            (Some(mode), Some(until)) => OffsetDateTime::from_unix_timestamp(until.secs()).ok().map(|t| (mode.as_str().to_owned(), t)),
            _ => None,
        };
        let metadata = resp.metadata().map(|m| m.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect()).unwrap_or_default();
        Ok(ObjectInfo { size: resp.content_length().unwrap_or(0).max(0) as u64, retention, metadata })
    }
}

/// The operation a GetObject is, for messages: of a stored version, or of the current object.
fn get_op(version: Option<&str>) -> S3Op {
    if version.is_some() {
        S3Op::GetObjectVersion
    } else {
        S3Op::GetObject
    }
}

/// The version ID to send: none for the current object (an empty ID: a listing without
/// version rights); `null` as it is: the version of an object written before versioning was
/// turned on, which may since have later versions over it (so the current object is not it).
fn addressed(version: Option<&str>) -> Option<String> {
    version.filter(|v| !v.is_empty()).map(str::to_owned)
}

/// Buffers up to one part; small objects go up in one PutObject, large ones as a multipart
/// upload. Every request carries the retention when the location is immutable.
pub struct S3Upload {
    loc: S3Location,
    key: String,
    pending: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    retain_until: Option<aws_smithy_types::DateTime>,
    /// User metadata sent with the object (PutObject or CreateMultipartUpload).
    metadata: std::collections::BTreeMap<String, String>,
}

impl S3Upload {
    pub(super) fn new(loc: S3Location, key: &str) -> Self {
        let retain_until = loc.retain_until();
        Self { key: key.to_owned(), loc, pending: Vec::new(), upload_id: None, parts: Vec::new(), retain_until, metadata: Default::default() }
    }

    /// The object gets this user metadata (`x-amz-meta-<name>`).
    pub(super) fn with_metadata(mut self, metadata: std::collections::BTreeMap<String, String>) -> Self {
        self.metadata = metadata;
        self
    }

    /// What to send as `x-amz-meta-*`: nothing when there is none (an empty map is no header).
    fn metadata(&self) -> Option<std::collections::HashMap<String, String>> {
        (!self.metadata.is_empty()).then(|| self.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), LocationError> {
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= PART_SIZE {
            let rest = self.pending.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.pending, rest);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    pub(super) async fn upload_part(&mut self, part: Vec<u8>) -> Result<(), LocationError> {
        let loc = &self.loc;
        let full_key = loc.full_key(&self.key);
        if self.upload_id.is_none() {
            let mut req = loc.client.create_multipart_upload().bucket(&loc.bucket).key(&full_key).set_metadata(self.metadata());
            if let Some(until) = self.retain_until {
                req = req.object_lock_mode(ObjectLockMode::Compliance).object_lock_retain_until_date(until);
            }
            let created = req.send().await.map_err(|e| loc.error(e, S3Op::CreateMultipartUpload, &self.key))?;
            self.upload_id = created.upload_id().map(str::to_owned);
        }
        let number = self.parts.len() as i32 + 1;
        let resp = loc
            .client
            .upload_part()
            .bucket(&loc.bucket)
            .key(&full_key)
            .upload_id(self.upload_id.as_deref().unwrap_or_default())
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(|e| loc.error(e, S3Op::UploadPart, &self.key))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(resp.e_tag().map(str::to_owned))
                .set_checksum_crc32(resp.checksum_crc32().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    pub(super) async fn finish(mut self) -> Result<(), LocationError> {
        let pending = std::mem::take(&mut self.pending);
        if self.upload_id.is_none() {
            let loc = &self.loc;
            let body = bytes::Bytes::from(pending);
            let mut req = loc
                .client
                .put_object()
                .bucket(&loc.bucket)
                .key(loc.full_key(&self.key))
                .if_none_match("*")
                .set_metadata(self.metadata())
                .body(ByteStream::from(body.clone()));
            if let Some(until) = self.retain_until {
                req = req.object_lock_mode(ObjectLockMode::Compliance).object_lock_retain_until_date(until);
            }
            return match req.send().await.map_err(|e| loc.error(e, S3Op::PutObject, &self.key)) {
                Err(LocationError::AlreadyExists { .. }) => super::confirm_own_write(&super::Location::S3(loc.clone()), &self.key, &body).await,
                other => other.map(drop),
            };
        }
        if !pending.is_empty() {
            self.upload_part(pending).await?;
        }
        let loc = &self.loc;
        loc.client
            .complete_multipart_upload()
            .bucket(&loc.bucket)
            .key(loc.full_key(&self.key))
            .upload_id(self.upload_id.as_deref().unwrap_or_default())
            .if_none_match("*")
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.parts))).build())
            .send()
            .await
            .map_err(|e| loc.error(e, S3Op::CompleteMultipartUpload, &self.key))?;
        Ok(())
    }

    pub(super) async fn abort(self) {
        if let Some(id) = &self.upload_id {
            // Needs s3:AbortMultipartUpload, which write-only credentials may lack; a bucket
            // lifecycle rule for incomplete uploads cleans up what this cannot.
            let _ = self.loc.client.abort_multipart_upload().bucket(&self.loc.bucket).key(self.loc.full_key(&self.key)).upload_id(id).send().await;
        }
    }
}
