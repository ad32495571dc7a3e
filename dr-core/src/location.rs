//! Where restore points live: a directory (an NFS share in-cluster, any local directory for
//! the plugin) or an S3 bucket.
//!
//! Writing is create-only: a backup creates objects and never lists, reads, overwrites or
//! deletes, so it works with PutObject-only credentials and under Object Lock. On S3 every
//! write carries `If-None-Match: *`, so no key this code writes is ever given a second
//! version by it; a second version is someone else's write (see [`Location::versions`]).
//! Keys passed here are relative to the location's root
//! (`<cluster-id>/restore-points/<point>/<file>`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectLockEnabled, ObjectLockMode};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWriteExt};
use zeroize::Zeroizing;

/// S3 multipart part size; also the most a backup holds in memory before uploading.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Protection periods an immutable profile may ask for, in days.
pub const IMMUTABLE_DAYS: std::ops::RangeInclusive<u32> = 1..=90;

/// How to reach a location.
#[derive(Clone, Debug)]
pub enum LocationConfig {
    File { path: PathBuf },
    S3(S3Config),
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
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{key} already exists at {location}: restore points are write-once and are never overwritten")]
    AlreadyExists { location: String, key: String },
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
}

/// One stored object, as listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Key relative to the location root.
    pub key: String,
    pub size: u64,
}

/// What `head` tells about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    /// COMPLIANCE or GOVERNANCE retention and its end, when Object Lock protects the object.
    pub retention: Option<(String, OffsetDateTime)>,
}

/// One stored version of an object, on a versioned bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    pub id: String,
    pub size: u64,
}

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
}

impl Location {
    /// Builds clients for `config`. Nothing is sent yet; [`Location::validate`] checks reachability.
    pub async fn connect(config: &LocationConfig) -> Result<Self, LocationError> {
        match config {
            LocationConfig::File { path } => Ok(Location::File(FileLocation { root: path.clone() })),
            LocationConfig::S3(cfg) => S3Location::connect(cfg).await.map(Location::S3),
        }
    }

    /// Where this is, for messages: `file:///path` or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match self {
            Location::File(f) => format!("file://{}", f.root.display()),
            Location::S3(s) => s.describe(),
        }
    }

    /// Checks the location is usable: the directory exists, or the bucket answers and, when the
    /// profile is immutable, has Object Lock enabled. Needs read (ListBucket) rights on S3.
    pub async fn validate(&self) -> Result<(), LocationError> {
        match self {
            Location::File(f) => f.check_root().await,
            Location::S3(s) => s.validate().await,
        }
    }

    /// The checks a backup can make without read rights: the directory exists. On S3 nothing
    /// is sent (write-only credentials cannot list); a refused PutObject says what is wrong.
    pub async fn check_writable(&self) -> Result<(), LocationError> {
        match self {
            Location::File(f) => f.check_root().await,
            Location::S3(_) => Ok(()),
        }
    }

    /// Whether objects written here get an Object Lock retention.
    pub fn immutable_days(&self) -> Option<u32> {
        match self {
            Location::File(_) => None,
            Location::S3(s) => s.immutable_days,
        }
    }

    /// Starts writing a new object; it becomes visible only when [`ObjectUpload::finish`] succeeds.
    pub async fn create(&self, key: &str) -> Result<ObjectUpload, LocationError> {
        match self {
            Location::File(f) => f.create(key).await,
            Location::S3(s) => Ok(ObjectUpload::S3(S3Upload::new(s.clone(), key))),
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
        }
    }

    /// Opens one stored version of an object (see [`Location::versions`]).
    pub async fn open_version(&self, key: &str, version: &ObjectVersion) -> Result<(u64, ObjectReader), LocationError> {
        OBJECTS_OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self {
            Location::File(f) => f.open(key).await,
            Location::S3(s) => s.open(key, Some(&version.id)).await,
        }
    }

    /// The stored versions of `key`, oldest first. Empty where the location keeps no
    /// versions (a directory) and where the credentials may not list them
    /// (s3:ListBucketVersions): the caller then has only the current version. Since writes
    /// here never overwrite, the oldest version is the one this code wrote.
    pub async fn versions(&self, key: &str) -> Vec<ObjectVersion> {
        match self {
            Location::File(_) => Vec::new(),
            Location::S3(s) => match s.versions(key).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(key, error = %e, "cannot list the object's versions; reading the current one only");
                    Vec::new()
                }
            },
        }
    }

    /// Deletes one object (prune only; a backup never deletes). On a versioned S3 bucket this
    /// adds a delete marker; the bucket's lifecycle rules expire the old versions.
    pub async fn delete(&self, key: &str) -> Result<(), LocationError> {
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
            Location::S3(s) => s.delete(key).await,
        }
    }

    /// Size and Object Lock retention of one object.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo, LocationError> {
        match self {
            Location::File(f) => {
                let path = f.path_of(key)?;
                let meta = tokio::fs::metadata(&path).await.map_err(|e| f.not_found_or(key, &path, e))?;
                Ok(ObjectInfo { size: meta.len(), retention: None })
            }
            Location::S3(s) => s.head(key).await,
        }
    }
}

