//! Turning flags into a location and a passphrase. The passphrase is read from a file,
//! stdin or a terminal prompt, never from the command line.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use dr_core::format::crypto::Passphrase;
use dr_core::location::{AzureConfig, AzureCredentials, CaBundle, GcsConfig, GcsCredentials, Location, LocationConfig, S3Config};
use dr_core::passphrase::{AwsSecret, KvVersion, PassphraseSource, ResolveOptions, VaultAuth, VaultConfig, VaultSecret};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::cli::{GlobalArgs, KvVersionArg, LocationArgs, PassphraseArgs, SourceKind};

/// The embedded default location: a directory under the user's data directory.
pub fn default_location_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("kubectl-dr").join("location")
}

/// Builds the location; `create_default` makes the default directory when it is used.
pub async fn location(args: &LocationArgs, create_default: bool) -> Result<Location> {
    let config = match (&args.path, &args.s3_bucket, &args.azure_account, &args.gcs_bucket) {
        (Some(path), _, _, _) => LocationConfig::File { path: path.clone() },
        (None, None, None, Some(bucket)) => LocationConfig::Gcs(GcsConfig {
            bucket: bucket.clone(),
            prefix: args.gcs_prefix.trim_matches('/').to_owned(),
            endpoint: args.gcs_endpoint.clone(),
            credentials: env_gcs_key()?.map(GcsCredentials::ServiceAccountKey).unwrap_or_default(),
            immutable_days: args.immutable_days,
            replica: args.gcs_replica,
        }),
        (None, None, Some(account), _) => LocationConfig::Azure(AzureConfig {
            account: account.clone(),
            container: args.azure_container.clone().context("--azure-account needs --azure-container")?,
            prefix: args.azure_prefix.trim_matches('/').to_owned(),
            endpoint: args.azure_endpoint.clone(),
            credentials: azure_credentials(env_secret(AZURE_STORAGE_KEY), env_secret(AZURE_STORAGE_SAS_TOKEN))?.unwrap_or_default(),
            immutable_days: args.immutable_days,
            replica: args.azure_replica,
        }),
        (None, Some(bucket), _, _) => LocationConfig::S3(S3Config {
            bucket: bucket.clone(),
            prefix: args.s3_prefix.clone(),
            region: args.s3_region.clone(),
            endpoint: args.s3_endpoint.clone(),
            path_style: args.s3_path_style,
            // Read here, bounded and only from a regular file (the location would read the
            // whole file, whatever it is).
            ca_bundle: match &args.s3_ca_bundle {
                Some(path) => Some(CaBundle::Pem { from: path.display().to_string(), pem: ca_bundle_file(path)?.into_bytes() }),
                None => None,
            },
            skip_tls_verify: args.s3_skip_tls_verify,
            credentials: None,
            immutable_days: args.immutable_days,
            replica: args.s3_replica,
        }),
        (None, None, None, None) => {
            let path = default_location_path();
            if create_default {
                std::fs::create_dir_all(&path).with_context(|| format!("cannot create the default location {}", path.display()))?;
            }
            tracing::info!("using the default location {} (give --path, --s3-bucket, --azure-account or --gcs-bucket for another)", path.display());
            LocationConfig::File { path }
        }
    };
    Ok(Location::connect(&config).await?)
}

/// The environment variable holding an Azure storage account's access key (Shared Key).
pub const AZURE_STORAGE_KEY: &str = "AZURE_STORAGE_KEY";
/// The environment variable holding an Azure shared access signature.
pub const AZURE_STORAGE_SAS_TOKEN: &str = "AZURE_STORAGE_SAS_TOKEN";

/// A secret from the environment, trimmed; unset, empty or not Unicode: `None`.
pub fn env_secret(name: &str) -> Option<Zeroizing<String>> {
    let value = Zeroizing::new(std::env::var(name).ok()?);
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| Zeroizing::new(trimmed.to_owned()))
}

