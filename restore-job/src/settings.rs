//! The Job's settings: clap arguments, each read from the `DR_*` variable the pod spec sets
//! (`dr_core::job::env` names them; the DR CronJob and the chart set them), so
//! `dr-job <command> --help` documents the Job's interface. Every value is checked here,
//! before the cluster or the location is touched.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use dr_core::job::env;
use dr_core::passphrase::{ResolveOptions, VaultAuth, VaultConfig, DEFAULT_K8S_AUTH_MOUNT, DEFAULT_SA_TOKEN_PATH};
use dr_core::resources::FILE_LOCATION_MOUNT;
use dr_core::restore::chart::ChartValues;
use dr_core::restore::RestoreSettings;
use zeroize::Zeroizing;

/// What every run needs: its namespace, where a file location is mounted, how to reach the
/// passphrase sources outside the cluster, and where to push metrics.
#[derive(Args, Debug)]
pub struct Common {
    /// The DR namespace (the pod's own, through the downward API).
    #[arg(long, env = env::NAMESPACE)]
    pub namespace: String,
    /// Where a file profile's volume is mounted.
    #[arg(long, env = env::LOCATION_MOUNT, default_value = FILE_LOCATION_MOUNT)]
    pub location_mount: PathBuf,
    /// A Prometheus Pushgateway to push the run's metrics to; unset: nothing is pushed.
    #[arg(long, env = env::PUSHGATEWAY_URL)]
    pub pushgateway_url: Option<String>,
    #[command(flatten)]
    pub vault: Vault,
    /// Endpoint override for AWS Secrets Manager.
    #[arg(long, env = env::AWS_SECRETS_ENDPOINT)]
    pub aws_secrets_endpoint: Option<String>,
}

/// Vault, when the passphrase is there (`vault.enabled`).
#[derive(Args, Debug)]
pub struct Vault {
    /// Vault's address.
    #[arg(long, env = env::VAULT_ADDRESS)]
    pub vault_address: Option<String>,
    /// Token auth: a file holding the token (the mounted `vault_token` key of `vault.secretName`).
    #[arg(long, env = env::VAULT_TOKEN_FILE)]
    pub vault_token_file: Option<PathBuf>,
    /// Kubernetes auth: the role (`vault.role`); token auth when unset.
    #[arg(long, env = env::VAULT_ROLE)]
    pub vault_role: Option<String>,
    /// Kubernetes auth: the service-account token to log in with.
    #[arg(long, env = env::VAULT_SA_TOKEN_PATH, default_value = DEFAULT_SA_TOKEN_PATH)]
    pub vault_sa_token_path: PathBuf,
    /// Kubernetes auth: the auth method's mount.
    #[arg(long, env = env::VAULT_AUTH_MOUNT, default_value = DEFAULT_K8S_AUTH_MOUNT)]
    pub vault_auth_mount: String,
    /// PEM file with the CA that signed Vault's certificate (the mounted `vault.caBundle`).
    #[arg(long, env = env::VAULT_CA_BUNDLE)]
    pub vault_ca_bundle: Option<PathBuf>,
    /// Vault Enterprise namespace.
    #[arg(long, env = "VAULT_NAMESPACE")]
    pub vault_namespace: Option<String>,
}

/// `dr-job backup` and `dr-job replicate`: the DR policy to run.
#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub common: Common,
    /// The DR policy.
    #[arg(long, env = env::POLICY, default_value = dr_core::catalog::DR_POLICY_NAME)]
    pub policy: String,
}

