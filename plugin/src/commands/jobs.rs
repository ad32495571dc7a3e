//! Following a Job to its end: a watch that resumes, its pods' logs for live progress and
//! the whole result, and the container's termination message.

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
    mine.sort_by_key(|a| a.creation_timestamp());
    Some(mine)
}

/// What the Job's container said when it ended (its newest pod's termination message).
pub async fn termination_message(pods: &Api<Pod>, job: &str, job_uid: &str) -> Option<String> {
    pods_of(pods, job, job_uid)
        .await?
        .iter()
        .rev()
        .find_map(|p| p.status.as_ref()?.container_statuses.as_ref()?.iter().find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone()))
}

/// Where a Job is. Only the Job controller's conditions are a verdict: between a failed pod
/// and its replacement (the controller's backoff, 10 s and doubling) a Job has failed pods
/// and none active, yet it is still running.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    Pending,
    Running,
    /// Pods failed and the Job will start another.
    Retrying,
    Succeeded,
    /// The controller's reason (`PodFailurePolicy`, `BackoffLimitExceeded`, `DeadlineExceeded`).
    Failed {
        reason: String,
    },
}

impl JobState {
    pub fn is_finished(&self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed { .. })
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobState::Pending => f.write_str("pending"),
            JobState::Running => f.write_str("running"),
            JobState::Retrying => f.write_str("retrying"),
            JobState::Succeeded => f.write_str("succeeded"),
            JobState::Failed { reason } if reason.is_empty() => f.write_str("failed"),
            JobState::Failed { reason } => write!(f, "failed ({reason})"),
        }
    }
}

/// The Job's state from its conditions: `SuccessCriteriaMet`/`Complete` or
/// `FailureTarget`/`Failed` (Kubernetes 1.31+ sets the first of each pair as soon as the
/// verdict is known, the second once the pods are gone); otherwise from its pod counts.
pub fn job_state(job: &Job) -> JobState {
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let holds = |ty: &str| conditions.iter().find(|c| c.type_ == ty && c.status == "True");
    if holds("Complete").or_else(|| holds("SuccessCriteriaMet")).is_some() {
        return JobState::Succeeded;
    }
    if let Some(c) = holds("Failed").or_else(|| holds("FailureTarget")) {
        return JobState::Failed { reason: c.reason.clone().unwrap_or_default() };
    }
    match (status.active.unwrap_or(0), status.failed.unwrap_or(0)) {
        (a, _) if a > 0 => JobState::Running,
        (_, f) if f > 0 => JobState::Retrying,
        _ => JobState::Pending,
    }
}

/// How the newest ended pod of a Job ended, for "pod 1 of 4 ended: OOMKilled (exit 137)".
async fn last_pod_end(pods: &Api<Pod>, job: &Job) -> Option<String> {
    let list = pods_of(pods, &job.name_any(), &job.uid().unwrap_or_default()).await?;
    list.iter().rev().find_map(|p| {
        let t = p.status.as_ref()?.container_statuses.as_ref()?.iter().find_map(|c| c.state.as_ref()?.terminated.clone())?;
        let reason = t.reason.unwrap_or_else(|| "Error".into());
        let said = t.message.as_deref().and_then(|m| m.lines().next()).filter(|m| !m.is_empty()).map(|m| format!(": {m}")).unwrap_or_default();
        Some(format!("{reason} (exit {}){said}", t.exit_code))
    })
}

/// Whether `job` is another Job than the one followed (`job_uid`) under the same name: one
/// deleted and created again (another restore or Run Once) while a watch was down, whose
/// verdict is not this one's.
fn another_job(job: &Job, job_uid: &str) -> bool {
    !job_uid.is_empty() && job.uid().is_some_and(|uid| uid != job_uid)
}

/// Fails when the Job read or watched under `name` is [`another_job`].
fn same_job(job: &Job, name: &str, job_uid: &str) -> Result<()> {
    if another_job(job, job_uid) {
        bail!(
            "job {name} was replaced by another Job of the same name before it finished (another restore started?): see `kubectl get job {name}` and its logs"
        );
    }
    Ok(())
}

