//! `kubectl dr restore`: checks everything it can from here (flags, the profile, the point,
//! a raw passphrase against the point), then creates `k10-dr-secret`, installs the embedded
//! `dr-restore` chart with `helm`, and follows the restore Job to the end. `--dry-run`
//! decrypts the point and plans the restore against this cluster, writing nothing.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dr_core::location::Location;
use dr_core::passphrase::PassphraseSource;
use dr_core::point;
use dr_core::resources::{self, ResourceError};
use dr_core::restore::chart::{ChartValues, PullSecret, RbacResource};
use dr_core::restore::{self, RestoreReport};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::ResourceExt;
use serde_json::{json, Value};

use super::jobs::{end_restore_grant, job_logs, job_state, termination_message, watch_job_with_progress, JobState};
use super::ExitStatus;
use crate::cli::{GlobalArgs, OutputFormat, RestoreArgs, SourceKind};
use crate::{chart, input};

pub async fn run(global: &GlobalArgs, args: &RestoreArgs) -> Result<ExitStatus> {
    let ns = &global.namespace;
    // Everything that can be wrong with the flags, before the cluster is asked anything: the
    // flags become the chart's values, and those the restore's settings, by the conversion
    // the Job runs on the same values.
    let mut chart = chart_values(args, controls(args)?);
    let modifier_rules = match &args.resource_modifiers {
        Some(file) => {
            let rules = dr_core::local_file::read_to_string(
                file,
                "the --resource-modifiers file",
                dr_core::local_file::MAX_FILE_BYTES,
                dr_core::local_file::Links::Follow,
            )?;
            let source = format!("--resource-modifiers {}", file.display());
            dr_core::restore::modifiers::Modifiers::parse(&source, &rules).map_err(|e| anyhow::anyhow!("{e}"))?;
            chart.resource_modifiers.config_map = modifiers_config_map(&args.release);
            Some((source, rules))
        }
        None => None,
    };
    let mut settings = chart.restore_settings(ns)?;
    let vault = args.passphrase.passphrase_source == SourceKind::Vault;
    if vault && args.vault_token_secret.is_none() && args.passphrase.vault_role.is_none() {
        bail!("the restore Job needs a Vault login: --vault-token-secret SECRET (a Secret with key vault_token) or --vault-role ROLE (Kubernetes auth)");
    }
    if vault && args.passphrase.vault_address.is_none() {
        bail!("--passphrase-source vault needs --vault-address (or VAULT_ADDR)");
    }

    // Whether helm runs, asked now and answered while the point is checked: starting helm
    // takes a noticeable part of the command's fixed cost, and nothing here depends on it.
    let helm_version = (!args.dry_run && !args.preflight).then(|| {
        let helm = args.helm.clone();
        std::thread::spawn(move || Command::new(helm).arg("version").output())
    });
    let client = input::kube_client(global).await?;
    let profile = resources::get_profile(&client, ns, &args.profile).await?;
    let source = input::passphrase_source(&args.passphrase, false)?;
    let opened = check_point(&client, &profile, args, &settings, &source).await?;

    if let Some(file) = &profile.spec.file {
        chart.file_profile.claim_name = file.claim_name.clone();
    }
    if profile.spec.uses_azure_workload_identity() {
        let (name, value) = resources::AZURE_WORKLOAD_IDENTITY_LABEL;
        chart.pod_labels.insert(name.into(), value.into());
    }
    if !args.quick_mode {
        match opened.as_ref().and_then(|o| rbac_resources(o.manifest())) {
            Some(resources) => chart.rbac.resources = resources,
            None => eprintln!(
                "note: the point's resources are not known here (the manifest was not opened, or the point predates their record): the restore Job may write every resource until it ends"
            ),
        }
    }
    // Only what differs from the chart's defaults, so values-fips.yaml and values-hardened.yaml
    // (passed before it) keep what they set.
    let values = chart.overrides();
    if args.dry_run || args.preflight {
        settings.run = restore::RunMode::Plan;
        settings.inline_modifiers = modifier_rules;
        drop(source);
        // The point the check above opened (for a dry-run it opens it or fails).
        let Some(opened) = opened else { bail!("the point could not be opened from here, which --dry-run and --preflight need") };
        // Objects that would fail still make a report, and the preflight's findings name them.
        let (report, failure) = match restore::run_restore(&client, &settings, opened).await {
            Ok(report) => (report, None),
            Err(e) => match e.report().cloned() {
                Some(report) => (report, Some(e)),
                None => return Err(e.into()),
            },
        };
        print_report(&report, args.output, "would be")?;
        if let (Some(e), false) = (failure, args.preflight) {
            return Err(e.into());
        }
        if args.preflight {
            if report.findings.is_empty() {
                eprintln!("preflight: nothing found that would stop or block the restore");
                return Ok(ExitStatus::Success);
            }
            eprintln!("preflight: {} finding(s) that would stop or block the restore (exit status 8)", report.findings.len());
            return Ok(ExitStatus::Findings);
        }
        eprintln!();
        eprintln!("Nothing was written. To restore, the same command without --dry-run creates {} and runs:", dr_core::catalog::DR_SECRET_NAME);
        eprintln!("  {} upgrade --install {} <embedded dr-restore chart> --namespace {ns} --values <values>", args.helm.display(), args.release);
        eprintln!("with values:\n{}", serde_yaml::to_string(&values).expect("values serialize"));
        return Ok(ExitStatus::Success);
    }

    // helm must be there before anything is written.
    let helm_version = match helm_version {
        Some(asked) => asked.join().unwrap_or_else(|_| Command::new(&args.helm).arg("version").output()),
        None => Command::new(&args.helm).arg("version").output(),
    };
    match helm_version {
        Ok(out) if out.status.success() => {}
        Ok(out) => bail!("`{} version` failed: {}", args.helm.display(), String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "helm is not installed (looked for {:?}): install Helm 3.8 or newer (https://helm.sh/docs/intro/install/) or give --helm PATH; \
             or install charts/dr-restore yourself with `helm install {} charts/dr-restore -n {ns} --set sourceClusterID={} --set profile.name={}` after creating {}",
            args.helm,
            args.release,
            args.cluster_id,
            args.profile,
            dr_core::catalog::DR_SECRET_NAME
        ),
        Err(e) => bail!("cannot run {}: {e}", args.helm.display()),
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    clear_finished_job(&jobs, &args.release).await?;

    dr_core::dr_policy::write_dr_secret(&client, ns, &source).await?;
    eprintln!("wrote {} ({})", dr_core::catalog::DR_SECRET_NAME, source.describe());
    if let Some((_, rules)) = &modifier_rules {
        let name = modifiers_config_map(&args.release);
        let map: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "kubectl-dr"}},
            "data": {dr_core::restore::modifiers::RULES_KEY: rules},
        }))
        .expect("a ConfigMap");
        dr_core::dr_policy::apply(&Api::namespaced(client.clone(), ns), map).await?;
        eprintln!("wrote ConfigMap {name} (the resource modifier rules)");
    }
    if let (Some(file), true) = (&args.passphrase.vault_ca_bundle, vault) {
        let map = resources::ca_bundle_config_map(&vault_ca_config_map(&args.release), ns, input::ca_bundle_file(file)?);
        dr_core::dr_policy::apply(&Api::namespaced(client.clone(), ns), map).await?;
    }
    drop(source);
    install_chart(global, args, &values)?;

    let job = jobs.get(&args.release).await.with_context(|| format!("the chart was installed but job {} is not there", args.release))?;
    eprintln!("restore job {} started in namespace {ns}; following it (logs: kubectl logs -n {ns} -f job/{})", args.release, args.release);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // The Job bounds itself by --timeout; allow for image pulls and scheduling on top.
    let wait = args.timeout + Duration::from_secs(600);
    let job_uid = job.uid().unwrap_or_default();
    let follow = input::follow_client(global).await?;
    let followed =
        tokio::time::timeout(wait, watch_job_with_progress(&Api::namespaced(follow.clone(), ns), &Api::namespaced(follow, ns), &args.release, &job_uid)).await;
    // The Job's verdict, or this wait (which outlasts the Job's own deadline) run out: the
    // restore is over, and so is its cluster-wide grant. Not when following failed: the Job
    // may still be running, and needs it.
    if !matches!(followed, Ok(Err(_))) {
        end_restore_grant(&client, &args.release, ns).await;
    }
    let (state, logs) = match followed {
        Ok(state) => state?,
        Err(_) => bail!(
            "restore job {} did not finish within {} minutes; follow it with `kubectl logs -n {ns} -f job/{}`",
            args.release,
            wait.as_secs() / 60,
            args.release
        ),
    };
    let message = termination_message(&pods, &args.release, &job_uid).await.unwrap_or_default();
    let outcome = restore::RestoreOutcome::parse(&message);
    // The whole report from the Job's log when it is there (the termination message keeps
    // 4 KiB, so a large report comes back there without its names); else the message's.
    let whole = logs
        .result
        .as_deref()
        .and_then(|line| serde_json::from_str::<RestoreReport>(line).ok())
        .filter(|r| outcome.report.as_ref().is_none_or(|short| short.restore_point == r.restore_point && short.objects == r.objects));
    if let Some(report) = whole.as_ref().or(outcome.report.as_ref()) {
        print_report(report, args.output, "")?;
    }
    if state == JobState::Succeeded {
        println!();
        println!("Restored. This cluster does no maintenance on the location while ConfigMap {} exists in {ns}.", dr_core::catalog::OWNERSHIP_CONFIGMAP);
        println!("Once the source cluster no longer uses the location: kubectl dr take-ownership -n {ns}");
        println!("The restore's cluster-wide grant has ended. Remove the Job and the rest of its RBAC: helm uninstall {} -n {ns}", args.release);
        return Ok(ExitStatus::Success);
    }
    if let Some(logs) = job_logs(&pods, &args.release, &job.uid().unwrap_or_default(), 40).await {
        eprintln!("--- last lines of the restore job's log ---\n{logs}");
    }
    let reason = if outcome.error.is_empty() { format!("{state}; see `kubectl logs -n {ns} job/{}`", args.release) } else { outcome.error };
    eprintln!("error: restore job {} failed: {reason}", args.release);
    // The Job's own verdict on what kind of failure it was; a Job that ended without saying
    // (killed every time, deadline) is transient: running it again may finish it.
    Ok(ExitStatus::Failed(outcome.kind.unwrap_or(dr_core::failure::ErrorKind::Transient)))
}

