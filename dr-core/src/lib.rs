//! kubectl-dr's library: everything the `kubectl-dr` plugin and the in-cluster job share.
//! `docs/architecture.md` shows how the parts fit and the flow of a backup and a restore.
//!
//! The parts, each owning one thing:
//! - [`format`]: the encrypted file format and its crypto and compression, and
//!   [`catalog`]: what a point holds, resource categories and the fixed names; both are the
//!   `dr-format` crate (pure, sync, no tokio, kube or AWS SDK), re-exported here
//! - [`location`]: where points live (a directory or an S3 bucket)
//! - [`point`]: restore points: naming, manifest, writing, listing, and the one way to
//!   choose and open a point ([`point::choose`])
//! - [`passphrase`]: where the DR passphrase comes from (`k10-dr-secret`: raw, Vault, AWS)
//! - [`resources`]: the Profile and Policy custom resources, and a profile's location
//! - [`ownership`]: the cluster ID and the ownership ConfigMap (gate, claim, take-over)
//! - [`failure`]: what kind each error is, and the exit status and retry that follow from it
//! - [`api_retry`]: the one retry layer under every Kubernetes API call; [`events`],
//!   [`progress`], [`metrics`]: what runs report; [`cron`]: schedules; [`tls`]: CA bundles
//!
//! The workflows, built on the parts:
//! - [`backup`]: reading a live cluster into a point (the backup engine)
//! - [`restore`]: writing a point back onto a cluster: plan (one read of the point), then apply
//! - [`dr_policy`]: enable, status, disable and Run Once on a cluster
//! - [`job`]: what the in-cluster job runs, and the `DR_*` variables its pod sets
//! - [`retention`] (prune), [`replicate`], [`diff`], [`drill`], [`manifests`] (YAML in and
//!   out), [`images`] (mirroring the job image), [`self_check`]

// The parts.
pub mod api_retry;
pub use dr_format::catalog;
pub mod cron;
pub mod discovery;
pub mod events;
pub mod failure;
pub use dr_format as format;
mod insecure_http;
pub mod local_file;
pub mod location;
pub mod metrics;
pub mod ownership;
pub mod passphrase;
pub mod point;
pub mod progress;
pub mod resources;
pub mod tls;

// The workflows.
pub mod backup;
pub mod diff;
pub mod dr_policy;
pub mod drill;
pub mod images;
pub mod job;
pub mod manifests;
pub mod replicate;
pub mod restore;
pub mod retention;
pub mod self_check;

/// An error and its causes on one line, each said once. Many of the product's errors already
/// name their cause in their own message (`"...: {source}"`), so walking the chain as
/// anyhow's `{:#}` does would print it twice; a cause whose text is already there is skipped.
///
/// kube-rs displays an API error as `ApiError: <message>: <reason> (Status { … })`, the whole
/// response as a debug dump; wherever it appears in the chain it is said as the API server's
/// message and reason instead.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = plain(e).unwrap_or_else(|| e.to_string());
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(clean) = plain(c) {
            text = text.replace(&c.to_string(), &clean);
        }
        let said = plain(c).unwrap_or_else(|| c.to_string());
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// The kind of any error the binaries meet: the first error in the chain whose type knows
/// its kind decides; anything else is bad input (a message that says what to fix).
pub fn kind_of(error: &(dyn std::error::Error + 'static)) -> failure::ErrorKind {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        macro_rules! known {
            ($($t:ty),*) => {
                $(if let Some(e) = e.downcast_ref::<$t>() {
                    return failure::Classify::kind(e);
                })*
            };
        }
        known!(
            crate::restore::RestoreError,
            crate::replicate::ReplicateError,
            crate::job::JobError,
            crate::point::PointError,
            crate::location::LocationError,
            crate::resources::ResourceError,
            crate::passphrase::PassphraseError,
            crate::backup::BackupError,
            crate::ownership::OwnershipError,
            crate::retention::PruneError,
            crate::dr_policy::InstallError,
            crate::format::FormatError,
            kube::Error
        );
        current = e.source();
    }
    failure::ErrorKind::BadInput
}

/// A kube API error as the API server said it: its message, then its reason and code.
fn plain(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let status: &kube::core::Status = match e.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => status,
        // kube::Error::Api's source: the Status, boxed.
        _ => match e.downcast_ref::<Box<kube::core::Status>>() {
            Some(boxed) => boxed,
            None => e.downcast_ref::<kube::core::Status>()?,
        },
    };
    Some(match (status.reason.as_str(), status.code) {
        ("", 0) => status.message.clone(),
        (reason, 0) => format!("{} ({reason})", status.message),
        ("", code) => format!("{} (HTTP {code})", status.message),
        (reason, code) => format!("{} ({reason}, HTTP {code})", status.message),
    })
}

/// The log filter both binaries use unless `DR_LOG` names another: `level`, except kube-rs's
/// warnings ("Server cert bypassed" on every connection to a cluster whose kubeconfig says
/// `insecure-skip-tls-verify`, which the user chose; "eof in poll" when a watch's connection
/// is cut) and its per-request "failed with error client error (Connect)" lines, which it
/// logs as errors on every attempt while an API server restarts: the product's retries and
/// its own messages say what failed and what it waits for.
pub fn default_log_filter(level: &str) -> String {
    format!("{level},kube_client=error,kube_client::client::builder=off")
}

/// Installs aws-lc-rs as rustls' process-wide crypto provider, once. reqwest is built without
/// a provider of its own so that there is exactly one (two make rustls panic).
pub fn init_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

/// A Kubernetes client for `config`, with the product's one retry layer for API calls
/// ([`api_retry::ApiRetry`]).
pub fn kube_client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    init_crypto_provider();
    config.default_retry = false;
    // Retry needs a service it can clone: a buffer in front of kube's boxed stack makes one.
    // (The buffer's worker is spawned on the current runtime: call this from async code.)
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&tower::retry::RetryLayer::new(api_retry::ApiRetry::default()))
        .build())
}
