//! Following a Job to its end: kube-runtime's watcher of the Job, a watcher of its pods whose
//! logs give live progress and the whole result, and the container's termination message.

use std::time::Instant;

use anyhow::{bail, Result};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;

/// The pods of one Job (`job_uid`), newest last: a Job's pods carry its UID in the
/// `batch.kubernetes.io/controller-uid` label; an earlier Job of the same name is another UID.
async fn pods_of(pods: &Api<Pod>, job: &str, job_uid: &str) -> Option<Vec<Pod>> {
    let list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await.ok()?;
    let mut mine: Vec<Pod> = list.items.into_iter().filter(|p| is_of_job(p, job_uid)).collect();
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

/// Follows the Job `job_uid` until the Job controller gives its verdict, with kube-runtime's
/// watcher: a list, then a watch it resumes from the last resourceVersion (bookmarks kept) and
/// lists afresh on 410 Gone. `jobs` must come from a client without the retry layer
/// ([`crate::input::follow_client`]): an API server that stops answering (or answers 429/5xx)
/// is then noticed and said within seconds, where the retry layer would ride it out silently
/// for 90 s; the watch starts over with a fresh list after a pause, whose answer says the API
/// server is back. A Job of the same name but another UID is not followed.
pub async fn watch_job(jobs: &Api<Job>, pods: &Api<Pod>, name: &str, job_uid: &str) -> Result<JobState> {
    let started = Instant::now();
    let mut last_state = None;
    let mut failed_seen = 0;
    let mut outage = Outage::default();
    // Each watch ends after 55 s of its own accord, so a link that went dead silently is
    // found within a minute (the server's default is five).
    let config = watcher::Config::default().fields(&format!("metadata.name={name}")).timeout(55);
    'watch: loop {
        let mut events = watcher::watcher(jobs.clone(), config.clone()).boxed();
        // Whether the list that (re)started the watch held the Job: a list without it means
        // the Job is gone.
        let mut listed = false;
        while let Some(event) = events.next().await {
            let job = match event {
                Ok(Event::Init) => {
                    listed = false;
                    continue;
                }
                Ok(Event::InitApply(job)) => {
                    listed = true;
                    job
                }
                Ok(Event::InitDone) if listed => continue,
                Ok(Event::InitDone) => bail!("job {name} was deleted before it finished"),
                Ok(Event::Apply(job)) => job,
                // Another Job of the same name (an earlier one, replayed from an old
                // resourceVersion) going away is not this one's end.
                Ok(Event::Delete(gone)) if another_job(&gone, job_uid) => continue,
                Ok(Event::Delete(_)) => bail!("job {name} was deleted before it finished"),
                // The resourceVersion is too old. As an event in the stream the watcher lists
                // afresh itself; as the answer to the watch request (which it would repeat with
                // the same resourceVersion) start over with a list here. After a pause either
                // way, so a server that keeps answering 410 is not asked in a tight loop.
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    tokio::time::sleep(PAUSE).await;
                    continue;
                }
                Err(watcher::Error::WatchStartFailed(kube::Error::Api(status))) if status.code == 410 => {
                    tokio::time::sleep(PAUSE).await;
                    continue 'watch;
                }
                Err(e) if transient(&e) => {
                    outage.wait(name, &e, started).await?;
                    continue 'watch;
                }
                Err(e) => bail!("watching job {name}: {}", dr_core::error_text(&e)),
            };
            outage.over(name);
            same_job(&job, name, job_uid)?;
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

/// The pause before asking a failing or unreachable API server again.
const PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// How long the API server may fail before it is said: a request refused once (a load
/// balancer moving to another server) is not an outage.
const SAY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// An API server that does not answer, or answers only 429/5xx, while the Job is followed.
#[derive(Default)]
struct Outage {
    /// Since when, if it is failing now.
    since: Option<Instant>,
    /// Whether that was said (and so its end is said too).
    said: bool,
}

impl Outage {
    /// Notes a failure, says it once it has lasted [`SAY_AFTER`], fails once it has lasted
    /// [`FOLLOW_OUTAGE`], and pauses before the next try.
    async fn wait(&mut self, name: &str, e: &watcher::Error, started: Instant) -> Result<()> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if !self.said && since.elapsed() >= SAY_AFTER {
            let what = match busy(e) {
                Some(code) => format!("the API server is answering {code} (overloaded or throttling)"),
                None => "the API server stopped answering".to_owned(),
            };
            super::progress::say(&format!(
                "job {name}: {what} ({}s); the Job runs on in the cluster: waiting for the API server to come back",
                started.elapsed().as_secs()
            ));
            self.said = true;
        }
        if since.elapsed() >= FOLLOW_OUTAGE {
            bail!(
                "the API server has not answered for {} s while following job {name} ({}): the Job may still be running; see it with `kubectl get job {name}` once the cluster answers",
                since.elapsed().as_secs(),
                dr_core::error_text(e)
            );
        }
        tokio::time::sleep(PAUSE).await;
        Ok(())
    }

    /// An answer came: says so if the outage was said.
    fn over(&mut self, name: &str) {
        if let (Some(since), true) = (self.since.take(), std::mem::take(&mut self.said)) {
            super::progress::say(&format!("job {name}: the API server answers again after {}s; following the Job", since.elapsed().as_secs()));
        }
    }
}

/// The kube error under a watcher's failure to list or watch.
fn client_error(e: &watcher::Error) -> Option<&kube::Error> {
    match e {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => Some(e),
        watcher::Error::WatchError(_) | watcher::Error::NoResourceVersion => None,
    }
}

/// The status code when the API server answered one that is worth waiting out (429 from API
/// priority and fairness, 500/502/503/504 from an overloaded server or a load balancer).
fn busy(e: &watcher::Error) -> Option<u16> {
    let code = match e {
        watcher::Error::WatchError(status) => status.code,
        other => match client_error(other)? {
            kube::Error::Api(status) => status.code,
            _ => return None,
        },
    };
    dr_core::api_retry::retryable_status(code).then_some(code)
}

/// Whether the watcher failed for a reason that passes: the API server could not be reached
/// (no answer at all), or it answered a status worth waiting out ([`busy`]).
fn transient(e: &watcher::Error) -> bool {
    busy(e).is_some() || client_error(e).is_some_and(|e| !matches!(e, kube::Error::Api(_)))
}

/// The last lines of a Job's pods' logs, for a failure report.
pub async fn job_logs(pods: &Api<Pod>, job: &str, job_uid: &str, lines: i64) -> Option<String> {
    let list = pods_of(pods, job, job_uid).await?;
    let pod = list.last()?;
    pods.logs(&pod.name_any(), &LogParams { tail_lines: Some(lines), ..Default::default() }).await.ok()
}

/// What a Job's logs held: the result line its newest pod printed on stdout (the restore's
/// whole report, the backup's summary), which the 4 KiB termination message may only carry in
/// part. An earlier pod's (failed) attempt printed one too; the newest pod's is the one kept.
#[derive(Default)]
pub struct FollowedLogs {
    pub result: Option<String>,
    /// When the pod that printed `result` was created.
    result_of: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// A log line that is the container's printed result: JSON that is not one of its tracing
/// lines (those carry `level` and `fields`).
fn is_result_line(line: &str) -> bool {
    line.starts_with('{') && serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.get("level").is_none() && v.get("fields").is_none())
}

/// When the Job had its verdict (sent once it has), for the log follower.
type Verdict = tokio::sync::watch::Receiver<Option<tokio::time::Instant>>;

/// How long after the verdict the pods' logs are still read: the last pod's log ends with its
/// container, just before the verdict, except when the Job's deadline ends it while the pod
/// still runs (its grace period). Less than the caller waits for the follower.
const LOG_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// Follows the logs of `job`'s pods, one after another as the Job retries, showing each
/// progress line, until the Job has its verdict and the pods started by then have been read
/// (for at most [`LOG_GRACE`] after it). Pods come from a watch of the Job's pods (by its UID);
/// one whose container has not started is followed once an event says it has.
pub async fn follow_logs(pods: Api<Pod>, job: String, job_uid: String, mut verdict: Verdict) -> FollowedLogs {
    let mut out = FollowedLogs::default();
    let mut followed: std::collections::HashSet<String> = Default::default();
    let config = watcher::Config::default().labels(&format!("job-name={job}")).timeout(55);
    // Errors (an API server restarting) are retried with backoff; the Job's own watch says them.
    let mut events = watcher::watcher(pods.clone(), config).default_backoff().applied_objects().boxed();
    loop {
        let pod = tokio::select! {
            biased;
            event = events.next() => match event {
                Some(Ok(pod)) => pod,
                Some(Err(_)) => continue,
                None => break,
            },
            _ = verdict.wait_for(|v| v.is_some()) => break,
        };
        if is_of_job(&pod, &job_uid) && has_started(&pod) && !followed.contains(&pod.name_any()) && follow_pod_log(&pods, &pod, &mut out, verdict.clone()).await
        {
            followed.insert(pod.name_any());
        }
    }
    // The verdict is in: a pod that started and was not read to its end yet (its events still
    // queued, or its log cut) may hold the result line; read it, oldest first.
    if let Some(list) = pods_of(&pods, &job, &job_uid).await {
        for pod in list.iter().filter(|p| has_started(p) && !followed.contains(&p.name_any())) {
            follow_pod_log(&pods, pod, &mut out, verdict.clone()).await;
        }
    }
    super::progress::finish();
    out
}

/// Whether a pod belongs to the Job `job_uid` (its controller-uid label, or its owner).
fn is_of_job(p: &Pod, job_uid: &str) -> bool {
    let labels = p.labels();
    labels.get("batch.kubernetes.io/controller-uid").or_else(|| labels.get("controller-uid")).map(String::as_str) == Some(job_uid)
        || p.owner_references().iter().any(|o| o.uid == job_uid)
}

/// Whether a pod's container has started (running, or already ended): it has a log.
fn has_started(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some())))
}

