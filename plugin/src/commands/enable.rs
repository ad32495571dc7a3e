//! `kubectl dr enable` and `kubectl dr disable`.

use anyhow::{bail, Context, Result};
use dr_core::dr_policy::{self, EnableSettings};
use dr_core::passphrase::PassphraseSource;
use dr_core::resources::{PolicySpec, Retention};

use super::ExitStatus;
use crate::cli::{DisableArgs, EnableArgs, GlobalArgs, SourceKind};
use crate::input;

fn parse_retention(s: &str) -> Result<Retention> {
    let mut r = Retention { hourly: 0, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').with_context(|| format!("--retention part {part:?} is not period=count"))?;
        let n: u32 = v.trim().parse().with_context(|| format!("--retention {k}={v}: the count must be a whole number"))?;
        match k.trim() {
            "hourly" => r.hourly = n,
            "daily" => r.daily = n,
            "weekly" => r.weekly = n,
            "monthly" => r.monthly = n,
            "yearly" => r.yearly = n,
            other => bail!("--retention period {other:?} is unknown: use hourly, daily, weekly, monthly, yearly"),
        }
    }
    Ok(r)
}

/// The score zxcvbn must give a raw passphrase, or `enable` refuses it: 4, at least 10^10
/// guesses. The passphrase is all that protects a copied bucket against an offline attack,
/// which has no rate limit but the KDF's cost.
const MIN_STRENGTH: zxcvbn::Score = zxcvbn::Score::Four;

/// Why a passphrase is weak, from a strength estimator (dictionaries, patterns, keyboard
/// walks), not a length rule; `None` when it is strong enough.
fn weakness(p: &dr_core::format::crypto::Passphrase) -> Option<String> {
    let estimate = zxcvbn::zxcvbn(p.as_str(), &["kubectl", "dr", "k10", "kubernetes", "backup", "restore", "passphrase"]);
    if estimate.score() >= MIN_STRENGTH {
        return None;
    }
    let mut why = format!("it would take about {} guesses", estimate.guesses());
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            why.push_str(&format!("; {warning}"));
        }
    }
    Some(why)
}

pub async fn run(global: &GlobalArgs, args: &EnableArgs) -> Result<ExitStatus> {
    let retention = parse_retention(&args.retention)?;
    let client = input::kube_client(global).await?;
    let source = input::passphrase_source(&args.passphrase, true)?;
    if let PassphraseSource::Raw(p) = &source {
        if let Some(why) = weakness(p) {
            if !args.allow_weak_passphrase {
                bail!("the DR passphrase is weak: {why}. It guards every restore point against anyone who can read the location, offline; choose a longer one (several unrelated words), or pass --allow-weak-passphrase to use it anyway");
            }
            eprintln!("warning: the DR passphrase is weak ({why}); used because of --allow-weak-passphrase");
        }
    }
    // A source that does not resolve now would fail every backup: check before writing.
    if !matches!(source, PassphraseSource::Raw(_)) {
        source
            .resolve(&input::resolve_options(&args.passphrase)?)
            .await
            .with_context(|| format!("the passphrase source ({}) does not resolve from here", source.describe()))?;
    }
    let vault_job = args.passphrase.passphrase_source == SourceKind::Vault;
    if vault_job && args.vault_token_secret.is_none() && args.passphrase.vault_role.is_none() {
        bail!("the backup job needs a Vault login too: --vault-token-secret SECRET (key vault_token) or --vault-role ROLE (Kubernetes auth)");
    }
    let selection = dr_core::resources::Selection {
        namespaces: args.include_namespaces.clone(),
        exclude_namespaces: args.exclude_namespaces.clone(),
        label_selector: args.label_selector.clone(),
        include_kinds: args.include_kinds.clone(),
        exclude_kinds: args.exclude_kinds.clone(),
        cluster_scoped: !args.no_cluster_scoped,
    };
    let settings = EnableSettings {
        namespace: global.namespace.clone(),
        profile: args.profile.clone(),
        frequency: args.frequency.clone(),
        policy: PolicySpec {
            profile: args.profile.clone(),
            frequency: args.frequency.clone(),
            retention,
            mode: args.mode,
            selection,
            replication: args.replicate_to.as_ref().map(|to| dr_core::resources::Replication {
                to: to.clone(),
                verify_with: args.replicate_verify_with.clone(),
                frequency: args.replicate_frequency.clone().unwrap_or_else(|| args.frequency.clone()),
            }),
        },
        source,
        image: job_image(args)?,
        image_pull_secrets: args.image_pull_secrets.clone(),
        vault_address: if vault_job { args.passphrase.vault_address.clone() } else { None },
        vault_token_secret: if vault_job { args.vault_token_secret.clone() } else { None },
        vault_role: if vault_job { args.passphrase.vault_role.clone() } else { None },
        vault_ca_bundle: match (&args.passphrase.vault_ca_bundle, vault_job) {
            (Some(file), true) => Some(input::ca_bundle_file(file)?),
            _ => None,
        },
        pushgateway_url: args.pushgateway_url.clone(),
    };
    let report = dr_policy::enable(&client, &settings).await?;
    println!("DR is enabled in namespace {} (policy k10-disaster-recovery-policy, {}).", report.namespace, report.schedule);
    println!();
    println!("Cluster ID: {}", report.cluster_id);
    println!();
    println!("Keep these three outside this cluster; without them a restore is impossible:");
    println!("  1. the cluster ID above;");
    println!("  2. the DR passphrase ({});", report.passphrase_source);
    println!("  3. the location of profile {} and credentials that can read it.", report.profile);
    Ok(ExitStatus::Success)
}

pub async fn disable(global: &GlobalArgs, args: &DisableArgs) -> Result<ExitStatus> {
    let client = input::kube_client(global).await?;
    let removed = dr_policy::disable(&client, &global.namespace, args.delete_secret).await?;
    if removed.is_empty() {
        println!("DR was not enabled in namespace {}: nothing to remove", global.namespace);
    } else {
        for r in &removed {
            println!("removed {r}");
        }
    }
    if !args.delete_secret {
        println!("kept k10-dr-secret and every restore point");
    }
    Ok(ExitStatus::Success)
}

/// The DR CronJob's image: this build's (pinned by digest when the build knows it), moved to
/// the air-gapped mirror, or the repository and tag given.
fn job_image(args: &EnableArgs) -> Result<String> {
    let mut image = crate::release::job_image(false);
    if let Some(mirror) = &args.airgapped_repository {
        image = image.moved_to(mirror).with_context(|| format!("--airgapped-repository {mirror:?} is not a registry path (REGISTRY[:PORT][/PATH])"))?;
    }
    if args.image_repository.is_some() || args.image_tag.is_some() {
        // Another repository or tag is another build: its digest is not this build's.
        image.digest = None;
    }
    let repository = args.image_repository.clone().unwrap_or_else(|| image.name());
    let mut reference = format!("{repository}:{}", args.image_tag.clone().unwrap_or_else(|| image.tag.clone().unwrap_or_default()));
    if let Some(digest) = &image.digest {
        reference.push('@');
        reference.push_str(digest);
    }
    Ok(reference)
}
