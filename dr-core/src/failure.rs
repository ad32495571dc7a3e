//! One failure model for both binaries: every error has a kind, and the kind alone decides
//! the exit status, whether running again can help, and what the chart's `podFailurePolicy`
//! does with a restore pod that ended with it (retry the pod, or fail the Job at once).
//!
//! | kind            | exit | a retry can help | the restore Job     |
//! |-----------------|------|------------------|---------------------|
//! | transient       | 1    | yes              | starts another pod  |
//! | bad input       | 2    | no               | fails at once       |
//! | wrong passphrase| 3    | no               | fails at once       |
//! | damaged point   | 4    | no               | fails at once       |
//! | busy            | 5    | later            | fails at once       |
//! | timed out       | 6    | run again        | fails at once       |
//! | incomplete      | 7    | after a fix      | fails at once       |
//!
//! Transient means the thing asked did not answer as it should (an API server, S3 or Vault
//! outage, 5xx, a dropped connection, Vault sealed): the Job's own backoff (10 s, doubling)
//! retries the pod, and a restore picks up where the last pod stopped.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// Something that should answer did not (outage, 5xx, network): a retry may succeed.
    Transient,
    /// The settings, flags, values or cluster state are wrong: fix them first.
    BadInput,
    /// The passphrase does not open the point.
    WrongPassphrase,
    /// The point is damaged, altered or incomplete: pick another point.
    DamagedPoint,
    /// Someone else holds what this needs (another restore, another owner).
    Busy,
    /// The time allowed ran out; running again finishes the work.
    TimedOut,
    /// The work ran to the end but some objects failed; fix their cause and run again.
    Incomplete,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Transient,
        ErrorKind::BadInput,
        ErrorKind::WrongPassphrase,
        ErrorKind::DamagedPoint,
        ErrorKind::Busy,
        ErrorKind::TimedOut,
        ErrorKind::Incomplete,
    ];

    /// The process exit status of both binaries for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Transient => 1,
            ErrorKind::BadInput => 2,
            ErrorKind::WrongPassphrase => 3,
            ErrorKind::DamagedPoint => 4,
            ErrorKind::Busy => 5,
            ErrorKind::TimedOut => 6,
            ErrorKind::Incomplete => 7,
        }
    }

    /// The kind an exit status stands for (a Job's pod, read back by the plugin).
    pub fn from_exit_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| i32::from(k.exit_code()) == code)
    }

    /// Whether the restore Job should start another pod: only a transient failure.
    pub fn retry_in_job(self) -> bool {
        self == ErrorKind::Transient
    }

    /// The exit statuses the chart's `podFailurePolicy` fails the Job on at once.
    pub fn final_exit_codes() -> Vec<u8> {
        Self::ALL.into_iter().filter(|k| !k.retry_in_job()).map(Self::exit_code).collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::BadInput => "bad input",
            ErrorKind::WrongPassphrase => "wrong passphrase",
            ErrorKind::DamagedPoint => "damaged point",
            ErrorKind::Busy => "busy",
            ErrorKind::TimedOut => "timed out",
            ErrorKind::Incomplete => "incomplete",
        }
    }
}

/// An error that knows its kind.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}

/// A Kubernetes API error: throttling, 5xx, timeouts and transport errors are transient; a
/// refusal (401/403), a missing object, an invalid one are bad input.
impl Classify for kube::Error {
    fn kind(&self) -> ErrorKind {
        match self {
            kube::Error::Api(s) if s.code == 429 || s.code >= 500 || s.code == 408 => ErrorKind::Transient,
            kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict" => ErrorKind::Transient,
            kube::Error::Api(_) => ErrorKind::BadInput,
            kube::Error::InferConfig(_)
            | kube::Error::InferKubeconfig(_)
            | kube::Error::Auth(_)
            | kube::Error::SerdeError(_)
            | kube::Error::BuildRequest(_) => ErrorKind::BadInput,
            _ => ErrorKind::Transient,
        }
    }
}

