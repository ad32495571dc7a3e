//! Restore points: names, the manifest, and writing, listing, selecting and reading whole
//! points at a location.
//!
//! A point is `<cluster-id>/restore-points/<point-id>/` holding `archive.kdr` (the catalog:
//! one JSON [`Entry`](crate::catalog::Entry) per line, compressed in zstd blocks, then encrypted) and `manifest.kdr` (a small
//! encrypted JSON [`Manifest`]). The manifest is written last: a point without one is
//! incomplete and never restored from.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::format::crypto::{ClusterKey, KdfParams, MasterKey, Passphrase, SALT_LEN};
pub use crate::format::manifest::{ArchiveInfo, Counts, Manifest};
use crate::format::FormatError;
use crate::location::LocationError;

mod list;
mod open;
mod read;
mod write;

pub use list::*;
pub use open::{choose, judge_all, suspect_dates, Chosen, Judged, Standing, Which, CLOCK_SKEW, SOURCE_STORED_AT, STORE_LAG};
pub use read::*;
pub use write::*;

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
    #[error(
        "invalid cluster ID {0:?}: it is the UID of the source cluster's default namespace (kubectl get namespace default -o jsonpath='{{.metadata.uid}}')"
    )]
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
    #[error("restore point {point} does not open with this passphrase, but point {opens} does: {point} is damaged or was forged (anyone who can write to the location can add points), so it is not used. Restore {opens} by its ID: --point {opens} (chart value restorePointID)")]
    DoesNotOpen { point: String, opens: String },
    #[error("restore point {point} does not open with this passphrase, though other points of the cluster do: it is damaged or was forged, so it is not used. No point opens whose dates agree (see `kubectl dr restore-points`): restore one by its ID only if you trust it")]
    DoesNotOpenNoneGenuine { point: String },
    /// What a passphrase changed since the point was written looks like: no point as old opens,
    /// newer ones do. A forger can date a point back too, so both are said.
    #[error("restore point {point} does not open with this passphrase, nor does any point as old, while newer ones do ({opens} is the newest): if the DR passphrase (k10-dr-secret) was changed after {point} was written, it opens only with the passphrase it was written under, so give that one to restore it; if the passphrase never changed, {point} is damaged or was forged. Restore {opens} by its ID: --point {opens} (chart value restorePointID)")]
    OlderThanPassphrase { point: String, opens: String },
    #[error("restore point {point} has a format 1/2 header but is dated after point {v3_point}, which is format 3: a writer never goes back to the older format, so it was forged (refused without deriving its key)")]
    LegacyAfterUpgrade { point: String, v3_point: String },
    #[error("restore point {point} is filed under this cluster's ID but its header names cluster {found}: it was planted or moved here, so it is not used")]
    NamesAnotherCluster { point: String, found: String },
    #[error(
        "restore point {point}: its manifest is larger than {MAX_MANIFEST_BYTES} bytes, which no manifest is (a few KiB): it was replaced; pick another point"
    )]
    ManifestTooLarge { point: String },
    #[error("restore point {point} was tampered with at the location: {}", evidence.join("; "))]
    Tampered { point: String, evidence: Vec<String> },
    #[error("restore point {point} is suspect: {reason}; it is not chosen unless named by its ID (--point {point}, chart value restorePointID)")]
    Suspect { point: String, reason: String },
    #[error("no restore point of cluster ID {cluster_id} at or before {at} opens with this passphrase, while newer ones do ({newest_open}): if the DR passphrase (k10-dr-secret) was changed since, the older points open only with the passphrase they were written under, so give that one to restore them; if it never changed, they are damaged or forged")]
    NoneOpensAtOrBefore { cluster_id: String, at: String, newest_open: String },
    #[error("restore point {point} has a manifest but its archive is missing: the point was damaged after its backup finished (the archive is written first); pick another point")]
    ArchiveMissing { point: String },
    #[error("restore point {point}: catalog line {line} is longer than {MAX_CATALOG_LINE} bytes, which no Kubernetes object is: the point was written by a faulty writer; pick another point")]
    LineTooLong { point: String, line: u64 },
    #[error("restore point {point}, {file}")]
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

