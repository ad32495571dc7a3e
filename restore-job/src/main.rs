//! `dr-job`: the in-cluster job image's binary. The DR policy's CronJob will run `backup` and
//! the restore chart's Job `restore` (issues #3 and #4); until then it reports what it is
//! built with, which is also what the FIPS values file will check at start.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "dr-job", version, about = "kubectl-dr's in-cluster job: backup and restore")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version and whether the crypto module runs in FIPS mode.
    SelfCheck,
}

fn main() -> std::process::ExitCode {
    match Cli::parse().command {
        Command::SelfCheck => {
            println!(
                "{{\"version\":\"{}\",\"crypto\":\"aws-lc-rs\",\"fipsMode\":{}}}",
                env!("CARGO_PKG_VERSION"),
                dr_core::crypto::fips_mode()
            );
            std::process::ExitCode::SUCCESS
        }
    }
}