/// Follows the Job `job_uid` with a watch until the Job controller gives its verdict, saying
/// each retry; resumes from the last resourceVersion when the watch ends, and starts over
/// from a fresh read on 410 Gone. A Job of the same name but another UID is not followed.
pub async fn watch_job(jobs: &Api<Job>, pods: &Api<Pod>, name: &str, job_uid: &str, mut resource_version: String) -> Result<JobState> {
    let started = Instant::now();
    let mut last_state = None;
    let mut failed_seen = 0;
    // Since when the API server has not answered the watch, if it has not.
    let mut lost: Option<Instant> = None;
    loop {
        let params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(60);
        // The client retries an API server it cannot reach for a while on its own: say what
        // is waited for when the watch does not start at once.
        let from = resource_version.clone();
        let watched = {
            let watch = jobs.watch(&params, &from);
            tokio::pin!(watch);
            tokio::select! {
                w = &mut watch => w,
                _ = tokio::time::sleep(SLOW_WATCH) => {
                    note_lost(name, &mut lost, started);
                    watch.await
                }
            }
        };
        let mut events = match watched {
            Ok(events) => {
                if let Some(since) = lost.take() {
                    super::progress::say(&format!("job {name}: the API server answers again after {}s; following the Job", since.elapsed().as_secs()));
                }
                events.boxed()
            }
            Err(e) if unreachable(&e) => {
                wait_for_api_server(name, &e, &mut lost, started).await?;
                continue;
            }
            // The watch's resourceVersion is too old (the API server answers 410 Gone before
            // streaming when it cannot serve it from its cache): read the Job afresh (gone is
            // an error, as it is to the event below), and watch from there after a pause, so a
            // server that keeps answering 410 is not asked in a tight loop.
            Err(kube::Error::Api(s)) if s.code == 410 => {
                let current = jobs.get(name).await.with_context(|| format!("reading job {name}"))?;
                same_job(&current, name, job_uid)?;
                resource_version = current.resource_version().unwrap_or_default();
                let state = job_state(&current);
                if state.is_finished() {
                    super::progress::say(&format!("job {name}: {state} ({}s)", started.elapsed().as_secs()));
                    return Ok(state);
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("watching job {name}"))),
        };
        loop {
            let event = match events.try_next().await {
                Ok(Some(event)) => event,
                Ok(None) => break,
                // The connection was cut (an API server restarting): the Job runs on in the
                // cluster; watch again from where this one was.
                Err(e) if unreachable(&e) => {
                    wait_for_api_server(name, &e, &mut lost, started).await?;
                    break;
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("watching job {name}"))),
            };

            let job = match event {
                WatchEvent::Added(job) | WatchEvent::Modified(job) => job,
                // Another Job of the same name (an earlier one, replayed from an old
                // resourceVersion) going away is not this one's end.
                WatchEvent::Deleted(gone) if another_job(&gone, job_uid) => continue,
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
            same_job(&job, name, job_uid)?;
            resource_version = job.resource_version().unwrap_or(resource_version);
            let state = job_state(&job);
            let failed = job.status.as_ref().and_then(|s| s.failed).unwrap_or(0);
            if failed > failed_seen && !state.is_finished() {
                // A pod ended and the controller will start another: say so, and keep following.
                let attempts = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6) + 1;
                let how = last_pod_end(pods, &job).await.unwrap_or_else(|| "failed".into());
                super::progress::say(&format!("job {name}: pod {failed} of {attempts} ended: {how}; the Job retries ({}s)", started.elapsed().as_secs()));
                failed_seen = failed;
            }
            if last_state.as_ref() != Some(&state) {
                if state != JobState::Retrying {
                    super::progress::say(&format!("job {name}: {state} ({}s)", started.elapsed().as_secs()));
                }
                last_state = Some(state.clone());
            }
            if state.is_finished() {
                return Ok(state);
            }
        }
    }
}

/// How long `kubectl dr restore` keeps waiting for an API server that stopped answering while
/// it followed the Job (which runs on in the cluster and rides out such outages itself).
const FOLLOW_OUTAGE: std::time::Duration = std::time::Duration::from_secs(300);

/// How long a watch may take to start before the API server counts as not answering.
const SLOW_WATCH: std::time::Duration = std::time::Duration::from_secs(2);

/// Notes, and says once, that the API server stopped answering; returns since when.
fn note_lost(name: &str, lost: &mut Option<Instant>, started: Instant) -> Instant {
    *lost.get_or_insert_with(|| {
        super::progress::say(&format!(
            "job {name}: the API server stopped answering ({}s); the Job runs on in the cluster: waiting for the API server to come back",
            started.elapsed().as_secs()
        ));
        Instant::now()
    })
}

