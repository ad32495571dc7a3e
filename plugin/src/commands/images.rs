//! `kubectl dr images`: every image the chart and the DR CronJob use, and the chart as an OCI
//! artifact; `kubectl dr images mirror`: copies them into a private registry for air-gapped
//! clusters, the chart beside the image so `helm install oci://...` works from there too.

use anyhow::{Context, Result};
use dr_core::images::{self, ImageRef, OciArchive, Registry, RegistryOptions};
use serde_json::json;

use super::ExitStatus;
use crate::cli::{ImagesArgs, ImagesCommand, MirrorArgs, OutputFormat, PackageChartArgs};
use crate::release;

pub async fn run(args: &ImagesArgs) -> Result<ExitStatus> {
    match &args.command {
        Some(ImagesCommand::Mirror(m)) => return mirror(m, args.fips, args.output).await,
        Some(ImagesCommand::PackageChart(p)) => return package_chart(p),
        None => {}
    }
    // One image serves both: the chart's restore Job and the DR CronJob run the same binary.
    let image = release::job_image(args.fips);
    let used_by = "dr-restore chart (restore Job), DR policy CronJob (backup)";
    let chart = release::chart_repository();
    let chart_digest = crate::chart::artifact()?.digest();
    // Pinned by digest: a tag in a registry moves for anyone who may push there.
    let pinned = format!("oci://{}@{chart_digest}", chart.name());
    let install = format!("helm install k10-restore {pinned}");
    match args.output {
        OutputFormat::Table => {
            println!("{:<48} {:<12} {:<72} USED BY", "ARTIFACT", "TAG", "DIGEST");
            println!(
                "{:<48} {:<12} {:<72} {used_by}",
                image.name(),
                image.tag.as_deref().unwrap_or("-"),
                image.digest.as_deref().unwrap_or("(not pinned: a development build)")
            );
            println!("{:<48} {:<12} {:<72} {install}", chart.name(), release::VERSION, chart_digest);
        }
        format => {
            let pinned_chart = ImageRef { digest: Some(chart_digest.clone()), ..chart.clone() };
            let v = json!([
                {"kind": "image", "image": image.name(), "tag": image.tag, "digest": image.digest, "reference": image.to_string(), "fips": args.fips, "usedBy": used_by},
                {"kind": "chart", "image": chart.name(), "tag": release::VERSION, "digest": chart_digest, "reference": pinned_chart.to_string(), "oci": format!("oci://{}", chart.name()), "pinned": pinned, "usedBy": install},
            ]);
            match format {
                OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&v)?),
                _ => println!("{}", serde_json::to_string_pretty(&v)?),
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// `images package-chart`: the chart as `images mirror` pushes it, as a file.
fn package_chart(args: &PackageChartArgs) -> Result<ExitStatus> {
    let chart = crate::chart::artifact()?;
    if !args.destination.is_dir() {
        anyhow::bail!("--destination {} is not a directory: create it first", args.destination.display());
    }
    let path = args.destination.join(chart.file_name());
    std::fs::write(&path, &chart.package).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
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
    // The chart comes from this plugin (embedded): always the version that matches the image.
    let chart = if args.no_chart {
        None
    } else {
        let artifact = crate::chart::artifact()?;
        eprintln!("copying the {} chart {} to {}/{}", artifact.name, artifact.version, args.to.trim_end_matches('/'), artifact.name);
        Some(images::chart::push(&artifact, &args.to, &options).await?)
    };
    let to = args.to.trim_end_matches('/');
    match output {
        OutputFormat::Table => {
            println!("{}", report.image);
            if let Some(chart) = &chart {
                println!("{}", chart.chart);
            }
            if !report.platforms.is_empty() {
                eprintln!("an image index: one image for each of {}", report.platforms.join(", "));
            }
            eprintln!(
                "{} blob(s) uploaded ({}), {} already there. Restore with: kubectl dr restore --airgapped-repository {to} ...",
                report.blobs_uploaded + chart.as_ref().map_or(0, |c| c.blobs_uploaded),
                super::human_bytes(report.bytes_uploaded + chart.as_ref().map_or(0, |c| c.bytes_uploaded)),
                report.blobs_present + chart.as_ref().map_or(0, |c| c.blobs_present),
            );
            if let Some(chart) = &chart {
                // By digest, not by the tag: whoever may push to the registry can move a tag.
                eprintln!("or with Helm (pinned by digest): helm install k10-restore {}@{} --set airgapped.repository={to} ...", chart.oci, chart.digest);
            }
        }
        format => {
            let mut v = serde_json::to_value(&report)?;
            if let Some(chart) = &chart {
                v["chart"] = serde_json::to_value(chart)?;
            }
            match format {
                OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&v)?),
                _ => println!("{}", serde_json::to_string_pretty(&v)?),
            }
        }
    }
    Ok(ExitStatus::Success)
}