impl Classify for crate::location::LocationError {
    fn kind(&self) -> ErrorKind {
        use crate::location::LocationError as E;
        match self {
            // A disk error may pass (an NFS server back); a full disk needs space first.
            E::Unreachable { .. } | E::S3 { .. } | E::Io { .. } | E::DiskFailed { .. } | E::WriteUnconfirmed { .. } => ErrorKind::Transient,
            E::NoSpace { .. } => ErrorKind::BadInput,
            E::AlreadyExists { .. } => ErrorKind::Busy,
            E::NotARegularFile { .. } => ErrorKind::DamagedPoint,
            E::DirectoryMissing { .. }
            | E::NotFound { .. }
            | E::TlsUntrusted { .. }
            | E::NoSuchBucket { .. }
            | E::AccessDenied { .. }
            | E::NoCredentials { .. }
            | E::ObjectLockDisabled { .. }
            | E::Invalid(_) => ErrorKind::BadInput,
        }
    }
}

impl Classify for crate::format::FormatError {
    fn kind(&self) -> ErrorKind {
        use crate::format::FormatError as E;
        match self {
            E::WrongPassphrase => ErrorKind::WrongPassphrase,
            E::WrongCluster { .. } | E::UnsupportedVersion(_) => ErrorKind::BadInput,
            E::Io(e) if e.kind() != std::io::ErrorKind::InvalidData && e.kind() != std::io::ErrorKind::UnexpectedEof => ErrorKind::Transient,
            _ => ErrorKind::DamagedPoint,
        }
    }
}

impl Classify for crate::point::PointError {
    fn kind(&self) -> ErrorKind {
        use crate::point::PointError as E;
        match self {
            E::InvalidClusterId(_) | E::InvalidPointId(_) | E::NoPoints { .. } | E::NoneAtOrBefore { .. } | E::NotFound { .. } => ErrorKind::BadInput,
            // Named by its ID while it is not to be trusted: the operator picks another.
            E::Suspect { .. } => ErrorKind::BadInput,
            E::UnsupportedManifest { .. } => ErrorKind::BadInput,
            E::Location(e) => e.kind(),
            E::Format { source, .. } => source.kind(),
            // Most likely the passphrase changed since these points were written (the message
            // also says they may be damaged or forged).
            // Other points open with this passphrase, so it is not the wrong one (exit 3 says no
            // point opens): the point may be an earlier passphrase's, or forged.
            E::OlderThanPassphrase { .. } | E::NoneOpensAtOrBefore { .. } => ErrorKind::DamagedPoint,
            E::Incomplete { .. }
            | E::ArchiveTruncated { .. }
            | E::ArchiveAppended { .. }
            | E::ArchiveHashMismatch { .. }
            | E::CountMismatch { .. }
            | E::ArchiveMissing { .. }
            | E::DoesNotOpen { .. }
            | E::DoesNotOpenNoneGenuine { .. }
            | E::NamesAnotherCluster { .. }
            | E::LegacyAfterUpgrade { .. }
            | E::ManifestTooLarge { .. }
            | E::Tampered { .. }
            | E::LineTooLong { .. }
            | E::Unreadable { .. } => ErrorKind::DamagedPoint,
            // The restore stopped reading (it is failing for its own reason).
            E::Callback(_) => ErrorKind::Transient,
        }
    }
}

impl Classify for crate::passphrase::PassphraseError {
    fn kind(&self) -> ErrorKind {
        use crate::passphrase::PassphraseError as E;
        match self {
            E::VaultUnreachable { .. } | E::VaultSealed { .. } | E::AwsUnreachable { .. } => ErrorKind::Transient,
            E::VaultOther { status, .. } if *status >= 500 || *status == 429 => ErrorKind::Transient,
            _ => ErrorKind::BadInput,
        }
    }
}

