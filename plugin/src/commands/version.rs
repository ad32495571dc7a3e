//! `kubectl dr version` and `kubectl dr completion`.

use anyhow::Result;
use serde_json::json;

use super::ExitStatus;
use crate::cli::{CompletionArgs, OutputFormat, VersionArgs};
use crate::release;

pub fn run(args: &VersionArgs) -> Result<ExitStatus> {
    let image = release::job_image(false);
    let fips_image = release::job_image(true);
    let fips = dr_core::format::crypto::fips_mode();
    match args.output {
        OutputFormat::Table => {
            println!("kubectl-dr {}{}", release::VERSION, release::REVISION.map(|r| format!(" ({r})")).unwrap_or_default());
            println!("job image:      {image}");
            println!("FIPS job image: {fips_image}");
            println!("crypto:         aws-lc-rs{}", if fips { ", FIPS mode" } else { "" });
            if image.digest.is_none() {
                println!("(a development build: the images are not pinned by digest; scripts/dist pins them)");
            }
        }
        format => {
            let v = json!({
                "version": release::VERSION,
                "revision": release::REVISION,
                "jobImage": image.to_string(),
                "fipsJobImage": fips_image.to_string(),
                "fipsMode": fips,
            });
            match format {
                OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&v)?),
                _ => println!("{}", serde_json::to_string_pretty(&v)?),
            }
        }
    }
    Ok(ExitStatus::Success)
}

pub fn completion(args: &CompletionArgs) -> Result<ExitStatus> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    // The script completes the binary's own name; kubectl's plugin completion calls the same
    // binary (see the README).
    clap_complete::generate(args.shell, &mut cmd, "kubectl-dr", &mut std::io::stdout());
    Ok(ExitStatus::Success)
}
