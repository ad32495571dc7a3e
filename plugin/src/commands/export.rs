//! `kubectl dr export`: one point's objects as YAML files a person can browse and
//! `kubectl apply -R -f`.

use anyhow::{bail, Context, Result};
use dr_core::point::{self, Unlocker};

use super::ExitStatus;
use crate::cli::ExportArgs;
use crate::input;

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, naming it.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted (Ctrl-C)",
        _ = term.recv() => "terminated (SIGTERM)",
    }
}

pub async fn run(args: &ExportArgs) -> Result<ExitStatus> {
    dr_core::point::validate_cluster_id(&args.cluster_id)?;
    if args.output_dir.exists() {
        bail!("{} already exists: give a new directory to export into", args.output_dir.display());
    }
    let at = input::point_in_time(&args.point_in_time)?;
    let location = input::location(&args.location, false).await?;
    let chosen = point::choose(&location, &args.cluster_id, point::Which::from_args(args.point.as_deref(), at)).await?;
    let unlocker = Unlocker::new(input::passphrase(&args.passphrase, false).await?);
    let manifest = chosen.open(&location, &unlocker).await?;
    // Export into a hidden sibling and rename at the end, so a point that fails its final
    // checks leaves no directory that looks like a good export.
    let parent = args.output_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new().prefix(".kubectl-dr-export-").tempdir_in(parent)?;
    // The export holds Secrets in clear: its owner only (tempfile leaves the umask's mode).
    std::fs::set_permissions(staging.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let root = staging.path().to_owned();
    // Ctrl-C or SIGTERM stop the export and remove what it wrote (Secrets in clear).
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cancelled = cancel.clone();
    let read = point::read_entries(&location, &manifest, &unlocker, move |entry| {
        if cancelled.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        dr_core::manifests::write_object(&root, &entry).map(|_| ()).map_err(|e| e.to_string())
    });
    tokio::pin!(read);
    let counts = tokio::select! {
        counts = &mut read => counts?,
        signal = interrupted() => {
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
    println!("exported restore point {} ({} objects) to {}", manifest.point_id, counts.total, args.output_dir.display());
    println!("apply it with: kubectl apply -R -f {}/cluster && kubectl apply -R -f {}/namespaces", args.output_dir.display(), args.output_dir.display());
    Ok(ExitStatus::Success)
}
