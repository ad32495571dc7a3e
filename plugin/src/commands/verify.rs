//! `kubectl dr verify`: every point (or one) decrypts in full and matches its manifest.

use anyhow::Result;
use dr_core::point::{self, PointError, Standing, Unlocker};

use super::ExitStatus;
use crate::cli::VerifyArgs;
use crate::input;

pub async fn run(args: &VerifyArgs) -> Result<ExitStatus> {
    dr_core::point::validate_cluster_id(&args.cluster_id)?;
    let location = input::location(&args.location, false).await?;
    let mut points = point::list_points(&location, &args.cluster_id).await?;
    if points.is_empty() {
        return Err(PointError::NoPoints { cluster_id: args.cluster_id.clone(), location: location.describe() }.into());
    }
    if let Some(id) = &args.point {
        points = vec![point::find_point(&points, id, &args.cluster_id)?.clone()];
    }
    let unlocker = Unlocker::new(input::passphrase(&args.passphrase, false).await?);
    let (mut sound, mut failed, mut incomplete) = (0, 0, 0);
    // A point that does not open with this passphrase while others do is damaged or forged;
    // when none opens, the passphrase is wrong, and that is the error.
    let judged = point::judge_all(&location, &args.cluster_id, &points, &unlocker).await?;
    if points.iter().any(|p| !p.versions_seen) {
        eprintln!("note: the versions at {} cannot be listed (a directory keeps none; on S3 the credentials need s3:ListBucketVersions), so an overwrite of a point cannot be told from the original", location.describe());
    }
    for point::Judged { point: p, standing } in judged {
        let evidence = (!p.tampered.is_empty()).then(|| p.tampered.join("; "));
        let manifest = match standing {
            Standing::Incomplete => {
                if let Some(evidence) = evidence {
                    failed += 1;
                    println!("TAMPERED   {}  {evidence}", p.id);
                } else {
                    incomplete += 1;
                    println!("INCOMPLETE {}  no manifest: its backup did not finish; it is never restored from", p.id);
                }
                continue;
            }
            Standing::Refused(e) => {
                failed += 1;
                println!("FAILED     {}  {}; do not restore it", p.id, dr_core::error_text(&e));
                continue;
            }
            Standing::Suspect { manifest, reason } => {
                failed += 1;
                println!("SUSPECT    {}  {reason}; it is restored only when named by its ID", p.id);
                manifest
            }
            Standing::Genuine(manifest) => manifest,
        };
        match point::verify_entries(&location, &manifest, &unlocker).await {
            Err(e @ PointError::Location(_)) => return Err(e.into()),
            // A download the store or the network cut, which resuming could not finish, says
            // nothing about the point: the run stops as transient (exit 1), to be run again.
            Err(e) if dr_core::failure::Classify::kind(&e) == dr_core::failure::ErrorKind::Transient => return Err(e.into()),
            Err(e) => {
                failed += 1;
                println!("FAILED     {}  {}", p.id, dr_core::error_text(&e));
            }
            Ok(objects) => match evidence {
                // What kubectl-dr wrote is sound, but someone wrote over it: say so, and fail.
                Some(evidence) => {
                    failed += 1;
                    println!("TAMPERED   {}  {objects} objects as written; {evidence}", p.id);
                }
                None => {
                    sound += 1;
                    println!("OK         {}  {objects} objects", p.id);
                }
            },
        }
    }
    eprintln!("{sound} sound, {failed} failed, {incomplete} incomplete, at {}", location.describe());
    Ok(if failed == 0 && sound > 0 { ExitStatus::Success } else { ExitStatus::Failed(dr_core::failure::ErrorKind::DamagedPoint) })
}