/// A directory location.
#[derive(Clone, Debug)]
pub struct FileLocation {
    root: PathBuf,
}

impl FileLocation {
    fn path_of(&self, key: &str) -> Result<PathBuf, LocationError> {
        // Keys are built by this crate from validated IDs; refuse anything that could escape.
        if key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(LocationError::Invalid(format!("unsafe object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    async fn check_root(&self) -> Result<(), LocationError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(LocationError::Invalid(format!("{} is not a directory", self.root.display()))),
            Err(_) => Err(LocationError::DirectoryMissing { path: self.root.clone() }),
        }
    }

    fn not_found_or(&self, key: &str, path: &Path, e: std::io::Error) -> LocationError {
        if e.kind() == std::io::ErrorKind::NotFound {
            LocationError::NotFound { location: format!("file://{}", self.root.display()), key: key.into() }
        } else {
            LocationError::Io { action: "cannot read", path: path.to_owned(), source: e }
        }
    }

    async fn create(&self, key: &str) -> Result<ObjectUpload, LocationError> {
        self.check_root().await?;
        let path = self.path_of(key)?;
        let dir = path.parent().expect("keys have a directory").to_owned();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| LocationError::Io { action: "cannot create directory", path: dir.clone(), source })?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(LocationError::AlreadyExists { location: format!("file://{}", self.root.display()), key: key.into() });
        }
        let mut tag = [0u8; 6];
        crate::crypto::fill_random(&mut tag);
        let name = path.file_name().expect("keys name a file").to_string_lossy();
        let temp = dir.join(format!(".{name}.partial-{}", hex::encode(tag)));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|source| LocationError::Io { action: "cannot create", path: temp.clone(), source })?;
        Ok(ObjectUpload::File(FileUpload {
            file: Some(tokio::io::BufWriter::with_capacity(1 << 20, file)),
            temp,
            path,
            location: format!("file://{}", self.root.display()),
            key: key.into(),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, LocationError> {
        self.check_root().await?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            // Start from the deepest directory the prefix names, not the whole tree.
            let start_rel = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let start = root.join(start_rel);
            if start.is_dir() {
                walk(&root, &start, &prefix, &mut out)?;
            }
            Ok(out)
        })
        .await
        .expect("listing task panicked")
    }

    /// Opens a regular file only: not through a symbolic link (a link to `/dev/zero` would be
    /// read forever), and without blocking on a FIFO (which would wait for a writer forever).
    async fn open(&self, key: &str) -> Result<(u64, ObjectReader), LocationError> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let path = self.path_of(key)?;
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path))
                .await
                .expect("open task panicked")
        };
        let file = match opened {
            Ok(f) => f,
            // O_NOFOLLOW on a link: ELOOP.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(LocationError::NotARegularFile { path, what: "a symbolic link" }),
            Err(e) => return Err(self.not_found_or(key, &path, e)),
        };
        let meta = file.metadata().map_err(|e| self.not_found_or(key, &path, e))?;
        let t = meta.file_type();
        if !t.is_file() {
            let what = if t.is_fifo() { "a FIFO" } else if t.is_dir() { "a directory" } else if t.is_socket() { "a socket" } else { "a device" };
            return Err(LocationError::NotARegularFile { path, what });
        }
        Ok((meta.len(), Box::new(tokio::io::BufReader::with_capacity(1 << 20, tokio::fs::File::from_std(file)))))
    }
}

