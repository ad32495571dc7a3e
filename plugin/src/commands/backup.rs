//! `kubectl dr backup --from-manifests DIR`: a restore point made from manifest files.

use anyhow::{Context, Result};
use dr_core::catalog::DR_POLICY_NAME;
use dr_core::point::PointWriter;

use super::{human_bytes, ExitStatus};
use crate::cli::{BackupArgs, GlobalArgs};
use crate::input;

pub async fn run(global: &GlobalArgs, args: &BackupArgs) -> Result<ExitStatus> {
    dr_core::point::validate_cluster_id(&args.cluster_id)?;
    let entries = dr_core::manifests::read_dir(&args.from_manifests, &global.namespace, &args.default_namespace)?;
    let location = input::location(&args.location, true).await?;
    location.check_writable().await.with_context(|| format!("location {} is not usable", location.describe()))?;
    let passphrase = input::passphrase(&args.passphrase, true).await?;
    let mut writer = PointWriter::begin(&location, &args.cluster_id, &passphrase, args.mode, DR_POLICY_NAME).await?;
    eprintln!("writing restore point {} to {}", writer.point_id(), location.describe());
    let mut skipped = 0;
    for entry in entries.iter().filter(|e| {
        let keep = args.mode.keeps(e.category);
        skipped += usize::from(!keep);
        keep
    }) {
        if let Err(e) = writer.add(entry).await {
            writer.abort().await;
            return Err(e.into());
        }
    }
    let manifest = writer.finish().await?;
    println!("restore point {} written: {} objects, {} stored", manifest.point_id, manifest.counts.total, human_bytes(manifest.archive.stored_bytes));
    for (category, n) in &manifest.counts.by_category {
        println!("  {category:<13} {n}");
    }
    if skipped > 0 {
        println!("  ({skipped} objects outside {} mode were left out)", args.mode.as_str());
    }
    Ok(ExitStatus::Success)
}