impl crate::failure::Classify for PointError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        use PointError as E;
        match self {
            E::InvalidClusterId(_) | E::InvalidPointId(_) | E::NoPoints { .. } | E::NoneAtOrBefore { .. } | E::NotFound { .. } => ErrorKind::BadInput,
            // Named by its ID while it is not to be trusted: the operator picks another.
            E::Suspect { .. } => ErrorKind::BadInput,
            E::UnsupportedManifest { .. } => ErrorKind::BadInput,
            E::Location(e) => e.kind(),
            E::Format { source, .. } => source.kind(),
            // Other points open with this passphrase, so it is not the wrong one (exit 3 says no
            // point opens): the point may be an earlier passphrase's, or forged.
            E::OlderThanPassphrase { .. } | E::NoneOpensAtOrBefore { .. } => ErrorKind::DamagedPoint,
            E::Incomplete { .. }
            | E::ArchiveTruncated { .. }
            | E::ArchiveAppended { .. }
            | E::ArchiveHashMismatch { .. }
            | E::CountMismatch { .. }
            | E::ArchiveMissing { .. }
            | E::DoesNotOpen { .. }
            | E::DoesNotOpenNoneGenuine { .. }
            | E::NamesAnotherCluster { .. }
            | E::LegacyAfterUpgrade { .. }
            | E::ManifestTooLarge { .. }
            | E::Tampered { .. }
            | E::LineTooLong { .. }
            | E::Unreadable { .. } => ErrorKind::DamagedPoint,
            // The restore stopped reading (it is failing for its own reason).
            E::Callback(_) => ErrorKind::Transient,
        }
    }
}

/// Checks a cluster ID is usable as one path segment.
pub fn validate_cluster_id(id: &str) -> Result<(), PointError> {
    let ok = !id.is_empty() && id.len() <= 128 && id != "." && id != ".." && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
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
    crate::format::crypto::fill_random(&mut tag);
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
    t.to_offset(time::UtcOffset::UTC).replace_nanosecond(ms).expect("valid nanoseconds").format(&Rfc3339).expect("formats")
}

/// What this process has spent opening points: PBKDF2 derivations and manifest downloads.
/// A restore opens its point once per process and hands on what it opened (the plugin's
/// check to its dry-run, a drill to the engine); tests and the report count these to hold
/// it to that.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct PointOpens {
    pub key_derivations: u64,
    pub manifest_reads: u64,
}

static KEY_DERIVATIONS: AtomicU64 = AtomicU64::new(0);
static MANIFEST_READS: AtomicU64 = AtomicU64::new(0);

/// The process's [`PointOpens`] so far.
pub fn point_opens() -> PointOpens {
    PointOpens { key_derivations: KEY_DERIVATIONS.load(Ordering::Relaxed), manifest_reads: MANIFEST_READS.load(Ordering::Relaxed) }
}

/// Derives keys once per process. Version 3: one PBKDF2 per cluster (cached by cluster salt
/// and iteration count), then one HKDF per point, so a forged header costs microseconds to
/// reject. Legacy (version 1 and 2) points: one PBKDF2 per point (its two files share a salt).
pub struct Unlocker {
    passphrase: Passphrase,
    /// Legacy per-point keys.
    keys: Mutex<HashMap<KdfParams, Arc<MasterKey>>>,
    /// Version 3 cluster masters. Each slot is filled once, so points read at the same
    /// time (`open_manifests` reads four) wait for one derivation instead of each running
    /// their own.
    clusters: Mutex<HashMap<([u8; SALT_LEN], u32), ClusterKeySlot>>,
    pbkdf2_runs: AtomicU64,
}

/// A cluster master's derivation, shared by everyone who needs it (salt and iterations are the key).
type ClusterKeySlot = Arc<tokio::sync::OnceCell<Arc<ClusterKey>>>;