fn walk(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<StoredObject>) -> Result<(), LocationError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|source| LocationError::Io { action: "cannot list", path: dir.to_owned(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| LocationError::Io { action: "cannot list", path: dir.to_owned(), source })?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // uploads in progress and editor/OS litter
        }
        let meta = entry
            .metadata()
            .map_err(|source| LocationError::Io { action: "cannot stat", path: path.clone(), source })?;
        let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
        if meta.is_dir() {
            let as_dir = format!("{rel}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                walk(root, &path, prefix, out)?;
            }
        } else if rel.starts_with(prefix) {
            out.push(StoredObject { key: rel, size: meta.len() });
        }
    }
    Ok(())
}

/// An object being written. Dropping it without `finish` leaves nothing visible.
pub enum ObjectUpload {
    File(FileUpload),
    S3(S3Upload),
}

impl ObjectUpload {
    /// Appends bytes; uploads a part whenever [`PART_SIZE`] bytes are pending.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), LocationError> {
        match self {
            ObjectUpload::File(f) => f.write(bytes).await,
            ObjectUpload::S3(s) => s.write(bytes).await,
        }
    }

    /// Makes the object durable and visible under its key.
    pub async fn finish(self) -> Result<(), LocationError> {
        match self {
            ObjectUpload::File(f) => f.finish().await,
            ObjectUpload::S3(s) => s.finish().await,
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
        }
    }
}

/// Writes to a hidden temporary file, then fsyncs and links it into place.
pub struct FileUpload {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    temp: PathBuf,
    path: PathBuf,
    location: String,
    key: String,
}

impl FileUpload {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), LocationError> {
        let file = self.file.as_mut().expect("upload not finished");
        file.write_all(bytes)
            .await
            .map_err(|source| LocationError::Io { action: "cannot write", path: self.temp.clone(), source })
    }

    async fn finish(mut self) -> Result<(), LocationError> {
        let mut file = self.file.take().expect("upload not finished");
        fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LocationError {
            let path = path.to_owned();
            move |source| LocationError::Io { action, path, source }
        }
        file.flush().await.map_err(io("cannot write", &self.temp))?;
        let file = file.into_inner();
        file.sync_all().await.map_err(io("cannot fsync", &self.temp))?;
        drop(file);
        // A hard link fails if the name exists, so even a racing writer cannot overwrite.
        let linked = tokio::fs::hard_link(&self.temp, &self.path).await;
        let _ = tokio::fs::remove_file(&self.temp).await;
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LocationError::AlreadyExists { location: self.location.clone(), key: self.key.clone() })
            }
            Err(e) => return Err(io("cannot link into place", &self.path)(e)),
        }
        let dir = self.path.parent().expect("has a parent").to_owned();
        if let Ok(d) = tokio::fs::File::open(&dir).await {
            d.sync_all().await.map_err(io("cannot fsync directory", &dir))?;
        }
        Ok(())
    }
}

impl Drop for FileUpload {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// An S3 bucket and prefix with a client.
#[derive(Clone)]
pub struct S3Location {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    endpoint: String,
    region: String,
    immutable_days: Option<u32>,
}

impl fmt::Debug for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl S3Location {
    async fn connect(cfg: &S3Config) -> Result<Self, LocationError> {
        crate::init_crypto_provider();
        if cfg.bucket.is_empty() {
            return Err(LocationError::Invalid("an S3 location needs a bucket name".into()));
        }
        if let Some(days) = cfg.immutable_days {
            if !IMMUTABLE_DAYS.contains(&days) {
                return Err(LocationError::Invalid(format!(
                    "protection period {days} days is out of range: choose 1 to 90 days"
                )));
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
        })
    }

    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn strip(&self, full: &str) -> String {
        if self.prefix.is_empty() {
            full.to_owned()
        } else {
            full.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(full).to_owned()
        }
    }

