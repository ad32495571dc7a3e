//! Which restore points a retention keeps, and pruning the rest. The selection is pure
//! (grandfather-father-son over the points' times); pruning deletes the manifest first, so an
//! interrupted prune leaves an incomplete point, never a complete one missing its archive.

use std::collections::BTreeSet;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::location::{Location, LocationError};
use crate::point::{self, PointSummary};
use crate::resources::Retention;

/// Incomplete points younger than this may still be uploading; prune leaves them alone.
pub const INCOMPLETE_GRACE: Duration = Duration::hours(24);

/// The IDs of the points `retention` keeps: for each period, the newest complete point of
/// each of the most recent N hours / days / ISO weeks / months / years that have one. The
/// newest complete point is always kept, and so is every incomplete point younger than
/// [`INCOMPLETE_GRACE`].
pub fn keep(points: &[PointSummary], retention: &Retention, now: OffsetDateTime) -> BTreeSet<String> {
    let mut complete: Vec<&PointSummary> = points.iter().filter(|p| p.complete).collect();
    complete.sort_by(|a, b| b.time.cmp(&a.time));
    let mut kept = BTreeSet::new();
    if let Some(newest) = complete.first() {
        kept.insert(newest.id.clone());
    }
    let periods: [(u32, fn(OffsetDateTime) -> (i32, u32, u32, u32)); 5] = [
        (retention.hourly, |t| (t.year(), t.ordinal() as u32, t.hour() as u32, 0)),
        (retention.daily, |t| (t.year(), t.ordinal() as u32, 0, 0)),
        (retention.weekly, |t| {
            let (y, w, _) = t.to_iso_week_date();
            (y, w as u32, 0, 1)
        }),
        (retention.monthly, |t| (t.year(), t.month() as u32, 0, 2)),
        (retention.yearly, |t| (t.year(), 0, 0, 3)),
    ];
    for (count, bucket) in periods {
        let mut seen = BTreeSet::new();
        for p in &complete {
            if seen.len() >= count as usize {
                break;
            }
            if seen.insert(bucket(p.time)) {
                kept.insert(p.id.clone());
            }
        }
    }
    for p in points.iter().filter(|p| !p.complete && now - p.time < INCOMPLETE_GRACE) {
        kept.insert(p.id.clone());
    }
    kept
}

/// What happened to one point a prune did not keep.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Pruned {
    Deleted { point: String },
    /// Object Lock still protects it; it can be deleted after `until`.
    Protected { point: String, until: String },
    WouldDelete { point: String },
    Failed { point: String, error: String },
}

/// Deletes the points of `cluster_id` that `retention` does not keep (or only says which,
/// with `dry_run`). Needs credentials that may list, read object metadata and delete.
pub async fn prune(
    location: &Location,
    cluster_id: &str,
    retention: &Retention,
    now: OffsetDateTime,
    dry_run: bool,
) -> Result<(BTreeSet<String>, Vec<Pruned>), point::PointError> {
    let points = point::list_points(location, cluster_id).await?;
    let kept = keep(&points, retention, now);
    let mut outcomes = Vec::new();
    for p in points.iter().filter(|p| !kept.contains(&p.id)) {
        let keys = [point::MANIFEST_OBJECT, point::ARCHIVE_OBJECT].map(|o| point::object_key(cluster_id, &p.id, o));
        let outcome = match protected_until(location, &keys, now).await {
            Err(e) => Pruned::Failed { point: p.id.clone(), error: e.to_string() },
            Ok(Some(until)) => Pruned::Protected { point: p.id.clone(), until: point::rfc3339(until) },
            Ok(None) if dry_run => Pruned::WouldDelete { point: p.id.clone() },
            // The manifest goes first: if the archive's delete fails, the point is incomplete.
            Ok(None) => match delete_all(location, &keys).await {
                Ok(()) => Pruned::Deleted { point: p.id.clone() },
                Err(e) => Pruned::Failed { point: p.id.clone(), error: e.to_string() },
            },
        };
        outcomes.push(outcome);
    }
    Ok((kept, outcomes))
}

/// The latest Object Lock retention still in force on any of `keys`: a delete would be refused.
async fn protected_until(location: &Location, keys: &[String], now: OffsetDateTime) -> Result<Option<OffsetDateTime>, LocationError> {
    let mut latest = None;
    for key in keys {
        match location.head(key).await {
            Ok(info) => latest = latest.max(info.retention.map(|(_, until)| until).filter(|until| *until > now)),
            Err(LocationError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(latest)
}

async fn delete_all(location: &Location, keys: &[String]) -> Result<(), LocationError> {
    for key in keys {
        match location.delete(key).await {
            Ok(()) | Err(LocationError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn points(times: &[OffsetDateTime]) -> Vec<PointSummary> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| PointSummary { id: format!("{}-{i:08x}", t.unix_timestamp()), time: *t, complete: true, stored_bytes: 1 })
            .collect()
    }

    #[test]
    fn hourly_points_are_thinned_grandfather_father_son() {
        let now = datetime!(2026-11-21 12:30 UTC);
        // Every hour for 40 days.
        let times: Vec<_> = (0..40 * 24).map(|h| now - Duration::hours(h)).collect();
        let pts = points(&times);
        let r = Retention { hourly: 24, daily: 7, weekly: 4, monthly: 12, yearly: 1 };
        let kept = keep(&pts, &r, now);
        assert!(kept.len() <= 24 + 7 + 4 + 12 + 1, "{}", kept.len());
        let at = |t: OffsetDateTime| pts.iter().find(|p| p.time == t).unwrap().id.clone();
        // The 24 newest: hourly.
        for p in &pts[..24] {
            assert!(kept.contains(&p.id));
        }
        // Two days ago: only that day's newest point (daily).
        assert!(kept.contains(&at(datetime!(2026-11-19 23:30 UTC))));
        assert!(!kept.contains(&at(datetime!(2026-11-19 22:30 UTC))));
        // October's newest point (monthly), and not the one before it.
        assert!(kept.contains(&at(datetime!(2026-10-31 23:30 UTC))));
        assert!(!kept.contains(&at(datetime!(2026-10-31 22:30 UTC))));
    }

    #[test]
    fn the_newest_point_and_young_incomplete_points_are_always_kept() {
        let now = datetime!(2026-11-21 12:00 UTC);
        let mut pts = points(&[now - Duration::days(100), now - Duration::days(200)]);
        pts.push(PointSummary { id: "young-incomplete".into(), time: now - Duration::hours(1), complete: false, stored_bytes: 0 });
        pts.push(PointSummary { id: "old-incomplete".into(), time: now - Duration::days(3), complete: false, stored_bytes: 0 });
        let none = Retention { hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
        let kept = keep(&pts, &none, now);
        assert!(kept.contains(&pts[0].id), "newest complete");
        assert!(!kept.contains(&pts[1].id));
        assert!(kept.contains("young-incomplete"));
        assert!(!kept.contains("old-incomplete"));
    }
}
