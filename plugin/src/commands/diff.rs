//! `kubectl dr diff`: what changed between two restore points, or between a point and the
//! live cluster (`dr_core::diff`).

use anyhow::Result;
use dr_core::diff::{self, Diff, FieldChange, Normalizer};
use dr_core::point::{self, Manifest, Unlocker};
use serde_json::Value;

use super::ExitStatus;
use crate::cli::{DiffArgs, GlobalArgs, OutputFormat};
use crate::input;
use crate::stdout::{out, outln};

pub async fn run(global: &GlobalArgs, args: &DiffArgs) -> Result<ExitStatus> {
    point::validate_cluster_id(&args.cluster_id)?;
    let location = input::location(&args.location, false).await?;
    let unlocker = Unlocker::new(input::passphrase(&args.passphrase, false).await?);
    let chosen = point::choose(&location, &args.cluster_id, point::Which::Id(&args.point), &unlocker).await?;
    let normalizer = Normalizer::new(args.status);
    let before_manifest = chosen.manifest.clone();
    let before_entries = point::read_all_entries(&location, &before_manifest, &unlocker).await?;
    let before = diff::point_snapshot(before_entries.clone(), &normalizer);
    let result = match &args.other {
        Some(other) => {
            let after_manifest = chosen.open_other(&location, other, &unlocker).await?;
            let after_entries = point::read_all_entries(&location, &after_manifest, &unlocker).await?;
            let after = diff::point_snapshot(after_entries, &normalizer);
            diff::compare(&describe(&before_manifest), &before, &describe(&after_manifest), &after)
        }
        None => {
            let client = input::kube_client(global).await?;
            // What a backup would read now: the DR policy's selection when this cluster has
            // it (so a kind or namespace the point lacks shows as added), and the point's kinds.
            let policies: kube::Api<dr_core::resources::Policy> = kube::Api::namespaced(client.clone(), &global.namespace);
            let selection = match policies.get_opt(&before_manifest.policy).await {
                Ok(Some(p)) => p.spec.selection,
                _ => {
                    eprintln!("note: DR policy {} is not in namespace {}: comparing the point's kinds in every namespace but kube-system, kube-public and kube-node-lease", before_manifest.policy, global.namespace);
                    Default::default()
                }
            };
            let mut kinds = dr_core::backup::backed_up_kinds(&client, &selection, before_manifest.mode).await?;
            kinds.extend(before_manifest.resources.clone());
            let dr_namespace = global.namespace.clone();
            let reads = move |ns: &str| dr_core::backup::reads_namespace(&selection, &dr_namespace, ns);
            let live = diff::live_snapshot(&client, &kinds, &reads, &normalizer).await?;
            diff::compare(&describe(&before_manifest), &before, "this cluster now", &live)
        }
    };
    print(&result, args.output)?;
    Ok(ExitStatus::Success)
}

fn describe(m: &Manifest) -> String {
    format!("{} ({})", m.point_id, m.created_at)
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => {
            let s = v.to_string();
            if s.chars().count() > 100 {
                format!("{}...", s.chars().take(100).collect::<String>())
            } else {
                s
            }
        }
    }
}

fn name(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

fn print(d: &Diff, output: OutputFormat) -> Result<()> {
    match output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(d)?)?,
        OutputFormat::Yaml => out!("{}", serde_yaml::to_string(d)?)?,
        OutputFormat::Table => {
            outln!("from {}\n  to {}", d.before, d.after)?;
            for o in &d.added {
                outln!("+ {}", name(&o.kind, &o.namespace, &o.name))?;
            }
            for o in &d.removed {
                outln!("- {}", name(&o.kind, &o.namespace, &o.name))?;
            }
            for o in &d.changed {
                outln!("~ {}", name(&o.kind, &o.namespace, &o.name))?;
                for FieldChange { path, before, after } in &o.fields {
                    outln!("    {path}: {} -> {}", show(before), show(after))?;
                }
            }
            outln!("{} added, {} removed, {} changed, {} unchanged", d.added.len(), d.removed.len(), d.changed.len(), d.unchanged)?;
        }
    }
    Ok(())
}
