//! `kubectl dr profile create|list|delete`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use dr_core::location::{Location, LocationConfig, StaticCredentials};
use dr_core::resources::{self, FileProfileSpec, Immutability, Profile, ProfileSpec, S3ProfileSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
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
    Ok(StaticCredentials { access_key_id: id, secret_access_key: Zeroizing::new(key), session_token: std::env::var("AWS_SESSION_TOKEN").ok().map(Zeroizing::new) })
}

/// Reads `aws_access_key_id` / `aws_secret_access_key` (/ `aws_session_token`) from one
/// section of an AWS shared credentials file.
fn file_credentials(path: &std::path::Path) -> Result<StaticCredentials> {
    let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("cannot read credentials file {}", path.display()))?);
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
        (Some(id), Some(key)) => Ok(StaticCredentials { access_key_id: id, secret_access_key: Zeroizing::new(key), session_token: get("aws_session_token").map(Zeroizing::new) }),
        _ => bail!("{} has no aws_access_key_id and aws_secret_access_key in section [{section}]", path.display()),
    }
}

async fn create(client: &kube::Client, ns: &str, args: &ProfileCreateArgs) -> Result<ExitStatus> {
    let loc = &args.location;
    let mut spec = ProfileSpec::default();
    let mut credentials_secret = None;
    let mut ca_bundle_config_map = None;
    // Credentials given for a Secret this command creates (from a file or the environment).
    let given = match (&args.s3_credentials_file, args.s3_credentials_from_env) {
        (Some(file), _) => Some(file_credentials(file)?),
        (None, true) => Some(env_credentials()?),
        (None, false) => None,
    };
    if let Some(bucket) = &loc.s3_bucket {
        let mut s3 = S3ProfileSpec {
            bucket: bucket.clone(),
            prefix: loc.s3_prefix.clone(),
            region: loc.s3_region.clone(),
            endpoint: loc.s3_endpoint.clone(),
            path_style: loc.s3_path_style,
            skip_tls_verify: loc.s3_skip_tls_verify,
            credentials_secret: args.s3_credentials_secret.clone(),
            ca_bundle_config_map: args.s3_ca_bundle_configmap.clone(),
        };
        // A CA bundle file becomes a ConfigMap the in-cluster jobs read it from.
        if let Some(file) = &loc.s3_ca_bundle {
            let name = format!("{}-ca-bundle", args.name);
            ca_bundle_config_map = Some(resources::ca_bundle_config_map(&name, ns, input::ca_bundle_file(file)?));
            s3.ca_bundle_config_map = Some(name);
        }
        if let Some(creds) = given.clone() {
            let name = format!("{}-credentials", args.name);
            let mut data = BTreeMap::from([
                (resources::ACCESS_KEY_ID_KEY.to_owned(), k8s_openapi::ByteString(creds.access_key_id.clone().into_bytes())),
                (resources::SECRET_ACCESS_KEY_KEY.to_owned(), k8s_openapi::ByteString(creds.secret_access_key.as_bytes().to_vec())),
            ]);
            if let Some(t) = &creds.session_token {
                data.insert(resources::SESSION_TOKEN_KEY.to_owned(), k8s_openapi::ByteString(t.as_bytes().to_vec()));
            }
            let mut secret = Secret { data: Some(data), ..Default::default() };
            secret.metadata.name = Some(name.clone());
            s3.credentials_secret = Some(name);
            credentials_secret = Some(secret);
        }
        spec.s3 = Some(s3);
        spec.immutability = loc.immutable_days.map(|d| Immutability { protection_days: d });
    } else if let Some(pvc) = &args.pvc {
        spec.file = Some(FileProfileSpec { claim_name: pvc.clone(), path: args.pvc_path.clone() });
    } else {
        bail!("a profile needs a location: --s3-bucket BUCKET (with its flags) or --pvc CLAIM for an NFS share");
    }
    let mut profile = Profile::new(&args.name, spec);
    profile.metadata.namespace = Some(ns.into());

    // Check the location before saving a profile that cannot work.
    if !args.skip_validation {
        if profile.spec.s3.is_some() {
            // Credentials given here go into a Secret that does not exist yet; an existing
            // Secret is read the way the job reads it.
            // A bundle given as a file is not in its ConfigMap yet: check with the file itself.
            let mut checked = profile.clone();
            if loc.s3_ca_bundle.is_some() {
                checked.spec.s3.as_mut().expect("an S3 profile").ca_bundle_config_map = None;
            }
            let mut config = match &given {
                Some(creds) => {
                    let mut c = resources::s3_config(&checked, Some(creds.clone())).expect("an S3 profile");
                    c.ca_bundle = resources::profile_ca_bundle(client, ns, &checked).await?;
                    LocationConfig::S3(c)
                }
                None => resources::location_config(client, ns, &checked, None).await?,
            };
            if let (LocationConfig::S3(c), Some(file)) = (&mut config, &loc.s3_ca_bundle) {
                c.ca_bundle = Some(dr_core::location::CaBundle::File(file.clone()));
            }
            let location = Location::connect(&config).await?;
            location.validate().await.with_context(|| {
                format!("location {} is not usable (give --skip-validation for write-only credentials, which cannot list)", location.describe())
            })?;
        } else if let Some(file) = &profile.spec.file {
            let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
            if pvcs.get_opt(&file.claim_name).await?.is_none() {
                bail!("PersistentVolumeClaim {} not found in namespace {ns}: create it (ReadWriteMany, on the NFS share) first", file.claim_name);
            }
        }
    }
    dr_core::dr_policy::install_crds(client).await?;
    if let Some(map) = ca_bundle_config_map {
        dr_core::dr_policy::apply(&Api::<ConfigMap>::namespaced(client.clone(), ns), map).await?;
    }
    if let Some(mut secret) = credentials_secret {
        secret.metadata.namespace = Some(ns.into());
        dr_core::dr_policy::apply(&Api::<Secret>::namespaced(client.clone(), ns), secret).await?;
    }
    dr_core::dr_policy::apply(&Api::<Profile>::namespaced(client.clone(), ns), profile).await?;
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
                let (kind, location) = match (&p.spec.s3, &p.spec.file) {
                    (Some(s3), _) => ("s3", format!("s3://{}/{}", s3.bucket, s3.prefix).trim_end_matches('/').to_owned()),
                    (None, Some(f)) => ("file", format!("pvc/{}{}", f.claim_name, if f.path.is_empty() { String::new() } else { format!(":{}", f.path) })),
                    _ => ("?", "-".into()),
                };
                let days = p.spec.immutability.as_ref().map(|i| format!("{} days", i.protection_days)).unwrap_or_else(|| "no".into());
                println!("{:<24} {:<5} {:<48} {days}", p.name_any(), kind, location);
            }
        }
    }
    Ok(ExitStatus::Success)
}
