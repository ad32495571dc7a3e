//! `kubectl dr replicate`: a cluster's restore points copied to another location profile as
//! they are (`dr_core::replicate`).

use anyhow::Result;
use dr_core::replicate::{self, PointCopy};
use dr_core::resources;

use super::{human_bytes, ExitStatus};
use crate::cli::{GlobalArgs, OutputFormat, ReplicateArgs};
use crate::input;

pub async fn run(global: &GlobalArgs, args: &ReplicateArgs) -> Result<ExitStatus> {
    dr_core::point::validate_cluster_id(&args.cluster_id)?;
    let client = input::kube_client(global).await?;
    let ns = &global.namespace;
    let mut locations = Vec::new();
    let check = args.verify_with.as_ref().unwrap_or(&args.to);
    for (name, path) in [(&args.from, &args.from_path), (&args.to, &args.to_path), (check, &args.to_path)] {
        locations.push(resources::connect_profile(&client, ns, name, path.as_deref()).await?);
    }
    let (from, to, check) = (&locations[0], &locations[1], &locations[2]);
    let report = replicate::replicate(from, to, check, &args.cluster_id, args.point.as_deref()).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&report)?),
        OutputFormat::Table => {
            println!("from {}\n  to {}", report.from, report.to);
            for (point, copy) in &report.points {
                let what = match copy {
                    PointCopy::Copied { bytes } => format!("copied ({}), verified at the destination", human_bytes(*bytes)),
                    PointCopy::Present => "already there, identical".into(),
                    PointCopy::Differs { object } => format!("DIFFERS: {object} at the destination is not the source's; left as it is (write-once)"),
                    PointCopy::Failed { reason } => format!("FAILED: {reason}"),
                };
                println!("{point}  {what}");
            }
            if report.points.is_empty() {
                println!("no complete restore points of cluster {} to copy", args.cluster_id);
            }
        }
    }
    if report.problems() > 0 {
        eprintln!("error: {} point(s) not copied; a copy that failed continues when run again", report.problems());
        return Ok(ExitStatus::Failed(dr_core::failure::ErrorKind::Incomplete));
    }
    Ok(ExitStatus::Success)
}