/// Follows one pod's log, showing progress lines and keeping its result line (unless a newer
/// pod's is kept), until the log ends or [`LOG_GRACE`] after the verdict. False when the log
/// could not be opened or was cut (an API server restarting): it is read again later.
async fn follow_pod_log(pods: &Api<Pod>, pod: &Pod, out: &mut FollowedLogs, verdict: Verdict) -> bool {
    use futures::AsyncBufReadExt;
    let name = pod.name_any();
    let stream = match pods.log_stream(&name, &LogParams { follow: true, ..Default::default() }).await {
        Ok(stream) => stream,
        // No log (logs not allowed, the API server away): the verdict and the termination
        // message come either way.
        Err(e) => {
            tracing::debug!(pod = %name, error = %dr_core::error_text(&e), "cannot follow the pod's log");
            return false;
        }
    };
    let grace = async move {
        let mut verdict = verdict;
        // The sender gone: the caller no longer waits.
        let Ok(at) = verdict.wait_for(|v| v.is_some()).await.map(|v| v.expect("some")) else { return };
        tokio::time::sleep_until(at + LOG_GRACE).await;
    };
    tokio::pin!(grace);
    let mut lines = stream.lines();
    loop {
        let line = tokio::select! {
            biased;
            line = lines.next() => line,
            _ = &mut grace => return true,
        };
        match line {
            Some(Ok(line)) => {
                if let Some(p) = dr_core::progress::Progress::from_log_line(&line) {
                    super::progress::show(&p);
                } else if is_result_line(&line) && out.result_of.as_ref() <= pod.metadata.creation_timestamp.as_ref() {
                    out.result = Some(line);
                    out.result_of = pod.metadata.creation_timestamp.clone();
                }
            }
            None => return true,
            Some(Err(e)) => {
                tracing::debug!(pod = %name, error = %e, "the pod's log was cut");
                return false;
            }
        }
    }
}

