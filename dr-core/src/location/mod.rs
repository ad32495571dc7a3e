//! Where restore points live: a directory (an NFS share in-cluster, any local directory for
//! the plugin), an S3 bucket, an Azure Blob container or a GCS bucket.
//!
//! Writing is create-only: a backup creates objects and never lists, reads, overwrites or
//! deletes, so it works with PutObject-only credentials and under Object Lock. On S3 every
//! write carries `If-None-Match: *`, so no key this code writes is ever given a second
//! version by it; a second version is someone else's write (see [`Location::versions`]).
//! Keys passed here are relative to the location's root
//! (`<cluster-id>/restore-points/<point>/<file>`).

use std::fmt;
use std::path::PathBuf;

use time::OffsetDateTime;
use tokio::io::AsyncRead;
use zeroize::Zeroizing;

mod azure;
mod download;
mod file;
mod gcs;
mod rest;
mod s3;
mod s3_error;

pub use azure::{AzureLocation, AzureUpload};
pub use file::{FileLocation, FileUpload};
pub use gcs::{GcsLocation, GcsUpload};
pub use s3::{S3Location, S3Upload};

/// S3 multipart part size; also the most a backup holds in memory before uploading.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Protection periods an immutable profile may ask for, in days.
pub const IMMUTABLE_DAYS: std::ops::RangeInclusive<u32> = 1..=90;

/// How to reach a location.
// Made once per command or Job from a profile: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum LocationConfig {
    File { path: PathBuf },
    S3(S3Config),
    Azure(AzureConfig),
    Gcs(GcsConfig),
}

/// A Google Cloud Storage bucket, through the JSON API.
#[derive(Clone, Debug, Default)]
pub struct GcsConfig {
    pub bucket: String,
    /// Object name prefix inside the bucket, without leading or trailing slashes.
    pub prefix: String,
    /// The JSON API's base URL (fake-gcs-server: `http://127.0.0.1:4443`);
    /// `https://storage.googleapis.com` when unset.
    pub endpoint: Option<String>,
    pub credentials: GcsCredentials,
    /// Protection period in days: every object is written with a locked object retention
    /// (the bucket must have object retention enabled).
    pub immutable_days: Option<u32>,
    /// The bucket holds copies made by `kubectl dr replicate` ([`S3Config::replica`]).
    pub replica: bool,
}

/// How requests to a GCS location are authorized. Never printed.
#[derive(Clone, Default)]
pub enum GcsCredentials {
    /// A service account's JSON key (`service-account.json`, as `gcloud iam
    /// service-accounts keys create` writes it): a JWT signed with its private key is
    /// exchanged for an access token.
    ServiceAccountKey(Zeroizing<String>),
    /// The metadata server's token for the pod's or node's service account: GKE's Workload
    /// Identity Federation (`GCE_METADATA_HOST` overrides the server's address).
    #[default]
    MetadataServer,
}

impl fmt::Debug for GcsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GcsCredentials::ServiceAccountKey(_) => "ServiceAccountKey([redacted])",
            GcsCredentials::MetadataServer => "MetadataServer",
        })
    }
}

/// An Azure Blob Storage container.
#[derive(Clone, Debug, Default)]
pub struct AzureConfig {
    /// The storage account's name.
    pub account: String,
    pub container: String,
    /// Blob name prefix inside the container, without leading or trailing slashes.
    pub prefix: String,
    /// The Blob service's URL, account included where the service wants it in the path
    /// (Azurite: `http://127.0.0.1:10000/devstoreaccount1`); `https://<account>.blob.core.windows.net`
    /// when unset.
    pub endpoint: Option<String>,
    pub credentials: AzureCredentials,
    /// Protection period in days: every blob is written with a locked version-level
    /// immutability policy (the container needs version-level immutability support).
    pub immutable_days: Option<u32>,
    /// The container holds copies made by `kubectl dr replicate` ([`S3Config::replica`]).
    pub replica: bool,
}

