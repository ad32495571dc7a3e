//! The command line: every clap type lives here. Flags that name a location, a passphrase
//! source or a cluster can also be set from environment variables (`DR_*`, or the usual
//! `AWS_*` / `VAULT_*`), as `--help` shows.
//!
//! One file on purpose, about 700 lines: the whole command-line interface reads in one place,
//! and `docs/cli.md` is generated from it (`reference.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "kubectl-dr", bin_name = "kubectl dr", version, about = "Encrypted, immutable, point-in-time disaster recovery for Kubernetes")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl-compatible global flags.
#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (cluster commands only).
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (cluster commands only).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The DR namespace.
    #[arg(short = 'n', long, global = true, env = "DR_NAMESPACE", default_value = dr_core::catalog::DEFAULT_DR_NAMESPACE)]
    pub namespace: String,
}

// The command line is parsed once: the size of its largest subcommand does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Manage location profiles (where restore points go).
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Enable DR: the passphrase secret, the DR policy, its CronJob and RBAC. Idempotent.
    Enable(EnableArgs),
    /// Show the DR policy, its last runs, the next run, and whether this cluster owns the location.
    Status(StatusArgs),
    /// Remove the DR policy, its CronJob and RBAC (the secret and all restore points stay).
    Disable(DisableArgs),
    /// Delete the restore points the DR policy's retention does not keep (never what Object Lock protects).
    Prune(PruneArgs),
    /// Back up now. Default: Run Once, a Job from the DR CronJob, watched to the end.
    /// `--local`: run the backup from here. `--from-manifests DIR`: offline, from files.
    Backup(BackupArgs),
    /// List the restore points of a cluster ID, newest first.
    RestorePoints(RestorePointsArgs),
    /// Decrypt every restore point (or one) in full and check it against its manifest.
    Verify(VerifyArgs),
    /// Write one restore point's objects out as YAML files, one per object.
    Export(ExportArgs),
    /// Copy the restore points that authenticate to another location profile as they are
    /// (encrypted), write-once, each copy authenticated at the destination.
    Replicate(ReplicateArgs),
    /// What changed between two restore points, or between a point and this cluster (--live):
    /// objects added, removed and changed, field by field; Secret values only as keyed hashes.
    Diff(DiffArgs),
    /// A DR drill: restore a point into sandbox namespaces of this cluster (--sandbox-prefix)
    /// or onto a scratch cluster (--target-context), check every object against the point,
    /// write a report (JSON, Markdown, HTML) with RPO, RTO and pass or fail, and remove the
    /// sandbox.
    Drill(DrillArgs),
    /// Restore a cluster's restore point onto this cluster: creates k10-dr-secret, installs the
    /// embedded dr-restore chart with helm, and follows its Job to the end.
    Restore(RestoreArgs),
    /// Make this restored cluster the owner of the location: delete the ownership ConfigMap
    /// and resume the DR policy's schedule.
    TakeOwnership(TakeOwnershipArgs),
    /// The images the chart and the DR CronJob use, and the chart itself as an OCI artifact (to
    /// mirror for air-gapped clusters); `images mirror --to REGISTRY/PATH` copies them.
    Images(ImagesArgs),
    /// The plugin's version, the job image it deploys, and whether its crypto is in FIPS mode.
    Version(VersionArgs),
    /// A shell completion script for `kubectl-dr`: `source <(kubectl dr completion bash)`.
    /// `kubectl dr <TAB>` completes through kubectl_complete-dr on the PATH instead (README).
    Completion(CompletionArgs),
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub command: Option<ImagesCommand>,
    /// The FIPS image (values-fips.yaml, --fips) instead of the standard one.
    #[arg(long, global = true)]
    pub fips: bool,
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    pub output: OutputFormat,
}

#[derive(Subcommand, Debug)]
pub enum ImagesCommand {
    /// Copy the job image and the dr-restore chart into a private registry
    /// (REGISTRY[:PORT][/PATH]), byte for byte, so their digests stay the same.
    ///
    /// Then restore with --airgapped-repository REGISTRY/PATH, or install the chart from there,
    /// pinned by the digest it prints: `helm install k10-restore
    /// oci://REGISTRY/PATH/dr-restore@sha256:<digest> --set airgapped.repository=REGISTRY/PATH ...`.
    Mirror(MirrorArgs),
    /// Write the dr-restore chart this plugin embeds as <destination>/dr-restore-<version>.tgz:
    /// the package `images mirror` pushes as an OCI artifact (scripts/dist ships it).
    PackageChart(PackageChartArgs),
}

#[derive(Args, Debug)]
pub struct PackageChartArgs {
    /// The directory to write the package into (it must exist).
    #[arg(long, default_value = ".", value_hint = clap::ValueHint::DirPath)]
    pub destination: PathBuf,
}

