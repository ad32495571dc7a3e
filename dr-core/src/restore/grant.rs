//! When the restore's cluster-wide grant ends. A full restore holds broad RBAC (create on
//! every resource its point holds, escalate/bind) through one ClusterRoleBinding; it must end
//! however the restore ends, not only when the restore process gets to say so. The grant is
//! over when the Job will start no other pod, which its pods can tell from their Job:
//! - the Job has a verdict (`FailureTarget`/`Failed`, `SuccessCriteriaMet`/`Complete`), is
//!   being deleted, or is at its `activeDeadlineSeconds`;
//! - the pod's main container succeeded, or failed with an exit code a `podFailurePolicy`
//!   `FailJob` rule matches;
//! - it failed otherwise on the last attempt: the Job counts the failed pods before this one
//!   in `status.failed` (this pod is counted once all its containers are done), so this
//!   failure is final when `status.failed + 1 > spec.backoffLimit`.
//!
//! A pod with the `DisruptionTarget` condition (evicted, preempted, its node drained) is
//! ignored by the chart's `podFailurePolicy`: the Job makes another pod, which needs the grant.
//! The restore container (`dr-job restore`) and its native sidecar (`dr-job grant-keeper`,
//! for endings the restore process cannot see: an OOM kill, SIGKILL) both decide with
//! [`is_over`].

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use time::OffsetDateTime;

/// The restore container's name in the chart's pod.
pub const RESTORE_CONTAINER: &str = "restore";

/// How a pod's main container ended, as far as the pod knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this code.
    Exited(i32),
    /// It is still running, or its end is not known (the pod is being terminated).
    Unknown,
}

/// The Job's deadline: `status.startTime + spec.activeDeadlineSeconds`, when it has one.
pub fn deadline(job: &Job) -> Option<OffsetDateTime> {
    let seconds = job.spec.as_ref()?.active_deadline_seconds?;
    let start = job.status.as_ref()?.start_time.as_ref()?.0;
    let start = OffsetDateTime::from_unix_timestamp(start.as_second()).ok()?;
    Some(start + Duration::from_secs(seconds.max(0) as u64))
}

/// Whether the Job has a verdict or is going: it will make no other pod.
pub fn job_is_done(job: &Job, now: OffsetDateTime) -> Option<&'static str> {
    if job.metadata.deletion_timestamp.is_some() {
        return Some("the Job is being deleted");
    }
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref()).map(Vec::as_slice).unwrap_or_default();
    if conditions.iter().any(|c| c.status == "True" && matches!(c.type_.as_str(), "Failed" | "FailureTarget" | "Complete" | "SuccessCriteriaMet")) {
        return Some("the Job has its verdict");
    }
    // A second's slack: the controller acts on the deadline on its own clock.
    if deadline(job).is_some_and(|d| now + Duration::from_secs(1) >= d) {
        return Some("the Job is at its activeDeadlineSeconds");
    }
    None
}

/// Whether a `FailJob` rule of the Job's `podFailurePolicy` matches `code` from `container`.
pub fn fails_job(job: &Job, container: &str, code: i32) -> bool {
    let rules = job.spec.as_ref().and_then(|s| s.pod_failure_policy.as_ref()).map(|p| p.rules.as_slice()).unwrap_or_default();
    // Rules are evaluated in order and the first that matches decides.
    for rule in rules {
        let Some(on) = &rule.on_exit_codes else { continue };
        if on.container_name.as_deref().is_some_and(|c| c != container) {
            continue;
        }
        let listed = on.values.contains(&code);
        let matches = match on.operator.as_str() {
            "In" => listed,
            // NotIn never matches 0 (a container that succeeded).
            "NotIn" => code != 0 && !listed,
            _ => false,
        };
        if matches {
            return rule.action == "FailJob";
        }
    }
    false
}

/// Whether the pod was disrupted (evicted, preempted, its node drained): the chart's
/// `podFailurePolicy` ignores such a pod and the Job makes another.
pub fn disrupted(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| cs.iter().any(|c| c.type_ == "DisruptionTarget" && c.status == "True"))
}

