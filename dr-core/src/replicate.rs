//! Off-site copies (`kubectl dr replicate`): a cluster's restore points copied from one
//! location to another as they are, encrypted, so the off-site side holds no key of its own.
//!
//! - Only points that authenticate at the source are copied: each point is judged as a restore
//!   judges it ([`point::judge_all`]), so a point planted with the write credentials (forged,
//!   damaged, or naming another cluster) and one whose dates disagree (suspect) are reported
//!   and passed over, never spread off-site. A suspect point is copied when named (`--point`),
//!   and stays suspect at the destination.
//! - What is copied is the version kubectl-dr wrote (the pinned version where the source lists
//!   versions), whatever was written over it since; the overwrite is reported with the copy.
//! - Each point's files are copied archive first, manifest last: at the destination, as at
//!   the source, a point with a manifest is complete, so an interrupted copy never looks
//!   like a point, and running again finishes it.
//! - Writes are write-once (`If-None-Match: *` on S3, `O_EXCL` on files) and get the
//!   destination's own Object Lock retention (its profile's immutability). The manifest carries
//!   when the source store received it ([`point::SOURCE_STORED_AT`]), so the copy's dates are
//!   judged by the original's evidence rather than by when it was copied.
//! - A copy is called verified only once it authenticates at the destination, read through
//!   `check` (read credentials, where the writing ones may only write) as a restore would read
//!   it there: its pinned manifest byte for byte the source's, the point judged genuine, and
//!   its whole archive decrypted and checked against the manifest. A file already at the
//!   destination is compared the same way: equal is done, different is reported and left
//!   (write-once: never overwritten).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::location::{History, Location, LocationError, ObjectReader, ObjectVersion};
use crate::point::{self, Judged, Manifest, PointError, PointSummary, Standing, Unlocker, ARCHIVE_OBJECT, MANIFEST_OBJECT};

