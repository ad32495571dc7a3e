//! Restore points: names, the manifest, and writing, listing, selecting and reading whole
//! points at a location.
//!
//! A point is `<cluster-id>/restore-points/<point-id>/` holding `archive.kdr` (the catalog:
//! one JSON [`Entry`] per line, compressed in zstd blocks, then encrypted) and `manifest.kdr` (a small
//! encrypted JSON [`Manifest`]). The manifest is written last: a point without one is
//! incomplete and never restored from.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Read, Write};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::blocks::{self, BlockWriter};
use crate::catalog::{Category, Entry, Mode};
use crate::crypto::{KdfParams, MasterKey, Passphrase};
use crate::format::{self, Binding, DecryptReader, EncryptWriter, FormatError, Header, Role};
use crate::location::{Location, LocationError, ObjectUpload, PART_SIZE};

pub const ARCHIVE_OBJECT: &str = "archive.kdr";
pub const MANIFEST_OBJECT: &str = "manifest.kdr";
/// Version of the manifest's JSON schema.
pub const MANIFEST_VERSION: u32 = 1;
/// A manifest is a few KiB; anything far larger is not one.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
/// One catalog line is one object; the API server refuses objects over ~1.5 MiB (etcd's
/// request limit), so a line this long is not one.
pub const MAX_CATALOG_LINE: usize = 16 * 1024 * 1024;

/// What is wrong with a point or with finding one, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PointError {
    #[error("invalid cluster ID {0:?}: it is the UID of the source cluster's default namespace (kubectl get namespace default -o jsonpath='{{.metadata.uid}}')")]
    InvalidClusterId(String),
    #[error("invalid restore point ID {0:?}: IDs look like 20261121T093000.123Z-0a1b2c3d; list them with `kubectl dr restore-points`")]
    InvalidPointId(String),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("no restore points for cluster ID {cluster_id} at {location}: check the cluster ID (the UID of the source cluster's default namespace) and that this is the location the DR policy wrote to")]
    NoPoints { cluster_id: String, location: String },
    #[error("no complete restore point at or before {at} for cluster ID {cluster_id}; the points there are: {available}")]
    NoneAtOrBefore { cluster_id: String, at: String, available: String },
    #[error("restore point {point} not found for cluster ID {cluster_id}; the points there are: {available}")]
    NotFound { cluster_id: String, point: String, available: String },
    #[error("restore point {point} is incomplete (it has no manifest): its backup did not finish; pick another point")]
    Incomplete { point: String },
    #[error("restore point {point} does not open with this passphrase, but point {opens} does: {point} is damaged or was forged (anyone who can write to the location can add points), so it is not used. Restore {opens} with --point-in-time {at} (chart value pointInTime)")]
    DoesNotOpen { point: String, opens: String, at: String },
    #[error("restore point {point} has a manifest but its archive is missing: the point was damaged after its backup finished (the archive is written first); pick another point")]
    ArchiveMissing { point: String },
    #[error("restore point {point}: catalog line {line} is longer than {MAX_CATALOG_LINE} bytes, which no Kubernetes object is: the point was written by a faulty writer; pick another point")]
    LineTooLong { point: String, line: u64 },
    #[error("restore point {point}, {file}: {source}")]
    Format { point: String, file: &'static str, source: FormatError },
    #[error("restore point {point} is truncated: its archive has {found} of {expected} bytes; pick another point")]
    ArchiveTruncated { point: String, expected: u64, found: u64 },
    #[error("restore point {point} has {extra} bytes appended to its archive (expected {expected} bytes): it was altered; pick another point")]
    ArchiveAppended { point: String, expected: u64, extra: u64 },
    #[error("restore point {point}: the archive's SHA-256 does not match its manifest: the archive was replaced; pick another point")]
    ArchiveHashMismatch { point: String },
    #[error("restore point {point} holds {found} objects but its manifest lists {expected}: pick another point")]
    CountMismatch { point: String, expected: u64, found: u64 },
    #[error("restore point {point} authenticated but its content is unreadable ({detail}): it was written by a faulty or newer kubectl-dr")]
    Unreadable { point: String, detail: String },
    #[error("restore point {point} says it has manifest version {version}, this kubectl-dr reads version {MANIFEST_VERSION}: upgrade kubectl-dr")]
    UnsupportedManifest { point: String, version: u32 },
    #[error("{0}")]
    Callback(String),
}