/// Azure credentials from [`AZURE_STORAGE_KEY`] and [`AZURE_STORAGE_SAS_TOKEN`] (read by
/// [`env_secret`]): one of them, or `None` for neither (workload identity, for a location;
/// an error for `profile create --azure-credentials-from-env`). Both set is refused rather
/// than one chosen silently.
pub fn azure_credentials(key: Option<Zeroizing<String>>, sas: Option<Zeroizing<String>>) -> Result<Option<AzureCredentials>> {
    match (key, sas) {
        (Some(key), None) => Ok(Some(AzureCredentials::SharedKey(key))),
        (None, Some(sas)) => Ok(Some(AzureCredentials::Sas(sas))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => {
            bail!("both {AZURE_STORAGE_KEY} and {AZURE_STORAGE_SAS_TOKEN} are set: choose one (unset the other), the account's access key or a SAS")
        }
    }
}

/// The standard variable naming a Google Cloud credentials file (Application Default
/// Credentials); here it must be a service account's JSON key.
pub const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// The service account's JSON key in the file [`GOOGLE_APPLICATION_CREDENTIALS`] names (read
/// by [`gcs_key_file`]); `None` when the variable is unset or empty (the metadata server, for
/// a location; an error for `profile create --gcs-credentials-from-env`).
pub fn env_gcs_key() -> Result<Option<Zeroizing<String>>> {
    match std::env::var_os(GOOGLE_APPLICATION_CREDENTIALS) {
        Some(path) if !path.is_empty() => gcs_key_file(std::path::Path::new(&path)).map(Some),
        _ => Ok(None),
    }
}

/// A service account's JSON key file, read (bounded, a regular file) and checked to be one:
/// any other kind of Google credentials file is refused, saying so without quoting it.
pub fn gcs_key_file(path: &std::path::Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(dr_core::local_file::read_to_string(
        path,
        "the Google credentials file",
        dr_core::local_file::MAX_FILE_BYTES,
        dr_core::local_file::Links::Follow,
    )?);
    if !dr_core::resources::is_gcs_service_account_key(&text) {
        bail!(
            "{} (named by {GOOGLE_APPLICATION_CREDENTIALS}) is not a service account's JSON key: it must be a JSON object with \"type\": \"service_account\", as `gcloud iam service-accounts keys create` writes it (gcloud's own login and workload identity federation files are not used here)",
            path.display()
        );
    }
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// A CA bundle file given on the command line, read and checked to hold PEM certificates.
pub fn ca_bundle_file(path: &std::path::Path) -> Result<String> {
    let pem = dr_core::local_file::read_to_string(path, "the CA bundle", dr_core::local_file::MAX_FILE_BYTES, dr_core::local_file::Links::Follow)?;
    dr_core::tls::certificates_in(pem.as_bytes(), &path.display().to_string()).map_err(anyhow::Error::msg)?;
    Ok(pem)
}

/// Parses an RFC 3339 time given on the command line.
/// `--point ID`: a restore point ID as `kubectl dr restore-points` lists it (a clap value parser).
pub fn point_id(value: &str) -> Result<String, String> {
    dr_core::point::point_time(value).map(|_| value.to_owned()).map_err(|e| e.to_string())
}

/// `--point-in-time` as clap parses it (`restore`'s goes into the chart's values instead,
/// and is parsed there by the conversion the Job runs).
pub fn rfc3339(value: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| format!("{value:?} is not an RFC 3339 time such as 2022-01-02T15:04:05Z"))
}

/// A secret (a passphrase, a token) from a file or, for `-`, stdin; both bounded the same
/// way, and a file only when it is a regular file (a FIFO would block, `/dev/zero` would
/// never end).
fn read_secret_file(path: &std::path::Path, what: &'static str) -> Result<Vec<u8>> {
    use dr_core::local_file::{self, Links, MAX_SECRET_BYTES as MAX};
    let (reader, from): (Box<dyn Read>, String) = if path.as_os_str() == "-" {
        (Box::new(std::io::stdin()), "stdin".into())
    } else {
        let (file, len) = local_file::open_regular(path, what, Links::Follow)?;
        if len > MAX as u64 {
            return Err(local_file::LocalFileError::TooLarge { what, path: path.to_owned(), limit: MAX as u64 }.into());
        }
        (Box::new(file), format!("{what} {}", path.display()))
    };
    // Room for any passphrase up front: a growing Vec would leave unwiped copies behind.
    let mut bytes = Vec::with_capacity(MAX + 1);
    if let Err(e) = reader.take(MAX as u64 + 1).read_to_end(&mut bytes) {
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(e).with_context(|| format!("cannot read {from}"));
    }
    if bytes.len() > MAX {
        zeroize::Zeroize::zeroize(&mut bytes);
        bail!("{from} is too large: it holds more than {} KiB, which is not a secret: give the secret alone", MAX / 1024);
    }
    Ok(bytes)
}

/// A kube client from --kubeconfig/--context, or the usual inference (KUBECONFIG, in-cluster),
/// with the product's retry layer.
pub async fn kube_client(global: &GlobalArgs) -> Result<kube::Client> {
    Ok(dr_core::kube_client(kube_config(global).await?)?)
}

/// A client for following a Job (`commands::jobs`): without the retry layer, so an API server
/// that stops answering fails the watch at once and the follower says what it waits for,
/// instead of a request riding the outage out silently.
pub async fn follow_client(global: &GlobalArgs) -> Result<kube::Client> {
    follow_client_for(kube_config(global).await?)
}

/// [`follow_client`] for a given config.
pub fn follow_client_for(mut config: kube::Config) -> Result<kube::Client> {
    dr_core::init_crypto_provider();
    config.default_retry = false;
    // A server that does not take the connection at all (a link cut) is a failure to say
    // within seconds, not after the default 30 s.
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    Ok(kube::Client::try_from(config)?)
}

/// The kube config from --kubeconfig/--context, or the usual inference.
async fn kube_config(global: &GlobalArgs) -> Result<kube::Config> {
    dr_core::init_crypto_provider();
    let options = kube::config::KubeConfigOptions { context: global.context.clone(), ..Default::default() };
    let config = match &global.kubeconfig {
        Some(path) => {
            // kube reads the file itself: it must be a regular file of bounded size first.
            dr_core::local_file::check(path, "the kubeconfig", dr_core::local_file::MAX_FILE_BYTES)?;
            let kc = kube::config::Kubeconfig::read_from(path).with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await?
        }
        None if global.context.is_some() => {
            check_kubeconfig_env()?;
            kube::Config::from_kubeconfig(&options).await?
        }
        None => {
            check_kubeconfig_env()?;
            kube::Config::infer().await.context("no cluster: give --kubeconfig, set KUBECONFIG, or run in a pod")?
        }
    };
    Ok(config)
}

/// The kubeconfig files kube would read without --kubeconfig (each of KUBECONFIG, else
/// ~/.kube/config when it exists), checked as --kubeconfig is.
fn check_kubeconfig_env() -> Result<()> {
    let files: Vec<PathBuf> = match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect(),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")).into_iter().collect(),
    };
    // A missing file is kube's to report (or to pass over for the in-cluster config).
    for file in files.into_iter().filter(|p| p.exists()) {
        dr_core::local_file::check(&file, "the kubeconfig", dr_core::local_file::MAX_FILE_BYTES)?;
    }
    Ok(())
}

