//! The one way to open a point: list the cluster's points at a location, then choose one
//! ([`Which`]) among those that authenticate with the passphrase; or judge every point
//! ([`judge_all`]) for a listing, `verify` or retention. Every reader of points (restore,
//! drill, export, diff, the plugin's pre-flight, prune) goes through here, so they choose and
//! refuse points alike.
//!
//! Anyone holding the backup's write credentials can add points with any name. So:
//! - only points whose manifest authenticates are candidates; the others are passed over and
//!   reported, never chosen, never advised, and never make a right passphrase look wrong
//!   ("wrong passphrase" means no point of the cluster opens);
//! - a point that authenticates but whose dates disagree with each other or with the store
//!   ([`suspect_dates`]) is not chosen by time or as the newest, only by its ID;
//! - rejecting a forged point costs no key derivation where the cluster's points use format
//!   3's per-cluster key; a format 1 or 2 header (one derivation per point) dated after the
//!   cluster's oldest authenticated format 3 point is refused without one, since a writer that
//!   writes format 3 never goes back (`docs/format.md`).

use std::sync::Arc;

use futures::{stream, StreamExt};
use time::{Duration, OffsetDateTime};

use super::read::{read_manifest_head, ManifestHead};
use super::{find_point, list_points, rfc3339, Manifest, PointError, PointSummary, Unlocker};
use crate::location::Location;

/// Clock difference between a writer, the store and a reader that is still "the same time".
pub const CLOCK_SKEW: Duration = Duration::minutes(5);
/// How long after its stated creation a point's manifest may reach the store. A backup of a
/// cluster's objects takes seconds to minutes (1,000,000 objects in under a minute), so a point
/// the store received an hour after the time it states was written later and dated back, which
/// a writer holding the passphrase could do to crowd genuine points out of retention. A backup
/// that really ran this long is listed as suspect and still restorable by its ID.
pub const STORE_LAG: Duration = Duration::hours(1);
/// User metadata `kubectl dr replicate` sets on each copy of a manifest: when the source store
/// received the original (RFC 3339; from a directory, which keeps no such time, the completion
/// the manifest states), so a copy is judged by the original's evidence, not by its copy time.
/// Whoever can write at the destination can set it too: it is believed only when it fits the
/// point's own dates and is no later than the copy itself (`docs/security.md`).
pub const SOURCE_STORED_AT: &str = "kubectl-dr-source-stored-at";

/// Manifest headers fetched at once (each one ranged GET of at most
/// [`crate::format::MAX_HEADER_LEN`] bytes).
const FETCHES: usize = 16;

/// Which point to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which<'a> {
    /// The newest point that authenticates and is not suspect.
    Newest,
    /// The newest such point at or before this time (`pointInTime`).
    AtOrBefore(OffsetDateTime),
    /// This point, by ID (`--point`, `restorePointID`); an incomplete one is refused, a suspect
    /// one is opened with a warning (the operator named it).
    Id(&'a str),
}

impl<'a> Which<'a> {
    /// `--point ID` when given, else `--point-in-time`, else the newest.
    pub fn from_args(id: Option<&'a str>, at: Option<OffsetDateTime>) -> Self {
        match (id, at) {
            (Some(id), _) => Which::Id(id),
            (None, Some(at)) => Which::AtOrBefore(at),
            (None, None) => Which::Newest,
        }
    }
}

/// What a point turned out to be once its manifest was tried.
#[derive(Debug)]
pub enum Standing {
    /// Authenticates, and its dates agree with each other and with the store.
    Genuine(Manifest),
    /// Authenticates, but its dates do not agree: not chosen by time, not counted by retention.
    Suspect { manifest: Manifest, reason: String },
    /// Does not authenticate (damaged or forged), or its header names another cluster or point.
    Refused(PointError),
    /// No manifest: its backup did not finish.
    Incomplete,
}

impl Standing {
    /// The manifest, when the point authenticates.
    pub fn manifest(&self) -> Option<&Manifest> {
        match self {
            Standing::Genuine(m) | Standing::Suspect { manifest: m, .. } => Some(m),
            _ => None,
        }
    }
}

/// One listed point and its standing.
#[derive(Debug)]
pub struct Judged {
    pub point: PointSummary,
    pub standing: Standing,
}