/// Checks a cluster ID is usable as one path segment.
pub fn validate_cluster_id(id: &str) -> Result<(), PointError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PointError::InvalidClusterId(id.to_owned()))
    }
}

const ID_TIME: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second].[subsecond digits:3]Z");

/// A new point ID: the UTC time to the millisecond, then 8 random hex digits
/// (`20261121T093000.123Z-0a1b2c3d`), so IDs sort by time and never collide.
pub fn new_point_id(now: OffsetDateTime) -> String {
    let mut tag = [0u8; 4];
    crate::crypto::fill_random(&mut tag);
    format!("{}-{}", now.to_offset(time::UtcOffset::UTC).format(ID_TIME).expect("formats"), hex::encode(tag))
}

/// The time a point ID names.
pub fn point_time(id: &str) -> Result<OffsetDateTime, PointError> {
    let bad = || PointError::InvalidPointId(id.to_owned());
    let (stamp, tag) = id.split_once('-').ok_or_else(bad)?;
    if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    time::PrimitiveDateTime::parse(stamp, ID_TIME).map(|t| t.assume_utc()).map_err(|_| bad())
}

/// Key prefix of all points of a cluster.
pub fn points_prefix(cluster_id: &str) -> String {
    format!("{cluster_id}/restore-points/")
}

/// Key of one file of a point.
pub fn object_key(cluster_id: &str, point_id: &str, object: &str) -> String {
    format!("{cluster_id}/restore-points/{point_id}/{object}")
}

/// RFC 3339 in UTC (with milliseconds when there are any).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let ms = t.millisecond() as u32 * 1_000_000;
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(ms)
        .expect("valid nanoseconds")
        .format(&Rfc3339)
        .expect("formats")
}

/// The manifest: what a point holds, readable without decrypting the archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    pub cluster_id: String,
    pub point_id: String,
    pub created_at: String,
    pub completed_at: String,
    pub mode: Mode,
    pub policy: String,
    /// The tool and version that wrote the point.
    pub written_by: String,
    pub archive: ArchiveInfo,
    pub counts: Counts,
    /// End of the Object Lock retention, when the location is immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<String>,
    /// The resource (plural) of each kind the point holds, keyed like `counts.byKind`, as
    /// the source cluster served it: what a restore's RBAC names. Empty in points written
    /// before it was recorded and in points made from files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveInfo {
    pub object: String,
    /// Size of the stored (encrypted) archive.
    pub stored_bytes: u64,
    /// Size after compression, before encryption.
    pub compressed_bytes: u64,
    /// Size of the catalog before compression.
    pub catalog_bytes: u64,
    /// SHA-256 of the stored archive, hex.
    pub sha256: String,
    pub chunk_size: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub total: u64,
    pub by_category: BTreeMap<Category, u64>,
    /// Keyed by `Kind` or `Kind.group`.
    pub by_kind: BTreeMap<String, u64>,
}

impl Counts {
    pub fn add(&mut self, entry: &Entry) {
        self.total += 1;
        *self.by_category.entry(entry.category).or_default() += 1;
        *self.by_kind.entry(entry.kind_key()).or_default() += 1;
    }
}

/// Derives each point's key once per process: a point's two files share its salt.
pub struct Unlocker {
    passphrase: Passphrase,
    keys: Mutex<HashMap<KdfParams, Arc<MasterKey>>>,
}

impl std::hash::Hash for KdfParams {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.iterations.hash(state);
        self.salt.hash(state);
    }
}

impl Unlocker {
    pub fn new(passphrase: Passphrase) -> Arc<Self> {
        Arc::new(Self { passphrase, keys: Mutex::new(HashMap::new()) })
    }

    /// The key for `params`, running PBKDF2 (on a blocking thread) the first time.
    pub async fn key(self: &Arc<Self>, params: KdfParams) -> Arc<MasterKey> {
        if let Some(k) = self.keys.lock().expect("not poisoned").get(&params) {
            return k.clone();
        }
        let me = self.clone();
        let key = tokio::task::spawn_blocking(move || Arc::new(MasterKey::derive(&me.passphrase, params)))
            .await
            .expect("key derivation panicked");
        self.keys.lock().expect("not poisoned").insert(params, key.clone());
        key
    }

    fn key_blocking(&self, params: KdfParams) -> Arc<MasterKey> {
        let mut keys = self.keys.lock().expect("not poisoned");
        keys.entry(params).or_insert_with(|| Arc::new(MasterKey::derive(&self.passphrase, params))).clone()
    }
}

