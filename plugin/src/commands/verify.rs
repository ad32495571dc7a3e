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
            // Not a fault of the point: stop and say so once, before judging any other point.
            Err(e) if e.is_wrong_passphrase() && sound == 0 => return Err(e.into()),
            Err(e) => {
                failed += 1;
                println!("FAILED     {}  {e}", p.id);
            }
        }
    }
    eprintln!("{sound} sound, {failed} failed, {incomplete} incomplete, at {}", location.describe());
    Ok(if failed == 0 && sound > 0 { ExitStatus::Success } else { ExitStatus::Failed(dr_core::failure::ErrorKind::DamagedPoint) })
}
