//! `kubectl dr images`: every image the chart and the DR CronJob use; `kubectl dr images
//! mirror`: copies them into a private registry for air-gapped clusters.

use anyhow::{Context, Result};
use dr_core::images::{self, ImageRef, OciArchive, Registry, RegistryOptions};
use serde_json::json;

use super::ExitStatus;
use crate::cli::{ImagesArgs, MirrorArgs, OutputFormat};
use crate::release;

pub async fn run(args: &ImagesArgs) -> Result<ExitStatus> {
    if let Some(crate::cli::ImagesCommand::Mirror(m)) = &args.command {
        return mirror(m, args.fips, args.output).await;
    }
    // One image serves both: the chart's restore Job and the DR CronJob run the same binary.
    let image = release::job_image(args.fips);
    let used_by = "dr-restore chart (restore Job), DR policy CronJob (backup)";
    match args.output {
        OutputFormat::Table => {
            println!("{:<48} {:<12} {:<72} USED BY", "IMAGE", "TAG", "DIGEST");
            println!(
                "{:<48} {:<12} {:<72} {used_by}",
                image.name(),
                image.tag.as_deref().unwrap_or("-"),
                image.digest.as_deref().unwrap_or("(not pinned: a development build)")
            );
        }
        format => {
            let v = json!([{"image": image.name(), "tag": image.tag, "digest": image.digest, "reference": image.to_string(), "fips": args.fips, "usedBy": used_by}]);
            match format {
                OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&v)?),
                _ => println!("{}", serde_json::to_string_pretty(&v)?),
            }
        }
    }
    Ok(ExitStatus::Success)
}

async fn mirror(args: &MirrorArgs, fips: bool, output: OutputFormat) -> Result<ExitStatus> {
    let image = release::job_image(fips);
    let dest = image.moved_to(&args.to).with_context(|| format!("--to {:?} is not a registry path (REGISTRY[:PORT][/PATH])", args.to))?;
    let dest = ImageRef { digest: None, ..dest };
    let options = RegistryOptions { plain_http: args.plain_http, ca_bundle: args.ca_bundle.clone() };
    let report = match &args.from_archive {
        Some(path) => {
            let mut archive = OciArchive::open(path)?;
            // scripts/image names the archive's image <repository>:<version>[-fips]: an
            // archive of another release or flavour would land under this release's tag.
            if let Some(tag) = archive.ref_name().and_then(|n| ImageRef::parse(&n).ok()).and_then(|r| r.tag) {
                let expected = image.tag.clone().unwrap_or_default();
                if tag != expected {
                    let hint = if tag.ends_with("-fips") && !fips { " (a FIPS archive: add --fips)" } else { "" };
                    anyhow::bail!("{} holds dr-job:{tag}, but this plugin deploys dr-job:{expected}: use the archive of this release{hint}", path.display());
                }
            }
            eprintln!("copying {} to {dest}", path.display());
            images::copy(&mut archive, "", &dest, &options).await?
        }
        None => {
            let from = match &args.from {
                Some(r) => ImageRef::parse(r)?,
                None => image.clone(),
            };
            let reference = from.reference().to_owned();
            let mut source = Registry::new(&from, &RegistryOptions { plain_http: args.source_plain_http, ca_bundle: args.ca_bundle.clone() })?;
            eprintln!("copying {from} to {dest}");
            images::copy(&mut source, &reference, &dest, &options).await?
        }
    };
    if let Some(expected) = &image.digest {
        if &report.digest != expected {
            anyhow::bail!(
                "the copied image has digest {} but this plugin deploys {expected}: the source holds another build; use the archive of this release",
                report.digest
            );
        }
    }
    match output {
        OutputFormat::Table => {
            println!("{}", report.image);
            eprintln!(
                "{} blob(s) uploaded ({}), {} already there. Restore with: kubectl dr restore --airgapped-repository {} ...",
                report.blobs_uploaded,
                super::human_bytes(report.bytes_uploaded),
                report.blobs_present,
                args.to.trim_end_matches('/')
            );
        }
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&report)?),
    }
    Ok(ExitStatus::Success)
}
