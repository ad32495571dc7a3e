//! `kubectl dr status`.

use anyhow::Result;

use super::ExitStatus;
use crate::cli::{GlobalArgs, OutputFormat, StatusArgs};
use crate::input;

pub async fn run(global: &GlobalArgs, args: &StatusArgs) -> Result<ExitStatus> {
    let client = input::kube_client(global).await?;
    let s = dr_core::dr_policy::status(&client, &global.namespace).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&s)?),
        OutputFormat::Table => {
            println!("Cluster ID:  {}", s.cluster_id);
            println!("Namespace:   {}", s.namespace);
            println!("DR:          {}", if s.enabled { "enabled" } else { "not enabled (run `kubectl dr enable`)" });
            if let Some(p) = &s.policy {
                println!("Policy:      k10-disaster-recovery-policy, profile {}, {} mode, {}", p.profile, p.mode.as_str(), p.frequency);
            }
            if let Some(schedule) = &s.schedule {
                let next = if s.suspended { "suspended".to_owned() } else { s.next_run.clone().unwrap_or_else(|| "-".into()) };
                println!("Schedule:    {schedule} (next run: {next})");
            }
            println!(
                "Ownership:   {}",
                if s.owns_location {
                    "this cluster owns the location"
                } else {
                    "NOT the owner: k10-dr-remove-to-get-ownership exists (restored cluster); run `kubectl dr take-ownership` when the original is gone"
                }
            );
            if s.last_runs.is_empty() {
                println!("Last runs:   none yet");
            } else {
                println!("Last runs:");
                for r in &s.last_runs {
                    let detail = match (&r.restore_point, r.objects, &r.message) {
                        (Some(p), Some(n), _) => format!("{p}, {n} objects"),
                        (_, _, Some(m)) => m.clone(),
                        _ => String::new(),
                    };
                    println!("  {}  {:<9}  {detail}", r.started_at, r.result);
                }
            }
        }
    }
    Ok(ExitStatus::Success)
}
