//! `kubectl dr profile create|list|delete`: the flags and credential files become a
//! `NewProfile`, which the library checks and saves (`dr_core::dr_policy::profile`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use dr_core::dr_policy::profile::{GivenCaBundle, GivenCredentials, NewProfile};
use dr_core::location::{AzureCredentials, StaticCredentials};
use dr_core::resources::{AzureProfileSpec, FileProfileSpec, GcsProfileSpec, Immutability, Profile, ProfileSpec, S3ProfileSpec};
use kube::api::{Api, DeleteParams};
use kube::ResourceExt;
use zeroize::Zeroizing;

use super::ExitStatus;
use crate::cli::{GlobalArgs, OutputArgs, OutputFormat, ProfileCommand, ProfileCreateArgs};
use crate::input;

pub async fn run(global: &GlobalArgs, command: &ProfileCommand) -> Result<ExitStatus> {
    let client = input::kube_client(global).await?;
    let ns = &global.namespace;
    match command {
        ProfileCommand::Create(args) => create(&client, ns, args).await,
        ProfileCommand::List(args) => list(&client, ns, args).await,
        ProfileCommand::Delete(args) => {
            let api: Api<Profile> = Api::namespaced(client, ns);
            match api.delete(&args.name, &DeleteParams::default()).await {
                Ok(_) => println!("profile {} deleted (restore points at its location are kept)", args.name),
                Err(kube::Error::Api(e)) if e.code == 404 => bail!("profile {} not found in namespace {ns}", args.name),
                Err(e) => return Err(e.into()),
            }
            Ok(ExitStatus::Success)
        }
    }
}

fn env_credentials() -> Result<StaticCredentials> {
    let id = std::env::var("AWS_ACCESS_KEY_ID").context("--s3-credentials-from-env needs AWS_ACCESS_KEY_ID")?;
    let key = std::env::var("AWS_SECRET_ACCESS_KEY").context("--s3-credentials-from-env needs AWS_SECRET_ACCESS_KEY")?;
    Ok(StaticCredentials {
        access_key_id: id,
        secret_access_key: Zeroizing::new(key),
        session_token: std::env::var("AWS_SESSION_TOKEN").ok().map(Zeroizing::new),
    })
}

/// `--azure-credentials-from-env`: the account's access key (AZURE_STORAGE_KEY) or a SAS
/// (AZURE_STORAGE_SAS_TOKEN), exactly one of them.
fn env_azure_credentials() -> Result<GivenCredentials> {
    azure_given(input::azure_credentials(input::env_secret(input::AZURE_STORAGE_KEY), input::env_secret(input::AZURE_STORAGE_SAS_TOKEN))?)
}

fn azure_given(credentials: Option<AzureCredentials>) -> Result<GivenCredentials> {
    match credentials {
        Some(AzureCredentials::SharedKey(key)) => Ok(GivenCredentials::AzureSharedKey(key)),
        Some(AzureCredentials::Sas(sas)) => Ok(GivenCredentials::AzureSas(sas)),
        None | Some(AzureCredentials::WorkloadIdentity) => bail!(
            "--azure-credentials-from-env needs {} (the storage account's access key) or {} (a SAS token); for workload identity, leave the flag out",
            input::AZURE_STORAGE_KEY,
            input::AZURE_STORAGE_SAS_TOKEN
        ),
    }
}

/// `--gcs-credentials-from-env`: the service account's JSON key in the file that
/// GOOGLE_APPLICATION_CREDENTIALS names.
fn env_gcs_credentials() -> Result<GivenCredentials> {
    gcs_given(input::env_gcs_key()?)
}

fn gcs_given(key: Option<Zeroizing<String>>) -> Result<GivenCredentials> {
    match key {
        Some(key) => Ok(GivenCredentials::GcsServiceAccountKey(key)),
        None => bail!(
            "--gcs-credentials-from-env needs {} (the path of a service account's JSON key file); for the metadata server (GKE workload identity), leave the flag out",
            input::GOOGLE_APPLICATION_CREDENTIALS
        ),
    }
}

/// Reads `aws_access_key_id` / `aws_secret_access_key` (/ `aws_session_token`) from one
/// section of an AWS shared credentials file.
fn file_credentials(path: &std::path::Path) -> Result<StaticCredentials> {
    let text = Zeroizing::new(dr_core::local_file::read_to_string(
        path,
        "the credentials file",
        dr_core::local_file::MAX_FILE_BYTES,
        dr_core::local_file::Links::Follow,
    )?);
    let section = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let mut current = String::new();
    let mut values: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';')) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_owned();
        } else if current == section {
            if let Some((k, v)) = line.split_once('=') {
                values.insert(k.trim().to_owned(), Zeroizing::new(v.trim().to_owned()));
            }
        }
    }
    let get = |k: &str| values.get(k).map(|v| v.as_str().to_owned());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(key)) => {
            Ok(StaticCredentials { access_key_id: id, secret_access_key: Zeroizing::new(key), session_token: get("aws_session_token").map(Zeroizing::new) })
        }
        _ => bail!("{} has no aws_access_key_id and aws_secret_access_key in section [{section}]", path.display()),
    }
}

