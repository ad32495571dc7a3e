//! Listing a cluster's points and choosing one (newest, by time or by name), before anything is
//! decrypted.
//!
//! The listing is built from every stored version where the location keeps them: each file
//! of a point is the version kubectl-dr wrote (the first), and anything written after it is
//! evidence on the point, never what is read.

use super::{point_time, points_prefix, rfc3339, validate_cluster_id, PointError, ARCHIVE_OBJECT, MANIFEST_OBJECT};
use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::location::{History, Location, ObjectVersion};

/// A point as listing shows it, before anything is decrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointSummary {
    pub id: String,
    pub time: OffsetDateTime,
    /// Both the archive and the manifest exist.
    pub complete: bool,
    pub stored_bytes: u64,
    /// The stored version of the manifest kubectl-dr wrote (the first; see
    /// [`crate::location::KeyHistory::pinned`]): what every reader reads, whatever was written over it.
    pub manifest: Option<ObjectVersion>,
    /// The same for the archive.
    pub archive: Option<ObjectVersion>,
    /// What the store shows was done to the point after it was written: each later version,
    /// delete marker or planted link, named. Never empty for a point someone wrote over
    /// where versions can be listed.
    pub tampered: Vec<String>,
    /// Whether the listing saw every stored version (an S3 bucket with version rights). When
    /// not, an overwrite cannot be told from the original.
    pub versions_seen: bool,
}

/// Lists a cluster's points, newest first (by ID: time, then tag). Objects that are not points
/// are ignored; links, directories and other things kubectl-dr never writes inside a point are
/// reported on it as tampering.
pub async fn list_points(location: &Location, cluster_id: &str) -> Result<Vec<PointSummary>, PointError> {
    validate_cluster_id(cluster_id)?;
    let prefix = points_prefix(cluster_id);
    let inventory = location.inventory(&prefix).await?;
    let versions_seen = inventory.history == History::Versions;
    let mut points: BTreeMap<String, PointSummary> = BTreeMap::new();
    for (key, history) in &inventory.keys {
        let Some((id, file)) = key[prefix.len()..].split_once('/') else { continue };
        let Some(p) = point_entry(&mut points, id, versions_seen) else { continue };
        let slot = match file {
            ARCHIVE_OBJECT => &mut p.archive,
            MANIFEST_OBJECT => &mut p.manifest,
            _ => continue,
        };
        *slot = history.pinned().cloned();
        p.stored_bytes += slot.as_ref().map_or(0, |v| v.size);
        for later in history.later() {
            p.tampered.push(if later.delete_marker {
                format!("{file} is hidden by a delete marker (version {}) laid after kubectl-dr wrote it", later.id)
            } else {
                format!("{file} has a later version {} ({} bytes) written over the one kubectl-dr wrote; the first version is read", later.id, later.size)
            });
        }
    }
    for anomaly in &inventory.anomalies {
        let rest = &anomaly.key[prefix.len().min(anomaly.key.len())..];
        let (id, file) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(p) = point_entry(&mut points, id, versions_seen) else { continue };
        let what = if file.is_empty() { "the point's directory".to_owned() } else { file.to_owned() };
        p.tampered.push(format!("{what} is {}, which kubectl-dr never writes", anomaly.what));
    }
    let mut out: Vec<PointSummary> = points
        .into_values()
        // The manifest is written last, after the archive: a point with a manifest finished.
        // Its archive missing is damage (reading it says so), not an unfinished backup.
        .map(|p| PointSummary { complete: p.manifest.is_some(), ..p })
        .collect();
    out.reverse();
    Ok(out)
}

/// The listed point `id`, added when first seen; `None` when `id` is not a point ID.
fn point_entry<'a>(points: &'a mut BTreeMap<String, PointSummary>, id: &str, versions_seen: bool) -> Option<&'a mut PointSummary> {
    let time = point_time(id).ok()?;
    Some(points.entry(id.to_owned()).or_insert_with(|| PointSummary {
        id: id.to_owned(),
        time,
        complete: false,
        stored_bytes: 0,
        manifest: None,
        archive: None,
        tampered: Vec::new(),
        versions_seen,
    }))
}

/// The newest complete point at or before `at` (the newest complete point when `at` is None).
pub fn select_point<'a>(points: &'a [PointSummary], at: Option<OffsetDateTime>, cluster_id: &str, location: &Location) -> Result<&'a PointSummary, PointError> {
    if points.is_empty() {
        return Err(PointError::NoPoints { cluster_id: cluster_id.into(), location: location.describe() });
    }
    points.iter().find(|p| p.complete && at.is_none_or(|at| p.time <= at)).ok_or_else(|| PointError::NoneAtOrBefore {
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
    let shown: Vec<String> = points.iter().take(10).map(|p| format!("{} ({})", p.id, if p.complete { "complete" } else { "incomplete" })).collect();
    let more = points.len().saturating_sub(10);
    if more > 0 {
        format!("{} and {more} older", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