/// How requests to an Azure Blob location are authorized. Never printed.
#[derive(Clone, Default)]
pub enum AzureCredentials {
    /// The storage account's access key (base64, as the portal shows it): Shared Key.
    SharedKey(Zeroizing<String>),
    /// A shared access signature (the query string, with or without its leading `?`).
    Sas(Zeroizing<String>),
    /// Microsoft Entra workload identity: the federated token AKS mounts, exchanged for an
    /// access token (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`,
    /// `AZURE_AUTHORITY_HOST`, as the workload identity webhook sets them).
    #[default]
    WorkloadIdentity,
}

impl fmt::Debug for AzureCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AzureCredentials::SharedKey(_) => "SharedKey([redacted])",
            AzureCredentials::Sas(_) => "Sas([redacted])",
            AzureCredentials::WorkloadIdentity => "WorkloadIdentity",
        })
    }
}

/// An S3 or S3-compatible bucket.
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing slashes.
    pub prefix: String,
    pub region: Option<String>,
    /// Endpoint URL for S3-compatible stores (MinIO, Ceph, ...); AWS when unset.
    pub endpoint: Option<String>,
    pub path_style: bool,
    /// Extra CA certificates to trust (a private CA in front of the store).
    pub ca_bundle: Option<CaBundle>,
    /// Do not verify the endpoint's TLS certificate (a lab store with a self-signed one).
    pub skip_tls_verify: bool,
    /// Static credentials; the default AWS chain (environment, web identity/IRSA, instance
    /// profile) when unset.
    pub credentials: Option<StaticCredentials>,
    /// Protection period in days: every object is written with a COMPLIANCE retention.
    pub immutable_days: Option<u32>,
    /// The bucket holds copies made by `kubectl dr replicate`: readers judge each copy's dates
    /// by the source store's receipt time it carries ([`crate::point::SOURCE_STORED_AT`]).
    /// Elsewhere that metadata is not believed (the store's own time is the evidence there,
    /// and any writer can set metadata).
    pub replica: bool,
}

/// Extra CA certificates (PEM) to trust for an endpoint.
#[derive(Clone, Debug)]
pub enum CaBundle {
    /// A file on this machine (`--s3-ca-bundle`).
    File(PathBuf),
    /// PEM read from elsewhere (a profile's `caBundleConfigMap`); `from` names it in messages.
    Pem { from: String, pem: Vec<u8> },
}

impl CaBundle {
    async fn read(&self) -> Result<Vec<u8>, LocationError> {
        let (pem, from) = match self {
            CaBundle::File(path) => (
                tokio::fs::read(path).await.map_err(|source| LocationError::Io { action: "cannot read CA bundle", path: path.clone(), source })?,
                path.display().to_string(),
            ),
            CaBundle::Pem { from, pem } => (pem.clone(), from.clone()),
        };
        crate::tls::certificates_in(&pem, &from).map_err(LocationError::Invalid)?;
        Ok(pem)
    }
}

/// An access key pair. Never printed.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StaticCredentials {{ access_key_id: {}, secret: [redacted] }}", self.access_key_id)
    }
}

