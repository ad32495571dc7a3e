//! Which restore points a retention keeps, and pruning the rest. The selection is pure
//! (grandfather-father-son over the points' times); pruning deletes the manifest first, so an
//! interrupted prune leaves an incomplete point, never a complete one missing its archive.
//!
//! Prune trusts no name. Anyone holding the backup's write credentials can add points with
//! any ID (an attacker who owned the source cluster does), so retention counts only points
//! whose manifest authenticates with the passphrase, at the creation time that manifest
//! states, and ignores points dated in the future. Points that do not authenticate are
//! reported and left in place: deleting them is the operator's call. So are points whose
//! dates disagree with each other or with the store ([`point::suspect_dates`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::location::{Location, LocationError, ObjectVersion};
use crate::point::{self, PointSummary, Unlocker};
use crate::resources::Retention;

/// Incomplete points younger than this may still be uploading; prune leaves them alone.
pub const INCOMPLETE_GRACE: Duration = Duration::hours(24);

/// The IDs of the points `retention` keeps: for each period, the newest complete point of
/// each of the most recent N hours / days / ISO weeks / months / years that have one. The
/// newest complete point is always kept, never fewer complete points than the retention's
/// smallest count (while there are that many), and every incomplete point younger than
/// [`INCOMPLETE_GRACE`]. `points` must carry trusted times (see [`prune`]).
pub fn keep(points: &[PointSummary], retention: &Retention, now: OffsetDateTime) -> BTreeSet<String> {
    let mut complete: Vec<&PointSummary> = points.iter().filter(|p| p.complete).collect();
    complete.sort_by_key(|p| std::cmp::Reverse(p.time));
    let mut kept = BTreeSet::new();
    // The floor: the newest points, as many as the smallest count the retention names (at
    // least one), so no selection can leave fewer.
    for p in complete.iter().take(smallest_count(retention)) {
        kept.insert(p.id.clone());
    }
    let periods: [(u32, PeriodOf); 5] = [
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

/// The period a time falls in, as a comparable key: (year, day or week or month, hour, 0).
type PeriodOf = fn(OffsetDateTime) -> (i32, u32, u32, u32);

/// The smallest non-zero count of a retention; 1 when it names none.
fn smallest_count(retention: &Retention) -> usize {
    [retention.hourly, retention.daily, retention.weekly, retention.monthly, retention.yearly].into_iter().filter(|n| *n > 0).min().unwrap_or(1) as usize
}

/// What happened to one point a prune did not keep.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum Pruned {
    Deleted {
        point: String,
    },
    /// Object Lock still protects it; it can be deleted after `until`.
    Protected {
        point: String,
        until: String,
    },
    WouldDelete {
        point: String,
    },
    Failed {
        point: String,
        error: String,
    },
    /// Its manifest does not authenticate, or it is dated in the future: not counted by the
    /// retention and left in place.
    Untrusted {
        point: String,
        reason: String,
    },
}

/// Deletes the points of `cluster_id` that `retention` does not keep (or only says which,
/// with `dry_run`). Needs the passphrase (to authenticate each manifest) and credentials that
/// may list, read and delete. Fails, deleting nothing, when no point opens with the passphrase.
///
/// On a bucket whose versions it can list, prune acts on the versions kubectl-dr wrote: it
/// checks *their* Object Lock, and deletes by version ID (never a bare DELETE, which would lay
/// a delete marker over a locked version and hide the point), the versions written over a
/// point first and kubectl-dr's own last, so a point it cannot finish deleting stays whole.
pub async fn prune(
    location: &Location,
    cluster_id: &str,
    retention: &Retention,
    unlocker: &Arc<Unlocker>,
    now: OffsetDateTime,
    dry_run: bool,
) -> Result<(BTreeSet<String>, Vec<Pruned>), point::PointError> {
    let listed = point::list_points(location, cluster_id).await?;
    let judged = point::judge_all(location, cluster_id, &listed, unlocker).await?;
    let mut outcomes = Vec::new();
    // What the retention may count: authenticated points whose dates agree, at the creation
    // time their manifest states, and incomplete ones (no manifest: nothing to authenticate,
    // removed only after the grace).
    let mut trusted = Vec::new();
    for point::Judged { point: p, standing } in judged {
        match standing {
            point::Standing::Incomplete if !p.tampered.is_empty() => {
                outcomes.push(Pruned::Untrusted { point: p.id, reason: format!("tampered with: {}", p.tampered.join("; ")) })
            }
            point::Standing::Incomplete => trusted.push(p),
            point::Standing::Refused(e) => {
                let reason = match e {
                    point::PointError::DoesNotOpen { .. } | point::PointError::DoesNotOpenNoneGenuine { .. } => {
                        "does not open with the passphrase while other points do: damaged or forged".to_owned()
                    }
                    // Not deleted: it may be a genuine point of an earlier passphrase.
                    point::PointError::OlderThanPassphrase { .. } => {
                        "does not open with the passphrase, while newer points do: written under an earlier passphrase, or damaged or forged".to_owned()
                    }
                    other => crate::error_text(&other),
                };
                outcomes.push(Pruned::Untrusted { point: p.id, reason })
            }
            point::Standing::Suspect { reason, .. } => outcomes.push(Pruned::Untrusted { point: p.id, reason: format!("suspect: {reason}") }),
            point::Standing::Genuine(m) => match trusted_time(&m.created_at, now) {
                Ok(created) => trusted.push(PointSummary { time: created, ..p }),
                Err(reason) => outcomes.push(Pruned::Untrusted { point: p.id, reason }),
            },
        }
    }
    let kept = keep(&trusted, retention, now);
    // Points are deleted a few at a time: each is a handful of round trips to the store, and a
    // location that has gathered thousands of points (retention tightened, pruning resumed)
    // must not take one round trip after another. Each point's own order (its manifest first)
    // is kept; the outcomes keep the points' order.
    let deletions = futures::stream::iter(trusted.iter().filter(|p| !kept.contains(&p.id)))
        .map(|p| prune_one(location, cluster_id, p, now, dry_run))
        .buffered(PRUNE_CONCURRENCY)
        .collect::<Vec<Pruned>>()
        .await;
    outcomes.extend(deletions);
    Ok((kept, outcomes))
}

/// Points a prune deletes at once.
const PRUNE_CONCURRENCY: usize = 16;

/// Deletes one point the retention does not keep, unless its Object Lock still holds it.
async fn prune_one(location: &Location, cluster_id: &str, p: &PointSummary, now: OffsetDateTime, dry_run: bool) -> Pruned {
    let files = [(point::MANIFEST_OBJECT, &p.manifest), (point::ARCHIVE_OBJECT, &p.archive)];
    match protected_until(location, cluster_id, p, &files, now).await {
        Err(e) => Pruned::Failed { point: p.id.clone(), error: crate::error_text(&e) },
        Ok(Some(until)) => Pruned::Protected { point: p.id.clone(), until: point::rfc3339(until) },
        Ok(None) if dry_run => Pruned::WouldDelete { point: p.id.clone() },
        // The manifest goes first: if the archive's delete fails, the point is incomplete.
        Ok(None) => match delete_point(location, cluster_id, p).await {
            Ok(()) => Pruned::Deleted { point: p.id.clone() },
            Err(e) => Pruned::Failed { point: p.id.clone(), error: crate::error_text(&e) },
        },
    }
}

/// The creation time an authenticated manifest states, unless it is in the future (a writer
/// holding the passphrase could date points ahead to crowd out the genuine ones).
fn trusted_time(created_at: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let created = OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("its manifest's creation time {created_at:?} does not parse: {e}"))?;
    if created > now + point::CLOCK_SKEW {
        return Err(format!("its manifest says it was created {created_at}, which is in the future"));
    }
    Ok(created)
}