    /// Turns an SDK error into one that says what to check.
    fn error<E>(&self, err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>, op: S3Op, key: &str) -> LocationError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let detail = DisplayErrorContext(&err).to_string();
        let key = self.full_key(key);
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                if detail.contains("no credentials") || detail.contains("credentials provider") {
                    return LocationError::NoCredentials { bucket: self.bucket.clone() };
                }
                if detail.contains("certificate") {
                    return LocationError::TlsUntrusted { endpoint: self.endpoint.clone(), detail: short(&detail) };
                }
                return LocationError::Unreachable { bucket: self.bucket.clone(), endpoint: self.endpoint.clone(), detail: short(&detail) };
            }
            SdkError::ConstructionFailure(_) if detail.contains("credentials") => {
                return LocationError::NoCredentials { bucket: self.bucket.clone() };
            }
            _ => {}
        }
        let not_found = status == Some(404) || matches!(code.as_deref(), Some("NoSuchBucket" | "NoSuchKey" | "NotFound"));
        let bucket = self.bucket.clone();
        if code.as_deref() == Some("ObjectLockConfigurationNotFoundError") {
            return LocationError::ObjectLockDisabled { bucket };
        }
        if code.as_deref() == Some("NoSuchBucket") || (not_found && op.is_bucket_op()) {
            return LocationError::NoSuchBucket { bucket, region: format!(" in region {}", self.region) };
        }
        if not_found {
            return LocationError::NotFound { location: self.describe(), key };
        }
        // A write with If-None-Match: * onto a key that exists.
        if status == Some(412) || code.as_deref() == Some("PreconditionFailed") {
            return LocationError::AlreadyExists { location: self.describe(), key };
        }
        match code.as_deref() {
            Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "Forbidden") => {
                LocationError::AccessDenied { operation: op.name(), permission: op.permission(), bucket, key }
            }
            _ if status == Some(403) => LocationError::AccessDenied { operation: op.name(), permission: op.permission(), bucket, key },
            _ => LocationError::S3 { operation: op.name(), bucket, key, detail: short(&detail) },
        }
    }

    async fn validate(&self) -> Result<(), LocationError> {
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
            let enabled = lock
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| *e == ObjectLockEnabled::Enabled);
            if !enabled {
                return Err(LocationError::ObjectLockDisabled { bucket: self.bucket.clone() });
            }
        }
        Ok(())
    }

    fn retain_until(&self) -> Option<aws_smithy_types::DateTime> {
        self.immutable_days.map(|days| {
            let until = OffsetDateTime::now_utc() + time::Duration::days(days as i64);
            aws_smithy_types::DateTime::from_secs(until.unix_timestamp())
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, LocationError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(e, S3Op::ListObjects, prefix))?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    out.push(StoredObject { key: self.strip(key), size: obj.size().unwrap_or(0).max(0) as u64 });
                }
            }
        }
        Ok(out)
    }

    /// Starts the download of `key`: its current version, or the `version` given.
    async fn open(&self, key: &str, version: Option<&str>) -> Result<(u64, ObjectReader), LocationError> {
        let op = if version.is_some() { S3Op::GetObjectVersion } else { S3Op::GetObject };
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.error(e, op, key))?;
        let len = resp.content_length().unwrap_or(0).max(0) as u64;
        Ok((len, Box::new(resp.body.into_async_read())))
    }

    async fn versions(&self, key: &str) -> Result<Vec<ObjectVersion>, LocationError> {
        let full = self.full_key(key);
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        // Pages of up to 1,000 versions; a key with more than 100,000 is not ours to read.
        for _ in 0..100 {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| self.error(e, S3Op::ListObjectVersions, key))?;
            for v in page.versions().iter().filter(|v| v.key() == Some(full.as_str())) {
                out.push(ObjectVersion {
                    id: v.version_id().unwrap_or("null").to_owned(),
                    size: v.size().unwrap_or(0).max(0) as u64,
                });
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        // S3 lists a key's versions newest first.
        out.reverse();
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), LocationError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.error(e, S3Op::DeleteObject, key))?;
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, LocationError> {
        let resp = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.error(e, S3Op::HeadObject, key))?;
        // Read retention from HeadObject's x-amz-object-lock-* headers: it is what every
        // S3 implementation returns consistently (GetObjectRetention is not, in moto).
        let retention = match (resp.object_lock_mode(), resp.object_lock_retain_until_date()) {
            (Some(mode), Some(until)) => OffsetDateTime::from_unix_timestamp(until.secs())
                .ok()
                .map(|t| (mode.as_str().to_owned(), t)),
            _ => None,
        };
        Ok(ObjectInfo { size: resp.content_length().unwrap_or(0).max(0) as u64, retention })
    }
}