/// What went wrong at a location, with what to check.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("location directory {path} does not exist: create it, or check that the NFS share is mounted there")]
    DirectoryMissing { path: PathBuf },
    #[error("{action} {path}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    /// ENOSPC or EDQUOT while writing: the disk or the writer's quota is full.
    #[error("location {location} is full writing {key}, which was not put in place: free space there (`kubectl dr prune` removes old points) or give it a larger volume, then run again; a restore point left without its manifest is listed incomplete and never restored; the system said")]
    NoSpace { location: String, key: String, source: std::io::Error },
    /// EIO while writing or syncing: the disk or the NFS server lost the write.
    #[error("the disk of location {location} failed writing {key}, which was not put in place: check the disk or the NFS share (the kernel log, the NFS server), then run again; a restore point left without its manifest is listed incomplete and never restored; the system said")]
    DiskFailed { location: String, key: String, source: std::io::Error },
    #[error("{key} already exists at {location}: restore points are write-once and are never overwritten")]
    AlreadyExists { location: String, key: String },
    #[error("{key} at {location}: the store answered that an object is already there (S3's 412, Azure's 409) when this write was tried again after its first answer was lost, and these credentials may not read it back to tell whether it is this write. The point may be whole (`kubectl dr verify --point` tells); this run counts as failed and the next backup writes a new point")]
    WriteUnconfirmed { location: String, key: String },
    #[error("{key} not found at {location}")]
    NotFound { location: String, key: String },
    #[error("cannot reach S3 bucket {bucket} at {endpoint}: {detail}. Check the endpoint URL, the network path and the region")]
    Unreachable { bucket: String, endpoint: String, detail: String },
    #[error("the TLS certificate of {endpoint} is not trusted ({detail}): give the CA that signed it (--s3-ca-bundle FILE; for a profile, `kubectl dr profile create ... --s3-ca-bundle FILE` or its caBundleConfigMap), or turn TLS verification off (--s3-skip-tls-verify) if you accept the risk")]
    TlsUntrusted { endpoint: String, detail: String },
    #[error("S3 bucket {bucket} does not exist{region}: check the bucket name and region")]
    NoSuchBucket { bucket: String, region: String },
    #[error("access denied: {operation} on s3://{bucket}/{key} was refused. Check that the credentials are right and their policy allows {permission}")]
    AccessDenied { operation: &'static str, permission: &'static str, bucket: String, key: String },
    #[error("no AWS credentials were found for bucket {bucket}: give the profile a credentials Secret, set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use a web identity (IRSA)")]
    NoCredentials { bucket: String },
    #[error("S3 bucket {bucket} does not have Object Lock enabled, so immutable restore points cannot be written: use a bucket created with Object Lock, or turn immutability off for this profile")]
    ObjectLockDisabled { bucket: String },
    #[error("invalid location: {0}")]
    Invalid(String),
    #[error("{path} is not a regular file ({what}): restore points are plain files; the location was altered, so do not trust this point")]
    NotARegularFile { path: PathBuf, what: &'static str },
    #[error("{operation} on s3://{bucket}/{key} failed: {detail}")]
    S3 { operation: &'static str, bucket: String, key: String, detail: String },
    /// A store reached over its REST API (Azure Blob, GCS) did not answer.
    #[error("cannot reach {service} at {endpoint}: {detail}. Check the endpoint, the network path and any proxy")]
    ServiceUnreachable { service: &'static str, endpoint: String, detail: String },
    /// `object`: the location and the key, `azure://account/container/prefix/key`, `gs://bucket/prefix/key`.
    #[error("{operation} of {object} was refused ({status} {code}): {check}")]
    Refused { operation: &'static str, object: String, status: u16, code: String, check: String },
    #[error("{operation} of {object} failed ({status} {code}): {detail}; run again once the service answers")]
    ServiceFailed { operation: &'static str, object: String, status: u16, code: String, detail: String },
    #[error("the bucket of {location} does not have object retention enabled, so immutable restore points cannot be written there: use a bucket created with object retention enabled (`gcloud storage buckets create --enable-per-object-retention`), or turn immutability off for this profile")]
    RetentionUnsupported { location: String },
    #[error("the container of {location} does not have version-level immutability support, so immutable restore points cannot be written there: enable version-level immutability on the container (or its account), or turn immutability off for this profile")]
    ImmutabilityUnsupported { location: String },
}

impl crate::failure::Classify for LocationError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        use LocationError as E;
        match self {
            // A disk error may pass (an NFS server back); a full disk needs space first.
            E::Unreachable { .. }
            | E::S3 { .. }
            | E::ServiceUnreachable { .. }
            | E::ServiceFailed { .. }
            | E::Io { .. }
            | E::DiskFailed { .. }
            | E::WriteUnconfirmed { .. } => ErrorKind::Transient,
            E::NoSpace { .. } => ErrorKind::BadInput,
            E::AlreadyExists { .. } => ErrorKind::Busy,
            E::NotARegularFile { .. } => ErrorKind::DamagedPoint,
            E::DirectoryMissing { .. }
            | E::NotFound { .. }
            | E::TlsUntrusted { .. }
            | E::NoSuchBucket { .. }
            | E::AccessDenied { .. }
            | E::NoCredentials { .. }
            | E::ObjectLockDisabled { .. }
            | E::Refused { .. }
            | E::ImmutabilityUnsupported { .. }
            | E::RetentionUnsupported { .. }
            | E::Invalid(_) => ErrorKind::BadInput,
        }
    }
}

/// One stored object, as listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Key relative to the location root.
    pub key: String,
    pub size: u64,
    /// When the store received it (S3 `LastModified`, a file's mtime).
    pub stored_at: Option<OffsetDateTime>,
}

/// What `head` tells about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// COMPLIANCE or GOVERNANCE retention and its end, when Object Lock protects the object.
    pub retention: Option<(String, OffsetDateTime)>,
    /// The object's user metadata (S3 `x-amz-meta-*`), lower-case names without the prefix.
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// One stored version of an object. A directory location keeps one version of each file
/// (its `id` is empty); an S3 bucket lists every version, delete markers included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The store's version ID (`null` on an S3 bucket that never had versioning on; empty
    /// for a file).
    pub id: String,
    pub size: u64,
    /// When the store received it (S3 `LastModified`, a file's mtime): evidence a writer
    /// cannot choose on S3, only on a directory.
    pub stored_at: Option<OffsetDateTime>,
    /// An S3 delete marker: the key reads as gone, while its versions stay.
    pub delete_marker: bool,
}