const CHUNK: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReplicateError {
    #[error(transparent)]
    Point(#[from] PointError),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("{from} and {to} are the same location: replicate to another one")]
    SameLocation { from: String, to: String },
}

impl crate::failure::Classify for ReplicateError {
    fn kind(&self) -> crate::failure::ErrorKind {
        match self {
            ReplicateError::Point(e) => e.kind(),
            ReplicateError::Location(e) => e.kind(),
            ReplicateError::SameLocation { .. } => crate::failure::ErrorKind::BadInput,
        }
    }
}

/// What happened to one point.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum PointCopy {
    /// Copied now, and authenticated at the destination. `tampered`: what was written over the
    /// point at the source (the version kubectl-dr wrote was copied, not the overwrite).
    Copied {
        bytes: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tampered: Vec<String>,
    },
    /// Already at the destination, byte for byte.
    Present {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tampered: Vec<String>,
    },
    /// Not copied: the point does not authenticate at the source (forged or damaged), or its
    /// dates disagree (suspect). Reported, never spread off-site.
    PassedOver { reason: String },
    /// The destination has a file of this point that differs from the source's: left as it
    /// is (write-once), and said.
    Differs { object: String },
    /// The copy failed, or does not authenticate at the destination: why. Running again
    /// continues it.
    Failed { reason: String },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ReplicateReport {
    pub from: String,
    pub to: String,
    pub points: Vec<(String, PointCopy)>,
}

impl ReplicateReport {
    /// Points that should be at the destination and are not (or not as the source's).
    pub fn problems(&self) -> usize {
        self.points.iter().filter(|(_, c)| matches!(c, PointCopy::Differs { .. } | PointCopy::Failed { .. })).count()
    }

    /// Points at the source that were not copied because they cannot be trusted.
    pub fn passed_over(&self) -> usize {
        self.points.iter().filter(|(_, c)| matches!(c, PointCopy::PassedOver { .. })).count()
    }
}

/// Copies the points of `cluster_id` that authenticate with `unlocker` (or only `only`) from
/// `from` to `to`; what is at the destination is read through `check` (the same location, or
/// the same bucket with read credentials, when `to`'s may only write).
pub async fn replicate(
    from: &Location,
    to: &Location,
    check: &Location,
    cluster_id: &str,
    only: Option<&str>,
    unlocker: &Arc<Unlocker>,
) -> Result<ReplicateReport, ReplicateError> {
    if from.describe() == to.describe() {
        return Err(ReplicateError::SameLocation { from: from.describe(), to: to.describe() });
    }
    let points = point::list_points(from, cluster_id).await?;
    if let Some(id) = only {
        let p = point::find_point(&points, id, cluster_id)?;
        if !p.complete {
            return Err(PointError::Incomplete { point: p.id.clone() }.into());
        }
    }
    // Fails only when no point of the cluster opens: the passphrase is wrong.
    let judged = point::judge_all(from, cluster_id, &points, unlocker).await?;
    let mut report = ReplicateReport { from: from.describe(), to: to.describe(), points: Vec::new() };
    // Suspect at the source and copied because named: suspect at the destination too.
    let mut suspect = BTreeSet::new();
    // Oldest first: an interrupted run leaves the newest to the next one, never a gap.
    for Judged { point: p, standing } in judged.into_iter().rev() {
        if only.is_some_and(|id| id != p.id) {
            continue;
        }
        let outcome = match standing {
            Standing::Incomplete if p.tampered.is_empty() => continue,
            Standing::Incomplete => PointCopy::PassedOver { reason: format!("tampered: {}", p.tampered.join("; ")) },
            Standing::Refused(e) => PointCopy::PassedOver { reason: crate::error_text(&e) },
            Standing::Suspect { reason, .. } if only.is_none() => {
                PointCopy::PassedOver { reason: format!("suspect: {reason}; copy it by naming it (--point {})", p.id) }
            }
            Standing::Suspect { manifest, .. } => {
                suspect.insert(p.id.clone());
                copy_or_fail(from, to, check, cluster_id, &p, &manifest).await?
            }
            Standing::Genuine(manifest) => copy_or_fail(from, to, check, cluster_id, &p, &manifest).await?,
        };
        if let PointCopy::PassedOver { reason } = &outcome {
            tracing::warn!(point = %p.id, reason = %reason, "not replicated: this point cannot be trusted");
        }
        report.points.push((p.id.clone(), outcome));
    }
    authenticate_copies(check, cluster_id, unlocker, &suspect, &mut report).await?;
    for (id, outcome) in &report.points {
        tracing::info!(point = %id, outcome = ?outcome, "replicated");
    }
    Ok(report)
}

/// [`copy_point`], a failure that concerns this point alone reported on it; one of the
/// destination (unreachable, refused) ends the run, as nothing else would go better.
async fn copy_or_fail(
    from: &Location,
    to: &Location,
    check: &Location,
    cluster_id: &str,
    p: &PointSummary,
    manifest: &Manifest,
) -> Result<PointCopy, ReplicateError> {
    match copy_point(from, to, check, cluster_id, p, manifest).await {
        Ok(c) => Ok(c),
        Err(
            e @ (LocationError::Unreachable { .. }
            | LocationError::AccessDenied { .. }
            | LocationError::NoCredentials { .. }
            | LocationError::NoSuchBucket { .. }),
        ) => Err(e.into()),
        Err(e) => Ok(PointCopy::Failed { reason: crate::error_text(&e) }),
    }
}

/// Copies one point's files, archive first; the manifest's bytes are read back from the
/// destination and compared (the archive is checked whole by [`authenticate_copies`]). A file
/// already at the destination is compared with the source's; a new one is read from the source
/// once, as it is copied.
async fn copy_point(
    from: &Location,
    to: &Location,
    check: &Location,
    cluster_id: &str,
    p: &PointSummary,
    manifest: &Manifest,
) -> Result<PointCopy, LocationError> {
    let mut copied = 0u64;
    let mut present = true;
    for (object, listed) in [(ARCHIVE_OBJECT, &p.archive), (MANIFEST_OBJECT, &p.manifest)] {
        let key = point::object_key(cluster_id, &p.id, object);
        let version = listed.as_ref().filter(|_| p.versions_seen);
        match sha256_of_written(check, &key).await {
            Ok(existing) if existing == sha256_of(open_source(from, &key, version).await?).await? => continue,
            Ok(_) => return Ok(PointCopy::Differs { object: key }),
            Err(LocationError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        present = false;
        let metadata = match object {
            MANIFEST_OBJECT => source_evidence(from, &key, listed.as_ref(), version, manifest).await?,
            _ => BTreeMap::new(),
        };
        let written = match copy_object(open_source(from, &key, version).await?, to, &key, metadata).await {
            Ok(w) => w,
            // Someone wrote it since we looked: the same bytes are as good as ours.
            Err(LocationError::AlreadyExists { .. }) => {
                let source = sha256_of(open_source(from, &key, version).await?).await?;
                if sha256_of_written(check, &key).await? != source {
                    return Ok(PointCopy::Differs { object: key });
                }
                source
            }
            Err(e) => return Err(e),
        };
        if object == MANIFEST_OBJECT && sha256_of_written(check, &key).await? != written {
            return Ok(PointCopy::Failed { reason: format!("{key} reads back from {} different from what was written: check the destination", to.describe()) });
        }
        copied += written.0;
    }
    let tampered = p.tampered.clone();
    Ok(if present { PointCopy::Present { tampered } } else { PointCopy::Copied { bytes: copied, tampered } })
}

/// Each point copied now, judged at the destination as a restore there would judge it (its
/// pinned manifest authenticates, its dates agree with the source's evidence) and its archive
/// decrypted and checked in full. A copy that does not is `Failed`, never called verified.
async fn authenticate_copies(
    check: &Location,
    cluster_id: &str,
    unlocker: &Arc<Unlocker>,
    suspect_at_source: &BTreeSet<String>,
    report: &mut ReplicateReport,
) -> Result<(), ReplicateError> {
    let there_now = |c: &PointCopy| matches!(c, PointCopy::Copied { .. } | PointCopy::Present { .. });
    if !report.points.iter().any(|(_, c)| there_now(c)) {
        return Ok(());
    }
    // The destination holds copies: their carried evidence counts there.
    let check = &check.as_replica();
    let there = point::list_points(check, cluster_id).await?;
    let judged = match point::judge_all(check, cluster_id, &there, unlocker).await {
        Ok(j) => j,
        // Nothing at the destination opens with the passphrase the source's points open with.
        Err(e @ PointError::Format { .. }) if e.is_wrong_passphrase() => {
            let reason = format!("does not authenticate at {}: {}", check.describe(), crate::error_text(&e));
            for (_, copy) in report.points.iter_mut().filter(|(_, c)| there_now(c)) {
                *copy = PointCopy::Failed { reason: reason.clone() };
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for (id, copy) in report.points.iter_mut() {
        if !there_now(copy) {
            continue;
        }
        // A copy already there was put there before this run, perhaps by someone else with the
        // destination's write credentials: it is write-once, so a run cannot mend it.
        let advice = if matches!(copy, PointCopy::Present { .. }) {
            "it was there before this run and is write-once: check who wrote it"
        } else {
            "run again, or check the destination"
        };
        let failed = |why: String| PointCopy::Failed { reason: format!("the copy at {} {why}: {advice}", check.describe()) };
        let Some(j) = judged.iter().find(|j| j.point.id == *id) else {
            *copy = failed("is not listed".into());
            continue;
        };
        let manifest = match &j.standing {
            Standing::Genuine(m) => m,
            // Named and copied though suspect at the source; still suspect here.
            Standing::Suspect { manifest, .. } if suspect_at_source.contains(id.as_str()) => manifest,
            Standing::Suspect { reason, .. } => {
                *copy = failed(format!("is suspect there though genuine at the source: {reason}"));
                continue;
            }
            Standing::Refused(e) => {
                *copy = failed(format!("does not open: {}", crate::error_text(e)));
                continue;
            }
            Standing::Incomplete => {
                *copy = failed("has no manifest".into());
                continue;
            }
        };
        // A copy already there matched the source's bytes file for file; one made now is
        // decrypted whole.
        if matches!(copy, PointCopy::Present { .. }) {
            continue;
        }
        if let Err(e) = point::verify_entries(check, manifest, unlocker).await {
            if let PointError::Location(e) = e {
                return Err(e.into());
            }
            *copy = failed(format!("does not verify: {}", crate::error_text(&e)));
        }
    }
    Ok(())
}

/// The version kubectl-dr wrote at the source (`version`, where versions are listed), else the
/// current object.
async fn open_source(from: &Location, key: &str, version: Option<&ObjectVersion>) -> Result<ObjectReader, LocationError> {
    Ok(match version {
        Some(v) => from.open_version(key, v).await?.1,
        None => from.open(key).await?.1,
    })
}

/// Size and SHA-256 of what kubectl-dr wrote under `key` at a location: its first version where
/// the location lists versions (a later one is someone else's), else the current object.
async fn sha256_of_written(location: &Location, key: &str) -> Result<(u64, Vec<u8>), LocationError> {
    let (history, seen) = location.history(key).await?;
    let reader = match (seen, history.pinned()) {
        (History::Versions, Some(v)) => location.open_version(key, v).await?.1,
        (History::Versions, None) => return Err(LocationError::NotFound { location: location.describe(), key: key.into() }),
        (History::CurrentOnly { .. }, _) => location.open(key).await?.1,
    };
    sha256_of(reader).await
}

async fn sha256_of(mut reader: ObjectReader) -> Result<(u64, Vec<u8>), LocationError> {
    crate::location::sha256(&mut reader).await.map_err(|e| LocationError::Io { action: "reading", path: "object".into(), source: e })
}

/// What the copy of a manifest carries as [`point::SOURCE_STORED_AT`]: what the source's own
/// copy carries (a copy of a copy), else when the source store received it, else (a directory,
/// which keeps no receipt time a reader may trust) the completion time the authenticated
/// manifest states, so the copy is trusted as far as the source was and no further.
async fn source_evidence(
    from: &Location,
    key: &str,
    listed: Option<&ObjectVersion>,
    version: Option<&ObjectVersion>,
    manifest: &Manifest,
) -> Result<BTreeMap<String, String>, LocationError> {
    let info = from.head(key, version).await?;
    let evidence = match info.metadata.get(point::SOURCE_STORED_AT) {
        Some(carried) => carried.clone(),
        None => match listed.and_then(|v| v.stored_at) {
            Some(stored) => point::rfc3339(stored),
            None => manifest.completed_at.clone(),
        },
    };
    Ok(BTreeMap::from([(point::SOURCE_STORED_AT.to_owned(), evidence)]))
}

/// Streams one object across; returns the size and SHA-256 of what was read and written.
async fn copy_object(mut reader: ObjectReader, to: &Location, key: &str, metadata: BTreeMap<String, String>) -> Result<(u64, Vec<u8>), LocationError> {
    let mut upload = to.create_with_metadata(key, metadata).await?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                upload.abort().await;
                return Err(LocationError::Io { action: "reading", path: key.into(), source: e });
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = upload.write(&buf[..n]).await {
            upload.abort().await;
            return Err(e);
        }
        total += n as u64;
        ctx.update(&buf[..n]);
    }
    upload.finish().await?;
    Ok((total, ctx.finish().as_ref().to_vec()))
}
