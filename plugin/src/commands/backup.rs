//! `kubectl dr backup`: Run Once (a Job from the DR CronJob, watched to the end), `--local`
//! (the job's code run from here), or `--from-manifests DIR` (offline, no cluster).

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};

use anyhow::{bail, Context, Result};
use dr_core::catalog::DR_POLICY_NAME;
use dr_core::point::PointWriter;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::ResourceExt;

use super::{human_bytes, ExitStatus};
use crate::cli::{BackupArgs, GlobalArgs};
use crate::input;

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
    println!("restore point {} written: {} objects, {} stored", manifest.point_id, manifest.counts.total, human_bytes(manifest.archive.stored_bytes));
    for (category, n) in &manifest.counts.by_category {
        println!("  {category:<13} {n}");
    }
    if skipped > 0 {
        println!("  ({skipped} objects outside {} mode were left out)", args.mode.as_str());
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

/// What the job's container said when it ended: its termination message.
async fn termination_message(pods: &Api<Pod>, job: &str) -> Option<String> {
    let list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.ok()?;
    list.items.iter().rev().find_map(|p| {
        p.status.as_ref()?.container_statuses.as_ref()?.iter().find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
    })
}

/// Where a Job is, from its status.
fn job_state(job: &Job) -> &'static str {
    let status = job.status.clone().unwrap_or_default();
    match (status.succeeded.unwrap_or(0), status.failed.unwrap_or(0), status.active.unwrap_or(0)) {
        (s, _, _) if s > 0 => "succeeded",
        (_, f, 0) if f > 0 => "failed",
        (_, _, a) if a > 0 => "running",
        _ => "pending",
    }
}

/// Follows a Job with a watch until it succeeds or fails; resumes from the last
/// resourceVersion when the watch ends, and starts over from a fresh read on 410 Gone.
async fn watch_job(jobs: &Api<Job>, name: &str, mut resource_version: String) -> Result<&'static str> {
    let started = Instant::now();
    let mut last_state = "";
    loop {
        let params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(60);
        let mut events = jobs.watch(&params, &resource_version).await.with_context(|| format!("watching job {name}"))?.boxed();
        while let Some(event) = events.try_next().await.with_context(|| format!("watching job {name}"))? {
            let job = match event {
                WatchEvent::Added(job) | WatchEvent::Modified(job) => job,
                WatchEvent::Deleted(_) => bail!("job {name} was deleted before it finished"),
                WatchEvent::Bookmark(b) => {
                    resource_version = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Error(e) if e.code == 410 => {
                    // Too old: read the job afresh and watch from there.
                    let current = jobs.get(name).await.with_context(|| format!("reading job {name}"))?;
                    resource_version = current.resource_version().unwrap_or_default();
                    current
                }
                WatchEvent::Error(e) => bail!("watching job {name}: {}", e.message),
            };
            resource_version = job.resource_version().unwrap_or(resource_version);
            let state = job_state(&job);
            if state != last_state {
                eprintln!("job {name}: {state} ({}s)", started.elapsed().as_secs());
                last_state = state;
            }
            if matches!(state, "succeeded" | "failed") {
                return Ok(state);
            }
        }
    }
}

async fn run_once(global: &GlobalArgs, args: &BackupArgs) -> Result<ExitStatus> {
    let client = input::kube_client(global).await?;
    let ns = &global.namespace;
    let job = dr_core::install::run_once(&client, ns).await?;
    let name = job.name_any();
    eprintln!("started job {name} in namespace {ns} (Run Once of the DR policy)");
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let resource_version = job.resource_version().unwrap_or_default();
    let state = match tokio::time::timeout(args.timeout, watch_job(&jobs, &name, resource_version)).await {
        Ok(state) => state?,
        Err(_) => bail!(
            "backup job {name} did not finish within {}s; it goes on running: follow it with `kubectl logs -n {ns} -f job/{name}`",
            args.timeout.as_secs()
        ),
    };
    if state == "succeeded" {
        if let Some(message) = termination_message(&pods, &name).await {
            println!("{message}");
        }
        return Ok(ExitStatus::Success);
    }
    let message = termination_message(&pods, &name).await.unwrap_or_else(|| format!("see `kubectl logs -n {ns} job/{name}`"));
    bail!("backup job {name} failed: {message}");
}
