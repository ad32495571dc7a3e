//! `kubectl dr take-ownership`: the restored cluster becomes the one that maintains the
//! location. It deletes the ownership ConfigMap and resumes the DR policy's CronJob, after
//! showing what it will do and getting a confirmation: two clusters that both own a location
//! would both prune it.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use dr_core::catalog::{DR_POLICY_NAME, OWNERSHIP_CONFIGMAP, REPLICATION_CRONJOB};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::ExitStatus;
use crate::cli::{GlobalArgs, TakeOwnershipArgs};
use crate::input;

pub async fn run(global: &GlobalArgs, args: &TakeOwnershipArgs) -> Result<ExitStatus> {
    let ns = &global.namespace;
    let client = input::kube_client(global).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let crons: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let Some(cm) = cms.get_opt(OWNERSHIP_CONFIGMAP).await.with_context(|| format!("reading ConfigMap {OWNERSHIP_CONFIGMAP}"))? else {
        println!("This cluster already owns its location: ConfigMap {OWNERSHIP_CONFIGMAP} is not in namespace {ns}. Nothing to do.");
        return Ok(ExitStatus::Success);
    };
    let cron = crons.get_opt(DR_POLICY_NAME).await.with_context(|| format!("reading CronJob {DR_POLICY_NAME}"))?;
    let data = cm.data.unwrap_or_default();
    let field = |k: &str| data.get(k).cloned().unwrap_or_else(|| "unknown".into());
    println!("This cluster was restored from restore point {} of cluster {} ({}).", field("restorePoint"), field("sourceClusterID"), field("restoredAt"));
    println!("Taking ownership will:");
    println!("  - delete ConfigMap {OWNERSHIP_CONFIGMAP} in namespace {ns}, so this cluster backs up and prunes the location;");
    match &cron {
        Some(c) if c.spec.as_ref().and_then(|s| s.suspend) == Some(true) => println!("  - resume CronJob {DR_POLICY_NAME} (scheduled backups start again)."),
        Some(_) => println!("  - leave CronJob {DR_POLICY_NAME} running (it is not suspended)."),
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
    match cms.delete(OWNERSHIP_CONFIGMAP, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e).with_context(|| format!("deleting ConfigMap {OWNERSHIP_CONFIGMAP}")),
    }
    println!("deleted ConfigMap {OWNERSHIP_CONFIGMAP}");
    if cron.is_some() {
        crons
            .patch(DR_POLICY_NAME, &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}})))
            .await
            .with_context(|| format!("resuming CronJob {DR_POLICY_NAME}"))?;
        println!("resumed CronJob {DR_POLICY_NAME}");
    }
    // The restore suspended the replication CronJob too.
    if crons.get_opt(REPLICATION_CRONJOB).await.with_context(|| format!("reading CronJob {REPLICATION_CRONJOB}"))?.is_some() {
        crons
            .patch(REPLICATION_CRONJOB, &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}})))
            .await
            .with_context(|| format!("resuming CronJob {REPLICATION_CRONJOB}"))?;
        println!("resumed CronJob {REPLICATION_CRONJOB}");
    }
    println!("This cluster now owns the location.");
    Ok(ExitStatus::Success)
}