/// The latest Object Lock retention still in force on the versions kubectl-dr wrote of a
/// point's files: a delete would be refused.
async fn protected_until(
    location: &Location,
    cluster_id: &str,
    p: &PointSummary,
    files: &[(&str, &Option<ObjectVersion>)],
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, LocationError> {
    let mut latest = None;
    for (object, version) in files {
        let Some(version) = version else { continue };
        let key = point::object_key(cluster_id, &p.id, object);
        match location.head(&key, Some(version).filter(|_| p.versions_seen)).await {
            Ok(info) => latest = latest.max(info.retention.map(|(_, until)| until).filter(|until| *until > now)),
            Err(LocationError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(latest)
}

/// Deletes a point: the manifest first, then the archive. Where versions are listed, each
/// file's every version by ID, those written over it first, kubectl-dr's own last.
async fn delete_point(location: &Location, cluster_id: &str, p: &PointSummary) -> Result<(), LocationError> {
    for object in [point::MANIFEST_OBJECT, point::ARCHIVE_OBJECT] {
        let key = point::object_key(cluster_id, &p.id, object);
        if !p.versions_seen {
            match location.delete(&key, None).await {
                Ok(()) | Err(LocationError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        let (history, _) = location.history(&key).await?;
        let Some(pinned) = history.pinned() else { continue };
        let mut order: Vec<&ObjectVersion> = history.later().iter().rev().collect();
        order.push(pinned);
        order.extend(history.versions.iter().filter(|v| v.delete_marker && !history.later().contains(v)));
        for version in order {
            match location.delete(&key, Some(version)).await {
                Ok(()) | Err(LocationError::NotFound { .. }) => {}
                Err(e) if version != pinned => {
                    return Err(LocationError::Invalid(format!(
                        "{key}: version {} written over the one kubectl-dr wrote cannot be deleted ({}); the point is left whole",
                        version.id,
                        crate::error_text(&e)
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// `kubectl dr prune`: the DR policy's retention applied to where its backups go.
pub struct PolicyPrune {
    pub namespace: String,
    /// A location given from here instead of the policy's profile (the same points, reached
    /// with credentials that may delete).
    pub location: Option<Location>,
    /// The passphrase given from here; `None`: `k10-dr-secret`'s, resolved with `resolve`, as
    /// the backups get it.
    pub passphrase: Option<crate::format::crypto::Passphrase>,
    pub resolve: crate::passphrase::ResolveOptions,
    pub dry_run: bool,
}

/// What a prune kept and did.
#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    #[serde(skip)]
    pub location: String,
    pub kept: BTreeSet<String>,
    pub pruned: Vec<Pruned>,
}

impl PruneReport {
    pub fn failed(&self) -> bool {
        self.pruned.iter().any(|o| matches!(o, Pruned::Failed { .. }))
    }

    pub fn untrusted(&self) -> usize {
        self.pruned.iter().filter(|o| matches!(o, Pruned::Untrusted { .. })).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("DR is not enabled in namespace {namespace}: there is no retention to apply")]
    NotEnabled { namespace: String },
    #[error(transparent)]
    Ownership(#[from] crate::ownership::OwnershipError),
    #[error(transparent)]
    Resource(#[from] crate::resources::ResourceError),
    #[error(transparent)]
    Passphrase(#[from] crate::passphrase::PassphraseError),
    #[error("reading the DR policy failed")]
    Api(#[source] kube::Error),
    #[error("pruning {location} (prune needs credentials that may list, read and delete)")]
    Prune { location: String, source: point::PointError },
}

impl crate::failure::Classify for PruneError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        use PruneError as E;
        match self {
            E::NotEnabled { .. } => ErrorKind::BadInput,
            E::Ownership(e) => e.kind(),
            E::Resource(e) => e.kind(),
            E::Passphrase(e) => e.kind(),
            E::Api(e) => e.kind(),
            E::Prune { source, .. } => source.kind(),
        }
    }
}

/// Applies the DR policy's retention to this cluster's points: at the policy profile's
/// location (or `request.location`), with the passphrase that authenticates them. Refused on
/// a cluster that does not own the location: two owners must never prune the same points.
pub async fn prune_policy(client: &kube::Client, request: PolicyPrune) -> Result<PruneReport, PruneError> {
    let ns = &request.namespace;
    crate::ownership::ensure_owner(client, ns).await?;
    let policy = kube::Api::<crate::resources::Policy>::namespaced(client.clone(), ns)
        .get_opt(crate::catalog::DR_POLICY_NAME)
        .await
        .map_err(PruneError::Api)?
        .ok_or_else(|| PruneError::NotEnabled { namespace: ns.clone() })?;
    let location = match request.location {
        Some(location) => location,
        None => crate::resources::connect_profile(client, ns, &policy.spec.profile, None).await?,
    };
    let cluster_id = crate::ownership::cluster_id(client).await?;
    let passphrase = match request.passphrase {
        Some(p) => p,
        None => crate::resources::dr_secret_source(client, ns).await?.resolve(&request.resolve).await?,
    };
    let now = OffsetDateTime::now_utc();
    let (kept, pruned) = prune(&location, &cluster_id, &policy.spec.retention, &Unlocker::new(passphrase), now, request.dry_run)
        .await
        .map_err(|source| PruneError::Prune { location: location.describe(), source })?;
    Ok(PruneReport { location: location.describe(), kept, pruned })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn summary(id: String, time: OffsetDateTime, complete: bool) -> PointSummary {
        PointSummary { id, time, complete, stored_bytes: 1, manifest: None, archive: None, tampered: Vec::new(), versions_seen: false }
    }

    fn points(times: &[OffsetDateTime]) -> Vec<PointSummary> {
        times.iter().enumerate().map(|(i, t)| summary(format!("{}-{i:08x}", t.unix_timestamp()), *t, true)).collect()
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
        pts.push(summary("young-incomplete".into(), now - Duration::hours(1), false));
        pts.push(summary("old-incomplete".into(), now - Duration::days(3), false));
        let none = Retention { hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
        let kept = keep(&pts, &none, now);
        assert!(kept.contains(&pts[0].id), "newest complete");
        assert!(!kept.contains(&pts[1].id));
        assert!(kept.contains("young-incomplete"));
        assert!(!kept.contains("old-incomplete"));
    }

    #[test]
    fn never_fewer_points_than_the_smallest_count() {
        let now = datetime!(2026-11-21 12:00 UTC);
        // Ten points within one day: a daily retention alone would keep one of them.
        let times: Vec<_> = (0..10).map(|m| now - Duration::minutes(m * 10)).collect();
        let pts = points(&times);
        let r = Retention { hourly: 0, daily: 7, weekly: 0, monthly: 3, yearly: 0 };
        let kept = keep(&pts, &r, now);
        assert_eq!(kept.len(), 3, "the smallest count is 3: {kept:?}");
        for p in &pts[..3] {
            assert!(kept.contains(&p.id));
        }
    }

    #[test]
    fn points_dated_in_the_future_are_not_trusted() {
        let now = datetime!(2026-11-21 12:00 UTC);
        assert_eq!(trusted_time("2026-11-21T12:04:00Z", now), Ok(datetime!(2026-11-21 12:04 UTC)), "within the clock skew");
        let err = trusted_time("2026-11-22T12:00:00Z", now).unwrap_err();
        assert!(err.contains("in the future"), "{err}");
        assert!(trusted_time("yesterday", now).is_err());
    }
}