/// Collects the encrypted archive for upload while hashing it.
struct UploadBuffer {
    pending: Vec<u8>,
    sha: digest::Context,
    bytes: u64,
}

impl Write for UploadBuffer {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(b);
        self.sha.update(b);
        self.bytes += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts bytes passing through.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type ArchiveEncoder = BlockWriter<Counting<EncryptWriter<UploadBuffer>>>;

/// Writes one restore point: `add` entries, then `finish`. Memory stays at about one upload
/// part whatever the number of entries. If it is dropped or fails before `finish`
/// returns, no manifest exists and the point stays incomplete.
pub struct PointWriter {
    location: Location,
    cluster_id: String,
    point_id: String,
    created_at: OffsetDateTime,
    mode: Mode,
    policy: String,
    key: Arc<MasterKey>,
    upload: Option<ObjectUpload>,
    encoder: Option<ArchiveEncoder>,
    line: Vec<u8>,
    catalog_bytes: u64,
    counts: Counts,
    resources: BTreeMap<String, String>,
}

impl PointWriter {
    /// Starts a new point for `cluster_id` with a fresh salt (PBKDF2 at 600,000 iterations).
    pub async fn begin(
        location: &Location,
        cluster_id: &str,
        passphrase: &Passphrase,
        mode: Mode,
        policy: &str,
    ) -> Result<Self, PointError> {
        validate_cluster_id(cluster_id)?;
        let created_at = OffsetDateTime::now_utc();
        let point_id = new_point_id(created_at);
        let pass = passphrase.clone();
        let key = tokio::task::spawn_blocking(move || Arc::new(MasterKey::derive(&pass, KdfParams::generate())))
            .await
            .expect("key derivation panicked");
        let binding = Binding { cluster_id: cluster_id.into(), point_id: point_id.clone(), role: Role::Archive };
        let sink = UploadBuffer { pending: Vec::with_capacity(PART_SIZE + 1024 * 1024), sha: digest::Context::new(&digest::SHA256), bytes: 0 };
        let enc = EncryptWriter::new(sink, &key, &binding, format::DEFAULT_CHUNK_SIZE).map_err(io_unreadable(&point_id))?;
        let encoder = BlockWriter::new(Counting { inner: enc, bytes: 0 }).map_err(io_unreadable(&point_id))?;
        let upload = location.create(&object_key(cluster_id, &point_id, ARCHIVE_OBJECT)).await?;
        Ok(Self {
            location: location.clone(),
            cluster_id: cluster_id.into(),
            point_id,
            created_at,
            mode,
            policy: policy.into(),
            key,
            upload: Some(upload),
            encoder: Some(encoder),
            line: Vec::with_capacity(4096),
            catalog_bytes: 0,
            counts: Counts::default(),
            resources: BTreeMap::new(),
        })
    }

    pub fn point_id(&self) -> &str {
        &self.point_id
    }

    /// Entries added so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Records the resource (plural) that serves `kind_key` (`Kind` or `Kind.group`); the
    /// manifest lists it for the kinds the point holds.
    pub fn note_resource(&mut self, kind_key: &str, plural: &str) {
        self.resources.insert(kind_key.to_owned(), plural.to_owned());
    }

    /// Catalog bytes (before compression) added so far.
    pub fn catalog_bytes(&self) -> u64 {
        self.catalog_bytes
    }

