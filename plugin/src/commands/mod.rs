//! One module per command.

pub mod backup;
pub mod enable;
pub mod export;
pub mod images;
pub mod jobs;
pub mod profile;
pub mod prune;
pub mod restore;
pub mod restore_points;
pub mod status;
pub mod take_ownership;
pub mod verify;
pub mod version;

/// How a command ended, as the process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything worked.
    Success = 0,
    /// The command ran but found a problem (a point that failed verification).
    Failure = 1,
    /// The command could not run: bad input, unreachable location, wrong passphrase.
    Error = 2,
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