/// Resolves the passphrase. `confirm` asks twice at a prompt (when writing a new point).
pub async fn passphrase(args: &PassphraseArgs, confirm: bool) -> Result<Passphrase> {
    let source = passphrase_source(args, confirm)?;
    Ok(source.resolve(&resolve_options(args)?).await?)
}

/// How to resolve a source from here: Vault and AWS settings from the flags.
pub fn resolve_options(args: &PassphraseArgs) -> Result<ResolveOptions> {
    Ok(ResolveOptions { vault: vault_config(args)?, aws_endpoint: args.aws_endpoint.clone() })
}

/// The passphrase source the flags describe (a raw passphrase is read now).
pub fn passphrase_source(args: &PassphraseArgs, confirm: bool) -> Result<PassphraseSource> {
    let source = match args.passphrase_source {
        SourceKind::Raw => {
            let p = if let Some(file) = &args.passphrase_file {
                Passphrase::from_bytes(read_secret_file(file, "the passphrase file")?)?
            } else if std::io::stdin().is_terminal() {
                let first = Zeroizing::new(rpassword::prompt_password("DR passphrase: ")?);
                if confirm {
                    let again = Zeroizing::new(rpassword::prompt_password("Repeat the DR passphrase: ")?);
                    if *first != *again {
                        bail!("the two passphrases differ; run the command again");
                    }
                }
                Passphrase::new(first.as_str().to_owned())?
            } else {
                bail!("no DR passphrase: give --passphrase-file FILE (or --passphrase-file - to read stdin), or run in a terminal to be prompted");
            };
            PassphraseSource::Raw(p)
        }
        SourceKind::Vault => {
            let need = |v: &Option<String>, flag: &str| v.clone().with_context(|| format!("--passphrase-source vault needs {flag}"));
            PassphraseSource::Vault(VaultSecret {
                kv_version: match args.vault_kv_version.context("--passphrase-source vault needs --vault-kv-version KVv1|KVv2")? {
                    KvVersionArg::KVv1 => KvVersion::V1,
                    KvVersionArg::KVv2 => KvVersion::V2,
                },
                mount_path: need(&args.vault_mount_path, "--vault-mount-path")?,
                secret_path: need(&args.vault_secret_path, "--vault-secret-path")?,
                field: need(&args.vault_key, "--vault-key")?,
            })
        }
        SourceKind::Aws => PassphraseSource::Aws(AwsSecret {
            region: args.aws_region.clone().context("--passphrase-source aws needs --aws-region")?,
            name: args.aws_secret_name.clone().context("--passphrase-source aws needs --aws-secret-name")?,
        }),
    };
    Ok(source)
}

