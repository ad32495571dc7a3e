//! `kubectl dr prune`: apply the DR policy's retention. It needs the passphrase: retention
//! counts only points whose manifest authenticates (see `dr_core::retention`).

use anyhow::{Context, Result};
use dr_core::catalog::DR_POLICY_NAME;
use dr_core::point::Unlocker;
use dr_core::resources::{self, Policy};
use dr_core::retention::{self, Pruned};
use kube::api::Api;

use super::ExitStatus;
use crate::cli::{GlobalArgs, OutputFormat, PruneArgs};
use crate::input;

pub async fn run(global: &GlobalArgs, args: &PruneArgs) -> Result<ExitStatus> {
    let client = input::kube_client(global).await?;
    let ns = &global.namespace;
    // Two owners must never prune the same location.
    dr_core::ownership::ensure_owner(&client, ns).await?;
    let policy = Api::<Policy>::namespaced(client.clone(), ns)
        .get_opt(DR_POLICY_NAME)
        .await?
        .with_context(|| format!("DR is not enabled in namespace {ns}: there is no retention to apply"))?;
    let location = if args.location.path.is_some() || args.location.s3_bucket.is_some() {
        input::location(&args.location, false).await?
    } else {
        resources::connect_profile(&client, ns, &policy.spec.profile, None).await?
    };
    let cluster_id = dr_core::ownership::cluster_id(&client).await?;
    // The passphrase: from --passphrase-file when given, otherwise as the backups get it,
    // from k10-dr-secret (with this machine's Vault or AWS login).
    let passphrase = if args.passphrase.passphrase_file.is_some() {
        input::passphrase(&args.passphrase, false).await?
    } else {
        let source = resources::dr_secret_source(&client, ns).await?;
        source.resolve(&input::resolve_options(&args.passphrase)?).await?
    };
    let now = time::OffsetDateTime::now_utc();
    let (kept, outcomes) = retention::prune(&location, &cluster_id, &policy.spec.retention, &Unlocker::new(passphrase), now, args.dry_run)
        .await
        .with_context(|| format!("pruning {} (prune needs credentials that may list, read and delete)", location.describe()))?;
    let failed = outcomes.iter().any(|o| matches!(o, Pruned::Failed { .. }));
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&serde_json::json!({"kept": kept, "pruned": outcomes}))?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&serde_json::json!({"kept": kept, "pruned": outcomes}))?),
        OutputFormat::Table => {
            for o in &outcomes {
                match o {
                    Pruned::Deleted { point } => println!("deleted        {point}"),
                    Pruned::WouldDelete { point } => println!("would delete   {point}"),
                    Pruned::Protected { point, until } => println!("protected      {point}  (Object Lock until {until}; left in place)"),
                    Pruned::Failed { point, error } => println!("FAILED         {point}  {error}"),
                    Pruned::Untrusted { point, reason } => println!("untrusted      {point}  ({reason}; not counted, left in place)"),
                }
            }
            let untrusted = outcomes.iter().filter(|o| matches!(o, Pruned::Untrusted { .. })).count();
            eprintln!("{} kept, {} pruned or protected, at {}", kept.len(), outcomes.len() - untrusted, location.describe());
            if untrusted > 0 {
                eprintln!("{untrusted} point(s) are untrusted: they do not authenticate with the DR passphrase or are dated in the future. Anyone with write access to the location can add points; check who does, then delete them by hand if they are not yours.");
            }
        }
    }
    Ok(if failed { ExitStatus::Failed(dr_core::failure::ErrorKind::Transient) } else { ExitStatus::Success })
}