/// A cluster's points at a location, the one chosen among them with its manifest, and the
/// points passed over on the way (ID and why).
#[derive(Clone, Debug)]
pub struct Chosen {
    pub cluster_id: String,
    pub points: Vec<PointSummary>,
    pub point: PointSummary,
    pub manifest: Manifest,
    pub passed_over: Vec<(String, String)>,
}

impl Chosen {
    /// Another of the same points, by ID, opened as [`Which::Id`] opens one (`kubectl dr diff A B`).
    pub async fn open_other(&self, location: &Location, id: &str, unlocker: &Arc<Unlocker>) -> Result<Manifest, PointError> {
        let other = complete_by_id(&self.points, id, &self.cluster_id)?.clone();
        Ok(open_named(location, &self.cluster_id, &self.points, &other, unlocker).await?.1)
    }
}

/// Lists `cluster_id`'s points at `location` and chooses one among those that authenticate.
pub async fn choose(location: &Location, cluster_id: &str, which: Which<'_>, unlocker: &Arc<Unlocker>) -> Result<Chosen, PointError> {
    let points = list_points(location, cluster_id).await?;
    if points.is_empty() {
        return Err(PointError::NoPoints { cluster_id: cluster_id.into(), location: location.describe() });
    }
    let (point, manifest, passed_over) = match which {
        Which::Id(id) => {
            let point = complete_by_id(&points, id, cluster_id)?.clone();
            let (warning, manifest) = open_named(location, cluster_id, &points, &point, unlocker).await?;
            (point, manifest, warning.into_iter().map(|w| (id.to_owned(), w)).collect())
        }
        Which::Newest => choose_by_time(location, cluster_id, &points, None, unlocker).await?,
        Which::AtOrBefore(at) => choose_by_time(location, cluster_id, &points, Some(at), unlocker).await?,
    };
    if !point.tampered.is_empty() {
        tracing::warn!(point = %point.id, evidence = %point.tampered.join("; "), "this point was written over at the location; what kubectl-dr wrote is read");
    }
    if !point.versions_seen {
        tracing::debug!(point = %point.id, "the location's versions cannot be listed, so an overwrite of this point could not be told from the original");
    }
    for (id, why) in &passed_over {
        tracing::warn!(point = %id, reason = %why, "restore point passed over");
    }
    Ok(Chosen { cluster_id: cluster_id.to_owned(), points, point, manifest, passed_over })
}

/// A point named by ID: opened if it authenticates (a suspect one with a warning, returned);
/// if it does not, told apart from a wrong passphrase by whether any other point opens, and
/// from a passphrase changed since it was written by whether only newer points open.
async fn open_named(
    location: &Location,
    cluster_id: &str,
    points: &[PointSummary],
    point: &PointSummary,
    unlocker: &Arc<Unlocker>,
) -> Result<(Option<String>, Manifest), PointError> {
    let fetched = read_manifest_head(location, cluster_id, point).await?;
    match judge(fetched.decrypt(location, unlocker).await, location, point, OffsetDateTime::now_utc()).await? {
        Standing::Genuine(m) => Ok((None, m)),
        Standing::Suspect { manifest, reason } => Ok((Some(format!("suspect, opened because it was named: {reason}")), manifest)),
        Standing::Refused(e) if e.is_wrong_passphrase() => {
            let others: Vec<&PointSummary> = points.iter().filter(|p| p.id != point.id).collect();
            match first_that_opens(location, cluster_id, &others, unlocker).await? {
                Opens { genuine: Some(opens), .. } => {
                    let as_old: Vec<&PointSummary> = others.iter().copied().filter(|p| p.time <= point.time).collect();
                    // Only genuine points count: a suspect one dated far back must not relabel
                    // every older point of an earlier passphrase as forged.
                    if first_that_opens(location, cluster_id, &as_old, unlocker).await?.genuine.is_some() {
                        Err(PointError::DoesNotOpen { point: point.id.clone(), opens })
                    } else {
                        Err(PointError::OlderThanPassphrase { point: point.id.clone(), opens })
                    }
                }
                Opens { any: true, .. } => Err(PointError::DoesNotOpenNoneGenuine { point: point.id.clone() }),
                Opens { any: false, .. } => Err(e),
            }
        }
        Standing::Refused(e) => Err(e),
        Standing::Incomplete => Err(PointError::Incomplete { point: point.id.clone() }),
    }
}

