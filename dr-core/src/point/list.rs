//! Listing a cluster's points and choosing one (newest, by time or by name), before anything is
//! decrypted.

use super::{ARCHIVE_OBJECT, MANIFEST_OBJECT, PointError, point_time, points_prefix, rfc3339, validate_cluster_id};
use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::location::Location;

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