/// `dr-job restore`: the `dr-restore` chart's values, whole, and what only the pod knows.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// The chart's values as the chart rendered them (JSON): what to restore and how. Turned
    /// into the restore's settings by the same conversion `kubectl dr restore` checks its
    /// flags with (`ChartValues::restore_settings`).
    #[arg(long, env = env::RESTORE_VALUES, value_parser = chart_values)]
    pub restore_values: ChartValues,
    /// Who holds the restore Lease (the Job's name), so a new pod of the same Job may take
    /// over; unset: the pod's host name.
    #[arg(long, env = env::RESTORE_HOLDER)]
    pub restore_holder: Option<String>,
    /// The restore's cluster-wide ClusterRoleBinding, deleted when the restore is over.
    #[arg(long, env = env::RBAC_BINDING)]
    pub rbac_binding: Option<String>,
    /// This pod's name (the downward API), to tell a disruption from a failure when the pod is
    /// terminated; unset: not known.
    #[arg(long, env = env::POD_NAME)]
    pub pod_name: Option<String>,
}

/// `dr-job grant-keeper`: the restore pod's native sidecar, which ends the cluster-wide grant
/// when the restore container ended in a way it could not report itself (killed).
#[derive(Args, Debug)]
pub struct GrantKeeperArgs {
    /// The DR namespace (the pod's own, through the downward API).
    #[arg(long, env = env::NAMESPACE)]
    pub namespace: String,
    /// The restore Job's name (the Lease holder the chart sets).
    #[arg(long, env = env::RESTORE_HOLDER)]
    pub restore_holder: String,
    /// This pod's name (the downward API): its restore container's end is read from it.
    #[arg(long, env = env::POD_NAME)]
    pub pod_name: String,
    /// The restore's cluster-wide ClusterRoleBinding; unset (quick mode): nothing to end.
    #[arg(long, env = env::RBAC_BINDING)]
    pub rbac_binding: Option<String>,
}

fn chart_values(v: &str) -> Result<ChartValues, String> {
    serde_json::from_str(v).map_err(|e| format!("not the dr-restore chart's values: {e}"))
}

impl Common {
    /// How the job reaches the passphrase sources that are not in the cluster. A token file
    /// is read now, so a missing one fails before anything else.
    pub fn resolve_options(&self) -> anyhow::Result<ResolveOptions> {
        let v = &self.vault;
        let vault = match &v.vault_address {
            None => None,
            Some(address) => {
                let auth = match (&v.vault_role, &v.vault_token_file) {
                    (Some(role), _) => {
                        VaultAuth::Kubernetes { role: role.clone(), token_path: v.vault_sa_token_path.clone(), mount: v.vault_auth_mount.clone() }
                    }
                    (None, Some(path)) => {
                        // Wiped after use, like the trimmed copy the login keeps.
                        let token =
                            Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read the Vault token file {}", path.display()))?);
                        VaultAuth::Token(Zeroizing::new(token.trim().to_owned()))
                    }
                    (None, None) => anyhow::bail!(
                        "{} is set but neither {} nor {} is: the job's pod spec must set one",
                        env::VAULT_ADDRESS,
                        env::VAULT_ROLE,
                        env::VAULT_TOKEN_FILE
                    ),
                };
                Some(VaultConfig { address: address.clone(), auth, namespace: v.vault_namespace.clone(), ca_bundle: v.vault_ca_bundle.clone() })
            }
        };
        Ok(ResolveOptions { vault, aws_endpoint: self.aws_secrets_endpoint.clone() })
    }
}

impl BackupArgs {
    pub fn settings(&self) -> anyhow::Result<dr_core::job::BackupSettings> {
        Ok(dr_core::job::BackupSettings {
            namespace: self.common.namespace.clone(),
            policy: self.policy.clone(),
            location_mount: Some(self.common.location_mount.clone()),
            resolve: self.common.resolve_options()?,
        })
    }
}

impl RestoreArgs {
    pub fn settings(&self) -> anyhow::Result<RestoreSettings> {
        let mut s = self.restore_values.restore_settings(&self.common.namespace)?;
        s.holder = self.restore_holder.clone().or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty())).unwrap_or_else(|| "dr-restore".into());
        s.location_mount = Some(self.common.location_mount.clone());
        s.resolve = self.common.resolve_options()?;
        Ok(s)
    }
}