/// Whether a watch failed because the API server could not be reached (not an answer).
fn unreachable(e: &kube::Error) -> bool {
    !matches!(e, kube::Error::Api(_))
}

/// Says once that the API server stopped answering and what is waited for; fails once it has
/// been gone for [`FOLLOW_OUTAGE`]. Pauses briefly before the next try (the client's own
/// retries already waited).
async fn wait_for_api_server(name: &str, e: &kube::Error, lost: &mut Option<Instant>, started: Instant) -> Result<()> {
    let since = note_lost(name, lost, started);
    if since.elapsed() >= FOLLOW_OUTAGE {
        bail!(
            "the API server has not answered for {} s while following job {name} ({}): the Job may still be running; see it with `kubectl get job {name}` once the cluster answers",
            since.elapsed().as_secs(),
            dr_core::error_text(e)
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    Ok(())
}

/// The last lines of a Job's pods' logs, for a failure report.
pub async fn job_logs(pods: &Api<Pod>, job: &str, job_uid: &str, lines: i64) -> Option<String> {
    let list = pods_of(pods, job, job_uid).await?;
    let pod = list.last()?;
    pods.logs(&pod.name_any(), &LogParams { tail_lines: Some(lines), ..Default::default() }).await.ok()
}

/// What a Job's logs held: the last result line its container printed on stdout (the
/// restore's whole report, the backup's summary), which the 4 KiB termination message may
/// only carry in part.
#[derive(Default)]
pub struct FollowedLogs {
    pub result: Option<String>,
}

/// A log line that is the container's printed result: JSON that is not one of its tracing
/// lines (those carry `level` and `fields`).
fn is_result_line(line: &str) -> bool {
    line.starts_with('{') && serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.get("level").is_none() && v.get("fields").is_none())
}

/// Follows the logs of `job`'s pods, one after another as the Job retries, showing each
/// progress line, until `finished` is set and the current pod's log has ended. Pods are
/// found by the Job's UID; a pod whose container has not started is waited for.
pub async fn follow_logs(pods: Api<Pod>, job: String, job_uid: String, finished: std::sync::Arc<std::sync::atomic::AtomicBool>) -> FollowedLogs {
    use futures::AsyncBufReadExt;
    use std::sync::atomic::Ordering;
    let mut out = FollowedLogs::default();
    let mut followed: std::collections::HashSet<String> = Default::default();
    loop {
        let next = pods_of(&pods, &job, &job_uid).await.unwrap_or_default().into_iter().find(|p| {
            let started = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some())));
            started && !followed.contains(&p.name_any())
        });
        match next {
            Some(pod) => {
                let name = pod.name_any();
                let params = LogParams { follow: true, ..Default::default() };
                match pods.log_stream(&name, &params).await {
                    Ok(stream) => {
                        followed.insert(name.clone());
                        let mut lines = stream.lines();
                        while let Some(Ok(line)) = futures::StreamExt::next(&mut lines).await {
                            if let Some(p) = dr_core::progress::Progress::from_log_line(&line) {
                                super::progress::show(&p);
                            } else if is_result_line(&line) {
                                out.result = Some(line);
                            }
                        }
                    }
                    // No log yet (the container is starting), or none at all (logs not
                    // allowed): try again shortly; the verdict and the termination message
                    // come either way.
                    Err(e) => {
                        tracing::debug!(pod = %name, error = %dr_core::error_text(&e), "cannot follow the pod's log");
                        if finished.load(Ordering::Relaxed) {
                            break;
                        }
                        pause_unless_finished(&finished).await;
                    }
                }
            }
            None if finished.load(Ordering::Relaxed) => break,
            None => pause_unless_finished(&finished).await,
        }
    }
    super::progress::finish();
    out
}

