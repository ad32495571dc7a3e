//! `kubectl dr verify`: every point (or one) decrypts in full and matches its manifest.

use anyhow::Result;
use dr_core::point::{self, PointError, Unlocker};

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
    // Points that do not open with this passphrase: the passphrase is wrong only if none opens
    // (a writer to the location can add points with another key).
    let mut not_opening: Vec<(String, PointError)> = Vec::new();
    for p in &points {
        if !p.complete {
            incomplete += 1;
            println!("INCOMPLETE {}  no manifest: its backup did not finish; it is never restored from", p.id);
            continue;
        }
        match point::verify_point(&location, &args.cluster_id, &p.id, &unlocker).await {
            Ok(objects) => {
                sound += 1;
                println!("OK         {}  {objects} objects", p.id);
            }
            Err(e) if e.is_wrong_passphrase() => not_opening.push((p.id.clone(), e)),
            Err(e) => {
                failed += 1;
                println!("FAILED     {}  {e}", p.id);
            }
        }
    }
    if sound == 0 {
        if let Some((_, e)) = not_opening.into_iter().next() {
            // None opens: the passphrase is wrong. Say it once.
            return Err(e.into());
        }
    } else {
        for (id, _) in &not_opening {
            failed += 1;
            println!("FAILED     {id}  does not open with this passphrase while other points do: damaged or forged; do not restore it");
        }
    }
    eprintln!("{sound} sound, {failed} failed, {incomplete} incomplete, at {}", location.describe());
    Ok(if failed == 0 && sound > 0 { ExitStatus::Success } else { ExitStatus::Failed(dr_core::failure::ErrorKind::DamagedPoint) })
}