/// Whether the restore is over once this pod's main container has ended so (or, `Unknown`,
/// is being terminated): `Some(why)` when the Job will run no other pod, so the grant ends.
pub fn is_over(job: &Job, ending: Ending, pod_disrupted: bool, now: OffsetDateTime) -> Option<String> {
    if let Some(why) = job_is_done(job, now) {
        return Some(why.into());
    }
    let Ending::Exited(code) = ending else { return None };
    if code == 0 {
        return Some("the restore succeeded".into());
    }
    if pod_disrupted {
        return None;
    }
    if fails_job(job, RESTORE_CONTAINER, code) {
        return Some(format!("exit code {code} fails the Job (podFailurePolicy)"));
    }
    let failed = job.status.as_ref().and_then(|s| s.failed).unwrap_or(0);
    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
    if failed + 1 > limit {
        return Some(format!("this was the Job's last attempt ({} of {})", failed + 1, limit + 1));
    }
    None
}

/// The time a restore pod may run so that it ends (and ends the grant) before its Job's
/// deadline: the deadline less a margin of a tenth of `activeDeadlineSeconds`, at least 5 s
/// and at most a minute, for the last steps (the grant, the Event, the outcome).
pub fn time_left(job: &Job, now: OffsetDateTime) -> Option<Duration> {
    let deadline = deadline(job)?;
    let seconds = job.spec.as_ref()?.active_deadline_seconds?.max(0) as u64;
    let margin = Duration::from_secs((seconds / 10).clamp(5, 60));
    let left = deadline - now;
    Some(Duration::try_from(left).unwrap_or(Duration::ZERO).saturating_sub(margin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                b.into_iter().for_each(|(k, v)| merge(a.entry(k).or_insert(serde_json::Value::Null), v))
            }
            (a, b) => *a = b,
        }
    }

    fn job(extra: serde_json::Value) -> Job {
        let mut j = json!({"metadata": {"name": "k10-restore"}, "spec": {"backoffLimit": 2, "template": {},
            "podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"containerName": "restore", "operator": "In", "values": [2, 3, 4, 5, 6, 7]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}},
            "status": {}});
        merge(&mut j, extra);
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn a_failure_is_final_on_the_last_attempt_or_when_the_policy_fails_the_job() {
        let now = OffsetDateTime::now_utc();
        assert!(is_over(&job(json!({})), Ending::Exited(0), false, now).is_some());
        assert!(is_over(&job(json!({})), Ending::Exited(1), false, now).is_none(), "first of three attempts");
        assert!(is_over(&job(json!({"status": {"failed": 1}})), Ending::Exited(1), false, now).is_none());
        assert!(is_over(&job(json!({"status": {"failed": 2}})), Ending::Exited(137), false, now).unwrap().contains("last attempt (3 of 3)"));
        assert!(is_over(&job(json!({"status": {"failed": 2}})), Ending::Exited(137), true, now).is_none(), "a disrupted pod is not counted");
        assert!(is_over(&job(json!({})), Ending::Exited(4), false, now).unwrap().contains("podFailurePolicy"));
        assert!(is_over(&job(json!({})), Ending::Unknown, false, now).is_none(), "a terminated pod of a running Job");
        let failed = json!({"status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
        assert!(is_over(&job(failed), Ending::Unknown, false, now).is_some());
    }

    #[test]
    fn the_deadline_comes_from_the_jobs_start_and_leaves_a_margin() {
        let start = OffsetDateTime::now_utc() - Duration::from_secs(100);
        let started = json!({"spec": {"activeDeadlineSeconds": 600}, "status": {"startTime": crate::point::rfc3339(start.replace_nanosecond(0).unwrap())}});
        let j = job(started);
        let left = time_left(&j, OffsetDateTime::now_utc()).unwrap();
        assert!(left <= Duration::from_secs(440) && left >= Duration::from_secs(435), "{left:?}");
        assert!(job_is_done(&j, OffsetDateTime::now_utc()).is_none());
        assert!(job_is_done(&j, start + Duration::from_secs(600)).is_some());
        assert_eq!(time_left(&j, start + Duration::from_secs(700)), Some(Duration::ZERO));
        assert_eq!(time_left(&job(json!({})), OffsetDateTime::now_utc()), None, "no deadline");
    }
}
