//! `kubectl dr replicate`: a cluster's restore points copied to another location profile as
//! they are (`dr_core::replicate`), each authenticated with the DR passphrase before and after:
//! the one given with the passphrase flags, else the one the cluster's `k10-dr-secret` names.

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
    // Given from here (a file, or a Vault or AWS source by flags), else the one the cluster's
    // k10-dr-secret names, as the replication Job gets it.
    let given = args.passphrase.passphrase_file.is_some() || args.passphrase.passphrase_source != crate::cli::SourceKind::Raw;
    let passphrase = if given {
        input::passphrase(&args.passphrase, false).await?
    } else {
        resources::dr_secret_source(&client, ns).await?.resolve(&input::resolve_options(&args.passphrase)?).await?
    };
    let unlocker = dr_core::point::Unlocker::new(passphrase);
    let report = replicate::replicate(from, to, check, &args.cluster_id, args.point.as_deref(), &unlocker).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&report)?),
        OutputFormat::Table => {
            println!("from {}\n  to {}", report.from, report.to);
            for (point, copy) in &report.points {
                let what = match copy {
                    PointCopy::Copied { bytes, tampered } => {
                        format!("copied ({}), authenticated at the destination{}", human_bytes(*bytes), tampered_note(tampered))
                    }
                    PointCopy::Present { tampered } => format!("already there, identical{}", tampered_note(tampered)),
                    PointCopy::PassedOver { reason } => format!("NOT COPIED: {reason}"),
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
    if report.passed_over() > 0 {
        eprintln!(
            "warning: {} point(s) at {} were not copied: they do not authenticate with the DR passphrase or their dates disagree. Someone who can write there may have planted them; `kubectl dr verify` lists them",
            report.passed_over(),
            report.from
        );
    }
    if report.problems() > 0 {
        eprintln!("error: {} point(s) not copied; a copy that failed continues when run again", report.problems());
        return Ok(ExitStatus::Failed(dr_core::failure::ErrorKind::Incomplete));
    }
    Ok(ExitStatus::Success)
}

/// What was written over a point at the source, when anything was: the copy is of the version
/// kubectl-dr wrote.
fn tampered_note(tampered: &[String]) -> String {
    match tampered {
        [] => String::new(),
        t => format!("; TAMPERED at the source, the version kubectl-dr wrote was copied: {}", t.join("; ")),
    }
}