impl Unlocker {
    pub fn new(passphrase: Passphrase) -> Arc<Self> {
        Arc::new(Self { passphrase, keys: Mutex::new(HashMap::new()), clusters: Mutex::new(HashMap::new()), pbkdf2_runs: AtomicU64::new(0) })
    }

    /// How many PBKDF2 derivations this unlocker has run: what reading costs (tests and
    /// benchmarks count them; a forged version 3 point must not add one).
    pub fn pbkdf2_runs(&self) -> u64 {
        self.pbkdf2_runs.load(Ordering::Relaxed)
    }

    /// The key for `params`, running PBKDF2 (on a blocking thread) the first time a point
    /// (legacy) or cluster (version 3) is met.
    pub async fn key(self: &Arc<Self>, params: KdfParams) -> Arc<MasterKey> {
        if params.is_legacy() {
            return self.legacy_key(params).await;
        }
        let slot = self.cluster_slot(params);
        let me = self.clone();
        let cluster = slot
            .get_or_init(|| async move { tokio::task::spawn_blocking(move || Arc::new(me.derive_cluster(params))).await.expect("key derivation panicked") })
            .await;
        Arc::new(Self::point_key(cluster, params))
    }

    async fn legacy_key(self: &Arc<Self>, params: KdfParams) -> Arc<MasterKey> {
        if let Some(k) = self.keys.lock().expect("not poisoned").get(&params) {
            return k.clone();
        }
        let me = self.clone();
        let key = tokio::task::spawn_blocking(move || Arc::new(me.derive_legacy(params))).await.expect("key derivation panicked");
        self.keys.lock().expect("not poisoned").insert(params, key.clone());
        key
    }

    fn key_blocking(&self, params: KdfParams) -> Arc<MasterKey> {
        if params.is_legacy() {
            let mut keys = self.keys.lock().expect("not poisoned");
            return keys.entry(params).or_insert_with(|| Arc::new(self.derive_legacy(params))).clone();
        }
        let slot = self.cluster_slot(params);
        let cluster = match slot.get() {
            Some(cluster) => cluster.clone(),
            // The manifest (read first, through `key`) has almost always filled it; if
            // another thread fills it meanwhile, its key is the same one.
            None => {
                let derived = Arc::new(self.derive_cluster(params));
                let _ = slot.set(derived.clone());
                derived
            }
        };
        Arc::new(Self::point_key(&cluster, params))
    }

    fn cluster_slot(&self, params: KdfParams) -> Arc<tokio::sync::OnceCell<Arc<ClusterKey>>> {
        let id = (params.cluster_salt.expect("version 3 parameters"), params.iterations);
        self.clusters.lock().expect("not poisoned").entry(id).or_default().clone()
    }

    fn derive_cluster(&self, params: KdfParams) -> ClusterKey {
        self.pbkdf2_runs.fetch_add(1, Ordering::Relaxed);
        KEY_DERIVATIONS.fetch_add(1, Ordering::Relaxed);
        ClusterKey::derive_for(&self.passphrase, params)
    }

    fn derive_legacy(&self, params: KdfParams) -> MasterKey {
        self.pbkdf2_runs.fetch_add(1, Ordering::Relaxed);
        KEY_DERIVATIONS.fetch_add(1, Ordering::Relaxed);
        MasterKey::derive(&self.passphrase, params)
    }

    /// The point's HKDF. The slot was chosen by these parameters' cluster salt and count,
    /// so the cluster key cannot refuse them.
    fn point_key(cluster: &ClusterKey, params: KdfParams) -> MasterKey {
        cluster.point_key(params).expect("the cluster slot is keyed by these parameters")
    }
}

fn io_unreadable(point: &str) -> impl Fn(io::Error) -> PointError + '_ {
    move |e| PointError::Unreadable { point: point.to_owned(), detail: e.to_string() }
}

impl PointError {
    /// Whether this says the passphrase is wrong (as opposed to the point being damaged).
    pub fn is_wrong_passphrase(&self) -> bool {
        matches!(self, PointError::Format { source: FormatError::WrongPassphrase, .. })
    }
}