/// The newest point at or before `at` (any time when `None`) that authenticates and is not
/// suspect. Format 3 points are tried first as they come (no derivation to reject one); format
/// 1/2 ones are kept back, and refused unread when an authenticated format 3 point is older.
async fn choose_by_time(
    location: &Location,
    cluster_id: &str,
    points: &[PointSummary],
    at: Option<OffsetDateTime>,
    unlocker: &Arc<Unlocker>,
) -> Result<(PointSummary, Manifest, Vec<(String, String)>), PointError> {
    let now = OffsetDateTime::now_utc();
    let mut passed_over: Vec<(String, String)> = Vec::new();
    // Points whose listing alone makes them suspect are passed over unread: a flood of them
    // costs nothing to walk past, even from a writer holding the passphrase.
    let mut candidates: Vec<&PointSummary> = Vec::new();
    let mut unread: Vec<&PointSummary> = Vec::new();
    for p in points.iter().filter(|p| p.complete && at.is_none_or(|at| p.time <= at)) {
        match suspect_unread(p, now) {
            Some(reason) => {
                unread.push(p);
                passed_over.push((p.id.clone(), format!("suspect: {reason}; restore it by its ID only if you trust it")));
            }
            None => candidates.push(p),
        }
    }
    let mut wrong_passphrase: Option<PointError> = None;
    let mut any_opened = false;
    let mut legacy: Vec<(&PointSummary, ManifestHead)> = Vec::new();
    let mut fetches = stream::iter(candidates.iter().copied()).map(|p| async move { (p, read_manifest_head(location, cluster_id, p).await) }).buffered(FETCHES);
    let mut found = None;
    let mut unreadable: Option<PointError> = None;
    while let Some((p, fetched)) = fetches.next().await {
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) if whole_location(&e) => return Err(e),
            Err(e) => {
                passed_over.push((p.id.clone(), crate::error_text(&e)));
                // One point's object that cannot be read (planted in an archive storage class,
                // under a key the reader may not use) is that point's problem, not the walk's.
                if matches!(e, PointError::Location(_)) && unreadable.is_none() {
                    unreadable = Some(e);
                }
                continue;
            }
        };
        if fetched.legacy_kdf() {
            legacy.push((p, fetched));
            continue;
        }
        match judge(fetched.decrypt(location, unlocker).await, location, p, now).await? {
            Standing::Genuine(m) => {
                found = Some((p.clone(), m));
                break;
            }
            other => note_passed_over(p, other, &mut passed_over, &mut wrong_passphrase, &mut any_opened),
        }
    }
    drop(fetches);
    match found {
        Some((point, manifest)) => {
            // Every format 1/2 point kept back is newer than this format 3 one.
            for (p, _) in legacy {
                passed_over.push((p.id.clone(), PointError::LegacyAfterUpgrade { point: p.id.clone(), v3_point: point.id.clone() }.to_string()));
            }
            Ok((point, manifest, passed_over))
        }
        None => {
            for (p, fetched) in legacy {
                match judge(fetched.decrypt(location, unlocker).await, location, p, now).await? {
                    Standing::Genuine(m) => return Ok((p.clone(), m, passed_over)),
                    other => note_passed_over(p, other, &mut passed_over, &mut wrong_passphrase, &mut any_opened),
                }
            }
            // Nothing opened and something could not be read: that is the error, not the passphrase.
            if let (Some(e), false) = (unreadable, any_opened) {
                return Err(e);
            }
            // A point passed over unread that opens (a writer's clock far ahead, or this one
            // behind) still proves the passphrase right: "wrong passphrase" means no point of
            // the cluster opens.
            if wrong_passphrase.is_some() && !any_opened && !unread.is_empty() {
                any_opened = any_written_with_passphrase(location, cluster_id, &unread, unlocker).await?;
            }
            Err(none_chosen(location, cluster_id, points, at, unlocker, passed_over, wrong_passphrase, any_opened).await?)
        }
    }
}