async fn create(client: &kube::Client, ns: &str, args: &ProfileCreateArgs) -> Result<ExitStatus> {
    let loc = &args.location;
    let mut spec = ProfileSpec::default();
    if let Some(bucket) = &loc.s3_bucket {
        spec.s3 = Some(S3ProfileSpec {
            bucket: bucket.clone(),
            prefix: loc.s3_prefix.clone(),
            region: loc.s3_region.clone(),
            endpoint: loc.s3_endpoint.clone(),
            path_style: loc.s3_path_style,
            replica: loc.s3_replica,
            skip_tls_verify: loc.s3_skip_tls_verify,
            credentials_secret: args.s3_credentials_secret.clone(),
            ca_bundle_config_map: args.s3_ca_bundle_configmap.clone(),
        });
        spec.immutability = loc.immutable_days.map(|d| Immutability { protection_days: d });
    } else if let Some(account) = &loc.azure_account {
        spec.azure = Some(AzureProfileSpec {
            account: account.clone(),
            container: loc.azure_container.clone().context("--azure-account needs --azure-container")?,
            prefix: loc.azure_prefix.clone(),
            endpoint: loc.azure_endpoint.clone(),
            replica: loc.azure_replica,
            credentials_secret: args.azure_credentials_secret.clone(),
        });
        spec.immutability = loc.immutable_days.map(|d| Immutability { protection_days: d });
    } else if let Some(bucket) = &loc.gcs_bucket {
        spec.gcs = Some(GcsProfileSpec {
            bucket: bucket.clone(),
            prefix: loc.gcs_prefix.clone(),
            endpoint: loc.gcs_endpoint.clone(),
            replica: loc.gcs_replica,
            credentials_secret: args.gcs_credentials_secret.clone(),
        });
        spec.immutability = loc.immutable_days.map(|d| Immutability { protection_days: d });
    } else if let Some(pvc) = &args.pvc {
        spec.file = Some(FileProfileSpec { claim_name: pvc.clone(), path: args.pvc_path.clone() });
    } else {
        bail!("a profile needs a location: --s3-bucket BUCKET (with its flags), --azure-account ACCOUNT --azure-container CONTAINER (with theirs), --gcs-bucket BUCKET (with its flags), or --pvc CLAIM for an NFS share");
    }
    let new = NewProfile {
        name: args.name.clone(),
        namespace: ns.to_owned(),
        spec,
        // Credentials given for a Secret the library creates (from a file or the environment).
        credentials: match (&args.s3_credentials_file, args.s3_credentials_from_env, args.azure_credentials_from_env, args.gcs_credentials_from_env) {
            (Some(file), _, _, _) => Some(GivenCredentials::S3(file_credentials(file)?)),
            (None, true, _, _) => Some(GivenCredentials::S3(env_credentials()?)),
            (None, false, true, _) => Some(env_azure_credentials()?),
            (None, false, false, true) => Some(env_gcs_credentials()?),
            (None, false, false, false) => None,
        },
        ca_bundle: match &loc.s3_ca_bundle {
            Some(file) => Some(GivenCaBundle { from: format!("--s3-ca-bundle {}", file.display()), pem: input::ca_bundle_file(file)? }),
            None => None,
        },
        validate: !args.skip_validation,
    };
    dr_core::dr_policy::profile::create_profile(client, new).await?;
    println!("profile {} saved", args.name);
    Ok(ExitStatus::Success)
}

async fn list(client: &kube::Client, ns: &str, args: &OutputArgs) -> Result<ExitStatus> {
    let api: Api<Profile> = Api::namespaced(client.clone(), ns);
    let profiles = api.list(&Default::default()).await?.items;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&profiles)?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(&profiles)?),
        OutputFormat::Table => {
            println!("{:<24} {:<5} {:<48} IMMUTABLE", "NAME", "TYPE", "LOCATION");
            for p in &profiles {
                let (kind, location) = p.spec.location_url().unwrap_or_else(|| match p.spec.kinds().as_slice() {
                    [] => ("?", "-".into()),
                    kinds => ("?", format!("more than one location: {}", kinds.join(", "))),
                });
                let days = p.spec.immutability.as_ref().map(|i| format!("{} days", i.protection_days)).unwrap_or_else(|| "no".into());
                println!("{:<24} {:<5} {:<48} {days}", p.name_any(), kind, location);
            }
        }
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_credentials_from_the_environment_must_be_there() {
        let err = azure_given(None).unwrap_err().to_string();
        assert!(err.contains("needs AZURE_STORAGE_KEY") && err.contains("AZURE_STORAGE_SAS_TOKEN"), "{err}");
        assert!(
            matches!(azure_given(Some(AzureCredentials::Sas(Zeroizing::new("sv=1".into())))).unwrap(), GivenCredentials::AzureSas(s) if s.as_str() == "sv=1")
        );
        assert!(matches!(azure_given(Some(AzureCredentials::SharedKey(Zeroizing::new("k".into())))).unwrap(), GivenCredentials::AzureSharedKey(_)));
    }

    #[test]
    fn gcs_credentials_from_the_environment_must_be_there() {
        let err = gcs_given(None).unwrap_err().to_string();
        assert!(err.contains("needs GOOGLE_APPLICATION_CREDENTIALS") && err.contains("leave the flag out"), "{err}");
        let given = gcs_given(Some(Zeroizing::new(r#"{"type": "service_account"}"#.into()))).unwrap();
        assert!(matches!(&given, GivenCredentials::GcsServiceAccountKey(k) if k.starts_with('{')));
        assert_eq!(format!("{given:?}"), "GcsServiceAccountKey([redacted])");
    }
}
