//! `dr-job`: the in-cluster job image's binary. `backup` is what the DR policy's CronJob
//! (and `kubectl dr backup`) runs; `replicate` is the replication CronJob's; `restore` is the
//! `dr-restore` chart's Job. Settings come from `DR_*` environment variables, read as clap
//! arguments (`settings.rs`; `dr-job <command> --help` lists them); logs are JSON on stderr, with `progress` lines the plugin follows;
//! the result is printed on stdout, and the container's termination message is the run's
//! outcome (`dr_core::job::outcome`: the report, or why it failed); the exit status is 0
//! or the failure's kind (`dr_core::failure`: 1 transient, 2 bad input, 3 wrong passphrase,
//! 4 damaged point, 5 busy, 6 timed out, 7 objects failed), which the restore chart's
//! `podFailurePolicy` and the plugin read. `grant-keeper` is the restore pod's native sidecar
//! (`grant.rs`): it ends the restore's cluster-wide grant when the restore container could not.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod grant;
mod settings;

use dr_core::job::outcome::{JobOutcome, Report};
use dr_core::job::{BackupOutcome, BackupSummary, ReplicationOutcome};
use dr_core::replicate::ReplicateReport;
use dr_core::restore::RestoreOutcome;
use settings::{BackupArgs, GrantKeeperArgs, RestoreArgs};

// The static (musl) build: musl's allocator takes one lock for every allocation, which the
// restore's parallel decrypt, decompress and writes contend on.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "dr-job", version, about = "kubectl-dr's in-cluster job: backup and restore")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the DR policy once: back up into a new restore point.
    Backup(BackupArgs),
    /// Restore a restore point onto this cluster (the `dr-restore` chart's Job).
    Restore(Box<RestoreArgs>),
    /// Copy this cluster's restore points off site, as the DR policy's `replication` says
    /// (the replication CronJob).
    Replicate(BackupArgs),
    /// Check this image works: the format's known-answer test, the CA certificates, FIPS
    /// mode. Prints JSON; exit status 1 when a check fails.
    SelfCheck,
    /// The restore pod's sidecar: waits for the pod's end (SIGTERM), then ends the restore's
    /// cluster-wide grant if the restore is over (succeeded, failed for good, last attempt,
    /// Job deadline), also when the restore container was killed.
    GrantKeeper(GrantKeeperArgs),
}

fn main() -> std::process::ExitCode {
    // An empty variable is an unset one, as the chart renders an unset value (clap would
    // parse the empty string). Done before the runtime starts threads: changing the
    // environment is sound only while one thread runs.
    for (name, value) in std::env::vars_os() {
        if value.is_empty() && name.to_str().is_some_and(|n| n.starts_with("DR_") || n.starts_with("VAULT_") || n.starts_with("AWS_")) {
            std::env::remove_var(&name);
        }
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime").block_on(run())
}

async fn run() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DR_LOG").unwrap_or_else(|_| dr_core::default_log_filter("info").into()))
        .init();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return refused(e).await,
    };
    match cli.command {
        Command::SelfCheck => {
            let check = dr_core::self_check::run();
            println!("{}", serde_json::to_string(&check).expect("the self-check serializes"));
            if check.ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Command::Restore(args) => restore(&args).await,
        Command::GrantKeeper(args) => grant::keep(&args).await,
        Command::Replicate(args) => replicate(&args).await,
        Command::Backup(args) => {
            let started = std::time::Instant::now();
            let result = backup(&args).await;
            push_backup_metrics(&args, result.as_ref().ok(), started.elapsed().as_secs_f64()).await;
            match result {
                Ok(summary) => {
                    println!("{}", serde_json::to_string(&summary).expect("summary serializes"));
                    finish(&BackupOutcome::succeeded(summary))
                }
                Err(e) => job_failed::<BackupSummary>(&e),
            }
        }
    }
}

/// A backup or replication that failed: its outcome says why, with the error's kind.
fn job_failed<R: Report>(e: &anyhow::Error) -> std::process::ExitCode {
    finish(&JobOutcome::<R>::failed(dr_core::error_text(e.as_ref()), dr_core::kind_of(e.as_ref()), None))
}

/// The arguments, from the command line and the `DR_*` variables. `--help` names each
/// argument's variable but never shows its value.
fn parse() -> Result<Cli, clap::Error> {
    fn hide_env_values(cmd: clap::Command) -> clap::Command {
        let cmd = cmd.mut_args(|a| a.hide_env_values(true));
        let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_owned()).collect();
        names.into_iter().fold(cmd, |cmd, name| cmd.mut_subcommand(name, hide_env_values))
    }
    let matches = hide_env_values(Cli::command()).try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// Settings that do not parse (a variable missing or invalid): help and version are printed