/// Every stored version of one key, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHistory {
    pub versions: Vec<ObjectVersion>,
}

impl KeyHistory {
    /// The version kubectl-dr wrote: the oldest that is not a delete marker. Every write
    /// carries `If-None-Match: *`, which the store admits only while the key has no current
    /// version, and a point's key is new (its ID holds the time and random digits), so the
    /// first version of a key is the writer's and any later one is someone else's.
    pub fn pinned(&self) -> Option<&ObjectVersion> {
        self.versions.iter().find(|v| !v.delete_marker)
    }

    /// Versions written after the pinned one (delete markers included): evidence of an
    /// overwrite or of a hidden point.
    pub fn later(&self) -> &[ObjectVersion] {
        match self.versions.iter().position(|v| !v.delete_marker) {
            Some(i) => &self.versions[i + 1..],
            None => &[],
        }
    }
}

/// How much of a location's history a listing saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum History {
    /// Every version of every key was listed (an S3 bucket, with s3:ListBucketVersions).
    Versions,
    /// Only what is current: a directory keeps no versions, or the credentials may not list
    /// them. An overwrite cannot be told from the original here; `why` says which.
    CurrentOnly { why: String },
}

/// Something at a location that kubectl-dr never writes there: a symbolic link, a directory
/// where a file belongs, a FIFO. Listed so that it is reported, never silently dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// Key (relative to the location root) of what was found.
    pub key: String,
    pub what: &'static str,
}

/// What a location holds under a prefix: each key's versions, and anything that is not a
/// plain object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    pub keys: std::collections::BTreeMap<String, KeyHistory>,
    pub history: History,
    pub anomalies: Vec<Anomaly>,
}

/// How long listing a prefix's versions may take before it fails: a flood of versions must not
/// hide the oldest (no page count cuts the listing short), nor stall a command for ever.
pub const VERSION_LISTING_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// A readable object: its size and a stream of its bytes.
pub type ObjectReader = Box<dyn AsyncRead + Send + Unpin>;

/// The size and SHA-256 of what `reader` yields, read to its end.
pub async fn sha256(reader: &mut ObjectReader) -> std::io::Result<(u64, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok((total, ctx.finish().as_ref().to_vec()));
        }
        total += n as u64;
        ctx.update(&buf[..n]);
    }
}

/// Objects opened for reading by this process, at any location: what a restore reports as
/// its reads of the point, and what the benchmarks count as downloads.
static OBJECTS_OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many objects this process has opened for reading so far.
pub fn objects_opened() -> u64 {
    OBJECTS_OPENED.load(std::sync::atomic::Ordering::Relaxed)
}

/// A connected location.
#[derive(Clone, Debug)]
pub enum Location {
    File(FileLocation),
    S3(S3Location),
    Azure(AzureLocation),
    Gcs(GcsLocation),
}

