//! `kubectl dr drill`: a restore into a sandbox or a scratch cluster, checked object by
//! object, with a report to keep (`dr_core::drill`).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use anyhow::{Context, Result};
use dr_core::drill::{self, Target};
use dr_core::restore::RestoreSettings;

use super::ExitStatus;
use crate::cli::{DrillArgs, GlobalArgs, OutputFormat};
use crate::input;

pub async fn run(global: &GlobalArgs, args: &DrillArgs) -> Result<ExitStatus> {
    let mut settings = RestoreSettings::new(&global.namespace, &args.cluster_id, &args.profile);
    settings.point_in_time = args.point_in_time;
    settings.timeout = args.timeout;
    settings.location_mount = args.path.clone();
    settings.resolve = input::resolve_options(&args.passphrase)?;
    settings.holder = "kubectl-dr-drill".into();
    settings.check()?;
    let source = input::passphrase_source(&args.passphrase, false)?;
    let (client, target) = match (&args.sandbox_prefix, &args.target_context) {
        (Some(prefix), _) => (input::kube_client(global).await?, Target::Sandbox { prefix: prefix.clone(), keep: args.keep }),
        (None, Some(context)) => {
            let scratch = GlobalArgs { kubeconfig: global.kubeconfig.clone(), context: Some(context.clone()), namespace: global.namespace.clone() };
            (input::kube_client(&scratch).await?, Target::Cluster { name: context.clone() })
        }
        (None, None) => unreachable!("clap requires one of them"),
    };
    let dir = args.report_dir.clone().unwrap_or_else(|| {
        let now = time::OffsetDateTime::now_utc();
        format!("dr-drill-{:04}{:02}{:02}T{:02}{:02}{:02}Z", now.year(), u8::from(now.month()), now.day(), now.hour(), now.minute(), now.second()).into()
    });
    // Before the drill: a report that cannot be written is found out now.
    let existed = dir.exists();
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).with_context(|| format!("cannot create the report directory {}", dir.display()))?;
    eprintln!(
        "drill: restoring point of cluster {} into {}",
        args.cluster_id,
        match &target {
            Target::Sandbox { prefix, .. } => format!("sandbox namespaces {prefix}* of this cluster"),
            Target::Cluster { name } => format!("the cluster of context {name}"),
        }
    );
    let report = match drill::run(&client, &settings, &target, Some(source)).await {
        Ok(report) => report,
        Err(e) => {
            // No report: leave no empty report directory behind (remove_dir keeps a non-empty one).
            if !existed {
                let _ = std::fs::remove_dir(&dir);
            }
            return Err(e.into());
        }
    };
    // Owner-only: the report names the point's objects.
    for (name, body) in [
        ("drill.json", serde_json::to_string_pretty(&report).expect("the report serializes") + "\n"),
        ("drill.md", report.markdown()),
        ("drill.html", report.html()),
    ] {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(body.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&report)?),
        OutputFormat::Table => print!("{}", report.markdown()),
    }
    if !report.cleaned_up.is_empty() {
        eprintln!("removed the sandbox namespaces: {}", report.cleaned_up.join(", "));
    }
    eprintln!("drill {}: reports in {}/ (drill.json, drill.md, drill.html)", report.verdict(), dir.display());
    Ok(if report.passed { ExitStatus::Success } else { ExitStatus::Failed(dr_core::failure::ErrorKind::Incomplete) })
}
