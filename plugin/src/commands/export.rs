//! `kubectl dr export`: one point's objects as YAML files a person can browse and
//! `kubectl apply -R -f`.

use anyhow::{bail, Context, Result};
use dr_core::point::{self, Unlocker};

use super::ExitStatus;
use crate::cli::ExportArgs;
use crate::input;
use crate::stdout::outln;

/// Resolves on the first terminating signal a user or a system sends (Ctrl-C, SIGTERM, a
/// closed terminal's SIGHUP, SIGQUIT from Ctrl-\), naming it. Once listened for, these no longer
/// end the process at once: the export removes its staging (Secrets in clear) first.
/// SIGKILL cannot be caught; the staging's name (`.kubectl-dr-export-*`) says what it is.
async fn interrupted() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(tokio::select! {
        _ = int.recv() => "interrupted (Ctrl-C)",
        _ = term.recv() => "terminated (SIGTERM)",
        _ = hup.recv() => "hung up (SIGHUP)",
        _ = quit.recv() => "quit (SIGQUIT)",
    })
}

pub async fn run(args: &ExportArgs) -> Result<ExitStatus> {
    dr_core::point::validate_cluster_id(&args.cluster_id)?;
    if args.output_dir.exists() {
        bail!("{} already exists: give a new directory to export into", args.output_dir.display());
    }
    let at = args.point_in_time;
    let location = input::location(&args.location, false).await?;
    let unlocker = Unlocker::new(input::passphrase(&args.passphrase, false).await?);
    let manifest = point::choose(&location, &args.cluster_id, point::Which::from_args(args.point.as_deref(), at), &unlocker).await?.manifest;
    // Every terminating signal stops the export and removes what it wrote (Secrets in
    // clear). The handlers are in place before the staging directory is made: until then a
    // signal ends the process as usual, with nothing written.
    let signals = interrupted();
    tokio::pin!(signals);
    if let std::task::Poll::Ready(r) = futures::poll!(&mut signals) {
        match r {
            Ok(signal) => bail!("{signal}: the export stopped before it wrote anything"),
            Err(e) => return Err(e).context("cannot listen for signals, so an interrupted export could leave Secrets in clear: nothing was exported"),
        }
    }
    // Export into a hidden sibling and rename at the end, so a point that fails its final
    // checks leaves no directory that looks like a good export.
    let parent = args.output_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new().prefix(".kubectl-dr-export-").tempdir_in(parent)?;
    // The export holds Secrets in clear: its owner only (tempfile leaves the umask's mode).
    std::fs::set_permissions(staging.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let root = staging.path().to_owned();
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cancelled = cancel.clone();
    let read = point::read_entries(&location, &manifest, &unlocker, move |entry| {
        if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        dr_core::manifests::write_object(&root, &entry).map(|_| ()).map_err(|e| dr_core::error_text(&e))
    });
    tokio::pin!(read);
    let counts = tokio::select! {
        counts = &mut read => counts?,
        signal = &mut signals => {
            let signal = signal.unwrap_or("interrupted");
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            // The reader stops at its next object; then the staging directory goes with it.
            let _ = read.await;
            drop(staging);
            bail!("{signal}: the export stopped and what it had written was removed; nothing was exported");
        }
    };
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(staging.path().join("restore-point.json"))?;
        f.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &args.output_dir).with_context(|| format!("cannot move the export to {}", args.output_dir.display()))?;
    outln!("exported restore point {} ({} objects) to {}", manifest.point_id, counts.total, args.output_dir.display())?;
    outln!("apply it with: kubectl apply -R -f {}/cluster && kubectl apply -R -f {}/namespaces", args.output_dir.display(), args.output_dir.display())?;
    Ok(ExitStatus::Success)
}