impl Location {
    /// Builds clients for `config`. Nothing is sent yet; [`Location::validate`] checks reachability.
    pub async fn connect(config: &LocationConfig) -> Result<Self, LocationError> {
        match config {
            LocationConfig::File { path } => Ok(Location::File(FileLocation { root: path.clone() })),
            LocationConfig::S3(cfg) => S3Location::connect(cfg).await.map(Location::S3),
            LocationConfig::Azure(cfg) => AzureLocation::connect(cfg).map(Location::Azure),
            LocationConfig::Gcs(cfg) => GcsLocation::connect(cfg).map(Location::Gcs),
        }
    }

    /// Where this is, for messages: `file:///path` or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match self {
            Location::File(f) => format!("file://{}", f.root.display()),
            Location::S3(s) => s.describe(),
            Location::Azure(a) => a.describe(),
            Location::Gcs(g) => g.describe(),
        }
    }

    /// Checks the location is usable: the directory exists, or the bucket answers and, when the
    /// profile is immutable, has Object Lock enabled. Needs read (ListBucket) rights on S3.
    pub async fn validate(&self) -> Result<(), LocationError> {
        match self {
            Location::File(f) => f.check_root().await,
            Location::S3(s) => s.validate().await,
            Location::Azure(a) => a.validate().await,
            Location::Gcs(g) => g.validate().await,
        }
    }

    /// The checks a backup can make without read rights: the directory exists. On S3 nothing
    /// is sent (write-only credentials cannot list); a refused PutObject says what is wrong.
    pub async fn check_writable(&self) -> Result<(), LocationError> {
        match self {
            Location::File(f) => f.check_root().await,
            Location::S3(_) | Location::Azure(_) | Location::Gcs(_) => Ok(()),
        }
    }

    /// Whether objects written here get an Object Lock retention.
    pub fn immutable_days(&self) -> Option<u32> {
        match self {
            Location::File(_) => None,
            Location::S3(s) => s.immutable_days,
            Location::Azure(a) => a.immutable_days,
            Location::Gcs(g) => g.immutable_days,
        }
    }

    /// Whether the location holds copies made by `replicate`, whose carried evidence readers
    /// believe ([`S3Config::replica`]).
    pub fn is_replica(&self) -> bool {
        match self {
            Location::File(_) => false,
            Location::S3(s) => s.replica,
            Location::Azure(a) => a.replica,
            Location::Gcs(g) => g.replica,
        }
    }

    /// The same location, read as a replication destination: what `replicate` checks its own
    /// copies through.
    pub fn as_replica(&self) -> Location {
        match self {
            Location::S3(s) => Location::S3(S3Location { replica: true, ..s.clone() }),
            Location::Azure(a) => Location::Azure(a.as_replica()),
            Location::Gcs(g) => Location::Gcs(g.as_replica()),
            other => other.clone(),
        }
    }

    /// Starts writing a new object; it becomes visible only when [`ObjectUpload::finish`] succeeds.
    pub async fn create(&self, key: &str) -> Result<ObjectUpload, LocationError> {
        self.create_with_metadata(key, Default::default()).await
    }

    /// [`Location::create`] with user metadata on the object (S3 `x-amz-meta-*`, names in lower
    /// case): what `replicate` carries from the source, such as [`crate::point::SOURCE_STORED_AT`].
    /// A directory keeps none, and needs none: its readers take no store time as evidence.
    pub async fn create_with_metadata(&self, key: &str, metadata: std::collections::BTreeMap<String, String>) -> Result<ObjectUpload, LocationError> {
        match self {
            Location::File(f) => f.create(key).await,
            Location::S3(s) => Ok(ObjectUpload::S3(S3Upload::new(s.clone(), key).with_metadata(metadata))),
            Location::Azure(a) => Ok(ObjectUpload::Azure(AzureUpload::new(a.clone(), key, metadata))),
            Location::Gcs(g) => Ok(ObjectUpload::Gcs(GcsUpload::new(g.clone(), key, metadata))),
        }
    }

    /// Writes a small object in one request.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LocationError> {
        let mut upload = self.create(key).await?;
        upload.write(&bytes).await?;
        upload.finish().await
    }

    /// Lists every object whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, LocationError> {
        let mut objects = match self {
            Location::File(f) => f.list(prefix).await?,
            Location::S3(s) => s.list(prefix).await?,
            Location::Azure(a) => a.list(prefix).await?,
            Location::Gcs(g) => g.list(prefix).await?,
        };
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Opens an object for reading (on S3: starts its download).
    pub async fn open(&self, key: &str) -> Result<(u64, ObjectReader), LocationError> {
        OBJECTS_OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self {
            Location::File(f) => f.open(key).await,
            Location::S3(s) => s.open(key, None).await,
            Location::Azure(a) => a.open(key, None).await,
            Location::Gcs(g) => g.open(key, None).await,
        }
    }

    /// Opens one stored version of an object (see [`Location::versions`]).
    pub async fn open_version(&self, key: &str, version: &ObjectVersion) -> Result<(u64, ObjectReader), LocationError> {
        OBJECTS_OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self {
            Location::File(f) => f.open(key).await,
            Location::S3(s) => s.open(key, Some(&version.id)).await,
            Location::Azure(a) => a.open(key, Some(&version.id)).await,
            Location::Gcs(g) => g.open(key, Some(&version.id)).await,
        }
    }

    /// Opens the first `n` bytes of an object (all of it when it is shorter): its whole size,
    /// and a stream of at most `n` bytes. On S3 a ranged GetObject, so the store sends no more:
    /// a reader that can refuse a file from its start (a restore point's header) pays only for
    /// that. `version`: that stored version; `None`: the current object.
    pub async fn open_start(&self, key: &str, version: Option<&ObjectVersion>, n: u64) -> Result<(u64, ObjectReader), LocationError> {
        OBJECTS_OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self {
            Location::File(f) => {
                let (len, reader) = f.open(key).await?;
                Ok((len, Box::new(tokio::io::AsyncReadExt::take(reader, n))))
            }
            Location::S3(s) => s.open_start(key, version.map(|v| v.id.as_str()), n).await,
            Location::Azure(a) => a.open_start(key, version.map(|v| v.id.as_str()), n).await,
            Location::Gcs(g) => g.open_start(key, version.map(|v| v.id.as_str()), n).await,
        }
    }

    /// Every key under `prefix` with its stored versions, oldest first. On S3 this lists
    /// versions (s3:ListBucketVersions) to the end, within [`VERSION_LISTING_LIMIT`]; where
    /// the credentials may not, it lists current objects and says so in [`Inventory::history`].
    pub async fn inventory(&self, prefix: &str) -> Result<Inventory, LocationError> {
        match self {
            Location::File(f) => f.inventory(prefix).await,
            Location::S3(s) => s.inventory(prefix).await,
            Location::Azure(a) => a.inventory(prefix).await,
            Location::Gcs(g) => g.inventory(prefix).await,
        }
    }

    /// The stored versions of exactly `key` (see [`Location::inventory`]).
    pub async fn history(&self, key: &str) -> Result<(KeyHistory, History), LocationError> {
        let mut inventory = self.inventory(key).await?;
        Ok((inventory.keys.remove(key).unwrap_or_default(), inventory.history))
    }

    /// Deletes one object (prune only; a backup never deletes). `version`: that stored
    /// version, by its ID (on S3 a DELETE with a version ID removes it for good, and is
    /// refused while Object Lock holds it); `None`: the current object (on a versioned bucket
    /// that lays a delete marker, which hides the versions without removing them: prune never
    /// does that on a bucket whose versions it can list).
    pub async fn delete(&self, key: &str, version: Option<&ObjectVersion>) -> Result<(), LocationError> {
        match self {
            Location::File(f) => {
                let path = f.path_of(key)?;
                tokio::fs::remove_file(&path).await.map_err(|e| f.not_found_or(key, &path, e))?;
                // Remove the point's directory once it is empty; ignore it if it is not.
                if let Some(dir) = path.parent() {
                    let _ = tokio::fs::remove_dir(dir).await;
                }
                Ok(())
            }
            Location::S3(s) => s.delete(key, version.map(|v| v.id.as_str())).await,
            // The delete marker listed after the versions of a name with no current one: these
            // stores keep no such thing, and a plain delete would hit whatever is current now.
            Location::Azure(_) | Location::Gcs(_) if version.is_some_and(|v| v.delete_marker) => Ok(()),
            Location::Azure(a) => a.delete(key, version.map(|v| v.id.as_str())).await,
            Location::Gcs(g) => g.delete(key, version.map(|v| v.id.as_str())).await,
        }
    }

    /// Size and Object Lock retention of one object: of the stored `version` given, else of
    /// the current one.
    pub async fn head(&self, key: &str, version: Option<&ObjectVersion>) -> Result<ObjectInfo, LocationError> {
        match self {
            Location::File(f) => {
                let path = f.path_of(key)?;
                let meta = tokio::fs::symlink_metadata(&path).await.map_err(|e| f.not_found_or(key, &path, e))?;
                Ok(ObjectInfo { size: meta.len(), retention: None, metadata: Default::default() })
            }
            Location::S3(s) => s.head(key, version.map(|v| v.id.as_str())).await,
            Location::Azure(a) => a.head(key, version.map(|v| v.id.as_str())).await,
            Location::Gcs(g) => g.head(key, version.map(|v| v.id.as_str())).await,
        }
    }
}