/// as clap prints them; anything else is bad input, reported as the command's own failures
/// are (the termination message, the exit status). A refused restore is over, so its
/// cluster-wide grant ends too: another pod would be refused the same way.
async fn refused(e: clap::Error) -> std::process::ExitCode {
    use clap::error::ErrorKind as Clap;
    if matches!(e.kind(), Clap::DisplayHelp | Clap::DisplayVersion | Clap::DisplayHelpOnMissingArgumentOrSubcommand) {
        e.exit();
    }
    let text = e.render().to_string();
    // clap's error, up to the usage and the hint meant for a terminal, on one line.
    let error: Vec<&str> =
        text.lines().take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information")).map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut error = error.join(" ").trim_start_matches("error: ").to_owned();
    // The pod spec sets variables, not flags: name the variable.
    let command = std::env::args().nth(1);
    if let Some(sub) = command.as_deref().and_then(|name| Cli::command().find_subcommand(name).cloned()) {
        for arg in sub.get_arguments() {
            if let (Some(long), Some(var)) = (arg.get_long(), arg.get_env()) {
                let value = arg.get_value_names().and_then(|v| v.first()).map(|v| v.to_string()).unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
                error = error.replace(&format!("--{long} <{value}>"), &var.to_string_lossy());
            }
        }
    }
    let bad = anyhow::anyhow!("{error}: the Job's pod spec sets these (dr-job <command> --help lists them)");
    match command.as_deref() {
        Some("restore") => {
            let binding = std::env::var(dr_core::job::env::RBAC_BINDING).ok().filter(|b| !b.is_empty());
            refuse_restore(cluster_client().await.as_ref().ok(), binding.as_deref(), bad.as_ref()).await
        }
        Some("backup") => job_failed::<BackupSummary>(&bad),
        Some("replicate") => job_failed::<ReplicateReport>(&bad),
        _ => e.exit(),
    }
}

/// In a pod: the service account; elsewhere: KUBECONFIG.
async fn cluster_client() -> Result<kube::Client, kube::Error> {
    kube::Config::infer().await.map_err(kube::Error::InferConfig).and_then(dr_core::kube_client)
}