    /// Appends one object to the catalog.
    pub async fn add(&mut self, entry: &Entry) -> Result<(), PointError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, entry).expect("JSON values serialize");
        self.line.push(b'\n');
        let encoder = self.encoder.as_mut().expect("writer not finished");
        encoder.write_all(&self.line).map_err(io_unreadable(&self.point_id))?;
        self.catalog_bytes += self.line.len() as u64;
        self.counts.add(entry);
        if self.pending().len() >= PART_SIZE {
            let mut part = std::mem::take(self.pending());
            self.upload.as_mut().expect("writer not finished").write(&part).await?;
            // Hand the emptied buffer back, so its capacity is reused for the next part.
            part.clear();
            *self.pending() = part;
        }
        Ok(())
    }

    /// Encrypted bytes waiting to be uploaded.
    fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.encoder.as_mut().expect("writer not finished").get_mut().inner.get_mut().pending
    }

    /// Seals and uploads the archive, then writes the manifest, which makes the point complete.
    pub async fn finish(mut self) -> Result<Manifest, PointError> {
        let encoder = self.encoder.take().expect("writer not finished");
        let counting = encoder.finish().map_err(io_unreadable(&self.point_id))?;
        let compressed_bytes = counting.bytes;
        let sink = counting.inner.finish().map_err(io_unreadable(&self.point_id))?;
        let mut upload = self.upload.take().expect("writer not finished");
        let written = async {
            upload.write(&sink.pending).await?;
            upload.finish().await
        }
        .await;
        written?;
        let manifest = Manifest {
            format_version: MANIFEST_VERSION,
            cluster_id: self.cluster_id.clone(),
            point_id: self.point_id.clone(),
            created_at: rfc3339(self.created_at),
            completed_at: rfc3339(OffsetDateTime::now_utc()),
            mode: self.mode,
            policy: self.policy.clone(),
            written_by: concat!("kubectl-dr ", env!("CARGO_PKG_VERSION")).into(),
            archive: ArchiveInfo {
                object: ARCHIVE_OBJECT.into(),
                stored_bytes: sink.bytes,
                compressed_bytes,
                catalog_bytes: self.catalog_bytes,
                sha256: hex::encode(sink.sha.finish().as_ref()),
                chunk_size: format::DEFAULT_CHUNK_SIZE,
            },
            resources: std::mem::take(&mut self.resources).into_iter().filter(|(k, _)| self.counts.by_kind.contains_key(k)).collect(),
            counts: std::mem::take(&mut self.counts),
            retained_until: self
                .location
                .immutable_days()
                .map(|d| rfc3339(OffsetDateTime::now_utc() + time::Duration::days(d as i64))),
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        let binding = Binding { cluster_id: self.cluster_id.clone(), point_id: self.point_id.clone(), role: Role::Manifest };
        let sealed = format::seal_all(&json, &self.key, &binding, format::DEFAULT_CHUNK_SIZE);
        self.location
            .put(&object_key(&self.cluster_id, &self.point_id, MANIFEST_OBJECT), sealed)
            .await?;
        Ok(manifest)
    }

    /// Gives up on the point: no manifest is written, and the partial archive is removed
    /// where the credentials allow.
    pub async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort().await;
        }
    }
}

fn io_unreadable(point: &str) -> impl Fn(io::Error) -> PointError + '_ {
    move |e| PointError::Unreadable { point: point.to_owned(), detail: e.to_string() }
}

/// A point as listing shows it, before anything is decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointSummary {
    pub id: String,
    pub time: OffsetDateTime,
    /// Both the archive and the manifest exist.
    pub complete: bool,
    pub stored_bytes: u64,
}

/// Lists a cluster's points, newest first. Objects that are not points are ignored.
pub async fn list_points(location: &Location, cluster_id: &str) -> Result<Vec<PointSummary>, PointError> {
    validate_cluster_id(cluster_id)?;
    let prefix = points_prefix(cluster_id);
    let mut points: BTreeMap<String, (bool, bool, u64)> = BTreeMap::new();
    for obj in location.list(&prefix).await? {
        let Some((point, file)) = obj.key[prefix.len()..].split_once('/') else { continue };
        if point_time(point).is_err() {
            continue;
        }
        let p = points.entry(point.to_owned()).or_default();
        match file {
            ARCHIVE_OBJECT => p.0 = true,
            MANIFEST_OBJECT => p.1 = true,
            _ => {}
        }
        p.2 += obj.size;
    }
    let mut out: Vec<PointSummary> = points
        .into_iter()
        // The manifest is written last, after the archive: a point with a manifest finished.
        // Its archive missing is damage (reading it says so), not an unfinished backup.
        .map(|(id, (_archive, manifest, size))| PointSummary {
            time: point_time(&id).expect("filtered above"),
            id,
            complete: manifest,
            stored_bytes: size,
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// The newest complete point at or before `at` (the newest complete point when `at` is None).
pub fn select_point<'a>(
    points: &'a [PointSummary],
    at: Option<OffsetDateTime>,
    cluster_id: &str,
    location: &Location,
) -> Result<&'a PointSummary, PointError> {
    if points.is_empty() {
        return Err(PointError::NoPoints { cluster_id: cluster_id.into(), location: location.describe() });
    }
    points
        .iter()
        .find(|p| p.complete && at.is_none_or(|at| p.time <= at))
        .ok_or_else(|| PointError::NoneAtOrBefore {
            cluster_id: cluster_id.into(),
            at: at.map(rfc3339).unwrap_or_else(|| "now".into()),
            available: describe_points(points),
        })
}

/// Finds a point by ID.
pub fn find_point<'a>(points: &'a [PointSummary], id: &str, cluster_id: &str) -> Result<&'a PointSummary, PointError> {
    points.iter().find(|p| p.id == id).ok_or_else(|| PointError::NotFound {
        cluster_id: cluster_id.into(),
        point: id.into(),
        available: describe_points(points),
    })
}

