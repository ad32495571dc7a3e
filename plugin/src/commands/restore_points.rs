//! `kubectl dr restore-points`: the points of a cluster ID, newest first.

use anyhow::Result;
use dr_core::format::crypto::Passphrase;
use dr_core::location::Location;
use dr_core::point::{self, PointError, PointSummary, Standing, Unlocker};
use serde::Serialize;

use super::{human_bytes, ExitStatus};
use crate::cli::{OutputFormat, RestorePointsArgs};
use crate::input;

/// One row of the listing.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub id: String,
    pub time: String,
    /// complete, incomplete (no manifest: the backup did not finish), damaged, forged (does
    /// not open while other points do, or names another cluster), suspect (its dates disagree)
    /// or tampered (written over at the location; `error` names each later version).
    pub status: String,
    pub mode: Option<String>,
    pub objects: Option<u64>,
    pub size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Builds the rows, decrypting each complete point's manifest. A wrong passphrase (no point
/// opens) is an error for the whole listing; a point that does not open while others do is a
/// `forged` row (or `damaged`, when its header itself is broken), one whose dates disagree a
/// `suspect` row, one written over at the location a `tampered` row naming each later
/// version (what kubectl-dr wrote is still what is read).
pub async fn rows(location: &Location, cluster_id: &str, points: &[PointSummary], passphrase: Passphrase) -> Result<Vec<Row>> {
    let unlocker = Unlocker::new(passphrase);
    let judged = point::judge_all(location, cluster_id, points, &unlocker).await?;
    let mut rows = Vec::new();
    for point::Judged { point: p, standing } in judged {
        let mut row = Row {
            time: point::rfc3339(p.time),
            id: p.id.clone(),
            status: if p.complete { "complete" } else { "incomplete" }.into(),
            mode: None,
            objects: None,
            size_bytes: p.stored_bytes,
            retained_until: None,
            error: None,
        };
        if let Some(m) = standing.manifest() {
            row.mode = Some(m.mode.as_str().into());
            row.objects = Some(m.counts.total);
            row.retained_until = m.retained_until.clone();
        }
        match standing {
            // Likely written under an earlier passphrase; the line under the table says both.
            Standing::Refused(e @ PointError::OlderThanPassphrase { .. }) => {
                row.status = "other-passphrase".into();
                row.error = Some(dr_core::error_text(&e));
            }
            Standing::Refused(e) => {
                let forged = matches!(
                    e,
                    PointError::DoesNotOpen { .. }
                        | PointError::DoesNotOpenNoneGenuine { .. }
                        | PointError::NamesAnotherCluster { .. }
                        | PointError::LegacyAfterUpgrade { .. }
                );
                row.status = if forged { "forged" } else { "damaged" }.into();
                row.error = Some(dr_core::error_text(&e));
            }
            Standing::Suspect { reason, .. } => {
                row.status = "suspect".into();
                row.error = Some(reason);
            }
            Standing::Genuine(_) | Standing::Incomplete => {}
        }
        if !p.tampered.is_empty() {
            row.status = "tampered".into();
            let evidence = p.tampered.join("; ");
            row.error = Some(match row.error.take() {
                Some(e) => format!("{evidence}; {e}"),
                None => evidence,
            });
        }
        rows.push(row);
    }
    Ok(rows)
}

pub async fn run(args: &RestorePointsArgs) -> Result<ExitStatus> {
    dr_core::point::validate_cluster_id(&args.cluster_id)?;
    let at = args.point_in_time;
    let location = input::location(&args.location, false).await?;
    let mut points = point::list_points(&location, &args.cluster_id).await?;
    if points.is_empty() {
        return Err(PointError::NoPoints { cluster_id: args.cluster_id.clone(), location: location.describe() }.into());
    }
    if let Some(at) = at {
        points.retain(|p| p.time <= at);
    }
    let passphrase = input::passphrase(&args.passphrase, false).await?;
    let rows = rows(&location, &args.cluster_id, &points, passphrase).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&rows)?),
        OutputFormat::Table => {
            print!("{}", table(&rows));
            // Why each point that is not plainly complete is what it is, under the table.
            for r in rows.iter().filter(|r| r.error.is_some()) {
                println!("{} {}: {}", r.id, r.status, r.error.as_deref().unwrap_or_default());
            }
        }
    }
    if points.iter().any(|p| !p.versions_seen) {
        let why = match location {
            Location::S3(_) => Some("the versions cannot be listed (s3:ListBucketVersions)"),
            Location::Azure(_) => Some("the storage account keeps no blob versions (versioning is off)"),
            Location::Gcs(_) => {
                Some("the bucket keeps no noncurrent generations (object versioning is off), or whether it does cannot be read (storage.buckets.get)")
            }
            Location::File(_) => None,
        };
        if let Some(why) = why {
            eprintln!("note: at {} {why}, so an overwrite of a point cannot be told from the original", location.describe());
        }
    }
    Ok(ExitStatus::Success)
}

/// A table in the style of `_cat/snapshots?v`.
pub fn table(rows: &[Row]) -> String {
    let header = ["ID", "TIME", "STATUS", "MODE", "OBJECTS", "SIZE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.time.clone(),
                r.status.clone(),
                r.mode.clone().unwrap_or_else(|| "-".into()),
                r.objects.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                human_bytes(r.size_bytes),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[&str]| {
        let parts: Vec<String> = cols.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &cells {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}
