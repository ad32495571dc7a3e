//! `kubectl dr prune`: apply the DR policy's retention (`dr_core::retention::prune_policy`).
//! It needs the passphrase: retention counts only points whose manifest authenticates.

use anyhow::Result;
use dr_core::retention::{self, PolicyPrune, Pruned};

use super::ExitStatus;
use crate::cli::{GlobalArgs, OutputFormat, PruneArgs};
use crate::input;

pub async fn run(global: &GlobalArgs, args: &PruneArgs) -> Result<ExitStatus> {
    let client = input::kube_client(global).await?;
    let location = if args.location.is_given() { Some(input::location(&args.location, false).await?) } else { None };
    // The passphrase: from --passphrase-file when given, otherwise as the backups get it,
    // from k10-dr-secret (with this machine's Vault or AWS login).
    let passphrase = match args.passphrase.passphrase_file {
        Some(_) => Some(input::passphrase(&args.passphrase, false).await?),
        None => None,
    };
    let request =
        PolicyPrune { namespace: global.namespace.clone(), location, passphrase, resolve: input::resolve_options(&args.passphrase)?, dry_run: args.dry_run };
    let report = retention::prune_policy(&client, request).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&report)?),
        OutputFormat::Table => {
            for o in &report.pruned {
                match o {
                    Pruned::Deleted { point } => println!("deleted        {point}"),
                    Pruned::WouldDelete { point } => println!("would delete   {point}"),
                    Pruned::Protected { point, until } => {
                        println!("protected      {point}  (locked until {until} by Object Lock or an immutability policy; left in place)")
                    }
                    Pruned::Failed { point, error } => println!("FAILED         {point}  {error}"),
                    Pruned::Untrusted { point, reason } => println!("untrusted      {point}  ({reason}; not counted, left in place)"),
                }
            }
            let untrusted = report.untrusted();
            eprintln!("{} kept, {} pruned or protected, at {}", report.kept.len(), report.pruned.len() - untrusted, report.location);
            if untrusted > 0 {
                eprintln!("{untrusted} point(s) are untrusted: they do not authenticate with the DR passphrase or are dated in the future. Anyone with write access to the location can add points; check who does, then delete them by hand if they are not yours.");
            }
        }
    }
    Ok(if report.failed() { ExitStatus::Failed(dr_core::failure::ErrorKind::Transient) } else { ExitStatus::Success })
}