fn describe_points(points: &[PointSummary]) -> String {
    if points.is_empty() {
        return "none".into();
    }
    let shown: Vec<String> = points
        .iter()
        .take(10)
        .map(|p| format!("{} ({})", p.id, if p.complete { "complete" } else { "incomplete" }))
        .collect();
    let more = points.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} older", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Other points tried when a point does not open with the passphrase, before the
/// passphrase is called wrong (each costs one key derivation, about 80 ms).
const POINTS_TRIED: usize = 50;

/// Reads the manifest of `chosen`, one of `points`. A point whose manifest does not open with
/// this passphrase may be forged (a writer to the location can add points with any name and
/// key) or the passphrase may be wrong: it is wrong only if no other point of the cluster
/// opens either. When another does, the error names the newest older one that opens.
pub async fn open_manifest(location: &Location, cluster_id: &str, points: &[PointSummary], chosen: &PointSummary, unlocker: &Arc<Unlocker>) -> Result<Manifest, PointError> {
    let err = match read_manifest(location, cluster_id, &chosen.id, unlocker).await {
        Ok(m) => return Ok(m),
        Err(e) if e.is_wrong_passphrase() => e,
        Err(e) => return Err(e),
    };
    // The older points first, newest first: the one to suggest; then the newer ones.
    let older = points.iter().filter(|p| p.complete && p.id != chosen.id && p.time <= chosen.time);
    let newer = points.iter().filter(|p| p.complete && p.id != chosen.id && p.time > chosen.time);
    for other in older.chain(newer).take(POINTS_TRIED) {
        if read_manifest(location, cluster_id, &other.id, unlocker).await.is_ok() {
            tracing::warn!(point = %chosen.id, opens = %other.id, "a point does not open with the passphrase while another does: damaged or forged");
            return Err(PointError::DoesNotOpen { point: chosen.id.clone(), opens: other.id.clone(), at: rfc3339(other.time) });
        }
    }
    Err(err)
}

/// Opens the manifest of every complete point of `points` (4 at a time, one key derivation
/// each), in their order; `None` for an incomplete point. As in [`open_manifest`], a point
/// that does not open is the passphrase's fault only when none opens: then this fails with
/// the wrong passphrase. Otherwise such a point is damaged or forged (`DoesNotOpen`, naming
/// the newest point that opens) and only its entry carries the error.
pub async fn open_manifests(
    location: &Location,
    cluster_id: &str,
    points: &[PointSummary],
    unlocker: &Arc<Unlocker>,
) -> Result<Vec<Option<Result<Manifest, PointError>>>, PointError> {
    use futures::{stream, StreamExt};
    let mut opened: Vec<Option<Result<Manifest, PointError>>> = stream::iter(points)
        .map(|p| async move {
            if p.complete {
                Some(read_manifest(location, cluster_id, &p.id, unlocker).await)
            } else {
                None
            }
        })
        .buffered(4)
        .collect()
        .await;
    let newest_open = points.iter().zip(&opened).find(|(_, m)| matches!(m, Some(Ok(_)))).map(|(p, _)| p);
    for slot in opened.iter_mut() {
        if !matches!(slot, Some(Err(e)) if e.is_wrong_passphrase()) {
            continue;
        }
        let Some(Err(e)) = slot.take() else { unreachable!("matched above") };
        let Some(opens) = newest_open else { return Err(e) };
        let PointError::Format { point, .. } = e else { unreachable!("a wrong passphrase is a format error") };
        *slot = Some(Err(PointError::DoesNotOpen { point, opens: opens.id.clone(), at: rfc3339(opens.time) }));
    }
    Ok(opened)
}