fn short(detail: &str) -> String {
    let d: String = detail.chars().take(400).collect();
    d.replace('\n', " ")
}

#[derive(Clone, Copy)]
enum S3Op {
    GetObjectLockConfiguration,
    ListObjects,
    GetObject,
    GetObjectVersion,
    ListObjectVersions,
    HeadObject,
    PutObject,
    CreateMultipartUpload,
    UploadPart,
    CompleteMultipartUpload,
    DeleteObject,
}

impl S3Op {
    fn name(self) -> &'static str {
        match self {
            S3Op::GetObjectLockConfiguration => "GetObjectLockConfiguration",
            S3Op::ListObjects => "ListObjectsV2",
            S3Op::GetObject => "GetObject",
            S3Op::GetObjectVersion => "GetObject (a version)",
            S3Op::ListObjectVersions => "ListObjectVersions",
            S3Op::HeadObject => "HeadObject",
            S3Op::PutObject => "PutObject",
            S3Op::CreateMultipartUpload => "CreateMultipartUpload",
            S3Op::UploadPart => "UploadPart",
            S3Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            S3Op::DeleteObject => "DeleteObject",
        }
    }
    fn permission(self) -> &'static str {
        match self {
            S3Op::ListObjects => "s3:ListBucket",
            S3Op::GetObjectLockConfiguration => "s3:GetBucketObjectLockConfiguration",
            S3Op::GetObject | S3Op::HeadObject => "s3:GetObject",
            S3Op::GetObjectVersion => "s3:GetObjectVersion",
            S3Op::ListObjectVersions => "s3:ListBucketVersions",
            S3Op::PutObject | S3Op::CreateMultipartUpload | S3Op::UploadPart | S3Op::CompleteMultipartUpload => "s3:PutObject",
            S3Op::DeleteObject => "s3:DeleteObject",
        }
    }
    fn is_bucket_op(self) -> bool {
        matches!(self, S3Op::GetObjectLockConfiguration | S3Op::ListObjects | S3Op::ListObjectVersions)
    }
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
}

impl S3Upload {
    fn new(loc: S3Location, key: &str) -> Self {
        let retain_until = loc.retain_until();
        Self { key: key.to_owned(), loc, pending: Vec::new(), upload_id: None, parts: Vec::new(), retain_until }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), LocationError> {
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= PART_SIZE {
            let rest = self.pending.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.pending, rest);
            self.upload_part(part).await?;
        }
        Ok(())
    }

    async fn upload_part(&mut self, part: Vec<u8>) -> Result<(), LocationError> {
        let loc = &self.loc;
        let full_key = loc.full_key(&self.key);
        if self.upload_id.is_none() {
            let mut req = loc.client.create_multipart_upload().bucket(&loc.bucket).key(&full_key);
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

    async fn finish(mut self) -> Result<(), LocationError> {
        let pending = std::mem::take(&mut self.pending);
        if self.upload_id.is_none() {
            let loc = &self.loc;
            let mut req = loc
                .client
                .put_object()
                .bucket(&loc.bucket)
                .key(loc.full_key(&self.key))
                .if_none_match("*")
                .body(ByteStream::from(pending));
            if let Some(until) = self.retain_until {
                req = req.object_lock_mode(ObjectLockMode::Compliance).object_lock_retain_until_date(until);
            }
            req.send().await.map_err(|e| loc.error(e, S3Op::PutObject, &self.key))?;
            return Ok(());
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

    async fn abort(self) {
        if let Some(id) = &self.upload_id {
            // Needs s3:AbortMultipartUpload, which write-only credentials may lack; a bucket
            // lifecycle rule for incomplete uploads cleans up what this cannot.
            let _ = self
                .loc
                .client
                .abort_multipart_upload()
                .bucket(&self.loc.bucket)
                .key(self.loc.full_key(&self.key))
                .upload_id(id)
                .send()
                .await;
        }
    }
}
