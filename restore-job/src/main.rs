//! `dr-job`: the in-cluster job image's binary. `backup` is what the DR policy's CronJob
//! (and `kubectl dr backup`) runs; `restore` is the `dr-restore` chart's Job.
//! Settings come from `DR_*` environment variables (see `dr_core::job::env`); logs are JSON
//! on stderr; the result is also the container's termination message; the exit status tells
//! success (0) or failure (1).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "dr-job", version, about = "kubectl-dr's in-cluster job: backup and restore")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the DR policy once: back up into a new restore point.
    Backup,
    /// Restore a restore point onto this cluster (the `dr-restore` chart's Job).
    Restore,
    /// Print the version and whether the crypto module runs in FIPS mode.
    SelfCheck,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DR_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    match cli.command {
        Command::SelfCheck => {
            println!("{{\"version\":\"{}\",\"crypto\":\"aws-lc-rs\",\"fipsMode\":{}}}", env!("CARGO_PKG_VERSION"), dr_core::crypto::fips_mode());
            std::process::ExitCode::SUCCESS
        }
        Command::Restore => restore().await,
        Command::Backup => match backup().await {
            Ok(summary) => {
                let json = serde_json::to_string(&summary).expect("summary serializes");
                tracing::info!(summary = %json, "backup complete");
                println!("{json}");
                dr_core::job::write_termination_message(&json);
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "backup failed");
                dr_core::job::write_termination_message(&format!("backup failed: {e:#}"));
                std::process::ExitCode::FAILURE
            }
        },
    }
}

async fn backup() -> anyhow::Result<dr_core::job::BackupSummary> {
    dr_core::init_crypto_provider();
    let settings = dr_core::job::BackupSettings::from_env()?;
    // In a pod: the service account; elsewhere: KUBECONFIG.
    let client = dr_core::kube_client(kube::Config::infer().await?)?;
    Ok(dr_core::job::run_backup(&client, &settings).await?)
}

async fn restore() -> std::process::ExitCode {
    let result = async {
        dr_core::init_crypto_provider();
        let settings = dr_core::job::restore_settings_from_env()?;
        settings.check()?;
        let client = dr_core::kube_client(kube::Config::infer().await?)?;
        Ok::<_, anyhow::Error>(dr_core::restore::run_restore(&client, &settings).await)
    }
    .await;
    match result {
        Ok(Ok(report)) => {
            let json = serde_json::to_string(&report).expect("report serializes");
            tracing::info!(summary = %json, "restore complete");
            println!("{json}");
            dr_core::job::write_termination_message(&report.compact());
            std::process::ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "restore failed");
            let message = match e.report() {
                Some(report) => {
                    println!("{}", serde_json::to_string(report).expect("report serializes"));
                    format!("restore failed: {e}\n{}", report.compact())
                }
                None => format!("restore failed: {e}"),
            };
            dr_core::job::write_termination_message(&message);
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "restore failed");
            dr_core::job::write_termination_message(&format!("restore failed: {e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}
