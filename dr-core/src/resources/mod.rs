//! kubectl-dr's custom resources, `Profile` and `Policy` (group `dr.kubectl-dr.io`), and
//! turning them and the Secrets they name into what the rest of the library uses.
//!
//! The CRD manifests under `deploy/crds/` are generated from these types
//! (`cargo run --release --example gen_crds`); a test fails when they are stale.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client, CustomResourceExt};
use zeroize::Zeroizing;

use crate::catalog::DR_SECRET_NAME;
use crate::location::{CaBundle, Location, LocationConfig, LocationError, S3Config, StaticCredentials};
use crate::passphrase::{PassphraseError, PassphraseSource};

mod policy;
mod profile;

pub use policy::*;
pub use profile::*;

/// Keys of a profile's S3 credentials Secret.
pub const ACCESS_KEY_ID_KEY: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY_KEY: &str = "aws_secret_access_key";
pub const SESSION_TOKEN_KEY: &str = "aws_session_token";
/// Where the job mounts a file profile's volume.
pub const FILE_LOCATION_MOUNT: &str = "/mnt/dr-location";

/// The CRD manifests, as `(file name, YAML)`.
pub fn crd_manifests() -> Vec<(String, String)> {
    [Profile::crd(), Policy::crd()]
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().expect("CRDs have names");
            (format!("{name}.yaml"), serde_yaml::to_string(&crd).expect("CRDs serialize"))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("location profile {name} not found in namespace {namespace}: create it with `kubectl dr profile create {name} ...`, or check -n/--namespace")]
    ProfileNotFound { name: String, namespace: String },
    #[error("location profile {name} names neither an S3 bucket nor a file volume: recreate it with --s3-bucket or --pvc")]
    ProfileEmpty { name: String },
    #[error(
        "the credentials Secret {secret} of profile {profile} {problem} in namespace {namespace}: it needs keys aws_access_key_id and aws_secret_access_key"
    )]
    CredentialsSecret { profile: String, secret: String, namespace: String, problem: String },
    #[error("profile {name} is a file (volume) location, which only the in-cluster job can reach: from here, give --path to where the share is mounted")]
    FileProfileOutsideCluster { name: String },
    #[error("{DR_SECRET_NAME} not found in namespace {namespace}: run `kubectl dr enable`, or create it with `kubectl create secret generic {DR_SECRET_NAME} --namespace {namespace} --from-literal key=<passphrase>` (or a Vault / AWS source)")]
    DrSecretMissing { namespace: String },
    #[error("the CA bundle ConfigMap {config_map} of profile {profile} {problem} in namespace {namespace}: it needs key ca.crt with PEM certificates (kubectl create configmap {config_map} -n {namespace} --from-file ca.crt=ca.pem)")]
    CaBundle { profile: String, config_map: String, namespace: String, problem: String },
    #[error(transparent)]
    Passphrase(#[from] PassphraseError),
    #[error(transparent)]
    Location(#[from] LocationError),
    #[error("reading {what} failed")]
    Api { what: String, source: kube::Error },
}

impl crate::failure::Classify for ResourceError {
    fn kind(&self) -> crate::failure::ErrorKind {
        use crate::failure::ErrorKind;
        use ResourceError as E;
        match self {
            E::Passphrase(e) => e.kind(),
            E::Location(e) => e.kind(),
            E::Api { source, .. } => source.kind(),
            _ => ErrorKind::BadInput,
        }
    }
}

fn secret_data(secret: Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    for (k, v) in secret.string_data.unwrap_or_default() {
        data.insert(k, v.into_bytes());
    }
    data
}

async fn get_secret(client: &Client, namespace: &str, name: &str) -> Result<Option<Secret>, kube::Error> {
    Api::<Secret>::namespaced(client.clone(), namespace).get_opt(name).await
}

/// Reads the passphrase source from `k10-dr-secret` in the DR namespace.
pub async fn dr_secret_source(client: &Client, namespace: &str) -> Result<PassphraseSource, ResourceError> {
    let secret = get_secret(client, namespace, DR_SECRET_NAME)
        .await
        .map_err(|source| ResourceError::Api { what: format!("secret {DR_SECRET_NAME}"), source })?
        .ok_or_else(|| ResourceError::DrSecretMissing { namespace: namespace.into() })?;
    let mut data = secret_data(secret);
    let source = PassphraseSource::from_secret_data(&data);
    // A raw source's passphrase was copied into `source`; wipe the Secret's copy.
    crate::passphrase::wipe_values(&mut data);
    Ok(source?)
}

/// Reads a profile.
pub async fn get_profile(client: &Client, namespace: &str, name: &str) -> Result<Profile, ResourceError> {
    Api::<Profile>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| ResourceError::Api { what: format!("profile {name}"), source })?
        .ok_or_else(|| ResourceError::ProfileNotFound { name: name.into(), namespace: namespace.into() })
}