fn note_passed_over(
    p: &PointSummary,
    standing: Standing,
    passed_over: &mut Vec<(String, String)>,
    wrong_passphrase: &mut Option<PointError>,
    any_opened: &mut bool,
) {
    match standing {
        Standing::Suspect { reason, .. } => {
            *any_opened = true;
            passed_over.push((p.id.clone(), format!("suspect: {reason}")));
        }
        Standing::Refused(e) => {
            passed_over.push((
                p.id.clone(),
                if e.is_wrong_passphrase() {
                    "does not open with this passphrase: written under another, damaged or forged".to_owned()
                } else {
                    crate::error_text(&e)
                },
            ));
            if e.is_wrong_passphrase() && wrong_passphrase.is_none() {
                *wrong_passphrase = Some(e);
            }
        }
        Standing::Genuine(_) | Standing::Incomplete => {}
    }
}

/// Why no point was chosen: the passphrase is wrong only when no point of the cluster opens.
#[allow(clippy::too_many_arguments)]
async fn none_chosen(
    location: &Location,
    cluster_id: &str,
    points: &[PointSummary],
    at: Option<OffsetDateTime>,
    unlocker: &Arc<Unlocker>,
    passed_over: Vec<(String, String)>,
    wrong_passphrase: Option<PointError>,
    any_opened: bool,
) -> Result<PointError, PointError> {
    let at_text = at.map(rfc3339).unwrap_or_else(|| "now".into());
    // Candidates were refused for the passphrase and none opened: the passphrase is wrong,
    // unless a point outside the selection opens.
    if let (false, Some(wrong_passphrase)) = (any_opened, wrong_passphrase) {
        let mut later_opens = false;
        if let Some(at) = at {
            let newer: Vec<&PointSummary> = points.iter().filter(|p| p.complete && p.time > at).collect();
            let opens = first_that_opens(location, cluster_id, &newer, unlocker).await?;
            if let Some(newest_open) = opens.genuine {
                return Ok(PointError::NoneOpensAtOrBefore { cluster_id: cluster_id.into(), at: at_text, newest_open });
            }
            later_opens = opens.any;
        }
        // Only suspect later points open: the passphrase is right; the listing below says why
        // each point was not taken.
        if !later_opens {
            return Ok(wrong_passphrase);
        }
    }
    // Every point, newest first, with why it was not taken.
    let why = |p: &PointSummary| -> String {
        if let Some((_, why)) = passed_over.iter().find(|(id, _)| *id == p.id) {
            return why.clone();
        }
        match at {
            _ if !p.tampered.is_empty() => format!("tampered: {}", p.tampered.join("; ")),
            _ if !p.complete => "incomplete".into(),
            Some(at) if p.time > at => "later".into(),
            _ => "complete".into(),
        }
    };
    let mut available: Vec<String> = points.iter().take(10).map(|p| format!("{} ({})", p.id, why(p))).collect();
    if points.len() > 10 {
        available.push(format!("and {} older", points.len() - 10));
    }
    Ok(PointError::NoneAtOrBefore { cluster_id: cluster_id.into(), at: at_text, available: available.join(", ") })
}

/// What [`first_that_opens`] found.
struct Opens {
    /// The newest point that authenticates and whose dates agree: what to advise.
    genuine: Option<String>,
    /// Whether any point authenticates (suspect or not): proof that the passphrase is right.
    any: bool,
}

/// Tries `points` newest first until one authenticates with dates that agree, noting whether
/// any authenticates at all. Format 3 points first (cheap), then format 1/2.
async fn first_that_opens(location: &Location, cluster_id: &str, points: &[&PointSummary], unlocker: &Arc<Unlocker>) -> Result<Opens, PointError> {
    let now = OffsetDateTime::now_utc();
    let mut opens = Opens { genuine: None, any: false };
    let mut legacy = Vec::new();
    let mut fetches = stream::iter(points.iter().copied().filter(|p| p.complete))
        .map(|p| async move { (p, read_manifest_head(location, cluster_id, p).await) })
        .buffered(FETCHES);
    while let Some((p, fetched)) = fetches.next().await {
        match fetched {
            Ok(f) if f.legacy_kdf() => legacy.push((p, f)),
            Ok(f) => {
                if note_opened(&judge(f.decrypt(location, unlocker).await, location, p, now).await?, p, &mut opens) {
                    return Ok(opens);
                }
            }
            Err(e) if whole_location(&e) => return Err(e),
            Err(_) => {}
        }
    }
    drop(fetches);
    for (p, f) in legacy {
        if note_opened(&judge(f.decrypt(location, unlocker).await, location, p, now).await?, p, &mut opens) {
            return Ok(opens);
        }
    }
    Ok(opens)
}