/// Reads and decrypts a point's manifest. When the current version does not authenticate and
/// the location keeps versions (a versioned, Object Lock bucket), the older versions are
/// tried, oldest first: kubectl-dr never overwrites, so a newer version is someone else's
/// write over the genuine one, which Object Lock still holds.
pub async fn read_manifest(
    location: &Location,
    cluster_id: &str,
    point_id: &str,
    unlocker: &Arc<Unlocker>,
) -> Result<Manifest, PointError> {
    let key = object_key(cluster_id, point_id, MANIFEST_OBJECT);
    let current = match location.open(&key).await {
        Ok(r) => r,
        Err(LocationError::NotFound { .. }) => return Err(PointError::Incomplete { point: point_id.into() }),
        Err(e) => return Err(e.into()),
    };
    let err = match open_manifest_bytes(current, cluster_id, point_id, unlocker).await {
        Ok(m) => return Ok(m),
        Err(e @ PointError::Location(_)) => return Err(e),
        Err(e) => e,
    };
    let versions = location.versions(&key).await;
    for version in versions.iter().take(versions.len().saturating_sub(1)) {
        let Ok(reader) = location.open_version(&key, version).await else { continue };
        if let Ok(m) = open_manifest_bytes(reader, cluster_id, point_id, unlocker).await {
            tracing::warn!(
                point = point_id,
                version = %version.id,
                newer_versions = versions.len() - 1,
                "the current version of this point's manifest does not authenticate ({err}); it was overwritten, and the older version kubectl-dr wrote is read instead"
            );
            return Ok(m);
        }
    }
    Err(err)
}

async fn open_manifest_bytes(
    (len, mut reader): (u64, crate::location::ObjectReader),
    cluster_id: &str,
    point_id: &str,
    unlocker: &Arc<Unlocker>,
) -> Result<Manifest, PointError> {
    let fmt_err = |source| PointError::Format { point: point_id.into(), file: "manifest", source };
    if len > MAX_MANIFEST_BYTES {
        return Err(fmt_err(FormatError::NotARestorePoint));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // Read no more than the cap, whatever the size said.
    tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::AsyncReadExt::take(&mut reader, MAX_MANIFEST_BYTES + 1), &mut bytes)
        .await
        .map_err(|e| fmt_err(FormatError::Io(e)))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(fmt_err(FormatError::NotARestorePoint));
    }
    let expected = Binding { cluster_id: cluster_id.into(), point_id: point_id.into(), role: Role::Manifest };
    let header = Header::read(&mut &bytes[..]).map_err(fmt_err)?;
    header.check_binding(&expected).map_err(fmt_err)?;
    let master = unlocker.key(header.kdf()).await;
    let mut plain = Vec::new();
    DecryptReader::new(&bytes[header.len()..], &header, &master)
        .map_err(fmt_err)?
        .read_to_end(&mut plain)
        .map_err(|e| fmt_err(FormatError::from_io(e)))?;
    let manifest: Manifest = serde_json::from_slice(&plain)
        .map_err(|e| PointError::Unreadable { point: point_id.into(), detail: format!("manifest: {e}") })?;
    zeroize::Zeroize::zeroize(&mut plain);
    if manifest.format_version != MANIFEST_VERSION {
        return Err(PointError::UnsupportedManifest { point: point_id.into(), version: manifest.format_version });
    }
    if manifest.cluster_id != cluster_id || manifest.point_id != point_id {
        return Err(PointError::Unreadable { point: point_id.into(), detail: "manifest names another point".into() });
    }
    Ok(manifest)
}

/// Opens the archive a manifest describes. Where the location keeps versions and the archive
/// has more than one, someone wrote over it: the oldest version whose SHA-256 is the
/// manifest's is read (one extra download of each candidate), and the choice is logged.
async fn open_archive(location: &Location, manifest: &Manifest) -> Result<(u64, crate::location::ObjectReader), PointError> {
    let point = &manifest.point_id;
    let key = object_key(&manifest.cluster_id, point, &manifest.archive.object);
    let versions = location.versions(&key).await;
    if versions.len() > 1 {
        for version in versions.iter().filter(|v| v.size == manifest.archive.stored_bytes) {
            let Ok((_, mut reader)) = location.open_version(&key, version).await else { continue };
            let hashed = crate::location::sha256(&mut reader).await.ok().map(|(_, sum)| hex::encode(sum));
            if hashed.as_deref() == Some(manifest.archive.sha256.as_str()) {
                if version.id != versions.last().expect("not empty").id {
                    tracing::warn!(
                        point = %point,
                        version = %version.id,
                        newer_versions = versions.len() - 1,
                        "this point's archive was overwritten; the version whose hash its manifest names is read instead"
                    );
                }
                return location.open_version(&key, version).await.map_err(Into::into);
            }
        }
    }
    match location.open(&key).await {
        Ok(r) => Ok(r),
        Err(LocationError::NotFound { .. }) => Err(PointError::ArchiveMissing { point: point.clone() }),
        Err(e) => Err(e.into()),
    }
}