/// The chart's `rbac.resources` for a point (`restore::written_resources`).
fn rbac_resources(manifest: &point::Manifest) -> Option<Vec<RbacResource>> {
    Some(restore::written_resources(manifest)?.into_iter().map(|(group, resource)| RbacResource { group, resource }).collect())
}

/// Finds the point the Job will restore, and, when the passphrase resolves from here, opens
/// its manifest and checks its mode, so the common mistakes fail here, before anything is
/// written. Returns the point when it was opened: a dry-run (which needs it opened, and
/// fails here when it cannot be) plans from it without opening it again.
async fn check_point(
    client: &kube::Client,
    profile: &resources::Profile,
    args: &RestoreArgs,
    settings: &restore::RestoreSettings,
    source: &PassphraseSource,
) -> Result<Option<restore::OpenedPoint>> {
    let ns = &settings.namespace;
    let from_here = args.dry_run || args.preflight;
    let config = match resources::location_config(client, ns, profile, args.path.as_deref()).await {
        Ok(config) => config,
        Err(ResourceError::FileProfileOutsideCluster { name }) if !from_here => {
            eprintln!("profile {name} is a volume this machine cannot see: the restore Job finds and checks the point (give --path to check from here)");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let location = Location::connect(&config).await?;
    let passphrase = match source {
        PassphraseSource::Raw(p) => p.clone(),
        // Vault or AWS: the Job resolves it in the cluster; from here only if this machine's
        // login can (a Kubernetes-auth role usually cannot outside the cluster).
        other => match other.resolve(&input::resolve_options(&args.passphrase)?).await {
            Ok(p) => p,
            Err(e) if from_here => bail!(
                "--dry-run and --preflight open the point from this machine, and the passphrase source does not resolve from here: {}",
                dr_core::error_text(&e)
            ),
            Err(e) => {
                eprintln!("the passphrase source does not resolve from here ({}): the restore Job checks the point", dr_core::error_text(&e));
                return Ok(None);
            }
        },
    };
    let opened = restore::choose_point(location, settings, passphrase, source.describe()).await?;
    eprintln!("restore point {} at {}", opened.chosen.point.id, opened.location.describe());
    for (id, why) in &opened.chosen.passed_over {
        eprintln!("  passed over {id}: {why}");
    }
    let manifest = opened.manifest();
    restore::check_mode(manifest, args.quick_mode)?;
    eprintln!("  {} mode, {} objects, written by policy {}", manifest.mode.as_str(), manifest.counts.total, manifest.policy);
    Ok(Some(opened))
}

/// The chart's values for the flags and the controls built from them (checked with the
/// rest, by `ChartValues::restore_settings`). The passphrase is never among them.
fn chart_values(args: &RestoreArgs, controls: restore::RestoreControls) -> ChartValues {
    let mut v = ChartValues { source_cluster_id: args.cluster_id.clone(), ..Default::default() };
    v.profile.name = args.profile.clone();
    v.restore.timeout = u32::try_from(args.timeout.as_secs() / 60).unwrap_or(u32::MAX);
    v.restore.status = args.restore_status.clone();
    v.quick_mode.enabled = args.quick_mode;
    v.quick_mode.override_resources = args.override_resources;
    v.point_in_time = args.point_in_time.clone().unwrap_or_default();
    v.restore_point_id = args.point.clone().unwrap_or_default();
    v.skip_resource = args.skip_resource.replace("\\,", ",");
    v.set_controls(controls);
    let p = &args.passphrase;
    if p.passphrase_source == SourceKind::Vault {
        v.vault.enabled = true;
        v.vault.address = p.vault_address.clone().unwrap_or_default();
        if let Some(role) = &p.vault_role {
            v.vault.role = role.clone();
            v.vault.auth_mount = p.vault_auth_mount.clone();
            if p.vault_sa_token_path.as_os_str() != dr_core::passphrase::DEFAULT_SA_TOKEN_PATH {
                v.vault.service_account_token_path = p.vault_sa_token_path.display().to_string();
            }
        } else {
            v.vault.secret_name = args.vault_token_secret.clone().unwrap_or_default();
        }
        if p.vault_ca_bundle.is_some() {
            v.vault.ca_bundle.config_map = vault_ca_config_map(&args.release);
            v.vault.ca_bundle.key = resources::CA_BUNDLE_KEY.into();
        }
    }
    if p.passphrase_source == SourceKind::Aws {
        v.aws.credentials_secret = args.aws_credentials_secret.clone().unwrap_or_default();
        v.aws.secrets_manager_endpoint = p.aws_endpoint.clone().unwrap_or_default();
    }
    v.airgapped.repository = args.airgapped_repository.clone().unwrap_or_default();
    v.monitoring.pushgateway_url = args.pushgateway_url.clone().unwrap_or_default();
    v.image_pull_secrets = args.image_pull_secrets.iter().map(|name| PullSecret { name: name.clone() }).collect();
    if let Some(repository) = &args.image_repository {
        v.image.repository = repository.clone();
    }
    v.image.tag = args.image_tag.clone().unwrap_or_default();
    v.image.digest = args.image_digest.clone().unwrap_or_default();
    if args.image_repository.is_none() && args.image_tag.is_none() && args.image_digest.is_none() {
        // This build's own image, pinned by digest when the build knows it (scripts/dist).
        if let Some(digest) = crate::release::job_image(args.fips).digest {
            v.image.digest = digest.to_string();
        }
    }
    v
}

/// The restore controls from the flags (checked with the rest of the settings).
fn controls(args: &RestoreArgs) -> Result<restore::RestoreControls> {
    use dr_core::restore::mapping::parse_pairs;
    let err = |e: String| anyhow::anyhow!("{e}");
    Ok(restore::RestoreControls {
        select: dr_core::restore::select::Select {
            include_namespaces: args.include_namespaces.clone(),
            exclude_namespaces: args.exclude_namespaces.clone(),
            include_kinds: args.include_kinds.clone(),
            exclude_kinds: args.exclude_kinds.clone(),
            selector: args.selector.clone(),
            objects: args.objects.clone(),
        },
        mapping: dr_core::restore::mapping::Mapping {
            namespaces: parse_pairs("--namespace-mapping", &args.namespace_mapping).map_err(err)?,
            storage_classes: parse_pairs("--storage-class-mapping", &args.storage_class_mapping).map_err(err)?,
            image_registries: parse_pairs("--image-registry-mapping", &args.image_registry_mapping).map_err(err)?,
            host_name_kinds: args.rewrite_host_names_in.clone(),
        },
        resource_modifiers: Default::default(),
        existing: restore::Existing::parse(&args.existing).map_err(|e| anyhow::anyhow!("--existing {e}"))?,
    })
}

/// The ConfigMap the restore Job reads `--resource-modifiers` rules from.
fn modifiers_config_map(release: &str) -> String {
    format!("{release}-modifiers")
}

/// The ConfigMap the restore Job reads Vault's CA from (`--vault-ca-bundle FILE`).
fn vault_ca_config_map(release: &str) -> String {
    format!("{release}-vault-ca")
}

/// A finished Job from an earlier restore is removed so the new one can start; a running one
/// means a restore is in progress.
async fn clear_finished_job(jobs: &Api<Job>, name: &str) -> Result<()> {
    let Some(job) = jobs.get_opt(name).await.with_context(|| format!("reading job {name}"))? else { return Ok(()) };
    let state = job_state(&job);
    if !state.is_finished() {
        bail!("restore job {name} is still {state}: follow it with `kubectl logs -f job/{name}`, or delete it to start over");
    }
    jobs.delete(name, &DeleteParams::background()).await.with_context(|| format!("deleting the earlier restore job {name}"))?;
    let uid = job.metadata.uid.unwrap_or_default();
    match tokio::time::timeout(Duration::from_secs(60), await_condition(jobs.clone(), name, conditions::is_deleted(&uid))).await {
        Ok(result) => {
            result.with_context(|| format!("watching the earlier restore job {name} go"))?;
            eprintln!("removed the earlier restore job {name} ({state})");
            Ok(())
        }
        Err(_) => bail!("the earlier restore job {name} is still being deleted; try again in a minute"),
    }
}

fn install_chart(global: &GlobalArgs, args: &RestoreArgs, values: &Value) -> Result<()> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory for the chart")?;
    let chart_dir = chart::write_to(dir.path()).context("cannot write the embedded chart")?;
    let values_file = dir.path().join("values.json");
    std::fs::write(&values_file, serde_json::to_vec_pretty(values).expect("values serialize"))?;
    let mut cmd = Command::new(&args.helm);
    cmd.args(["upgrade", "--install", &args.release]).arg(&chart_dir).args(["--namespace", &global.namespace]);
    if args.fips {
        cmd.arg("--values").arg(chart_dir.join("values-fips.yaml"));
    }
    if args.hardened {
        cmd.arg("--values").arg(chart_dir.join("values-hardened.yaml"));
    }
    cmd.arg("--values").arg(&values_file);
    if let Some(kc) = &global.kubeconfig {
        cmd.arg("--kubeconfig").arg(kc);
    }
    if let Some(ctx) = &global.context {
        cmd.args(["--kube-context", ctx]);
    }
    eprintln!("installing the dr-restore chart (release {}) with helm", args.release);
    let out = cmd.output().with_context(|| format!("cannot run {}", args.helm.display()))?;
    if !out.status.success() {
        bail!("helm could not install the dr-restore chart: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn print_report(report: &RestoreReport, output: OutputFormat, verb: &str) -> Result<()> {
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(report)?),
        OutputFormat::Table => {
            let restored = if verb.is_empty() { "RESTORED" } else { "CREATE" };
            let replaced = if verb.is_empty() { "REPLACED" } else { "REPLACE" };
            println!(
                "restore point {} of cluster {} ({} mode, {} objects){}",
                report.restore_point,
                report.source_cluster_id,
                report.mode,
                report.objects,
                if verb.is_empty() { String::new() } else { format!(": what {verb} done") }
            );
            println!("{:<48} {:>9} {:>9} {:>9} {:>7}  NOTES", "KIND", restored, replaced, "SKIPPED", "FAILED");
            for (kind, k) in &report.by_kind {
                let skipped: u64 = k.skipped.values().sum();
                let mut notes: Vec<String> = k.skipped.iter().map(|(why, n)| format!("{n} {why}")).collect();
                if k.already_restored > 0 {
                    notes.push(format!("{} by an earlier run", k.already_restored));
                }
                if k.owner_references_dropped > 0 {
                    notes.push(format!("{} ownerReferences dropped (owner not here)", k.owner_references_dropped));
                }
                if k.status_restored > 0 {
                    notes.push(format!("{} with status", k.status_restored));
                }
                if k.updated > 0 {
                    notes.push(format!("{} existing updated", k.updated));
                }
                if k.unchanged > 0 {
                    notes.push(format!("{} existing equal to the point", k.unchanged));
                }
                for (from, n) in &k.converted_from {
                    notes.push(format!("{n} converted from {from}"));
                }
                if k.modified > 0 {
                    notes.push(format!("{} changed by resource modifiers", k.modified));
                }
                notes.extend(k.failures.iter().cloned());
                println!("{kind:<48} {:>9} {:>9} {skipped:>9} {:>7}  {}", k.restored + k.already_restored, k.replaced, k.failed, notes.join("; "));
            }
            println!(
                "total: {} restored, {} replaced, {} skipped, {} failed in {:.1}s (point read {} time{})",
                report.restored,
                report.replaced,
                report.skipped,
                report.failed,
                report.seconds,
                report.archive_reads,
                if report.archive_reads == 1 { "" } else { "s" }
            );
            let changed: Vec<String> = report.by_kind.values().flat_map(|k| k.node_ports_changed.iter().cloned()).collect();
            if !changed.is_empty() {
                println!("node ports taken on this cluster, allocated anew: {}", changed.join(", "));
            }
            let existing: Vec<String> = report.by_kind.iter().flat_map(|(kind, k)| k.existing.iter().map(move |n| format!("{kind} {n}"))).collect();
            if !existing.is_empty() {
                println!("already on this cluster{}: {}", if verb.is_empty() { ", left as they were" } else { "" }, existing.join(", "));
            }
            let differs: Vec<String> = report.by_kind.iter().flat_map(|(kind, k)| k.differs.iter().map(move |n| format!("{kind} {n}"))).collect();
            if !differs.is_empty() {
                println!("existing objects that differ from the point: {}", differs.join(", "));
            }
            for f in &report.findings {
                let objects = if f.objects.is_empty() { String::new() } else { format!(" [{}]", f.objects.join(", ")) };
                println!("{} {}: {}{objects}", if verb.is_empty() { "warning" } else { "finding" }, f.check, f.message);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(resources: Value) -> point::Manifest {
        serde_json::from_value(json!({
            "formatVersion": 1, "clusterId": "c", "pointId": "p", "createdAt": "2026-12-01T00:00:00Z", "completedAt": "2026-12-01T00:00:01Z",
            "mode": "full", "policy": "k10-disaster-recovery-policy", "writtenBy": "kubectl-dr test",
            "archive": {"object": "archive.kdr", "storedBytes": 1, "compressedBytes": 1, "catalogBytes": 1, "sha256": "00", "chunkSize": 262144},
            "counts": {"total": 3, "byCategory": {}, "byKind": {"ConfigMap": 1, "Deployment.apps": 1, "Widget.shop.example.com": 1}},
            "resources": resources,
        }))
        .unwrap()
    }

    #[test]
    fn the_grant_names_each_resource_of_the_point_or_falls_back_when_one_is_unknown() {
        let m = manifest(json!({"ConfigMap": "configmaps", "Deployment.apps": "deployments", "Widget.shop.example.com": "widgets"}));
        assert_eq!(
            serde_json::to_value(rbac_resources(&m).unwrap()).unwrap(),
            json!([{"group": "", "resource": "configmaps"}, {"group": "apps", "resource": "deployments"}, {"group": "shop.example.com", "resource": "widgets"}])
        );
        // A point that does not record one of its kinds (an older writer): no scoped grant.
        assert!(rbac_resources(&manifest(json!({"ConfigMap": "configmaps"}))).is_none());
        assert!(rbac_resources(&manifest(json!({}))).is_none());
    }
}