#[derive(Args, Debug)]
pub struct MirrorArgs {
    /// The registry and path to copy into: the image lands at <to>/dr-job:<tag>, the chart at
    /// <to>/dr-restore:<version>.
    #[arg(long)]
    pub to: String,
    /// Copy the image only, not the chart (a registry that refuses Helm's media types).
    #[arg(long)]
    pub no_chart: bool,
    /// Copy from this OCI archive (scripts/image's .oci.tar) instead of the image's registry.
    #[arg(long, conflicts_with = "from")]
    pub from_archive: Option<PathBuf>,
    /// Copy from this image reference (another mirror) instead of the build's own
    /// (`kubectl dr images`); it must hold the same digest when the build pins one.
    #[arg(long)]
    pub from: Option<String>,
    /// The destination registry speaks plain HTTP (a lab registry).
    #[arg(long)]
    pub plain_http: bool,
    /// The source registry speaks plain HTTP.
    #[arg(long)]
    pub source_plain_http: bool,
    /// PEM file with the CA that signed the registries' certificates (besides the system's).
    #[arg(long)]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The source cluster's ID (the UID of its default namespace; `kubectl dr enable` printed it).
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
    /// The location profile (on this cluster) the source cluster's DR policy wrote to.
    #[arg(long)]
    pub profile: String,
    /// Restore the newest complete point at or before this RFC 3339 time (default: the newest).
    #[arg(long, env = "DR_POINT_IN_TIME")]
    pub point_in_time: Option<String>,
    /// Restore this point, by its ID as `kubectl dr restore-points` lists it (instead of
    /// --point-in-time): the one choice a point planted beside it cannot share.
    #[arg(long, conflicts_with = "point_in_time", value_parser = crate::input::point_id)]
    pub point: Option<String>,
    /// Categories not to restore (comma-separated): profiles, policies, secrets, cluster, applications.
    #[arg(long, default_value = "")]
    pub skip_resource: String,
    /// The point was written in quick mode (requires --override-resources).
    #[arg(long)]
    pub quick_mode: bool,
    /// Replace resources that already exist instead of leaving them.
    #[arg(long)]
    pub override_resources: bool,
    /// How long the whole restore may take (whole minutes: 30m, 2h).
    #[arg(long, default_value = "30m", value_parser = parse_whole_minutes)]
    pub timeout: std::time::Duration,
    /// Write back the status of these kinds through their /status subresource: `all`, or a
    /// comma list of Kind.group or resource.group (Widget.example.com, certificates.cert-manager.io).
    /// Off by default: most status describes the old cluster and its controllers rebuild it.
    #[arg(long, default_value = "", value_name = "KINDS|all")]
    pub restore_status: String,
    /// Restore only objects in these namespaces (and the Namespaces themselves).
    #[arg(long, value_delimiter = ',', value_name = "NS,...")]
    pub include_namespaces: Vec<String>,
    /// Leave out the objects in these namespaces.
    #[arg(long, value_delimiter = ',', value_name = "NS,...")]
    pub exclude_namespaces: Vec<String>,
    /// Restore only these kinds: Kind, Kind.group, plural or plural.group (Deployment.apps, secrets).
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    pub include_kinds: Vec<String>,
    /// Leave out these kinds.
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    pub exclude_kinds: Vec<String>,
    /// Restore only objects whose labels match (app=web,tier in (a,b),!legacy).
    #[arg(long, short = 'l', default_value = "")]
    pub selector: String,
    /// Restore this one object, KIND/NAMESPACE/NAME or KIND/NAME (repeatable; nothing else comes back).
    #[arg(long = "object", value_name = "KIND/NAMESPACE/NAME")]
    pub objects: Vec<String>,
    /// Restore namespaces under other names, with every reference to them: old=new,...
    #[arg(long, default_value = "", value_name = "OLD=NEW,...")]
    pub namespace_mapping: String,
    /// Kinds whose strings get <svc>.<old>.svc host names moved by --namespace-mapping.
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    pub rewrite_host_names_in: Vec<String>,
    /// Use other StorageClasses (PVCs, StatefulSet claim templates, PVs): old=new,...
    #[arg(long, default_value = "", value_name = "OLD=NEW,...")]
    pub storage_class_mapping: String,
    /// Pull images from other registries (every pod template): old[/path]=new[/path],...
    #[arg(long, default_value = "", value_name = "OLD=NEW,...")]
    pub image_registry_mapping: String,
    /// Resource modifier rules (YAML: JSON patches and regex substitutions per kind, namespace
    /// and name), checked here; stored as ConfigMap <release>-modifiers for the Job.
    #[arg(long, value_name = "FILE")]
    pub resource_modifiers: Option<PathBuf>,
    /// What to do with objects this cluster already has: skip (leave them) or update
    /// (server-side apply, forced). The report says whether each equals the point.
    #[arg(long, default_value = "skip", value_parser = ["skip", "update"])]
    pub existing: String,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Secret (key vault_token) the restore Job logs in to Vault with; or use --vault-role.
    #[arg(long)]
    pub vault_token_secret: Option<String>,
    /// Secret (keys aws_access_key_id, aws_secret_access_key) the Job reads AWS Secrets Manager
    /// with (default: the service account's IRSA role).
    #[arg(long)]
    pub aws_credentials_secret: Option<String>,
    /// Registry mirroring the job image (air-gapped clusters).
    #[arg(long)]
    pub airgapped_repository: Option<String>,
    /// A Prometheus Pushgateway (http://host:9091) the restore Job pushes its outcome to
    /// (kubectl_dr_restore_*; the chart's monitoring.pushgatewayURL).
    #[arg(long, value_parser = pushgateway_url)]
    pub pushgateway_url: Option<String>,
    /// Use the FIPS image; the Job refuses to run unless its crypto module is in FIPS mode.
    #[arg(long)]
    pub fips: bool,
    /// Use the hardened-images values (the image from the hardened registry).
    #[arg(long)]
    pub hardened: bool,
    /// Image pull secret for the Job (repeatable).
    #[arg(long = "image-pull-secret")]
    pub image_pull_secrets: Vec<String>,
    /// Job image repository (default: the chart's).
    #[arg(long)]
    pub image_repository: Option<String>,
    /// Job image tag (default: this plugin's version).
    #[arg(long)]
    pub image_tag: Option<String>,
    /// Job image digest (sha256:...), pinning the image.
    #[arg(long)]
    pub image_digest: Option<String>,
    /// The Helm release (and Job) name.
    #[arg(long, default_value = "k10-restore")]
    pub release: String,
    /// Where this machine sees a file profile's share (to check and plan from here).
    #[arg(long, env = "DR_LOCATION_PATH")]
    pub path: Option<PathBuf>,
    /// The helm binary.
    #[arg(long, env = "DR_HELM", default_value = "helm")]
    pub helm: PathBuf,
    /// Decrypt the point and plan the restore against this cluster; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A dry-run that checks the target for what would stop or block the restore (missing
    /// APIs and classes, collisions, blocking webhooks, quotas); exits 8 when it finds any.
    #[arg(long)]
    pub preflight: bool,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct TakeOwnershipArgs {
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Each store's flags, which go with that store only: every Azure flag conflicts with every
/// S3 flag, every GCS flag with every S3 and Azure flag (and the store-specific flags of
/// `profile create` with the other stores'). A `requires` alone is not enough: clap lets it
/// go unmet when what it requires conflicts with a flag given, so `--s3-region` beside
/// `--azure-account` would pass unnoticed.
const S3_FLAGS: [&str; 8] = ["s3_bucket", "s3_prefix", "s3_region", "s3_endpoint", "s3_path_style", "s3_ca_bundle", "s3_skip_tls_verify", "s3_replica"];
const AZURE_FLAGS: [&str; 5] = ["azure_account", "azure_container", "azure_prefix", "azure_endpoint", "azure_replica"];
const GCS_FLAGS: [&str; 4] = ["gcs_bucket", "gcs_prefix", "gcs_endpoint", "gcs_replica"];

/// Where restore points live. With no flags: the embedded default, a local directory.
#[derive(Args, Debug, Clone)]
// A bucket or a container: what --immutable-days needs (they conflict through S3_FLAGS and
// AZURE_FLAGS). Every GCS flag conflicts with --path (and --pvc), for the same reason as
// above: --gcs-prefix's `requires` alone would let `--path DIR --gcs-prefix P` pass.
#[command(group(clap::ArgGroup::new("store").args(["s3_bucket", "azure_account", "gcs_bucket"]).multiple(true)))]
pub struct LocationArgs {
    /// A directory location (an NFS mount or any local directory).
    #[arg(long, env = "DR_LOCATION_PATH", conflicts_with_all = ["s3_bucket", "azure_account"], conflicts_with_all = GCS_FLAGS)]
    pub path: Option<PathBuf>,
    /// An S3 bucket location. Credentials come from the AWS default chain
    /// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity).
    #[arg(long, env = "DR_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long, env = "DR_S3_PREFIX", default_value = "", requires = "s3_bucket")]
    pub s3_prefix: String,
    /// Bucket region (default: the AWS chain's region, else us-east-1).
    #[arg(long, env = "DR_S3_REGION", requires = "s3_bucket")]
    pub s3_region: Option<String>,
    /// Endpoint URL of an S3-compatible store.
    #[arg(long, env = "DR_S3_ENDPOINT", requires = "s3_bucket")]
    pub s3_endpoint: Option<String>,
    /// Address the bucket in the path (most S3-compatible stores need this).
    #[arg(long, env = "DR_S3_PATH_STYLE", requires = "s3_bucket")]
    pub s3_path_style: bool,
    /// PEM file with extra CA certificates to trust for the endpoint.
    #[arg(long, env = "DR_S3_CA_BUNDLE", requires = "s3_bucket", conflicts_with = "s3_skip_tls_verify")]
    pub s3_ca_bundle: Option<PathBuf>,
    /// Do not verify the endpoint's TLS certificate (prefer --s3-ca-bundle).
    #[arg(long, env = "DR_S3_SKIP_TLS_VERIFY", requires = "s3_bucket")]
    pub s3_skip_tls_verify: bool,
    /// Write every object write-once for this many days (1-90): on S3 with an Object Lock
    /// retention (COMPLIANCE), on Azure with a locked version-level immutability policy, on GCS
    /// with a locked object retention.
    #[arg(long, env = "DR_IMMUTABLE_DAYS", requires = "store", value_parser = clap::value_parser!(u32).range(1..=90))]
    pub immutable_days: Option<u32>,
    /// The bucket holds copies made by `kubectl dr replicate` (an off-site copy): judge each
    /// copy's dates by the source store's receipt time it carries, not by when it was copied.
    #[arg(long, env = "DR_S3_REPLICA", requires = "s3_bucket")]
    pub s3_replica: bool,
    /// An Azure Blob Storage location: this storage account (with --azure-container).
    /// Credentials come from AZURE_STORAGE_KEY (the account's access key: Shared Key) or
    /// AZURE_STORAGE_SAS_TOKEN (a SAS), never from the command line; with neither, workload
    /// identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE).
    #[arg(long, env = "DR_AZURE_ACCOUNT", requires = "azure_container", conflicts_with_all = S3_FLAGS)]
    pub azure_account: Option<String>,
    /// The blob container inside the account.
    #[arg(long, env = "DR_AZURE_CONTAINER", requires = "azure_account", conflicts_with_all = S3_FLAGS)]
    pub azure_container: Option<String>,
    /// Blob name prefix inside the container.
    #[arg(long, env = "DR_AZURE_PREFIX", default_value = "", requires = "azure_account", conflicts_with_all = S3_FLAGS)]
    pub azure_prefix: String,
    /// The Blob service's URL (default: https://<account>.blob.core.windows.net; Azurite:
    /// http://127.0.0.1:10000/devstoreaccount1).
    #[arg(long, env = "DR_AZURE_ENDPOINT", requires = "azure_account", conflicts_with_all = S3_FLAGS)]
    pub azure_endpoint: Option<String>,
    /// The container holds copies made by `kubectl dr replicate` (an off-site copy): judge each
    /// copy's dates by the source store's receipt time it carries, not by when it was copied.
    #[arg(long, env = "DR_AZURE_REPLICA", requires = "azure_account", conflicts_with_all = S3_FLAGS)]
    pub azure_replica: bool,
    /// A Google Cloud Storage location: this bucket. Credentials come from the service
    /// account's JSON key file that GOOGLE_APPLICATION_CREDENTIALS names, never from the
    /// command line; without it, the metadata server (GKE workload identity, a VM's service
    /// account).
    #[arg(long, env = "DR_GCS_BUCKET", conflicts_with_all = S3_FLAGS, conflicts_with_all = AZURE_FLAGS)]
    pub gcs_bucket: Option<String>,
    /// Object name prefix inside the bucket.
    #[arg(long, env = "DR_GCS_PREFIX", default_value = "", requires = "gcs_bucket", conflicts_with_all = S3_FLAGS, conflicts_with_all = AZURE_FLAGS)]
    pub gcs_prefix: String,
    /// The JSON API's base URL (default: https://storage.googleapis.com; fake-gcs-server:
    /// http://127.0.0.1:4443).
    #[arg(long, env = "DR_GCS_ENDPOINT", requires = "gcs_bucket", conflicts_with_all = S3_FLAGS, conflicts_with_all = AZURE_FLAGS)]
    pub gcs_endpoint: Option<String>,
    /// The bucket holds copies made by `kubectl dr replicate` (an off-site copy): judge each
    /// copy's dates by the source store's receipt time it carries, not by when it was copied.
    #[arg(long, env = "DR_GCS_REPLICA", requires = "gcs_bucket", conflicts_with_all = S3_FLAGS, conflicts_with_all = AZURE_FLAGS)]
    pub gcs_replica: bool,
}

impl LocationArgs {
    /// Whether a location was given (a directory, a bucket, a container) rather than left to
    /// the default.
    pub fn is_given(&self) -> bool {
        self.path.is_some() || self.s3_bucket.is_some() || self.azure_account.is_some() || self.gcs_bucket.is_some()
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Raw,
    Vault,
    Aws,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvVersionArg {
    #[value(name = "KVv1")]
    KVv1,
    #[value(name = "KVv2")]
    KVv2,
}

/// Where the DR passphrase comes from. It is never taken from the command line.
#[derive(Args, Debug, Clone)]
pub struct PassphraseArgs {
    /// Read a raw passphrase from this file (`-` for stdin). Without it, a terminal prompts.
    #[arg(long, env = "DR_PASSPHRASE_FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// raw (a passphrase), vault (a HashiCorp Vault KV secret) or aws (AWS Secrets Manager).
    #[arg(long, value_enum, env = "DR_PASSPHRASE_SOURCE", default_value = "raw")]
    pub passphrase_source: SourceKind,
    /// Vault address.
    #[arg(long, env = "VAULT_ADDR")]
    pub vault_address: Option<String>,
    /// Version of the key-value secrets engine.
    #[arg(long, value_enum, env = "DR_VAULT_KV_VERSION")]
    pub vault_kv_version: Option<KvVersionArg>,
    /// Where the key-value engine is mounted.
    #[arg(long, env = "DR_VAULT_MOUNT_PATH")]
    pub vault_mount_path: Option<String>,
    /// Path from the mount to the secret.
    #[arg(long, env = "DR_VAULT_SECRET_PATH")]
    pub vault_secret_path: Option<String>,
    /// The secret's field that holds the passphrase.
    #[arg(long, env = "DR_VAULT_KEY")]
    pub vault_key: Option<String>,
    /// File holding a Vault token (the VAULT_TOKEN environment variable also works).
    #[arg(long, env = "DR_VAULT_TOKEN_FILE")]
    pub vault_token_file: Option<PathBuf>,
    /// PEM file with the CA certificates that signed Vault's TLS certificate (besides the system's).
    #[arg(long, env = "VAULT_CACERT")]
    pub vault_ca_bundle: Option<PathBuf>,
    /// Log in with Vault's Kubernetes auth as this role instead of a token.
    #[arg(long, env = "DR_VAULT_ROLE")]
    pub vault_role: Option<String>,
    /// Service-account token for Kubernetes auth.
    #[arg(long, env = "DR_VAULT_SA_TOKEN_PATH", default_value = dr_core::passphrase::DEFAULT_SA_TOKEN_PATH)]
    pub vault_sa_token_path: PathBuf,
    /// Mount of Vault's Kubernetes auth method.
    #[arg(long, env = "DR_VAULT_AUTH_MOUNT", default_value = dr_core::passphrase::DEFAULT_K8S_AUTH_MOUNT)]
    pub vault_auth_mount: String,
    /// Region of the AWS Secrets Manager secret.
    #[arg(long, env = "DR_AWS_REGION")]
    pub aws_region: Option<String>,
    /// Name of the AWS Secrets Manager secret holding the passphrase.
    #[arg(long, env = "DR_AWS_SECRET_NAME")]
    pub aws_secret_name: Option<String>,
    /// Endpoint URL for AWS Secrets Manager (VPC endpoints, test servers).
    #[arg(long, env = "AWS_ENDPOINT_URL_SECRETS_MANAGER")]
    pub aws_endpoint: Option<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Offline: make the point from the manifests (*.yaml, *.yml, *.json) under this directory.
    #[arg(long, env = "DR_FROM_MANIFESTS", requires = "cluster_id", conflicts_with = "local")]
    pub from_manifests: Option<PathBuf>,
    /// Run the DR policy's backup from here with your kubeconfig's credentials.
    #[arg(long)]
    pub local: bool,
    /// The cluster ID the point is filed under (with --from-manifests).
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// How long Run Once waits for its Job.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// quick: only the DR platform's own resources; full: everything.
    #[arg(long, env = "DR_MODE", default_value = "full")]
    pub mode: dr_core::catalog::Mode,
    /// Namespace for manifests that name none.
    #[arg(long, default_value = "default")]
    pub default_namespace: String,
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

/// A restore's timeout, which the chart takes in whole minutes (`restore.timeout`).
pub fn parse_whole_minutes(s: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(s)?;
    if d.as_secs() == 0 || !d.as_secs().is_multiple_of(60) {
        return Err(format!("{s:?} is not a whole number of minutes (30m, 2h)"));
    }
    Ok(d)
}

/// `30m`, `90s`, `2h`; a bare number is minutes.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration such as 30m, 90s or 2h"))?;
    let per_unit = match unit {
        "s" => 1,
        "m" | "" => 60,
        "h" => 3600,
        _ => return Err(format!("{s:?} is not a duration such as 30m, 90s or 2h")),
    };
    // Checked: a huge number must be refused, not wrap round to a short timeout.
    let secs = n.checked_mul(per_unit).ok_or_else(|| format!("{s:?} is too long a duration: give at most a few days, such as 72h"))?;
    Ok(std::time::Duration::from_secs(secs))
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Create (or update) a location profile, after checking the location is reachable.
    Create(ProfileCreateArgs),
    /// List location profiles.
    List(OutputArgs),
    /// Delete a location profile (restore points at the location stay).
    Delete(ProfileDeleteArgs),
}

#[derive(Args, Debug)]
pub struct ProfileCreateArgs {
    pub name: String,
    #[command(flatten)]
    pub location: LocationArgs,
    /// Use an existing Secret (keys aws_access_key_id, aws_secret_access_key) for the bucket.
    #[arg(long, requires = "s3_bucket", conflicts_with_all = ["s3_credentials_from_env", "pvc"], conflicts_with_all = AZURE_FLAGS, conflicts_with_all = GCS_FLAGS)]
    pub s3_credentials_secret: Option<String>,
    /// Create the credentials Secret <name>-credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, requires = "s3_bucket", conflicts_with_all = ["s3_credentials_file", "pvc"], conflicts_with_all = AZURE_FLAGS, conflicts_with_all = GCS_FLAGS)]
    pub s3_credentials_from_env: bool,
    /// Create the credentials Secret <name>-credentials from an AWS shared credentials file
    /// (the [default] section, or AWS_PROFILE's).
    #[arg(long, requires = "s3_bucket", conflicts_with_all = ["s3_credentials_secret", "pvc"], conflicts_with_all = AZURE_FLAGS, conflicts_with_all = GCS_FLAGS)]
    pub s3_credentials_file: Option<PathBuf>,
    /// Trust the CA certificates (key ca.crt, PEM) of this existing ConfigMap in the DR
    /// namespace for the endpoint. With --s3-ca-bundle FILE instead, the ConfigMap
    /// <name>-ca-bundle is created from the file.
    #[arg(long, requires = "s3_bucket", conflicts_with_all = ["s3_ca_bundle", "s3_skip_tls_verify", "pvc"], conflicts_with_all = AZURE_FLAGS, conflicts_with_all = GCS_FLAGS)]
    pub s3_ca_bundle_configmap: Option<String>,
    /// Use an existing Secret (key azure_storage_key or azure_storage_sas_token) for the
    /// container; without it (or --azure-credentials-from-env), workload identity.
    #[arg(long, requires = "azure_account", conflicts_with_all = ["azure_credentials_from_env", "pvc"], conflicts_with_all = S3_FLAGS, conflicts_with_all = GCS_FLAGS)]
    pub azure_credentials_secret: Option<String>,
    /// Create the credentials Secret <name>-credentials from AZURE_STORAGE_KEY (the account's
    /// access key) or AZURE_STORAGE_SAS_TOKEN (a SAS), whichever is set.
    #[arg(long, requires = "azure_account", conflicts_with = "pvc", conflicts_with_all = S3_FLAGS, conflicts_with_all = GCS_FLAGS)]
    pub azure_credentials_from_env: bool,
    /// Use an existing Secret (key service-account.json: a service account's JSON key; a
    /// project-id key beside it, as Kasten's has, is ignored) for the bucket; without it (or
    /// --gcs-credentials-from-env), the metadata server (GKE workload identity).
    #[arg(
        long,
        requires = "gcs_bucket",
        conflicts_with_all = ["gcs_credentials_from_env", "pvc"],
        conflicts_with_all = S3_FLAGS,
        conflicts_with_all = AZURE_FLAGS
    )]
    pub gcs_credentials_secret: Option<String>,
    /// Create the credentials Secret <name>-credentials (key service-account.json) from the
    /// service account's JSON key file that GOOGLE_APPLICATION_CREDENTIALS names.
    #[arg(long, requires = "gcs_bucket", conflicts_with = "pvc", conflicts_with_all = S3_FLAGS, conflicts_with_all = AZURE_FLAGS)]
    pub gcs_credentials_from_env: bool,
    /// A file location: this PersistentVolumeClaim (an NFS share) in the DR namespace.
    #[arg(long, conflicts_with_all = ["s3_bucket", "azure_account", "path"], conflicts_with_all = GCS_FLAGS)]
    pub pvc: Option<String>,
    /// Directory inside the PVC's volume.
    #[arg(long, default_value = "", requires = "pvc")]
    pub pvc_path: String,
    /// Do not check the location first (for write-only credentials, which cannot list).
    #[arg(long)]
    pub skip_validation: bool,
}

#[derive(Args, Debug)]
pub struct ProfileDeleteArgs {
    #[arg(value_name = "PROFILE")]
    pub name: String,
}

#[derive(Args, Debug)]
pub struct OutputArgs {
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct EnableArgs {
    /// The location profile the DR policy writes to.
    #[arg(long)]
    pub profile: String,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    /// Use a raw passphrase that the strength estimator calls weak.
    #[arg(long)]
    pub allow_weak_passphrase: bool,
    /// A cron schedule or @hourly, @daily, @weekly, @monthly, @yearly.
    #[arg(long, default_value = "@hourly")]
    pub frequency: String,
    /// quick: only the DR platform's own resources; full: also the selected cluster and application resources.
    #[arg(long, default_value = "full")]
    pub mode: dr_core::catalog::Mode,
    /// Back up only these namespaces (comma-separated); default: all but kube-system, kube-public, kube-node-lease.
    #[arg(long, value_delimiter = ',')]
    pub include_namespaces: Vec<String>,
    /// Leave these namespaces out (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub exclude_namespaces: Option<Vec<String>>,
    /// Only application objects with these labels (e.g. app=shop,tier!=test).
    #[arg(long)]
    pub label_selector: Option<String>,
    /// Only these kinds (Kind or Kind.group, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub include_kinds: Vec<String>,
    /// Never these kinds (Kind or Kind.group, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub exclude_kinds: Vec<String>,
    /// Leave cluster-scoped resources (CRDs, ClusterRoles, ...) out.
    #[arg(long)]
    pub no_cluster_scoped: bool,
    /// Restore points kept by `prune`: hourly=24,daily=7,weekly=4,monthly=12,yearly=1.
    #[arg(long, default_value = "hourly=24,daily=7,weekly=4,monthly=12,yearly=1")]
    pub retention: String,
    /// Job image repository (default: the one this plugin was built for, `kubectl dr version`).
    #[arg(long, conflicts_with = "airgapped_repository")]
    pub image_repository: Option<String>,
    /// Job image tag (default: this plugin's version).
    #[arg(long)]
    pub image_tag: Option<String>,
    /// Registry mirroring the job image (air-gapped clusters): the image becomes
    /// <REGISTRY/PATH>/dr-job, as `kubectl dr images mirror --to REGISTRY/PATH` put it.
    #[arg(long)]
    pub airgapped_repository: Option<String>,
    /// Image pull secret for the job (repeatable).
    #[arg(long = "image-pull-secret")]
    pub image_pull_secrets: Vec<String>,
    /// Secret (key vault_token) the job logs in to Vault with; or use --vault-role.
    #[arg(long)]
    pub vault_token_secret: Option<String>,
    /// A Prometheus Pushgateway (http://host:9091) each backup run pushes its metrics to
    /// (kubectl_dr_backup_*; deploy/monitoring alerts on them).
    #[arg(long, value_parser = pushgateway_url)]
    pub pushgateway_url: Option<String>,
    /// Copy every restore point to this S3, Azure Blob or Google Cloud Storage location profile,
    /// from a CronJob of the DR policy (`kubectl dr replicate` in the cluster): write-once, each
    /// copy verified.
    #[arg(long, value_name = "PROFILE")]
    pub replicate_to: Option<String>,
    /// Verify each copy through this profile (one that may read, when --replicate-to's
    /// credentials may only write).
    #[arg(long, value_name = "PROFILE", requires = "replicate_to")]
    pub replicate_verify_with: Option<String>,
    /// When the copies run (cron or @hourly...; default: --frequency).
    #[arg(long, value_name = "SCHEDULE", requires = "replicate_to")]
    pub replicate_frequency: Option<String>,
}

/// A Pushgateway address: http(s)://host[:port][/path].
pub fn pushgateway_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("give an http:// or https:// URL, such as http://pushgateway.monitoring:9091")?;
    if rest.is_empty() || rest.starts_with('/') || rest.chars().any(|c| c.is_whitespace() || "\"'{}".contains(c)) {
        return Err("give an http:// or https:// URL with a host, such as http://pushgateway.monitoring:9091".into());
    }
    Ok(s.to_owned())
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where to prune, with credentials that may list, read and delete (default: the DR
    /// policy's profile, whose credentials are often write-only).
    #[command(flatten)]
    pub location: LocationArgs,
    /// The passphrase authenticates each point's manifest (default: k10-dr-secret, as the
    /// backups read it; --passphrase-file to give it here).
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct DisableArgs {
    /// Also delete k10-dr-secret (restore points still stay).
    #[arg(long)]
    pub delete_secret: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Args, Debug)]
pub struct RestorePointsArgs {
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
    /// Hide points newer than this RFC 3339 time.
    #[arg(long, env = "DR_POINT_IN_TIME", value_parser = crate::input::rfc3339)]
    pub point_in_time: Option<time::OffsetDateTime>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
    /// Verify only this point.
    #[arg(long)]
    pub point: Option<String>,
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct ReplicateArgs {
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
    /// The location profile the points are at.
    #[arg(long, value_name = "PROFILE")]
    pub from: String,
    /// The location profile to copy them to (the off-site one).
    #[arg(long, value_name = "PROFILE")]
    pub to: String,
    /// A profile of the same destination with read credentials, to check what is there and
    /// read each copy back (default: --to, when its credentials may read).
    #[arg(long, value_name = "PROFILE")]
    pub verify_with: Option<String>,
    /// Only this point (default: every complete point not yet there).
    #[arg(long)]
    pub point: Option<String>,
    /// Where this machine sees --from's share, when it is a file (NFS) profile.
    #[arg(long)]
    pub from_path: Option<PathBuf>,
    /// Where this machine sees --to's share, when it is a file (NFS) profile.
    #[arg(long)]
    pub to_path: Option<PathBuf>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// The DR passphrase, which authenticates every point before it is copied and every copy
    /// after: by default the one the cluster's `k10-dr-secret` names (these flags tell how to
    /// reach its Vault or AWS source); --passphrase-file or --passphrase-source give another.
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
    /// The earlier point (its ID, as `restore-points` lists it), or the point to compare with
    /// this cluster (--live).
    pub point: String,
    /// The later point.
    #[arg(required_unless_present = "live", conflicts_with = "live", value_name = "POINT")]
    pub other: Option<String>,
    /// Compare the point with this cluster now: the kinds the point holds, in the namespaces it holds.
    #[arg(long)]
    pub live: bool,
    /// Compare status too (on a live cluster it changes all the time).
    #[arg(long)]
    pub status: bool,
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
    /// The point to export (default: the newest complete one at or before --point-in-time).
    #[arg(long, conflicts_with = "point_in_time")]
    pub point: Option<String>,
    /// Export the newest complete point at or before this RFC 3339 time.
    #[arg(long, env = "DR_POINT_IN_TIME", value_parser = crate::input::rfc3339)]
    pub point_in_time: Option<time::OffsetDateTime>,
    /// Directory to write to; it must not exist yet.
    #[arg(long)]
    pub output_dir: PathBuf,
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("drill_target").required(true).args(["sandbox_prefix", "target_context"])))]
pub struct DrillArgs {
    /// The source cluster's ID.
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
    /// The location profile (on the drill's target cluster) the source's DR policy writes to.
    #[arg(long)]
    pub profile: String,
    /// Restore into namespaces PREFIX<ns> of this cluster (namespaced objects outside the DR
    /// namespace only), removed after the check.
    #[arg(long, value_name = "PREFIX")]
    pub sandbox_prefix: Option<String>,
    /// Restore the whole point onto this kubeconfig context (a scratch cluster with the
    /// profile created), as a real restore would.
    #[arg(long, value_name = "CONTEXT")]
    pub target_context: Option<String>,
    /// Drill the newest complete point at or before this RFC 3339 time (default: the newest).
    #[arg(long, env = "DR_POINT_IN_TIME", value_parser = crate::input::rfc3339)]
    pub point_in_time: Option<time::OffsetDateTime>,
    /// Leave the sandbox namespaces in place for a look (delete them yourself afterwards).
    #[arg(long)]
    pub keep: bool,
    /// Where the reports go (drill.json, drill.md, drill.html); default dr-drill-<time>.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Where this machine sees a file profile's share.
    #[arg(long, env = "DR_LOCATION_PATH")]
    pub path: Option<PathBuf>,
    /// How long the restore may take (whole minutes: 30m, 2h).
    #[arg(long, default_value = "30m", value_parser = parse_whole_minutes)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own checks of the command definitions (conflicting names, bad defaults, groups):
    /// the workspace's release profile turns clap_builder's debug assertions on so that they
    /// run here (Cargo.toml), not only in debug builds nobody makes.
    #[test]
    fn the_command_line_passes_claps_own_checks() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-dr").chain(line.iter().copied()))
    }

    fn location(line: &[&str]) -> Result<LocationArgs, clap::Error> {
        let mut args = vec!["verify", "--cluster-id", "c1"];
        args.extend_from_slice(line);
        match parse(&args)?.command {
            Command::Verify(v) => Ok(v.location),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_azure_location_takes_its_flags_and_one_location_only() {
        let azure =
            location(&["--azure-account", "acct", "--azure-container", "dr", "--azure-prefix", "a", "--azure-replica", "--immutable-days", "7"]).unwrap();
        assert_eq!((azure.azure_account.as_deref(), azure.azure_container.as_deref(), azure.azure_prefix.as_str()), (Some("acct"), Some("dr"), "a"));
        assert_eq!((azure.azure_replica, azure.immutable_days, azure.is_given()), (true, Some(7), true));
        assert!(!location(&[]).unwrap().is_given());
        use clap::error::ErrorKind;
        for (line, kind) in [
            (&["--azure-account", "a", "--azure-container", "c", "--s3-bucket", "b"][..], ErrorKind::ArgumentConflict),
            (&["--azure-account", "a", "--azure-container", "c", "--path", "/mnt/dr"], ErrorKind::ArgumentConflict),
            (&["--azure-account", "a"], ErrorKind::MissingRequiredArgument),
            (&["--azure-container", "c"], ErrorKind::MissingRequiredArgument),
            // A flag of the other store is refused, not ignored.
            (&["--s3-bucket", "b", "--azure-prefix", "p"], ErrorKind::ArgumentConflict),
            (&["--azure-account", "a", "--azure-container", "c", "--s3-region", "r"], ErrorKind::ArgumentConflict),
            // Immutability needs a store: S3 or Azure, not a directory.
            (&["--immutable-days", "7"], ErrorKind::MissingRequiredArgument),
            (&["--path", "/mnt/dr", "--immutable-days", "7"], ErrorKind::MissingRequiredArgument),
        ] {
            let err = location(line).expect_err(&format!("{line:?} was accepted"));
            assert_eq!(err.kind(), kind, "{line:?}: {err}");
        }
        assert_eq!(location(&["--s3-bucket", "b", "--immutable-days", "7"]).unwrap().immutable_days, Some(7));
    }

    #[test]
    fn profile_create_takes_azure_credentials_one_way_and_for_azure_only() {
        let create = |line: &[&str]| {
            let mut args = vec!["profile", "create", "blob"];
            args.extend_from_slice(line);
            parse(&args).map(|cli| match cli.command {
                Command::Profile(ProfileCommand::Create(c)) => c,
                other => panic!("{other:?}"),
            })
        };
        let azure = ["--azure-account", "acct", "--azure-container", "dr"];
        let with = |extra: &[&'static str]| azure.iter().copied().chain(extra.iter().copied()).collect::<Vec<_>>();
        assert!(create(&with(&["--azure-credentials-from-env", "--immutable-days", "30"])).unwrap().azure_credentials_from_env);
        assert_eq!(create(&with(&["--azure-credentials-secret", "blob-keys"])).unwrap().azure_credentials_secret.as_deref(), Some("blob-keys"));
        use clap::error::ErrorKind;
        for (line, kind) in [
            (with(&["--azure-credentials-secret", "s", "--azure-credentials-from-env"]), ErrorKind::ArgumentConflict),
            (with(&["--pvc", "nfs"]), ErrorKind::ArgumentConflict),
            (with(&["--s3-credentials-from-env"]), ErrorKind::ArgumentConflict),
            (with(&["--s3-credentials-secret", "s"]), ErrorKind::ArgumentConflict),
            (vec!["--s3-bucket", "b", "--azure-credentials-from-env"], ErrorKind::ArgumentConflict),
            (vec!["--pvc", "nfs", "--azure-credentials-secret", "s"], ErrorKind::ArgumentConflict),
            (vec!["--pvc", "nfs", "--s3-credentials-from-env"], ErrorKind::ArgumentConflict),
            (vec!["--azure-credentials-from-env"], ErrorKind::MissingRequiredArgument),
        ] {
            let err = create(&line).expect_err(&format!("{line:?} was accepted"));
            assert_eq!(err.kind(), kind, "{line:?}: {err}");
        }
    }

    #[test]
    fn a_gcs_location_takes_its_flags_and_conflicts_with_every_other_stores() {
        let gcs = location(&["--gcs-bucket", "dr", "--gcs-prefix", "a", "--gcs-endpoint", "http://127.0.0.1:4443", "--gcs-replica", "--immutable-days", "7"])
            .unwrap();
        assert_eq!((gcs.gcs_bucket.as_deref(), gcs.gcs_prefix.as_str(), gcs.gcs_endpoint.as_deref()), (Some("dr"), "a", Some("http://127.0.0.1:4443")));
        assert_eq!((gcs.gcs_replica, gcs.immutable_days, gcs.is_given()), (true, Some(7), true));
        use clap::error::ErrorKind;
        let mut lines: Vec<Vec<&str>> = vec![
            vec!["--gcs-bucket", "g", "--path", "/mnt/dr"],
            vec!["--gcs-bucket", "g", "--azure-account", "a", "--azure-container", "c"],
            // Each flag of another store is refused beside a GCS bucket, not ignored...
            vec!["--gcs-bucket", "g", "--s3-replica"],
            vec!["--gcs-bucket", "g", "--azure-prefix", "p"],
            // ... and each GCS flag beside another store.
            vec!["--s3-bucket", "b", "--gcs-prefix", "p"],
            vec!["--azure-account", "a", "--azure-container", "c", "--gcs-replica"],
            vec!["--path", "/mnt/dr", "--gcs-endpoint", "http://127.0.0.1:4443"],
        ];
        for flag in ["--s3-bucket", "--s3-prefix", "--s3-region", "--s3-endpoint", "--s3-ca-bundle"] {
            lines.push(vec!["--gcs-bucket", "g", flag, "x"]);
        }
        for flag in ["--s3-path-style", "--s3-skip-tls-verify", "--s3-replica", "--azure-replica"] {
            lines.push(vec!["--gcs-bucket", "g", flag]);
        }
        for flag in ["--azure-account", "--azure-container", "--azure-endpoint"] {
            lines.push(vec!["--gcs-bucket", "g", flag, "x"]);
        }
        for line in &lines {
            let err = location(line).expect_err(&format!("{line:?} was accepted"));
            assert_eq!(err.kind(), ErrorKind::ArgumentConflict, "{line:?}: {err}");
        }
        for line in [&["--gcs-prefix", "p"][..], &["--gcs-replica"], &["--gcs-endpoint", "http://127.0.0.1:4443"]] {
            let err = location(line).expect_err(&format!("{line:?} was accepted"));
            assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument, "{line:?}: {err}");
        }
    }

    #[test]
    fn profile_create_takes_gcs_credentials_one_way_and_for_gcs_only() {
        let create = |line: &[&str]| {
            let mut args = vec!["profile", "create", "gcs"];
            args.extend_from_slice(line);
            parse(&args).map(|cli| match cli.command {
                Command::Profile(ProfileCommand::Create(c)) => c,
                other => panic!("{other:?}"),
            })
        };
        let with = |extra: &[&'static str]| ["--gcs-bucket", "dr"].into_iter().chain(extra.iter().copied()).collect::<Vec<_>>();
        assert!(create(&with(&["--gcs-credentials-from-env", "--immutable-days", "30"])).unwrap().gcs_credentials_from_env);
        assert_eq!(create(&with(&["--gcs-credentials-secret", "gcs-key"])).unwrap().gcs_credentials_secret.as_deref(), Some("gcs-key"));
        use clap::error::ErrorKind;
        for (line, kind) in [
            (with(&["--gcs-credentials-secret", "s", "--gcs-credentials-from-env"]), ErrorKind::ArgumentConflict),
            (with(&["--pvc", "nfs"]), ErrorKind::ArgumentConflict),
            (with(&["--s3-credentials-from-env"]), ErrorKind::ArgumentConflict),
            (with(&["--s3-credentials-secret", "s"]), ErrorKind::ArgumentConflict),
            (with(&["--s3-credentials-file", "f"]), ErrorKind::ArgumentConflict),
            (with(&["--s3-ca-bundle-configmap", "m"]), ErrorKind::ArgumentConflict),
            (with(&["--azure-credentials-from-env"]), ErrorKind::ArgumentConflict),
            (with(&["--azure-credentials-secret", "s"]), ErrorKind::ArgumentConflict),
            (vec!["--s3-bucket", "b", "--gcs-credentials-from-env"], ErrorKind::ArgumentConflict),
            (vec!["--azure-account", "a", "--azure-container", "c", "--gcs-credentials-secret", "s"], ErrorKind::ArgumentConflict),
            (vec!["--pvc", "nfs", "--gcs-credentials-secret", "s"], ErrorKind::ArgumentConflict),
            (vec!["--pvc", "nfs", "--gcs-prefix", "p"], ErrorKind::ArgumentConflict),
            (vec!["--gcs-credentials-from-env"], ErrorKind::MissingRequiredArgument),
        ] {
            let err = create(&line).expect_err(&format!("{line:?} was accepted"));
            assert_eq!(err.kind(), kind, "{line:?}: {err}");
        }
    }

    #[test]
    fn durations_parse_and_a_huge_one_is_refused_rather_than_wrapped() {
        assert_eq!(parse_duration("90s").unwrap(), std::time::Duration::from_secs(90));
        assert_eq!(parse_duration("30").unwrap(), std::time::Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").unwrap(), std::time::Duration::from_secs(7200));
        let err = parse_duration("18446744073709551615h").unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert!(parse_duration("5 minutes").is_err());
    }
}
