//! `kubectl dr take-ownership`: the restored cluster becomes the one that maintains the
//! location. It shows what `dr_core::ownership::take_over` will do (delete the ownership
//! ConfigMap, resume the DR policy's CronJobs) and asks for a confirmation first: two clusters
//! that both own a location would both prune it.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use dr_core::catalog::{DR_POLICY_NAME, OWNERSHIP_CONFIGMAP};
use dr_core::ownership;

use super::ExitStatus;
use crate::cli::{GlobalArgs, TakeOwnershipArgs};
use crate::input;

pub async fn run(global: &GlobalArgs, args: &TakeOwnershipArgs) -> Result<ExitStatus> {
    let ns = &global.namespace;
    let client = input::kube_client(global).await?;
    let Some(restored) = ownership::restored_from(&client, ns).await? else {
        println!("This cluster already owns its location: ConfigMap {OWNERSHIP_CONFIGMAP} is not in namespace {ns}. Nothing to do.");
        return Ok(ExitStatus::Success);
    };
    println!("This cluster was restored from restore point {} of cluster {} ({}).", restored.restore_point, restored.source_cluster_id, restored.restored_at);
    println!("Taking ownership will:");
    println!("  - delete ConfigMap {OWNERSHIP_CONFIGMAP} in namespace {ns}, so this cluster backs up and prunes the location;");
    match restored.backups_suspended {
        Some(true) => println!("  - resume CronJob {DR_POLICY_NAME} (scheduled backups start again)."),
        Some(false) => println!("  - leave CronJob {DR_POLICY_NAME} running (it is not suspended)."),
        None => println!("  - (no DR policy CronJob here: run `kubectl dr enable` to schedule backups)."),
    }
    println!("Do this only once the source cluster no longer uses the location: two owners would prune each other's restore points.");
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("confirm with --yes (no terminal to ask on)");
        }
        print!("Type yes to take ownership: ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            println!("Nothing changed.");
            return Ok(ExitStatus::Failed(dr_core::failure::ErrorKind::BadInput));
        }
    }
    // The restore suspended the DR CronJob and the replication CronJob; both resume.
    let resumed = ownership::take_over(&client, ns).await?;
    println!("deleted ConfigMap {OWNERSHIP_CONFIGMAP}");
    for name in resumed {
        println!("resumed CronJob {name}");
    }
    println!("This cluster now owns the location.");
    Ok(ExitStatus::Success)
}