/// Waits half a second before the next look for a pod, cut short once the Job has its
/// verdict: the command's exit waits for the follower, and a whole pause there was up to
/// half a second of every restore's fixed cost.
async fn pause_unless_finished(finished: &std::sync::atomic::AtomicBool) {
    for _ in 0..10 {
        if finished.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// [`watch_job`] with the Job's progress shown from its pods' logs while it runs. Returns
/// the Job's verdict and what the logs held.
pub async fn watch_job_with_progress(
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    name: &str,
    job_uid: &str,
    resource_version: String,
) -> Result<(JobState, FollowedLogs)> {
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut follower = tokio::spawn(follow_logs(pods.clone(), name.to_owned(), job_uid.to_owned(), finished.clone()));
    let state = watch_job(jobs, pods, name, job_uid, resource_version).await;
    finished.store(true, std::sync::atomic::Ordering::Relaxed);
    // The last pod's log ends when its container does, before the verdict; allow the
    // stream a moment to deliver its tail.
    let logs = match tokio::time::timeout(std::time::Duration::from_secs(10), &mut follower).await {
        Ok(Ok(logs)) => logs,
        _ => {
            follower.abort();
            super::progress::finish();
            FollowedLogs::default()
        }
    };
    Ok((state?, logs))
}

/// Ends a restore's cluster-wide grant once its Job has ended (or is no longer followed):
/// deletes the chart's ClusterRoleBinding, `<release>-<namespace>`. The Job's pod ends it
/// itself; this covers the endings a pod cannot see (a cluster without native sidecars, a
/// pod lost with its node). Idempotent: a binding already gone (or a quick-mode restore,
/// which has none) is fine. Says whether it is gone.
pub async fn end_restore_grant(client: &kube::Client, release: &str, namespace: &str) -> bool {
    let binding = format!("{release}-{namespace}");
    let api: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(client.clone());
    match api.delete(&binding, &Default::default()).await {
        Ok(_) => {
            tracing::info!(binding, "deleted the restore's ClusterRoleBinding: its cluster-wide grant has ended");
            true
        }
        Err(kube::Error::Api(e)) if e.code == 404 => true,
        Err(e) => {
            eprintln!(
                "warning: cannot end the restore's cluster-wide grant ({}): delete ClusterRoleBinding {binding}, or helm uninstall {release} -n {namespace}",
                dr_core::error_text(&e)
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dr_test_support::apiserver::ApiServer;
    use dr_test_support::fault_proxy::{Fault, FaultProxy, RequestHead};
    use serde_json::json;

    fn job(name: &str, status: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "kasten-io"},
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "restore", "image": "dr-job"}]}}},
               "status": status})
    }

    /// While the watch was down the Job was deleted and another of the same name created and
    /// finished (another restore); the watch resumes with 410 Gone and the fresh read finds
    /// the other Job. Its verdict is not the followed Job's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_replaced_under_the_same_name_is_not_taken_for_the_one_followed() {
        let api = ApiServer::start().await;
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}}));
        let followed = api.seed(job("k10-restore", json!({"active": 1})));
        let (uid, rv) = (followed["metadata"]["uid"].as_str().unwrap().to_owned(), followed["metadata"]["resourceVersion"].as_str().unwrap().to_owned());
        let jobs: Api<Job> = Api::namespaced(api.client(), "kasten-io");
        jobs.delete("k10-restore", &kube::api::DeleteParams::background()).await.unwrap();
        let gone = kube::runtime::wait::await_condition(jobs.clone(), "k10-restore", kube::runtime::wait::conditions::is_deleted(&uid));
        tokio::time::timeout(std::time::Duration::from_secs(30), gone).await.unwrap().unwrap();
        let other = api.seed(job("k10-restore", json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})));
        assert_ne!(other["metadata"]["uid"], uid.as_str());

        let proxy = FaultProxy::start(&api.url);
        let watches = |h: &RequestHead| h.method == "GET" && h.path().ends_with("/jobs") && h.query().contains("watch=");
        proxy.on(watches, Fault::kube_status(410, "Expired", "too old resource version"), 1);
        let client = dr_core::kube_client(kube::Config::new(proxy.url.parse().unwrap())).unwrap();
        let (jobs, pods): (Api<Job>, Api<Pod>) = (Api::namespaced(client.clone(), "kasten-io"), Api::namespaced(client, "kasten-io"));
        let err = tokio::time::timeout(std::time::Duration::from_secs(30), watch_job(&jobs, &pods, "k10-restore", &uid, rv)).await.unwrap().unwrap_err();
        assert_eq!(proxy.applied("Respond"), 1, "the watch met the 410");
        assert!(err.to_string().contains("replaced by another Job of the same name"), "{err:#}");
    }
}