/// Hashes what passes through.
struct Hashing<R> {
    inner: R,
    sha: digest::Context,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// Streams every entry of a point's archive to `on_entry` (called on a blocking thread),
/// after checking the archive's size against the manifest. Each chunk is authenticated
/// before its entries are handed out; the archive's SHA-256 and entry count are checked at
/// the end, so a caller that must not act on a damaged point should collect first and act
/// after this returns `Ok` (as `verify` and the restore do).
pub async fn read_entries<F>(
    location: &Location,
    manifest: &Manifest,
    unlocker: &Arc<Unlocker>,
    mut on_entry: F,
) -> Result<Counts, PointError>
where
    F: FnMut(Entry) -> Result<(), String> + Send + 'static,
{
    let point = manifest.point_id.clone();
    let (len, reader) = open_archive(location, manifest).await?;
    let expected = manifest.archive.stored_bytes;
    if len < expected {
        return Err(PointError::ArchiveTruncated { point, expected, found: len });
    }
    if len > expected {
        return Err(PointError::ArchiveAppended { point, expected, extra: len - expected });
    }
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let unlocker = unlocker.clone();
    let manifest = manifest.clone();
    tokio::task::spawn_blocking(move || {
        let point = manifest.point_id.clone();
        let fmt_err = |source| PointError::Format { point: point.clone(), file: "archive", source };
        let mut hashing = Hashing { inner: bridge, sha: digest::Context::new(&digest::SHA256) };
        let header = Header::read(&mut hashing).map_err(fmt_err)?;
        header
            .check_binding(&Binding { cluster_id: manifest.cluster_id.clone(), point_id: point.clone(), role: Role::Archive })
            .map_err(fmt_err)?;
        let master = unlocker.key_blocking(header.kdf());
        let decrypt = DecryptReader::new(hashing, &header, &master).map_err(fmt_err)?;
        let (plaintext, decryptor) = decrypt_on_own_thread(decrypt);
        let mut lines = io::BufReader::with_capacity(1 << 20, blocks::parallel_reader(plaintext, decompression_threads()));
        let mut counts = Counts::default();
        let mut line = Vec::with_capacity(4096);
        let parsed = loop {
            line.clear();
            match (&mut lines).take(MAX_CATALOG_LINE as u64 + 1).read_until(b'\n', &mut line) {
                Ok(0) => break Ok(()),
                Ok(_) if line.len() > MAX_CATALOG_LINE => break Err(PointError::LineTooLong { point: point.clone(), line: counts.total + 1 }),
                Ok(_) => {}
                Err(e) => break Err(read_error(&point, e)),
            }
            let entry: Entry = match serde_json::from_slice(&line) {
                Ok(e) => e,
                Err(e) => break Err(PointError::Unreadable { point: point.clone(), detail: format!("catalog line {}: {e}", counts.total + 1) }),
            };
            counts.add(&entry);
            if let Err(e) = on_entry(entry) {
                break Err(PointError::Callback(e));
            }
        };
        // Dropping the reading side stops the decrypting thread if it is still running.
        drop(lines);
        let hashing = decryptor.join().expect("decrypting thread panicked");
        parsed?;
        let hashing = hashing.map_err(|e| read_error(&point, e))?;
        if hex::encode(hashing.sha.finish().as_ref()) != manifest.archive.sha256 {
            return Err(PointError::ArchiveHashMismatch { point });
        }
        if counts.total != manifest.counts.total {
            return Err(PointError::CountMismatch { point, expected: manifest.counts.total, found: counts.total });
        }
        Ok(counts)
    })
    .await
    .expect("archive reader panicked")
}

/// Threads that decompress catalog blocks: every core, up to four.
fn decompression_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4)
}

/// Plaintext chunks queued between the decrypting thread and the reader; bounds memory.
const DECRYPT_QUEUE: usize = 4;