impl Classify for crate::resources::ResourceError {
    fn kind(&self) -> ErrorKind {
        use crate::resources::ResourceError as E;
        match self {
            E::Passphrase(e) => e.kind(),
            E::Location(e) => e.kind(),
            E::Api { source, .. } => source.kind(),
            _ => ErrorKind::BadInput,
        }
    }
}

impl Classify for crate::ownership::OwnershipError {
    fn kind(&self) -> ErrorKind {
        use crate::ownership::OwnershipError as E;
        match self {
            E::NotOwner { .. } => ErrorKind::Busy,
            E::NoClusterId => ErrorKind::BadInput,
            E::ClusterId(source) | E::Api { source, .. } => source.kind(),
        }
    }
}

impl Classify for crate::backup::BackupError {
    fn kind(&self) -> ErrorKind {
        use crate::backup::BackupError as E;
        match self {
            E::ListForbidden { .. } => ErrorKind::BadInput,
            E::List { source, .. } | E::Discovery(source) => source.kind(),
            E::Ownership(e) => e.kind(),
            E::Point(e) => e.kind(),
        }
    }
}

impl Classify for crate::retention::PruneError {
    fn kind(&self) -> ErrorKind {
        use crate::retention::PruneError as E;
        match self {
            E::NotEnabled { .. } => ErrorKind::BadInput,
            E::Ownership(e) => e.kind(),
            E::Resource(e) => e.kind(),
            E::Passphrase(e) => e.kind(),
            E::Api(e) => e.kind(),
            E::Prune { source, .. } => source.kind(),
        }
    }
}

impl Classify for crate::dr_policy::InstallError {
    fn kind(&self) -> ErrorKind {
        use crate::dr_policy::InstallError as E;
        match self {
            E::Api { source, .. } => source.kind(),
            E::Backup(e) => e.kind(),
            E::Ownership(e) => e.kind(),
            E::Resource(e) => e.kind(),
            E::Location(e) | E::Unusable { source: e, .. } => e.kind(),
            // The watch behind a wait: what the API server answered.
            E::Wait { source, .. } => match source {
                kube::runtime::wait::Error::ProbeFailed(
                    kube::runtime::watcher::Error::InitialListFailed(e)
                    | kube::runtime::watcher::Error::WatchStartFailed(e)
                    | kube::runtime::watcher::Error::WatchFailed(e),
                ) => e.kind(),
                _ => ErrorKind::Transient,
            },
            E::CrdNotEstablished(_) => ErrorKind::Transient,
            E::ProfileMissing { .. } | E::NotEnabled(_) | E::InvalidFrequency(_) | E::Replication { .. } | E::ClaimMissing { .. } => ErrorKind::BadInput,
        }
    }
}

/// The kind of any error the binaries meet: the first error in the chain whose type knows
/// its kind decides; anything else is bad input (a message that says what to fix).
pub fn kind_of(error: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        macro_rules! known {
            ($($t:ty),*) => {
                $(if let Some(e) = e.downcast_ref::<$t>() {
                    return e.kind();
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
    ErrorKind::BadInput
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_exit_status_and_only_transient_is_retried() {
        let codes: std::collections::BTreeSet<u8> = ErrorKind::ALL.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert!(!codes.contains(&0));
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_exit_code(i32::from(k.exit_code())), Some(k));
        }
        assert_eq!(ErrorKind::final_exit_codes(), vec![2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn api_errors_are_transient_only_when_a_retry_can_help() {
        let api = |code: u16, reason: &str| kube::Error::Api(Box::new(kube::core::Status::failure("x", reason).with_code(code)));
        assert_eq!(api(503, "ServiceUnavailable").kind(), ErrorKind::Transient);
        assert_eq!(api(429, "TooManyRequests").kind(), ErrorKind::Transient);
        assert_eq!(api(500, "InternalError").kind(), ErrorKind::Transient);
        assert_eq!(api(403, "Forbidden").kind(), ErrorKind::BadInput);
        assert_eq!(api(422, "Invalid").kind(), ErrorKind::BadInput);
    }
}
