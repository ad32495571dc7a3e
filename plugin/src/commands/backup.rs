//! `kubectl dr backup`: Run Once (a Job from the DR CronJob, watched to the end), `--local`
//! (the job's code run from here), or `--from-manifests DIR` (offline, no cluster).

use anyhow::{bail, Context, Result};
use dr_core::catalog::DR_POLICY_NAME;
use dr_core::job::BackupOutcome;
use dr_core::point::PointWriter;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::ResourceExt;

use super::jobs::{termination_message, watch_job_with_progress};
use super::{human_bytes, ExitStatus};
use crate::cli::{BackupArgs, GlobalArgs};
use crate::input;
use crate::stdout::outln;

pub async fn run(global: &GlobalArgs, args: &BackupArgs) -> Result<ExitStatus> {
    match (&args.from_manifests, args.local) {
        (Some(dir), _) => from_manifests(global, args, dir).await,
        (None, true) => local(global, args).await,
        (None, false) => run_once(global, args).await,
    }
}

async fn from_manifests(global: &GlobalArgs, args: &BackupArgs, dir: &std::path::Path) -> Result<ExitStatus> {
    let cluster_id = args.cluster_id.as_deref().context("--from-manifests needs --cluster-id")?;
    dr_core::point::validate_cluster_id(cluster_id)?;
    let entries = dr_core::manifests::read_dir(dir, &global.namespace, &args.default_namespace)?;
    let location = input::location(&args.location, true).await?;
    location.check_writable().await.with_context(|| format!("location {} is not usable", location.describe()))?;
    let passphrase = input::passphrase(&args.passphrase, true).await?;
    let mut writer = PointWriter::begin(&location, cluster_id, &passphrase, args.mode, DR_POLICY_NAME).await?;
    eprintln!("writing restore point {} to {}", writer.point_id(), location.describe());
    let mut skipped = 0;
    for entry in entries.iter().filter(|e| {
        let keep = args.mode.keeps(e.category);
        skipped += usize::from(!keep);
        keep
    }) {
        if let Err(e) = writer.add(entry).await {
            writer.abort().await;
            return Err(e.into());
        }
    }
    let manifest = writer.finish().await?;
    outln!("restore point {} written: {} objects, {} stored", manifest.point_id, manifest.counts.total, human_bytes(manifest.archive.stored_bytes))?;
    for (category, n) in &manifest.counts.by_category {
        outln!("  {category:<13} {n}")?;
    }
    if skipped > 0 {
        outln!("  ({skipped} objects outside {} mode were left out)", args.mode.as_str())?;
    }
    Ok(ExitStatus::Success)
}

async fn local(global: &GlobalArgs, args: &BackupArgs) -> Result<ExitStatus> {
    let client = input::kube_client(global).await?;
    let settings = dr_core::job::BackupSettings {
        namespace: global.namespace.clone(),
        policy: DR_POLICY_NAME.into(),
        location_mount: args.location.path.clone(),
        resolve: input::resolve_options(&args.passphrase)?,
    };
    let summary = dr_core::job::run_backup(&client, &settings).await?;
    println!(
        "restore point {} written to {}: {} objects, {} stored (cluster ID {})",
        summary.restore_point,
        summary.location,
        summary.objects,
        human_bytes(summary.stored_bytes),
        summary.cluster_id
    );
    Ok(ExitStatus::Success)
}

async fn run_once(global: &GlobalArgs, args: &BackupArgs) -> Result<ExitStatus> {
    let client = input::kube_client(global).await?;
    let ns = &global.namespace;
    let job = dr_core::dr_policy::run_once(&client, ns).await?;
    let name = job.name_any();
    let uid = job.uid().unwrap_or_default();
    eprintln!("started job {name} in namespace {ns} (Run Once of the DR policy)");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let follow = input::follow_client(global).await?;
    let (followed_jobs, followed_pods): (Api<Job>, Api<Pod>) = (Api::namespaced(follow.clone(), ns), Api::namespaced(follow, ns));
    let state = match tokio::time::timeout(args.timeout, watch_job_with_progress(&followed_jobs, &followed_pods, &name, &uid)).await {
        Ok(result) => result?.0,
        Err(_) => bail!(
            "backup job {name} did not finish within {}s; it goes on running: follow it with `kubectl logs -n {ns} -f job/{name}`",
            args.timeout.as_secs()
        ),
    };
    // The Job's outcome (dr_core::job::outcome), from its pod's termination message.
    let outcome = termination_message(&pods, &name, &uid).await.map(|message| BackupOutcome::parse(&message));
    if state == super::jobs::JobState::Succeeded {
        // The summary as the Job wrote it, JSON on stdout, for scripts.
        match outcome.and_then(|o| o.report) {
            Some(summary) => println!("{}", serde_json::to_string(&summary)?),
            None => eprintln!("the job left no summary: see `kubectl logs -n {ns} job/{name}`"),
        }
        return Ok(ExitStatus::Success);
    }
    match outcome.filter(|o| !o.error.is_empty()) {
        Some(outcome) => bail!("backup job {name} failed: {}", outcome.error),
        None => bail!("backup job {name} failed: see `kubectl logs -n {ns} job/{name}`"),
    }
}
