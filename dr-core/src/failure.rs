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
//!
//! A leaf of the library: each error type's `Classify` is written beside the type, and
//! `crate::kind_of`, which walks an error's chain for the first type that knows its kind,
//! lives at the crate root, which knows every module.

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

// The format's errors live in `dr-format`, which knows nothing of exit statuses; their kinds
// are said here, beside the other foreign types'.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_exit_status_and_only_transient_is_retried() {
        let codes: std::collections::BTreeSet<u8> = ErrorKind::ALL.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert!(!codes.contains(&0));
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