/// [`watch_job`] with the Job's progress shown from its pods' logs while it runs. Returns
/// the Job's verdict and what the logs held. `jobs` and `pods` come from a client without the
/// retry layer ([`crate::input::follow_client`]).
pub async fn watch_job_with_progress(jobs: &Api<Job>, pods: &Api<Pod>, name: &str, job_uid: &str) -> Result<(JobState, FollowedLogs)> {
    let (verdict_at, verdict) = tokio::sync::watch::channel(None);
    let mut follower = tokio::spawn(follow_logs(pods.clone(), name.to_owned(), job_uid.to_owned(), verdict));
    let state = watch_job(jobs, pods, name, job_uid).await;
    let _ = verdict_at.send(Some(tokio::time::Instant::now()));
    // The follower reads for at most LOG_GRACE after the verdict; this bound is a backstop.
    let logs = match tokio::time::timeout(LOG_GRACE + std::time::Duration::from_secs(2), &mut follower).await {
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

    /// The Jobs and pods of kasten-io through `url`, on the client the plugin follows a Job with.
    fn followed_through(url: &str) -> (Api<Job>, Api<Pod>) {
        let client = crate::input::follow_client_for(kube::Config::new(url.parse().unwrap())).unwrap();
        (Api::namespaced(client.clone(), "kasten-io"), Api::namespaced(client, "kasten-io"))
    }

    fn job(name: &str, status: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "kasten-io"},
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "restore", "image": "dr-job"}]}}},
               "status": status})
    }

    /// While the watch was down the Job was deleted and another of the same name created and
    /// finished (another restore); the watch is answered 410 Gone and the fresh list finds the
    /// other Job. Its verdict is not the followed Job's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_replaced_under_the_same_name_is_not_taken_for_the_one_followed() {
        let api = ApiServer::start().await;
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}}));
        let followed = api.seed(job("k10-restore", json!({"active": 1})));
        let uid = followed["metadata"]["uid"].as_str().unwrap().to_owned();
        // The first watch is held 3 s and then answered 410, as after an outage.
        let proxy = FaultProxy::start(&api.url);
        let watches = |h: &RequestHead| h.method == "GET" && h.path().ends_with("/jobs") && h.query().contains("watch=");
        proxy.on(watches, Fault::Slow(std::time::Duration::from_secs(3), Box::new(Fault::kube_status(410, "Expired", "too old resource version"))), 1);
        let (jobs, pods) = followed_through(&proxy.url);
        let follow = tokio::spawn(async move { watch_job(&jobs, &pods, "k10-restore", &uid).await });
        // Once the first list found the followed Job (the watch after it is being held): the
        // Job deleted, another created under its name, and finished.
        while !proxy.seen().iter().any(|s| s.target.contains("/jobs") && !s.target.contains("watch=")) {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let direct: Api<Job> = Api::namespaced(api.client(), "kasten-io");
        direct.delete("k10-restore", &kube::api::DeleteParams::background()).await.unwrap();
        let gone = kube::runtime::wait::await_condition(
            direct.clone(),
            "k10-restore",
            kube::runtime::wait::conditions::is_deleted(followed["metadata"]["uid"].as_str().unwrap()),
        );
        tokio::time::timeout(std::time::Duration::from_secs(30), gone).await.unwrap().unwrap();
        let other = api.seed(job("k10-restore", json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})));
        assert_ne!(other["metadata"]["uid"], followed["metadata"]["uid"]);
        assert_eq!(proxy.applied("Respond"), 0, "the Job was replaced while the watch was held");
        let err = tokio::time::timeout(std::time::Duration::from_secs(30), follow).await.unwrap().unwrap().unwrap_err();
        assert_eq!(proxy.applied("Respond"), 1, "the watch met the 410 (after its delay)");
        assert!(err.to_string().contains("replaced by another Job of the same name"), "{err:#}");
    }

    /// The follower's client has no retry layer: 503s and 429s (an overloaded server, API
    /// priority and fairness) are waited out as an outage, not taken as the end of following.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_api_server_answering_503_and_429_is_waited_out_while_following() {
        let api = ApiServer::start().await;
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}}));
        let done = api.seed(job("k10-restore", json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})));
        let uid = done["metadata"]["uid"].as_str().unwrap().to_owned();
        let proxy = FaultProxy::start(&api.url);
        let lists = |h: &RequestHead| h.method == "GET" && h.path().ends_with("/jobs") && !h.query().contains("watch=");
        proxy.on(lists, Fault::kube_status(503, "ServiceUnavailable", "the server is currently unable to handle the request"), 5);
        proxy.on(lists, Fault::kube_status(429, "TooManyRequests", "too many requests").with_header("Retry-After", "1"), 3);
        let (jobs, pods) = followed_through(&proxy.url);
        let started = std::time::Instant::now();
        let state = tokio::time::timeout(std::time::Duration::from_secs(60), watch_job(&jobs, &pods, "k10-restore", &uid)).await.unwrap().unwrap();
        assert_eq!(state, JobState::Succeeded);
        assert_eq!(proxy.applied("Respond"), 8, "every refusal was met and waited out");
        assert!(started.elapsed() >= std::time::Duration::from_millis(8 * 500), "paused between tries: {:?}", started.elapsed());
    }
}
