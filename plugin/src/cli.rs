//! The command line: every clap type lives here. Every flag can also be set from an
//! environment variable (`DR_*`, or the usual `AWS_*` / `VAULT_*`).

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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a restore point. Offline: `--from-manifests DIR` makes one from manifest files.
    Backup(BackupArgs),
    /// List the restore points of a cluster ID, newest first.
    RestorePoints(RestorePointsArgs),
    /// Decrypt every restore point (or one) in full and check it against its manifest.
    Verify(VerifyArgs),
    /// Write one restore point's objects out as YAML files, one per object.
    Export(ExportArgs),
}

/// Where restore points live. With no flags: the embedded default, a local directory.
#[derive(Args, Debug, Clone)]
pub struct LocationArgs {
    /// A directory location (an NFS mount or any local directory).
    #[arg(long, env = "DR_LOCATION_PATH", conflicts_with = "s3_bucket")]
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
    /// Write every object with an Object Lock retention (COMPLIANCE) of this many days (1-90).
    #[arg(long, env = "DR_IMMUTABLE_DAYS", requires = "s3_bucket", value_parser = clap::value_parser!(u32).range(1..=90))]
    pub immutable_days: Option<u32>,
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
    /// Make the point from the manifests (*.yaml, *.yml, *.json) under this directory.
    #[arg(long, env = "DR_FROM_MANIFESTS")]
    pub from_manifests: PathBuf,
    /// The cluster ID the point is filed under (the source cluster's default namespace UID).
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
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
    #[arg(long, env = "DR_POINT_IN_TIME")]
    pub point_in_time: Option<String>,
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
pub struct ExportArgs {
    #[arg(long, env = "DR_CLUSTER_ID")]
    pub cluster_id: String,
    /// The point to export (default: the newest complete one at or before --point-in-time).
    #[arg(long, conflicts_with = "point_in_time")]
    pub point: Option<String>,
    /// Export the newest complete point at or before this RFC 3339 time.
    #[arg(long, env = "DR_POINT_IN_TIME")]
    pub point_in_time: Option<String>,
    /// Directory to write to; it must not exist yet.
    #[arg(long)]
    pub output_dir: PathBuf,
    #[command(flatten)]
    pub location: LocationArgs,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}