/// After a create-only write of `key` was refused because an object is there (S3's 412,
/// Azure's 409, to the retry of a write whose first answer was lost): whether what is stored
/// there is `sent`. Point IDs are random, so the one writer that can have been first is this
/// write's own earlier try; then the write is done. Anything else there is another writer's,
/// and the write failed.
async fn confirm_own_write(location: &Location, key: &str, sent: &[u8]) -> Result<(), LocationError> {
    let stored = match location.open(key).await {
        Ok((len, mut reader)) if len == sent.len() as u64 => {
            let mut bytes = Vec::with_capacity(sent.len());
            tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::AsyncReadExt::take(&mut reader, len + 1), &mut bytes).await.ok().map(|_| bytes)
        }
        Ok(_) => Some(Vec::new()),
        // Write-only credentials cannot read it back to tell.
        Err(_) => None,
    };
    match stored {
        Some(bytes) if bytes == sent => {
            tracing::info!(location = %location.describe(), key, "the store already holds this write: its first answer was lost and the retry found it");
            Ok(())
        }
        Some(_) => Err(LocationError::AlreadyExists { location: location.describe(), key: key.to_owned() }),
        None => Err(LocationError::WriteUnconfirmed { location: location.describe(), key: key.to_owned() }),
    }
}

/// An object being written. Dropping it without `finish` leaves nothing visible.
pub enum ObjectUpload {
    File(FileUpload),
    S3(S3Upload),
    Azure(AzureUpload),
    Gcs(GcsUpload),
}

impl ObjectUpload {
    /// Appends bytes; uploads a part whenever [`PART_SIZE`] bytes are pending.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), LocationError> {
        match self {
            ObjectUpload::File(f) => f.write(bytes).await,
            ObjectUpload::S3(s) => s.write(bytes).await,
            ObjectUpload::Azure(a) => a.write(bytes).await,
            ObjectUpload::Gcs(g) => g.write(bytes).await,
        }
    }

    /// Makes the object durable and visible under its key.
    pub async fn finish(self) -> Result<(), LocationError> {
        match self {
            ObjectUpload::File(f) => f.finish().await,
            ObjectUpload::S3(s) => s.finish().await,
            ObjectUpload::Azure(a) => a.finish().await,
            ObjectUpload::Gcs(g) => g.finish().await,
        }
    }

    /// Gives up: removes what was written where the credentials allow it.
    pub async fn abort(self) {
        match self {
            ObjectUpload::File(mut f) => {
                f.file.take();
                let _ = tokio::fs::remove_file(&f.temp).await;
            }
            ObjectUpload::S3(s) => s.abort().await,
            ObjectUpload::Azure(a) => a.abort().await,
            ObjectUpload::Gcs(g) => g.abort().await,
        }
    }
}
