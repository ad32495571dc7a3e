//! Off-site copies (`kubectl dr replicate`): a cluster's restore points copied from one
//! location to another as they are, encrypted, so the off-site side never holds a key.
//!
//! - Each point's files are copied archive first, manifest last: at the destination, as at
//!   the source, a point with a manifest is complete, so an interrupted copy never looks
//!   like a point, and running again finishes it.
//! - Writes are write-once (`If-None-Match: *` on S3, `O_EXCL` on files) and get the
//!   destination's own Object Lock retention (its profile's immutability).
//! - Every copy is read back from the destination (with read credentials, where the writing
//!   ones may only write) and its SHA-256 compared with the bytes read from the source. A file already at the destination is compared the same way: equal
//!   is done, different is reported and left (write-once: never overwritten).
//! - Nothing is decrypted: what the source holds, forged points included, is copied as it
//!   is; restores and prunes authenticate every point wherever it is read.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::location::{Location, LocationError};
use crate::point::{self, PointError, ARCHIVE_OBJECT, MANIFEST_OBJECT};

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
    /// Copied now, and verified at the destination.
    Copied { bytes: u64 },
    /// Already at the destination, byte for byte.
    Present,
    /// The destination has a file of this point that differs from the source's: left as it
    /// is (write-once), and said.
    Differs { object: String },
    /// The copy failed: why. Running again continues it.
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
    pub fn problems(&self) -> usize {
        self.points.iter().filter(|(_, c)| matches!(c, PointCopy::Differs { .. } | PointCopy::Failed { .. })).count()
    }
}

/// Copies the complete points of `cluster_id` (or only `only`) from `from` to `to`; what is
/// at the destination is read through `check` (the same location, or the same bucket with
/// read credentials, when `to`'s may only write).
pub async fn replicate(from: &Location, to: &Location, check: &Location, cluster_id: &str, only: Option<&str>) -> Result<ReplicateReport, ReplicateError> {
    if from.describe() == to.describe() {
        return Err(ReplicateError::SameLocation { from: from.describe(), to: to.describe() });
    }
    let points = point::list_points(from, cluster_id).await?;
    let chosen: Vec<&point::PointSummary> = match only {
        Some(id) => vec![point::find_point(&points, id, cluster_id)?],
        None => points.iter().filter(|p| p.complete).collect(),
    };
    if let Some(p) = chosen.iter().find(|p| !p.complete) {
        return Err(PointError::Incomplete { point: p.id.clone() }.into());
    }
    let mut report = ReplicateReport { from: from.describe(), to: to.describe(), points: Vec::new() };
    // Oldest first: an interrupted run leaves the newest to the next one, never a gap.
    for p in chosen.into_iter().rev() {
        let outcome = match copy_point(from, to, check, cluster_id, &p.id).await {
            Ok(c) => c,
            // The destination cannot be reached or written: nothing else would go better.
            Err(e @ (LocationError::Unreachable { .. } | LocationError::AccessDenied { .. } | LocationError::NoCredentials { .. } | LocationError::NoSuchBucket { .. })) => {
                return Err(e.into())
            }
            Err(e) => PointCopy::Failed { reason: crate::error_text(&e) },
        };
        tracing::info!(point = %p.id, outcome = ?outcome, "replicated");
        report.points.push((p.id.clone(), outcome));
    }
    Ok(report)
}

async fn copy_point(from: &Location, to: &Location, check: &Location, cluster_id: &str, point_id: &str) -> Result<PointCopy, LocationError> {
    let mut copied = 0u64;
    let mut present = true;
    for object in [ARCHIVE_OBJECT, MANIFEST_OBJECT] {
        let key = point::object_key(cluster_id, point_id, object);
        let source = sha256_of(from, &key).await?;
        match sha256_of(check, &key).await {
            Ok(existing) if existing == source => continue,
            Ok(_) => return Ok(PointCopy::Differs { object: key }),
            Err(LocationError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        present = false;
        let written = copy_object(from, to, &key).await?;
        let (bytes, hash) = sha256_of(check, &key).await?;
        if (bytes, hash) != written || written != source {
            return Ok(PointCopy::Failed { reason: format!("{key} reads back from {} different from what was written: check the destination", to.describe()) });
        }
        copied += bytes;
    }
    Ok(if present { PointCopy::Present } else { PointCopy::Copied { bytes: copied } })
}

/// Size and SHA-256 of an object.
async fn sha256_of(location: &Location, key: &str) -> Result<(u64, Vec<u8>), LocationError> {
    let (_, mut reader) = location.open(key).await?;
    crate::location::sha256(&mut reader).await.map_err(|e| LocationError::Io { action: "reading", path: key.into(), source: e })
}

/// Streams one object across; returns the size and SHA-256 of what was read and written.
async fn copy_object(from: &Location, to: &Location, key: &str) -> Result<(u64, Vec<u8>), LocationError> {
    let (_, mut reader) = from.open(key).await?;
    let mut upload = to.create(key).await?;
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