fn vault_config(args: &PassphraseArgs) -> Result<Option<VaultConfig>> {
    if args.passphrase_source != SourceKind::Vault {
        return Ok(None);
    }
    vault_login(args).map(Some)
}

/// How the plugin logs in to Vault, from the flags.
pub fn vault_login(args: &PassphraseArgs) -> Result<VaultConfig> {
    let address = args.vault_address.clone().context("--passphrase-source vault needs --vault-address (or VAULT_ADDR)")?;
    let auth = if let Some(role) = &args.vault_role {
        VaultAuth::Kubernetes { role: role.clone(), token_path: args.vault_sa_token_path.clone(), mount: args.vault_auth_mount.clone() }
    } else if let Some(file) = &args.vault_token_file {
        let bytes = Zeroizing::new(read_secret_file(file, "the Vault token file")?);
        VaultAuth::Token(Zeroizing::new(String::from_utf8_lossy(&bytes).trim().to_owned()))
    } else if let Ok(token) = std::env::var("VAULT_TOKEN") {
        VaultAuth::Token(Zeroizing::new(token))
    } else {
        bail!("Vault needs a login: --vault-token-file FILE (or VAULT_TOKEN), or --vault-role ROLE for Kubernetes auth");
    };
    Ok(VaultConfig { address, auth, namespace: std::env::var("VAULT_NAMESPACE").ok(), ca_bundle: args.vault_ca_bundle.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Option<Zeroizing<String>> {
        Some(Zeroizing::new(s.to_owned()))
    }

    #[test]
    fn a_google_credentials_file_must_be_a_service_accounts_key() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let key = r#"{"type": "service_account", "client_email": "dr@p.iam.gserviceaccount.com", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}"#;
        assert_eq!(gcs_key_file(&write("key.json", &format!("{key}\n"))).unwrap().as_str(), key);
        // gcloud's application-default login: JSON, but not a service account's key.
        let user = write("adc.json", r#"{"type": "authorized_user", "client_id": "id", "refresh_token": "1//0-refresh-secret"}"#);
        let err = gcs_key_file(&user).unwrap_err().to_string();
        assert!(err.contains("adc.json (named by GOOGLE_APPLICATION_CREDENTIALS) is not a service account's JSON key"), "{err}");
        assert!(err.contains(r#""type": "service_account""#) && !err.contains("refresh-secret"), "{err}");
        let not_json = gcs_key_file(&write("key.p12", "binary-ish secret")).unwrap_err().to_string();
        assert!(not_json.contains("is not a service account's JSON key") && !not_json.contains("secret"), "{not_json}");
    }

    #[test]
    fn azure_credentials_are_the_key_or_the_sas_and_never_both() {
        assert!(matches!(azure_credentials(secret("a2V5"), None).unwrap(), Some(AzureCredentials::SharedKey(k)) if k.as_str() == "a2V5"));
        assert!(matches!(azure_credentials(None, secret("sv=1&sig=x")).unwrap(), Some(AzureCredentials::Sas(s)) if s.as_str() == "sv=1&sig=x"));
        assert!(azure_credentials(None, None).unwrap().is_none(), "neither: workload identity, the caller's default");
        let both = azure_credentials(secret("k"), secret("s")).unwrap_err().to_string();
        assert!(both.contains("AZURE_STORAGE_KEY and AZURE_STORAGE_SAS_TOKEN") && both.contains("choose one"), "{both}");
    }
}