/// The S3 location an S3 profile describes, with `credentials` (`None`: the default AWS
/// chain); `None` for a profile that is not S3.
pub fn s3_config(profile: &Profile, credentials: Option<StaticCredentials>) -> Option<S3Config> {
    let s3 = profile.spec.s3.as_ref()?;
    Some(S3Config {
        bucket: s3.bucket.clone(),
        prefix: s3.prefix.clone(),
        region: s3.region.clone(),
        endpoint: s3.endpoint.clone(),
        path_style: s3.path_style,
        ca_bundle: None,
        skip_tls_verify: s3.skip_tls_verify,
        credentials,
        immutable_days: profile.spec.immutability.as_ref().map(|i| i.protection_days),
        replica: s3.replica,
    })
}

/// A ConfigMap `name` holding a PEM bundle under [`CA_BUNDLE_KEY`] (a profile's
/// `caBundleConfigMap`, Vault's CA for the jobs).
pub fn ca_bundle_config_map(name: &str, namespace: &str, pem: String) -> ConfigMap {
    let mut map = ConfigMap { data: Some(BTreeMap::from([(CA_BUNDLE_KEY.to_owned(), pem)])), ..Default::default() };
    map.metadata.name = Some(name.into());
    map.metadata.namespace = Some(namespace.into());
    map
}

/// The CA bundle an S3 profile names (`caBundleConfigMap`), read and checked; `None` when it
/// names none. Read through the API, so the CronJob and the restore Job need no extra mount.
pub async fn profile_ca_bundle(client: &Client, namespace: &str, profile: &Profile) -> Result<Option<CaBundle>, ResourceError> {
    let Some(name) = profile.spec.s3.as_ref().and_then(|s3| s3.ca_bundle_config_map.clone()) else { return Ok(None) };
    let problem = |problem: String| ResourceError::CaBundle {
        profile: profile.metadata.name.clone().unwrap_or_default(),
        config_map: name.clone(),
        namespace: namespace.into(),
        problem,
    };
    let map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(&name)
        .await
        .map_err(|source| ResourceError::Api { what: format!("configmap {name}"), source })?
        .ok_or_else(|| problem("does not exist".into()))?;
    let pem = map.data.and_then(|mut d| d.remove(CA_BUNDLE_KEY)).ok_or_else(|| problem("lacks the key ca.crt".into()))?.into_bytes();
    let from = format!("configmap/{name}");
    crate::tls::certificates_in(&pem, &from).map_err(|e| problem(format!("is not usable ({e})")))?;
    Ok(Some(CaBundle::Pem { from, pem }))
}

/// The location profile `name` names, connected: the one way from a profile's name to a
/// [`Location`] (nothing is sent yet; [`Location::validate`] checks reachability).
pub async fn connect_profile(client: &Client, namespace: &str, name: &str, mount: Option<&Path>) -> Result<Location, ResourceError> {
    let profile = get_profile(client, namespace, name).await?;
    let config = location_config(client, namespace, &profile, mount).await?;
    Ok(Location::connect(&config).await?)
}

/// The location a profile describes. `mount` is where a file profile's volume is mounted
/// (the job's [`FILE_LOCATION_MOUNT`]); `None` outside the cluster.
pub async fn location_config(client: &Client, namespace: &str, profile: &Profile, mount: Option<&Path>) -> Result<LocationConfig, ResourceError> {
    let name = profile.metadata.name.clone().unwrap_or_default();
    if let Some(s3) = &profile.spec.s3 {
        let credentials = match &s3.credentials_secret {
            None => None,
            Some(secret_name) => {
                let problem = |problem: &str| ResourceError::CredentialsSecret {
                    profile: name.clone(),
                    secret: secret_name.clone(),
                    namespace: namespace.into(),
                    problem: problem.into(),
                };
                let secret = get_secret(client, namespace, secret_name)
                    .await
                    .map_err(|source| ResourceError::Api { what: format!("secret {secret_name}"), source })?
                    .ok_or_else(|| problem("does not exist"))?;
                let data = secret_data(secret);
                let text = |k: &str| data.get(k).and_then(|v| String::from_utf8(v.clone()).ok()).map(|s| s.trim().to_owned());
                let (Some(id), Some(key)) = (text(ACCESS_KEY_ID_KEY), text(SECRET_ACCESS_KEY_KEY)) else {
                    return Err(problem("lacks a key"));
                };
                Some(StaticCredentials {
                    access_key_id: id,
                    secret_access_key: Zeroizing::new(key),
                    session_token: text(SESSION_TOKEN_KEY).map(Zeroizing::new),
                })
            }
        };
        let mut config = s3_config(profile, credentials).expect("an S3 profile");
        config.ca_bundle = profile_ca_bundle(client, namespace, profile).await?;
        return Ok(LocationConfig::S3(config));
    }
    if let Some(file) = &profile.spec.file {
        let mount = mount.ok_or_else(|| ResourceError::FileProfileOutsideCluster { name: name.clone() })?;
        let path: PathBuf = mount.join(file.path.trim_start_matches('/'));
        return Ok(LocationConfig::File { path });
    }
    Err(ResourceError::ProfileEmpty { name })
}
