//! `kubectl-dr`: parse the command line, run the command, map the outcome to an exit status.

mod chart;
mod cli;
mod commands;
mod complete;
mod input;
#[cfg(test)]
mod reference;
mod release;
mod stdout;

use clap::Parser;

// The static (musl) build: musl's allocator takes one lock for every allocation.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use commands::ExitStatus;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // `kubectl dr <TAB>`: run as kubectl_complete-dr, or `kubectl-dr __complete ...`.
    if let Some(words) = complete::request(&std::env::args_os().collect::<Vec<_>>()) {
        complete::run(&words).await;
        return std::process::ExitCode::SUCCESS;
    }
    stdout::install_panic_hook();
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: piped or captured output gets no escape codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("DR_LOG").unwrap_or_else(|_| dr_core::default_log_filter("warn").into()))
        .without_time()
        .init();
    let result = match &cli.command {
        cli::Command::Profile(command) => commands::profile::run(&cli.global, command).await,
        cli::Command::Enable(args) => commands::enable::run(&cli.global, args).await,
        cli::Command::Status(args) => commands::status::run(&cli.global, args).await,
        cli::Command::Disable(args) => commands::enable::disable(&cli.global, args).await,
        cli::Command::Prune(args) => commands::prune::run(&cli.global, args).await,
        cli::Command::Backup(args) => commands::backup::run(&cli.global, args).await,
        cli::Command::RestorePoints(args) => commands::restore_points::run(args).await,
        cli::Command::Verify(args) => commands::verify::run(args).await,
        cli::Command::Export(args) => commands::export::run(args).await,
        cli::Command::Diff(args) => commands::diff::run(&cli.global, args).await,
        cli::Command::Drill(args) => commands::drill::run(&cli.global, args).await,
        cli::Command::Replicate(args) => commands::replicate::run(&cli.global, args).await,
        cli::Command::Restore(args) => commands::restore::run(&cli.global, args).await,
        cli::Command::TakeOwnership(args) => commands::take_ownership::run(&cli.global, args).await,
        cli::Command::Images(args) => commands::images::run(args).await,
        cli::Command::Version(args) => commands::version::run(args),
        cli::Command::Completion(args) => commands::version::completion(args),
    };
    let status = result.unwrap_or_else(|e| {
        // The reader of stdout has gone (`| head`): it asked for no more, which is no failure.
        if e.downcast_ref::<stdout::StdoutClosed>().is_some() {
            return ExitStatus::Success;
        }
        eprintln!("error: {}", dr_core::error_text(e.as_ref()));
        ExitStatus::Failed(dr_core::kind_of(e.as_ref()))
    });
    std::process::ExitCode::from(status.code())
}
