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

/// An error and its causes on one line, each said once: `error: cause: cause's cause`. The
/// product's errors say only their own context in their message and return their cause from
/// `source()` (never both), so this is how any of them is shown to a user or logged: their
/// `to_string()` alone leaves the cause out.
///
/// kube-rs displays an API error as `ApiError: <message>: <reason> (Status { … })`, the whole
/// response as a debug dump; wherever it appears in the chain it is said as the API server's
/// message and reason instead.
///
/// Foreign errors (the AWS SDK's, hyper's, io's, kube-runtime's watcher and wait errors) may
/// name their own source in their message as well: as a safety net for those, a cause whose
/// text is already said is skipped.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = said(e);
    let mut cause = e.source();
    while let Some(c) = cause {
        let own = said(c);
        if plain(c).is_some() {
            // A foreign error that embeds a kube API error's debug dump says it plainly.
            text = text.replace(&c.to_string(), &own);
        }
        if !text.contains(&own) {
            text.push_str(": ");
            text.push_str(&own);
        }
        cause = c.source();
    }
    text
}

/// One error's own text: a kube API error's plain form, any other error's message.
fn said(e: &(dyn std::error::Error + 'static)) -> String {
    plain(e).unwrap_or_else(|| e.to_string())
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
/// its own messages say what failed and what it waits for. kube-runtime's watcher warns with a
/// debug dump on each retry of a refused watch (403), which the follower reports itself.
pub fn default_log_filter(level: &str) -> String {
    format!("{level},kube_client=error,kube_client::client::builder=off,kube_runtime=error")
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

#[cfg(test)]
mod tests {
    use super::error_text;
    use std::error::Error;
    use std::io;

    fn api_error(message: &str, reason: &str, code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure(message, reason).with_code(code)))
    }

    /// `error_text(e)` says each of `parts` (the message, the causes, any advice) exactly once,
    /// without kube-rs's debug dump; and `e`'s own message leaves out its source, which
    /// `source()` returns, so a `{source}` put back in an `#[error(...)]` fails here.
    fn said_once(e: &(dyn Error + 'static), parts: &[&str]) -> String {
        let text = error_text(e);
        for part in parts {
            assert_eq!(text.matches(part).count(), 1, "{part:?} said once: {text}");
        }
        assert!(!text.contains("Status {"), "{text}");
        let source = e.source().expect("an error with a cause");
        for cause in [source.to_string(), super::said(source)] {
            assert!(!e.to_string().contains(&cause), "the message {:?} names its source {cause:?}", e.to_string());
        }
        text
    }

    #[test]
    fn a_point_error_around_a_format_error_around_an_io_error_says_each_once() {
        use crate::format::FormatError;
        let point = "restore point 20261121T093000.123Z-0a1b2c3d, archive";
        let format = "I/O error while reading or writing the restore point";
        let eio = || io::Error::from_raw_os_error(libc::EIO);
        said_once(&FormatError::Io(eio()), &[format, "Input/output error"]);
        let e = crate::point::PointError::Format { point: "20261121T093000.123Z-0a1b2c3d".into(), file: "archive", source: FormatError::Io(eio()) };
        assert_eq!(said_once(&e, &[point, format, "Input/output error"]), format!("{point}: {format}: Input/output error (os error 5)"));
        // Wrapped again: a prune that met that point.
        let e = crate::retention::PruneError::Prune { location: "file:///dr".into(), source: e };
        let prune = "pruning file:///dr (prune needs credentials that may list, read and delete)";
        assert_eq!(said_once(&e, &[prune, point, format, "Input/output error"]), format!("{prune}: {point}: {format}: Input/output error (os error 5)"));
    }

    #[test]
    fn location_errors_around_io_errors_say_the_cause_once_after_the_advice() {
        use crate::location::LocationError;
        let e = crate::point::PointError::Location(LocationError::Io {
            action: "cannot list",
            path: "/dr/c".into(),
            source: io::ErrorKind::PermissionDenied.into(),
        });
        assert_eq!(said_once(&e, &["cannot list /dr/c", "permission denied"]), "cannot list /dr/c: permission denied");
        let e = LocationError::NoSpace { location: "file:///dr".into(), key: "c/archive.kdr".into(), source: io::Error::from_raw_os_error(libc::ENOSPC) };
        let text = said_once(&e, &["location file:///dr is full writing c/archive.kdr", "free space there", "never restored", "No space left on device"]);
        assert!(text.ends_with("never restored; the system said: No space left on device (os error 28)"), "{text}");
        let e = LocationError::DiskFailed { location: "file:///dr".into(), key: "c/manifest.kdr".into(), source: io::Error::from_raw_os_error(libc::EIO) };
        said_once(&e, &["the disk of location file:///dr failed writing c/manifest.kdr", "check the disk or the NFS share", "Input/output error"]);
        let e = crate::dr_policy::InstallError::Unusable {
            location: "file:///dr".into(),
            source: LocationError::Io { action: "cannot read", path: "/dr/x".into(), source: io::ErrorKind::NotFound.into() },
        };
        said_once(&e, &["location file:///dr is not usable (give --skip-validation", "cannot read /dr/x", "entity not found"]);
    }

    #[test]
    fn local_file_and_manifest_errors_say_the_io_error_once() {
        use crate::manifests::ManifestError;
        let e = ManifestError::File(crate::local_file::LocalFileError::Io {
            what: "manifest",
            path: "/m/a.yaml".into(),
            source: io::ErrorKind::PermissionDenied.into(),
        });
        said_once(&e, &["cannot read manifest /m/a.yaml", "permission denied"]);
        said_once(&ManifestError::Io { path: "/m".into(), source: io::ErrorKind::NotFound.into() }, &["cannot read /m", "entity not found"]);
        let e = ManifestError::Write { path: "/out/a.yaml".into(), source: io::Error::from_raw_os_error(libc::ENOSPC) };
        said_once(&e, &["cannot write /out/a.yaml", "No space left on device"]);
    }

    #[test]
    fn a_kube_api_error_is_said_once_plainly_wherever_it_is_in_the_chain() {
        let forbidden = || api_error("profiles.dr.kubectl-dr.io \"offsite\" is forbidden", "Forbidden", 403);
        let cause = "profiles.dr.kubectl-dr.io \"offsite\" is forbidden (Forbidden, HTTP 403)";
        let e = crate::job::JobError::Resource(crate::resources::ResourceError::Api { what: "profile offsite".into(), source: forbidden() });
        assert_eq!(said_once(&e, &["reading profile offsite failed", cause]), format!("reading profile offsite failed: {cause}"));
        let e = crate::restore::RestoreError::Api { what: "creating Lease dr-restore".into(), source: forbidden() };
        assert_eq!(said_once(&e, &["creating Lease dr-restore", cause]), format!("creating Lease dr-restore: {cause}"));
        let e = crate::backup::BackupError::Discovery(forbidden());
        let advice = "cannot discover the cluster's resources (check that the API server is reachable and the credentials are valid)";
        assert_eq!(said_once(&e, &[advice, cause]), format!("{advice}: {cause}"));
        said_once(&crate::ownership::OwnershipError::ClusterId(forbidden()), &["cannot read namespace default to get the cluster ID", cause]);
        said_once(&crate::retention::PruneError::Api(forbidden()), &["reading the DR policy failed", cause]);
        let others: [Box<dyn Error>; 5] = [
            crate::dr_policy::InstallError::Api { what: "creating CronJob x".into(), source: forbidden() }.into(),
            crate::drill::DrillError::Api { what: "creating CronJob x".into(), source: forbidden() }.into(),
            crate::ownership::OwnershipError::Api { what: "creating CronJob x".into(), source: forbidden() }.into(),
            crate::backup::BackupError::List { resource: "CronJob x".into(), source: forbidden() }.into(),
            crate::job::JobError::Api { name: "CronJob x".into(), source: forbidden() }.into(),
        ];
        for e in others {
            said_once(e.as_ref(), &["CronJob x", cause]);
        }
    }

    #[test]
    fn a_foreign_error_that_embeds_its_source_has_it_said_once() {
        // kube-runtime's wait and watcher errors put their source in their own message too.
        let wait = || {
            let failed = api_error("the server is currently unable to handle the request", "ServiceUnavailable", 503);
            kube::runtime::wait::Error::ProbeFailed(kube::runtime::watcher::Error::InitialListFailed(failed))
        };
        let said =
            ["failed to probe", "failed to perform initial object list", "the server is currently unable to handle the request (ServiceUnavailable, HTTP 503)"];
        let e = crate::drill::DrillError::Wait { what: "watching namespace sandbox go".into(), source: wait() };
        let text = said_once(&e, &[&["watching namespace sandbox go"][..], &said].concat());
        assert!(!text.contains("ApiError"), "{text}");
        let e = crate::dr_policy::InstallError::Wait { what: "watching CRD policies.dr.kubectl-dr.io".into(), source: wait() };
        said_once(&e, &[&["watching CRD policies.dr.kubectl-dr.io"][..], &said].concat());
    }
}
