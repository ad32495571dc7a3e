//! The restore's cluster-wide grant ends however the restore ends (`dr_core::restore::grant`
//! says when it is over). Three places end it in the pod:
//! - the restore container, when its run returns: succeeded, failed for good, or failed on
//!   the Job's last attempt;
//! - the restore container, on SIGTERM: the Job at its deadline, being deleted or with its
//!   verdict, or the pod deleted on the last attempt (not a disruption: the Job makes another
//!   pod);
//! - the `grant-keeper` sidecar (a native sidecar: the kubelet starts it before the restore
//!   container and sends it SIGTERM once that container has exited, or when the pod is
//!   deleted), for the endings the restore process never sees: an OOM kill or SIGKILL.
//!
//! Whoever comes second finds the binding gone (its delete is then forbidden, which
//! `end_cluster_grant` counts as gone).

use std::time::Duration;

use dr_core::restore::grant::{self, Ending, RESTORE_CONTAINER};
use dr_core::restore::RestoreOutcome;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use time::OffsetDateTime;

use crate::settings::GrantKeeperArgs;

/// The restore's Job (the Role grants `get` on it by name); `None` outside a Job or when it
/// cannot be read (logged: the grant is then decided without it).
pub async fn job(client: &kube::Client, namespace: &str, name: &str) -> Option<Job> {
    let jobs: kube::Api<Job> = kube::Api::namespaced(client.clone(), namespace);
    match jobs.get_opt(name).await {
        Ok(job) => job,
        Err(e) => {
            tracing::warn!(job = name, error = %dr_core::error_text(&e), "cannot read the restore's Job: whether this was its last attempt is not known");
            None
        }
    }
}

async fn pod(client: &kube::Client, namespace: &str, name: Option<&str>) -> Option<Pod> {
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), namespace);
    pods.get_opt(name?).await.inspect_err(|e| tracing::warn!(pod = name, error = %dr_core::error_text(e), "cannot read this pod")).ok().flatten()
}

/// Ends the grant if the restore is over now that the restore container ends with `code`.
/// Without its Job (a pod run by hand, or the Job unreadable) it goes by the code alone: a
/// transient failure (1) keeps the grant for the next pod, anything else ends it.
pub async fn end_if_over(client: &kube::Client, binding: Option<&str>, namespace: &str, job_name: &str, pod_name: Option<&str>, code: i32) {
    let Some(binding) = binding else { return };
    let over = match job(client, namespace, job_name).await {
        Some(job) => {
            let disrupted = pod(client, namespace, pod_name).await.is_some_and(|p| grant::disrupted(&p));
            grant::is_over(&job, Ending::Exited(code), disrupted, OffsetDateTime::now_utc())
        }
        None => (code != i32::from(dr_core::failure::ErrorKind::Transient.exit_code())).then(|| format!("exit code {code}")),
    };
    match over {
        Some(why) => {
            tracing::info!(binding, why = %why, "the restore is over: ending its cluster-wide grant");
            dr_core::restore::end_cluster_grant(client, binding).await;
        }
        None => tracing::info!(binding, "the Job runs another pod: its cluster-wide grant is kept for it"),
    }
}

/// The restore container got SIGTERM before the restore finished: the pod is being deleted
/// (the Job at its deadline or deleted, an eviction, an operator). It reports a transient
/// failure (exit 1), and ends the grant when that is the restore's end.
pub async fn terminated(client: &kube::Client, binding: Option<&str>, namespace: &str, job_name: &str, pod_name: Option<&str>) -> std::process::ExitCode {
    let kind = dr_core::failure::ErrorKind::Transient;
    tracing::warn!("terminated (SIGTERM) before the restore finished");
    end_if_over(client, binding, namespace, job_name, pod_name, i32::from(kind.exit_code())).await;
    let error = "the restore's pod was terminated before the restore finished (deleted, evicted, or its Job at its activeDeadlineSeconds); run the restore again to finish it (nothing is duplicated)";
    crate::finish(&RestoreOutcome::failed(error.to_owned(), kind, None))
}

/// How long the keeper waits, after SIGTERM, for the restore container's end to show in the
/// pod's status: the kubelet stops the sidecar after that container has exited, but writes
/// the status on its own schedule. Well inside the default 30 s grace period.
const STATUS_WAIT: Duration = Duration::from_secs(10);

/// `dr-job grant-keeper`: sleeps until SIGTERM, then reads how the restore container ended
/// and ends the grant when the restore is over. Its exit status is 0 either way (a sidecar's
/// status does not decide the pod's).
pub async fn keep(args: &GrantKeeperArgs) -> std::process::ExitCode {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tracing::info!(binding = ?args.rbac_binding, "keeping watch over the restore's cluster-wide grant until the pod ends");
    terminate.recv().await;
    let Some(binding) = args.rbac_binding.as_deref() else { return std::process::ExitCode::SUCCESS };
    let client = match crate::cluster_client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %dr_core::error_text(&e), binding, "cannot reach the cluster to end the restore's cluster-wide grant: delete ClusterRoleBinding {binding} once the Job has ended");
            return std::process::ExitCode::FAILURE;
        }
    };
    let waited = tokio::time::Instant::now();
    let (ending, disrupted) = loop {
        let pod = pod(&client, &args.namespace, Some(&args.pod_name)).await;
        let ended = pod.as_ref().and_then(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find(|c| c.name == RESTORE_CONTAINER)?
                .state
                .as_ref()?
                .terminated
                .as_ref()
                .map(|t| t.exit_code)
        });
        let disrupted = pod.as_ref().is_some_and(grant::disrupted);
        if let Some(code) = ended {
            break (Ending::Exited(code), disrupted);
        }
        if waited.elapsed() >= STATUS_WAIT {
            break (Ending::Unknown, disrupted);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let Some(job) = job(&client, &args.namespace, &args.restore_holder).await else {
        tracing::warn!(binding, "the restore's Job cannot be read: its cluster-wide grant is left to the Job's next pod or to kubectl dr restore");
        return std::process::ExitCode::SUCCESS;
    };
    match grant::is_over(&job, ending, disrupted, OffsetDateTime::now_utc()) {
        Some(why) => {
            tracing::info!(binding, why = %why, ending = ?ending, "the restore is over: ending its cluster-wide grant");
            dr_core::restore::end_cluster_grant(&client, binding).await;
        }
        None => tracing::info!(binding, ending = ?ending, "the Job runs another pod: its cluster-wide grant is kept for it"),
    }
    std::process::ExitCode::SUCCESS
}
