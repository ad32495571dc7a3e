//! Following a Job to its end: a watch that resumes, and the container's termination message.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams, WatchEvent, WatchParams};
use kube::ResourceExt;

/// The pods of one Job (`job_uid`), newest last: a Job's pods carry its UID in the
/// `batch.kubernetes.io/controller-uid` label; an earlier Job of the same name is another UID.
async fn pods_of(pods: &Api<Pod>, job: &str, job_uid: &str) -> Option<Vec<Pod>> {
    let list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.ok()?;
    let mut mine: Vec<Pod> = list
        .items
        .into_iter()
        .filter(|p| {
            let labels = p.labels();
            labels.get("batch.kubernetes.io/controller-uid").or_else(|| labels.get("controller-uid")).map(String::as_str) == Some(job_uid)
                || p.owner_references().iter().any(|o| o.uid == job_uid)
        })
        .collect();
    mine.sort_by(|a, b| a.creation_timestamp().cmp(&b.creation_timestamp()));
    Some(mine)
}

/// What the Job's container said when it ended (its newest pod's termination message).
pub async fn termination_message(pods: &Api<Pod>, job: &str, job_uid: &str) -> Option<String> {
    pods_of(pods, job, job_uid).await?.iter().rev().find_map(|p| {
        p.status.as_ref()?.container_statuses.as_ref()?.iter().find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
    })
}

/// Where a Job is, from its status.
pub fn job_state(job: &Job) -> &'static str {
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
pub async fn watch_job(jobs: &Api<Job>, name: &str, mut resource_version: String) -> Result<&'static str> {
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


/// The last lines of a Job's pods' logs, for a failure report.
pub async fn job_logs(pods: &Api<Pod>, job: &str, job_uid: &str, lines: i64) -> Option<String> {
    let list = pods_of(pods, job, job_uid).await?;
    let pod = list.last()?;
    pods.logs(&pod.name_any(), &LogParams { tail_lines: Some(lines), ..Default::default() }).await.ok()
}