/// Whether any of `points` was written with this passphrase: its manifest's header passes the
/// key check, read no further (proof enough that the passphrase is right, at a header's cost).
/// Format 1/2 headers are not tried: each would cost a PBKDF2.
async fn any_written_with_passphrase(location: &Location, cluster_id: &str, points: &[&PointSummary], unlocker: &Arc<Unlocker>) -> Result<bool, PointError> {
    for p in points {
        match read_manifest_head(location, cluster_id, p).await {
            Ok(head) if !head.legacy_kdf() && head.key_checks(unlocker).await => return Ok(true),
            Ok(_) => {}
            Err(e) if whole_location(&e) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(false)
}

/// Notes what a point's standing proves; true once a genuine point is found.
fn note_opened(standing: &Standing, p: &PointSummary, opens: &mut Opens) -> bool {
    match standing {
        Standing::Genuine(_) => {
            opens.any = true;
            opens.genuine = Some(p.id.clone());
            true
        }
        Standing::Suspect { .. } => {
            opens.any = true;
            false
        }
        Standing::Refused(_) | Standing::Incomplete => false,
    }
}

/// Whether a failure concerns the whole location (it cannot be reached, or does not exist), so
/// that nothing else there would read either; any other failure to read one point's object is
/// that point's.
fn whole_location(e: &PointError) -> bool {
    use crate::location::LocationError as L;
    matches!(
        e,
        PointError::Location(L::Unreachable { .. } | L::NoSuchBucket { .. } | L::NoCredentials { .. } | L::TlsUntrusted { .. } | L::DirectoryMissing { .. })
    ) || transport_cut(e)
}

/// A download the location gave up resuming (`location::download`): the store or the path
/// to it failed, not this point, so passing over the point would choose an older one for a
/// passing network fault.
fn transport_cut(e: &PointError) -> bool {
    matches!(e, PointError::Format { source: crate::format::FormatError::Io(io), .. } if io.kind() == std::io::ErrorKind::ConnectionAborted)
}

/// Judges every point of `points` (in their order) for listings, `verify` and retention. Fails
/// when no point opens and one was refused for the passphrase (the passphrase is wrong), or the
/// location fails; otherwise a point that does not open is `Refused` with `DoesNotOpen`.
pub async fn judge_all(location: &Location, cluster_id: &str, points: &[PointSummary], unlocker: &Arc<Unlocker>) -> Result<Vec<Judged>, PointError> {
    let now = OffsetDateTime::now_utc();
    let fetched: Vec<Result<Option<ManifestHead>, PointError>> = stream::iter(points)
        .map(|p| async move {
            if !p.complete {
                return Ok(None);
            }
            read_manifest_head(location, cluster_id, p).await.map(Some)
        })
        .buffered(FETCHES)
        .collect()
        .await;
    let mut standings: Vec<Option<Standing>> = Vec::with_capacity(points.len());
    let mut legacy: Vec<(usize, ManifestHead)> = Vec::new();
    for (i, (p, f)) in points.iter().zip(fetched).enumerate() {
        standings.push(match f {
            Ok(None) => Some(Standing::Incomplete),
            Err(e) if whole_location(&e) => return Err(e),
            Err(e) => Some(Standing::Refused(e)),
            Ok(Some(f)) if f.legacy_kdf() => {
                legacy.push((i, f));
                None
            }
            Ok(Some(f)) => Some(judge(f.decrypt(location, unlocker).await, location, p, now).await?),
        });
    }
    // The oldest genuine format 3 point: format 1/2 headers dated after it are forged. (Not a
    // suspect one: a writer with the passphrase could date one back to discredit them.)
    let oldest_v3 = points.iter().zip(&standings).filter(|(_, s)| matches!(s, Some(Standing::Genuine(_)))).map(|(p, _)| p).min_by_key(|p| p.time);
    let mut derive = Vec::new();
    for (i, f) in legacy {
        match oldest_v3 {
            Some(v3) if points[i].time > v3.time => {
                standings[i] = Some(Standing::Refused(PointError::LegacyAfterUpgrade { point: points[i].id.clone(), v3_point: v3.id.clone() }))
            }
            _ => derive.push((i, f)),
        }
    }
    let derived: Vec<(usize, Result<Standing, PointError>)> = stream::iter(derive)
        .map(|(i, f)| async move { (i, judge(f.decrypt(location, unlocker).await, location, &points[i], now).await) })
        .buffer_unordered(2)
        .collect()
        .await;
    for (i, standing) in derived {
        standings[i] = Some(standing?);
    }
    let mut judged: Vec<Judged> = points.iter().cloned().zip(standings).map(|(point, s)| Judged { point, standing: s.expect("every point judged") }).collect();
    let any_open = judged.iter().any(|j| j.standing.manifest().is_some());
    // What to advise: the newest genuine point, never a suspect one.
    let newest_genuine = judged.iter().find(|j| matches!(j.standing, Standing::Genuine(_))).map(|j| j.point.id.clone());
    // Points older than every genuine one look like points of an earlier passphrase (suspect
    // points do not count: their dates are what is in doubt).
    let oldest_open = judged.iter().filter(|j| matches!(j.standing, Standing::Genuine(_))).map(|j| j.point.time).min();
    // Nothing opens, none was refused for the passphrase, and some point could not be read:
    // that is the error (the reader's rights, the store), not the points.
    if !any_open && judged.iter().all(|j| !matches!(&j.standing, Standing::Refused(e) if e.is_wrong_passphrase())) {
        if let Some(i) = judged.iter().position(|j| matches!(&j.standing, Standing::Refused(PointError::Location(_)))) {
            let Standing::Refused(e) = judged.swap_remove(i).standing else { unreachable!("found above") };
            return Err(e);
        }
    }
    for j in judged.iter_mut() {
        if !matches!(&j.standing, Standing::Refused(e) if e.is_wrong_passphrase()) {
            continue;
        }
        let Standing::Refused(e) = std::mem::replace(&mut j.standing, Standing::Incomplete) else { unreachable!("matched above") };
        j.standing = match (&newest_genuine, any_open) {
            (Some(opens), _) if oldest_open.is_some_and(|t| j.point.time < t) => {
                Standing::Refused(PointError::OlderThanPassphrase { point: j.point.id.clone(), opens: opens.clone() })
            }
            (Some(opens), _) => Standing::Refused(PointError::DoesNotOpen { point: j.point.id.clone(), opens: opens.clone() }),
            (None, true) => Standing::Refused(PointError::DoesNotOpenNoneGenuine { point: j.point.id.clone() }),
            (None, false) => return Err(e),
        };
    }
    Ok(judged)
}

/// The standing of a point from its manifest's decryption: its dates checked when it opened;
/// a location failure stops the caller.
async fn judge(opened: Result<Manifest, PointError>, location: &Location, point: &PointSummary, now: OffsetDateTime) -> Result<Standing, PointError> {
    match opened {
        Ok(manifest) => match suspect_dates(location, point, &manifest, now).await {
            Ok(None) => Ok(Standing::Genuine(manifest)),
            Ok(Some(reason)) => Ok(Standing::Suspect { manifest, reason }),
            Err(e) if whole_location(&e) => Err(e),
            Err(e) => Ok(Standing::Refused(e)),
        },
        Err(e @ PointError::Location(_)) => Err(e),
        // The whole manifest's download cut for good after its header authenticated: the
        // store or the path failed, not the point.
        Err(e) if transport_cut(&e) => Err(e),
        Err(PointError::Incomplete { .. }) => Ok(Standing::Incomplete),
        Err(e) => Ok(Standing::Refused(e)),
    }
}

/// Why a point is suspect from its listing alone, if it is: dated more than two clock skews
/// ahead of now, what [`suspect_dates`] would conclude whatever its manifest says (the
/// manifest's creation must lie within [`CLOCK_SKEW`] of the ID's time, so it would be in the
/// future). (The store's receipt time is not judged here: a copy made by `replicate` read
/// outside a replica location is told apart, with its hint, only from its metadata.)
fn suspect_unread(point: &PointSummary, now: OffsetDateTime) -> Option<String> {
    let ahead_by: Duration = CLOCK_SKEW * 2;
    (point.time > now + ahead_by)
        .then(|| format!("dated {}, in the future (more than {} minutes ahead of this clock, {})", rfc3339(point.time), ahead_by.whole_minutes(), rfc3339(now)))
}

/// Why an authenticated point's dates cannot be trusted, if they cannot: its ID's time, its
/// manifest's `createdAt` and `completedAt`, the store's own receipt time of the manifest
/// (which a writer does not choose on S3) and now must agree within [`CLOCK_SKEW`], the
/// manifest reaching the store after the point's completion and within [`STORE_LAG`] of its
/// creation. A copy made by `replicate` is judged by the source store's receipt time it
/// carries ([`SOURCE_STORED_AT`]).
pub async fn suspect_dates(location: &Location, point: &PointSummary, manifest: &Manifest, now: OffsetDateTime) -> Result<Option<String>, PointError> {
    let parse = |t: &str| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339);
    let (Ok(created), Ok(completed)) = (parse(&manifest.created_at), parse(&manifest.completed_at)) else {
        return Ok(Some(format!("its manifest's times ({:?}, {:?}) do not parse", manifest.created_at, manifest.completed_at)));
    };
    if (created - point.time).abs() > CLOCK_SKEW {
        return Ok(Some(format!("its ID says {} but its manifest says it was created {}", rfc3339(point.time), manifest.created_at)));
    }
    if created > now + CLOCK_SKEW {
        return Ok(Some(format!("it says it was created {}, which is in the future", manifest.created_at)));
    }
    if completed < created - CLOCK_SKEW {
        return Ok(Some(format!("it says it was completed ({}) before it was created ({})", manifest.completed_at, manifest.created_at)));
    }
    // The same bound as the store's receipt below, from the point's own word: where the store
    // keeps no receipt time (a directory), and for a copy judged by its source's.
    if completed > created + STORE_LAG {
        return Ok(Some(format!(
            "it says it was completed {} h after it was created ({} to {}): it was written later and dated back",
            (completed - created).whole_hours(),
            manifest.created_at,
            manifest.completed_at
        )));
    }
    let Some(stored) = point.manifest.as_ref().and_then(|v| v.stored_at) else { return Ok(None) };
    let check = |stored: OffsetDateTime| -> Option<String> {
        if stored < created.max(completed) - CLOCK_SKEW {
            Some(format!(
                "the store received it at {}, before the times it states (created {}, completed {})",
                rfc3339(stored),
                manifest.created_at,
                manifest.completed_at
            ))
        } else if stored > created + STORE_LAG {
            Some(format!(
                "the store received its manifest at {}, {} h after the creation it states ({}): it was written later and dated back",
                rfc3339(stored),
                (stored - created).whole_hours(),
                manifest.created_at
            ))
        } else {
            None
        }
    };
    let Some(reason) = check(stored) else { return Ok(None) };
    // A replica: the copy's own time is when it was copied; the source's is carried with it,
    // and believed only where the location is a replication destination (elsewhere the
    // store's own time is the evidence, and any writer can set metadata).
    let key = super::object_key(&manifest.cluster_id, &point.id, super::MANIFEST_OBJECT);
    let info = location.head(&key, point.manifest.as_ref().filter(|_| point.versions_seen)).await?;
    if let Some(source) = info.metadata.get(SOURCE_STORED_AT).and_then(|t| parse(t).ok()) {
        let fits = source <= stored + CLOCK_SKEW && check(source).is_none();
        if fits && location.is_replica() {
            return Ok(None);
        }
        if fits {
            return Ok(Some(format!(
                "{reason}; it carries a copy's evidence ({SOURCE_STORED_AT} {}), believed only at a location marked as holding copies made by kubectl dr replicate (profile create --s3-replica)",
                rfc3339(source)
            )));
        }
    }
    Ok(Some(reason))
}

fn complete_by_id<'a>(points: &'a [PointSummary], id: &str, cluster_id: &str) -> Result<&'a PointSummary, PointError> {
    let p = find_point(points, id, cluster_id)?;
    if !p.complete {
        if !p.tampered.is_empty() {
            return Err(PointError::Tampered { point: p.id.clone(), evidence: p.tampered.clone() });
        }
        return Err(PointError::Incomplete { point: p.id.clone() });
    }
    Ok(p)
}
