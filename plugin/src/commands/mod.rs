//! One module per command.

pub mod backup;
pub mod diff;
pub mod drill;
pub mod enable;
pub mod export;
pub mod images;
pub mod jobs;
pub mod profile;
pub mod progress;
pub mod prune;
pub mod replicate;
pub mod restore;
pub mod restore_points;
pub mod status;
pub mod take_ownership;
pub mod verify;
pub mod version;

/// How a command ended. The exit status of a failure is its kind's, shared with the job
/// image (`dr_core::failure`: 1 transient, 2 bad input, 3 wrong passphrase, 4 damaged point,
/// 5 busy, 6 timed out, 7 incomplete).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Success,
    /// The command ran to the end and found a problem of this kind (a point that failed
    /// verification, a restore Job that failed).
    Failed(dr_core::failure::ErrorKind),
    /// A preflight found what would stop or block the restore.
    Findings,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failed(kind) => kind.exit_code(),
            ExitStatus::Findings => 8,
        }
    }
}

/// Human-readable size.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