/// Runs `decrypt` on its own thread, handing plaintext over through a small queue, so
/// decryption and decompression use two cores. The thread returns the underlying reader
/// (for its hash) once the stream ends, or the first error, which the reader also sees.
fn decrypt_on_own_thread<R: Read + Send + 'static>(
    mut decrypt: DecryptReader<R>,
) -> (QueueReader, std::thread::JoinHandle<io::Result<R>>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(DECRYPT_QUEUE);
    let handle = std::thread::spawn(move || {
        loop {
            let mut buf = vec![0u8; format::DEFAULT_CHUNK_SIZE as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match decrypt.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let kind = e.kind();
                        let _ = tx.send(Err(e));
                        return Err(io::Error::new(kind, "the archive stream failed (reported by the reader)"));
                    }
                }
            }
            if filled == 0 {
                return Ok(decrypt.into_inner());
            }
            buf.truncate(filled);
            if tx.send(Ok(buf)).is_err() {
                // The reader stopped early; it reports its own reason.
                return Ok(decrypt.into_inner());
            }
        }
    });
    (QueueReader { rx, cur: Vec::new(), pos: 0 }, handle)
}

/// The reading end of [`decrypt_on_own_thread`].
struct QueueReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for QueueReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    self.cur = next;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decrypts and decompresses an archive (positioned after `header`), discarding the
/// catalog; returns its size. For benchmarks: the read path without parsing or storage.
pub fn decrypt_catalog_bytes<R: Read + Send + 'static>(archive: R, header: &Header, key: &MasterKey) -> Result<u64, FormatError> {
    let (plaintext, decryptor) = decrypt_on_own_thread(DecryptReader::new(archive, header, key)?);
    let mut catalog = blocks::parallel_reader(plaintext, decompression_threads());
    let n = io::copy(&mut catalog, &mut io::sink()).map_err(FormatError::from_io)?;
    decryptor.join().expect("decrypting thread panicked").map_err(FormatError::from_io)?;
    Ok(n)
}

fn read_error(point: &str, e: io::Error) -> PointError {
    match FormatError::from_io(e) {
        FormatError::Io(e) if e.kind() == io::ErrorKind::Other || e.kind() == io::ErrorKind::InvalidData => {
            // Decompression reports its errors as plain I/O errors; authenticated data that does not
            // decompress means a faulty writer, not storage damage.
            PointError::Unreadable { point: point.into(), detail: e.to_string() }
        }
        source => PointError::Format { point: point.into(), file: "archive", source },
    }
}

/// Decrypts a point in full and checks it against its manifest; returns its object count.
pub async fn verify_point(
    location: &Location,
    cluster_id: &str,
    point_id: &str,
    unlocker: &Arc<Unlocker>,
) -> Result<u64, PointError> {
    let manifest = read_manifest(location, cluster_id, point_id, unlocker).await?;
    verify_entries(location, &manifest, unlocker).await
}

/// Decrypts the archive a (decrypted) manifest describes in full and checks it against the
/// manifest's counts; returns its object count.
pub async fn verify_entries(location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>) -> Result<u64, PointError> {
    read_checked_entries(location, manifest, unlocker, |_| Ok(())).await
}

/// Every object of the point, in memory, once it has been read whole and checked
/// ([`read_checked_entries`]): for `diff` and drills, which compare points as a whole.
pub async fn read_all_entries(location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>) -> Result<Vec<Entry>, PointError> {
    let entries = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = entries.clone();
    read_checked_entries(location, manifest, unlocker, move |e| {
        sink.lock().expect("not poisoned").push(e);
        Ok(())
    })
    .await?;
    let entries = std::mem::take(&mut *entries.lock().expect("not poisoned"));
    Ok(entries)
}

/// [`read_entries`], then the counts checked against the manifest's; returns the object count.
/// The caller may use what it was handed only once this succeeds.
pub async fn read_checked_entries<F>(location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>, on_entry: F) -> Result<u64, PointError>
where
    F: FnMut(Entry) -> Result<(), String> + Send + 'static,
{
    let counts = read_entries(location, manifest, unlocker, on_entry).await?;
    if counts != manifest.counts {
        return Err(PointError::CountMismatch { point: manifest.point_id.clone(), expected: manifest.counts.total, found: counts.total });
    }
    Ok(counts.total)
}

impl PointError {
    /// Whether this says the passphrase is wrong (as opposed to the point being damaged).
    pub fn is_wrong_passphrase(&self) -> bool {
        matches!(self, PointError::Format { source: FormatError::WrongPassphrase, .. })
    }
}