/// A restore that did not start: reported with its kind. Refused settings are bad input
/// (another pod would refuse too), so the restore is over and its grant ends, when `client`
/// can reach the cluster at all.
async fn refuse_restore(client: Option<&kube::Client>, binding: Option<&str>, error: &(dyn std::error::Error + 'static)) -> std::process::ExitCode {
    let kind = dr_core::kind_of(error);
    if let Some(client) = client {
        end_grant(client, binding, Some(kind)).await;
    }
    finish(&RestoreOutcome::failed(dr_core::error_text(error), kind, None))
}

async fn push_backup_metrics(args: &BackupArgs, summary: Option<&dr_core::job::BackupSummary>, seconds: f64) {
    let Some(url) = &args.common.pushgateway_url else { return };
    let gauges = dr_core::metrics::backup_gauges(summary, seconds);
    dr_core::metrics::push(url, "kubectl_dr_backup", &[("namespace", &args.common.namespace), ("policy", &args.policy)], &gauges).await;
}

/// Copies the points; exit status 7 (incomplete) when a point was not copied or differs at
/// the destination, as `kubectl dr replicate` does.
async fn replicate(args: &BackupArgs) -> std::process::ExitCode {
    let result = async {
        dr_core::init_crypto_provider();
        let settings = args.settings()?;
        let client = cluster_client().await?;
        Ok::<_, anyhow::Error>(dr_core::job::run_replication(&client, &settings).await?)
    }
    .await;
    match result {
        Ok(report) => {
            let json = serde_json::to_string(&report).expect("the report serializes");
            println!("{json}");
            if report.problems() > 0 {
                let error = format!("{} point(s) not copied", report.problems());
                return finish(&ReplicationOutcome::failed(error, dr_core::failure::ErrorKind::Incomplete, Some(report)));
            }
            finish(&ReplicationOutcome::succeeded(report))
        }
        Err(e) => job_failed::<ReplicateReport>(&e),
    }
}

async fn backup(args: &BackupArgs) -> anyhow::Result<dr_core::job::BackupSummary> {
    dr_core::init_crypto_provider();
    let settings = args.settings()?;
    let client = cluster_client().await?;
    Ok(dr_core::job::run_backup(&client, &settings).await?)
}

async fn restore(args: &RestoreArgs) -> std::process::ExitCode {
    use dr_core::failure::Classify;
    // Listening from the start: the kubelet's SIGTERM (the pod deleted, the Job at its
    // deadline) must not end the process before the grant is decided.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    let binding = args.rbac_binding.as_deref();
    let settings = args.settings().and_then(|s| {
        require_fips(args.restore_values.fips.enabled)?;
        Ok(s)
    });
    let client = cluster_client().await;
    let (mut settings, client) = match (settings, client) {
        (Ok(s), Ok(c)) => (s, c),
        (Err(e), client) => return refuse_restore(client.as_ref().ok(), binding, e.as_ref()).await,
        (Ok(_), Err(e)) => return refuse_restore(None, binding, &e).await,
    };
    // The Job's deadline counts from its start, across every pod: a later pod has less of it
    // than restore.timeout. Bounded so, the restore stops in time to end the grant itself.
    let bounded = match grant::job(&client, &settings.namespace, &settings.holder)
        .await
        .and_then(|job| dr_core::restore::grant::time_left(&job, time::OffsetDateTime::now_utc()))
    {
        Some(left) if left < settings.timeout => {
            tracing::warn!(
                seconds = left.as_secs(),
                "the Job's activeDeadlineSeconds leaves less than restore.timeout: the restore stops in time to end its grant"
            );
            settings.timeout = left.max(std::time::Duration::from_secs(1));
            true
        }
        _ => false,
    };
    let started = std::time::Instant::now();
    let result = tokio::select! {
        result = async {
            let opened = dr_core::restore::open_point(&client, &settings, None).await?;
            dr_core::restore::run_restore(&client, &settings, opened).await
        } => result,
        _ = terminate.recv() => return grant::terminated(&client, binding, &settings.namespace, &settings.holder, args.pod_name.as_deref()).await,
    };
    let outcome = match result {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).expect("report serializes"));
            RestoreOutcome::succeeded(report)
        }
        Err(e) => {
            if let Some(report) = e.report() {
                println!("{}", serde_json::to_string(report).expect("report serializes"));
            }
            let mut error = dr_core::error_text(&e);
            if bounded && e.kind() == dr_core::failure::ErrorKind::TimedOut {
                error.push_str(" (restore.timeout was cut to what the Job's activeDeadlineSeconds left)");
            }
            RestoreOutcome::failed(error, e.kind(), e.report().cloned())
        }
    };
    // First, since nothing after it needs the grant, and a Job near its deadline may not
    // leave time for more.
    let code = outcome.kind.map_or(0, |k| i32::from(k.exit_code()));
    grant::end_if_over(&client, binding, &settings.namespace, &settings.holder, args.pod_name.as_deref(), code).await;
    dr_core::restore::job_event(&client, &settings, &outcome).await;
    if let Some(url) = &args.common.pushgateway_url {
        let gauges = dr_core::metrics::restore_gauges(outcome.kind.is_none(), outcome.report.as_ref(), started.elapsed().as_secs_f64());
        dr_core::metrics::push(url, "kubectl_dr_restore", &[("namespace", &settings.namespace), ("release", &settings.holder)], &gauges).await;
    }
    finish(&outcome)
}

/// Ends the restore's cluster-wide grant (`DR_RBAC_BINDING`, set by the chart for a full
/// restore) for a restore that did not start: refused (bad input), which another pod would
/// be too. A transient failure keeps it for the next pod.
async fn end_grant(client: &kube::Client, binding: Option<&str>, failure: Option<dr_core::failure::ErrorKind>) {
    let Some(binding) = binding else { return };
    if failure.is_none_or(|kind| !kind.retry_in_job()) {
        dr_core::restore::end_cluster_grant(client, binding).await;
    }
}

/// Logs the outcome once, writes it as the termination message, and exits with its kind.
fn finish<R: Report>(outcome: &JobOutcome<R>) -> std::process::ExitCode {
    dr_core::job::write_termination_message(outcome);
    match outcome.kind {
        None => {
            tracing::info!(summary = %serde_json::to_string(&outcome.report).expect("report serializes"), "{} complete", R::COMMAND);
            std::process::ExitCode::SUCCESS
        }
        Some(kind) => {
            tracing::error!(error = %outcome.error, kind = kind.as_str(), retried = kind.retry_in_job(), "{} failed", R::COMMAND);
            std::process::ExitCode::from(kind.exit_code())
        }
    }
}

/// With `fips.enabled` among the chart's values (values-fips.yaml), refuses to run unless the crypto
/// module reports FIPS mode.
fn require_fips(required: bool) -> anyhow::Result<()> {
    let fips = dr_core::format::crypto::fips_mode();
    tracing::info!(fips_mode = fips, "crypto module aws-lc-rs");
    if required && !fips {
        anyhow::bail!("fips.enabled is set but this image's crypto module is not in FIPS mode: use the FIPS image (values-fips.yaml sets it)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// clap's own checks of `dr-job`'s command definitions (see the plugin's twin test).
    #[test]
    fn the_command_line_passes_claps_own_checks() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
