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
use crate::location::{
    AzureConfig, AzureCredentials, CaBundle, GcsConfig, GcsCredentials, Location, LocationConfig, LocationError, S3Config, StaticCredentials,
};
use crate::passphrase::{PassphraseError, PassphraseSource};

mod policy;
mod profile;

pub use policy::*;
pub use profile::*;

/// Keys of a profile's S3 credentials Secret.
pub const ACCESS_KEY_ID_KEY: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY_KEY: &str = "aws_secret_access_key";
pub const SESSION_TOKEN_KEY: &str = "aws_session_token";
/// Keys of a profile's Azure credentials Secret, which holds one of the two: the storage
/// account's access key (Shared Key), or a shared access signature.
pub const AZURE_STORAGE_KEY_KEY: &str = "azure_storage_key";
pub const AZURE_SAS_TOKEN_KEY: &str = "azure_storage_sas_token";
/// Key of a profile's GCS credentials Secret: a service account's JSON key, the whole file
/// (the name Kasten's GCS profile Secrets use).
pub const GCS_SERVICE_ACCOUNT_KEY: &str = "service-account.json";
/// The project's ID, which Kasten's GCS profile Secrets hold beside the key: object
/// operations do not need it, so a Secret may have it and it is ignored.
pub const GCS_PROJECT_ID_KEY: &str = "project-id";
/// What an S3 profile's credentials Secret must hold, for messages.
const S3_SECRET_NEEDS: &str = "it needs keys aws_access_key_id and aws_secret_access_key";
/// What an Azure profile's credentials Secret must hold, for messages.
const AZURE_SECRET_NEEDS: &str = "it needs exactly one of the keys azure_storage_key (the storage account's access key, for Shared Key) and azure_storage_sas_token (a SAS token); or leave credentialsSecret out of the profile to use workload identity";
/// What a GCS profile's credentials Secret must hold, for messages.
const GCS_SECRET_NEEDS: &str = "it needs the key service-account.json holding a service account's JSON key, the whole file (`kubectl create secret generic NAME --from-file service-account.json=KEY.json`; a project-id key beside it is ignored); or leave credentialsSecret out of the profile to use the metadata server (GKE workload identity)";
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
    #[error("location profile {name} names no location (an S3 bucket, an Azure Blob container, a Google Cloud Storage bucket or a file volume): recreate it with --s3-bucket, --azure-account and --azure-container, --gcs-bucket, or --pvc")]
    ProfileEmpty { name: String },
    #[error("location profile {name} names more than one location ({kinds}): a profile is one location; keep one of them (recreate it with `kubectl dr profile create {name} ...`), and make another profile for the other")]
    ProfileAmbiguous { name: String, kinds: String },
    #[error("the credentials Secret {secret} (namespace {namespace}) of profile {profile} {problem}: {needs}")]
    CredentialsSecret { profile: String, secret: String, namespace: String, problem: String, needs: &'static str },
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
    check_one_kind(&name, &profile.spec)?;
    let secret_problem = |secret_name: &str, needs: &'static str| {
        let secret = secret_name.to_owned();
        let (name, namespace) = (&name, namespace);
        move |problem: &str| ResourceError::CredentialsSecret {
            profile: name.clone(),
            secret: secret.clone(),
            namespace: namespace.into(),
            problem: problem.into(),
            needs,
        }
    };
    if let Some(s3) = &profile.spec.s3 {
        let credentials = match &s3.credentials_secret {
            None => None,
            Some(secret_name) => {
                let problem = secret_problem(secret_name, S3_SECRET_NEEDS);
                let Some(data) = read_secret_data(client, namespace, secret_name).await? else { return Err(problem("does not exist")) };
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
    if let Some(azure) = &profile.spec.azure {
        let credentials = match &azure.credentials_secret {
            None => AzureCredentials::WorkloadIdentity,
            Some(secret_name) => {
                let problem = secret_problem(secret_name, AZURE_SECRET_NEEDS);
                let Some(mut data) = read_secret_data(client, namespace, secret_name).await? else { return Err(problem("does not exist")) };
                let credentials = azure_secret_credentials(&data);
                // The key or SAS was copied into `credentials`; wipe the Secret's copy.
                crate::passphrase::wipe_values(&mut data);
                credentials.map_err(|e| problem(&e))?
            }
        };
        return Ok(LocationConfig::Azure(azure_config(profile, credentials).expect("an Azure profile")));
    }
    if let Some(gcs) = &profile.spec.gcs {
        let credentials = match &gcs.credentials_secret {
            None => GcsCredentials::MetadataServer,
            Some(secret_name) => {
                let problem = secret_problem(secret_name, GCS_SECRET_NEEDS);
                let Some(mut data) = read_secret_data(client, namespace, secret_name).await? else { return Err(problem("does not exist")) };
                let credentials = gcs_secret_credentials(&data);
                // The key was copied into `credentials`; wipe the Secret's copy.
                crate::passphrase::wipe_values(&mut data);
                credentials.map_err(|e| problem(&e))?
            }
        };
        return Ok(LocationConfig::Gcs(gcs_config(profile, credentials).expect("a GCS profile")));
    }
    if let Some(file) = &profile.spec.file {
        let mount = mount.ok_or_else(|| ResourceError::FileProfileOutsideCluster { name: name.clone() })?;
        let path: PathBuf = mount.join(file.path.trim_start_matches('/'));
        return Ok(LocationConfig::File { path });
    }
    Err(ResourceError::ProfileEmpty { name })
}

/// Refuses a profile that names no location, or more than one.
pub fn check_one_kind(name: &str, spec: &ProfileSpec) -> Result<(), ResourceError> {
    match spec.kinds().as_slice() {
        [] => Err(ResourceError::ProfileEmpty { name: name.into() }),
        [_] => Ok(()),
        kinds => Err(ResourceError::ProfileAmbiguous { name: name.into(), kinds: kinds.join(", ") }),
    }
}

/// The data of Secret `name`, `None` when it does not exist.
async fn read_secret_data(client: &Client, namespace: &str, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, ResourceError> {
    let secret = get_secret(client, namespace, name).await.map_err(|source| ResourceError::Api { what: format!("secret {name}"), source })?;
    Ok(secret.map(secret_data))
}

/// The Azure location an Azure profile describes, with `credentials`; `None` for a profile
/// that is not Azure.
pub fn azure_config(profile: &Profile, credentials: AzureCredentials) -> Option<AzureConfig> {
    let azure = profile.spec.azure.as_ref()?;
    Some(AzureConfig {
        account: azure.account.clone(),
        container: azure.container.clone(),
        prefix: azure.prefix.trim_matches('/').to_owned(),
        endpoint: azure.endpoint.clone(),
        credentials,
        immutable_days: profile.spec.immutability.as_ref().map(|i| i.protection_days),
        replica: azure.replica,
    })
}

/// The credentials an Azure profile's credentials Secret holds: [`AZURE_STORAGE_KEY_KEY`]
/// (Shared Key) or [`AZURE_SAS_TOKEN_KEY`] (a SAS), trimmed; an empty value counts as absent.
/// `Err` says what is wrong with the Secret (it completes "the credentials Secret S of
/// profile P ..."). The caller wipes `data` afterwards: nothing here copies a value but into
/// the result.
pub fn azure_secret_credentials(data: &BTreeMap<String, Vec<u8>>) -> Result<AzureCredentials, String> {
    let value = |key: &str| -> Result<Option<Zeroizing<String>>, String> {
        let Some(bytes) = data.get(key) else { return Ok(None) };
        let text = std::str::from_utf8(bytes).map_err(|_| format!("holds a {key} that is not UTF-8 text"))?.trim();
        Ok((!text.is_empty()).then(|| Zeroizing::new(text.to_owned())))
    };
    match (value(AZURE_STORAGE_KEY_KEY)?, value(AZURE_SAS_TOKEN_KEY)?) {
        (Some(key), None) => Ok(AzureCredentials::SharedKey(key)),
        (None, Some(sas)) => Ok(AzureCredentials::Sas(sas)),
        (Some(_), Some(_)) => Err(format!("holds both {AZURE_STORAGE_KEY_KEY} and {AZURE_SAS_TOKEN_KEY}")),
        (None, None) => Err(format!("holds neither {AZURE_STORAGE_KEY_KEY} nor {AZURE_SAS_TOKEN_KEY} (or only empty ones)")),
    }
}

/// The GCS location a GCS profile describes, with `credentials`; `None` for a profile that
/// is not GCS.
pub fn gcs_config(profile: &Profile, credentials: GcsCredentials) -> Option<GcsConfig> {
    let gcs = profile.spec.gcs.as_ref()?;
    Some(GcsConfig {
        bucket: gcs.bucket.clone(),
        prefix: gcs.prefix.trim_matches('/').to_owned(),
        endpoint: gcs.endpoint.clone(),
        credentials,
        immutable_days: profile.spec.immutability.as_ref().map(|i| i.protection_days),
        replica: gcs.replica,
    })
}

/// The credentials a GCS profile's credentials Secret holds: [`GCS_SERVICE_ACCOUNT_KEY`], a
/// service account's JSON key (see [`is_gcs_service_account_key`]), trimmed; an empty value
/// counts as absent, and [`GCS_PROJECT_ID_KEY`] is ignored. `Err` says what is wrong with
/// the Secret (it completes "the credentials Secret S of profile P ..."), never with any of
/// its content. The caller wipes `data` afterwards: nothing here copies a value but into the
/// result.
pub fn gcs_secret_credentials(data: &BTreeMap<String, Vec<u8>>) -> Result<GcsCredentials, String> {
    let Some(bytes) = data.get(GCS_SERVICE_ACCOUNT_KEY) else {
        if data.contains_key(GCS_PROJECT_ID_KEY) {
            return Err(format!("holds {GCS_PROJECT_ID_KEY} but no {GCS_SERVICE_ACCOUNT_KEY}"));
        }
        return Err(format!("lacks the key {GCS_SERVICE_ACCOUNT_KEY}"));
    };
    let text = std::str::from_utf8(bytes).map_err(|_| format!("holds a {GCS_SERVICE_ACCOUNT_KEY} that is not UTF-8 text"))?.trim();
    if text.is_empty() {
        return Err(format!("holds an empty {GCS_SERVICE_ACCOUNT_KEY}"));
    }
    if !is_gcs_service_account_key(text) {
        return Err(format!("holds a {GCS_SERVICE_ACCOUNT_KEY} that is not a service account's JSON key (a JSON object with \"type\": \"service_account\")"));
    }
    Ok(GcsCredentials::ServiceAccountKey(Zeroizing::new(text.to_owned())))
}

/// Whether `json` is a service account's JSON key: a JSON object whose `type` is
/// `service_account` (not, say, gcloud's `authorized_user` login or an `external_account`
/// federation config, which a GCS location cannot use). Only `type` is kept while parsing:
/// the private key is skipped over, never copied.
pub fn is_gcs_service_account_key(json: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    // An object, not an array (serde would read a struct from one too).
    json.trim_start().starts_with('{') && serde_json::from_str::<Kind>(json).is_ok_and(|k| k.kind.as_deref() == Some("service_account"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn an_azure_secret_with_one_key_gives_shared_key_or_sas_trimmed() {
        let AzureCredentials::SharedKey(key) = azure_secret_credentials(&data(&[(AZURE_STORAGE_KEY_KEY, " a2V5\n")])).unwrap() else {
            panic!("not Shared Key")
        };
        assert_eq!(key.as_str(), "a2V5");
        let AzureCredentials::Sas(sas) = azure_secret_credentials(&data(&[(AZURE_SAS_TOKEN_KEY, "?sv=2025&sig=x\n")])).unwrap() else { panic!("not a SAS") };
        assert_eq!(sas.as_str(), "?sv=2025&sig=x");
        // An empty value is no value: the other key decides.
        let chosen = azure_secret_credentials(&data(&[(AZURE_STORAGE_KEY_KEY, " \n"), (AZURE_SAS_TOKEN_KEY, "sv=1")])).unwrap();
        assert!(matches!(chosen, AzureCredentials::Sas(_)), "{chosen:?}");
    }

    #[test]
    fn an_azure_secret_with_neither_or_both_keys_is_refused_saying_which() {
        let neither = azure_secret_credentials(&data(&[(ACCESS_KEY_ID_KEY, "AKIA"), (AZURE_STORAGE_KEY_KEY, "")])).unwrap_err();
        assert!(neither.contains("neither azure_storage_key nor azure_storage_sas_token"), "{neither}");
        let both = azure_secret_credentials(&data(&[(AZURE_STORAGE_KEY_KEY, "k"), (AZURE_SAS_TOKEN_KEY, "s")])).unwrap_err();
        assert!(both.contains("both azure_storage_key and azure_storage_sas_token"), "{both}");
        let binary = azure_secret_credentials(&BTreeMap::from([(AZURE_STORAGE_KEY_KEY.to_owned(), vec![0xff, 0xfe])])).unwrap_err();
        assert!(binary.contains("not UTF-8"), "{binary}");
        // The whole message tells what to put in the Secret.
        let err =
            ResourceError::CredentialsSecret { profile: "p".into(), secret: "s".into(), namespace: "ns".into(), problem: both, needs: AZURE_SECRET_NEEDS };
        assert!(err.to_string().contains("exactly one of the keys azure_storage_key") && err.to_string().contains("workload identity"), "{err}");
    }

    const KEY_JSON: &str = r#"{"type": "service_account", "project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "client_email": "dr@p.iam.gserviceaccount.com"}"#;

    #[test]
    fn a_gcs_secret_gives_its_service_account_key_and_ignores_the_project_id() {
        let key = |data: &BTreeMap<String, Vec<u8>>| match gcs_secret_credentials(data).unwrap() {
            GcsCredentials::ServiceAccountKey(key) => key,
            other => panic!("{other:?}"),
        };
        assert_eq!(key(&data(&[(GCS_SERVICE_ACCOUNT_KEY, &format!("{KEY_JSON}\n"))])).as_str(), KEY_JSON);
        // Kasten's GCS Secret: project-id beside the key, not needed and not an error.
        assert_eq!(key(&data(&[(GCS_PROJECT_ID_KEY, "my-project"), (GCS_SERVICE_ACCOUNT_KEY, KEY_JSON)])).as_str(), KEY_JSON);
    }

    #[test]
    fn a_gcs_secret_without_a_usable_key_is_refused_saying_what_to_put_in_it() {
        let missing = gcs_secret_credentials(&data(&[(AZURE_STORAGE_KEY_KEY, "k")])).unwrap_err();
        assert!(missing.contains("lacks the key service-account.json"), "{missing}");
        let project_only = gcs_secret_credentials(&data(&[(GCS_PROJECT_ID_KEY, "my-project")])).unwrap_err();
        assert!(project_only.contains("holds project-id but no service-account.json"), "{project_only}");
        let empty = gcs_secret_credentials(&data(&[(GCS_SERVICE_ACCOUNT_KEY, " \n")])).unwrap_err();
        assert!(empty.contains("empty service-account.json"), "{empty}");
        let binary = gcs_secret_credentials(&BTreeMap::from([(GCS_SERVICE_ACCOUNT_KEY.to_owned(), vec![0xff, 0xfe])])).unwrap_err();
        assert!(binary.contains("not UTF-8"), "{binary}");
        // gcloud's own login, or no JSON at all: refused without quoting any of it.
        for (text, secret) in [(r#"{"type": "authorized_user", "refresh_token": "1//0secret"}"#, "1//0secret"), ("not json secret", "secret")] {
            let wrong = gcs_secret_credentials(&data(&[(GCS_SERVICE_ACCOUNT_KEY, text)])).unwrap_err();
            assert!(wrong.contains("not a service account's JSON key") && !wrong.contains(secret), "{wrong}");
        }
        let err =
            ResourceError::CredentialsSecret { profile: "p".into(), secret: "s".into(), namespace: "ns".into(), problem: missing, needs: GCS_SECRET_NEEDS };
        assert!(err.to_string().contains("--from-file service-account.json=KEY.json") && err.to_string().contains("GKE workload identity"), "{err}");
    }

    #[test]
    fn only_a_service_account_json_is_a_service_account_key() {
        assert!(is_gcs_service_account_key(KEY_JSON));
        for not_a_key in [r#"{"type": "external_account"}"#, r#"{"client_email": "a@b"}"#, r#"["service_account"]"#, r#""service_account""#, "", "{"] {
            assert!(!is_gcs_service_account_key(not_a_key), "{not_a_key}");
        }
    }

    #[test]
    fn a_profile_names_exactly_one_location() {
        let s3 = || Some(S3ProfileSpec { bucket: "b".into(), ..Default::default() });
        let azure = || Some(AzureProfileSpec { account: "a".into(), container: "c".into(), ..Default::default() });
        let gcs = || Some(GcsProfileSpec { bucket: "g".into(), ..Default::default() });
        let file = || Some(FileProfileSpec { claim_name: "nfs".into(), ..Default::default() });
        assert!(check_one_kind("p", &ProfileSpec { azure: azure(), ..Default::default() }).is_ok());
        assert!(check_one_kind("p", &ProfileSpec { gcs: gcs(), ..Default::default() }).is_ok());
        assert!(matches!(check_one_kind("p", &ProfileSpec::default()), Err(ResourceError::ProfileEmpty { .. })));
        for (spec, kinds) in [
            (ProfileSpec { s3: s3(), azure: azure(), ..Default::default() }, "s3, azure"),
            (ProfileSpec { azure: azure(), file: file(), ..Default::default() }, "azure, file"),
            (ProfileSpec { s3: s3(), file: file(), ..Default::default() }, "s3, file"),
            (ProfileSpec { azure: azure(), gcs: gcs(), ..Default::default() }, "azure, gcs"),
            (ProfileSpec { s3: s3(), gcs: gcs(), ..Default::default() }, "s3, gcs"),
            (ProfileSpec { gcs: gcs(), file: file(), ..Default::default() }, "gcs, file"),
        ] {
            let err = check_one_kind("p", &spec).unwrap_err();
            assert!(matches!(&err, ResourceError::ProfileAmbiguous { kinds: k, .. } if k == kinds), "{err}");
            assert!(err.to_string().contains("more than one location"), "{err}");
        }
    }

    #[test]
    fn an_azure_profile_maps_to_its_config_with_immutability() {
        let mut profile = Profile::new(
            "blob",
            ProfileSpec {
                azure: Some(AzureProfileSpec {
                    account: "acct".into(),
                    container: "dr".into(),
                    prefix: "/cluster-a/".into(),
                    endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
                    replica: true,
                    credentials_secret: None,
                }),
                immutability: Some(Immutability { protection_days: 30 }),
                ..Default::default()
            },
        );
        let config = azure_config(&profile, AzureCredentials::WorkloadIdentity).unwrap();
        assert_eq!((config.account.as_str(), config.container.as_str(), config.prefix.as_str()), ("acct", "dr", "cluster-a"));
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:10000/devstoreaccount1"));
        assert_eq!((config.immutable_days, config.replica), (Some(30), true));
        assert!(matches!(config.credentials, AzureCredentials::WorkloadIdentity));
        // Without a Secret the jobs' pods must carry the workload identity webhook's label.
        assert!(profile.spec.uses_azure_workload_identity());
        profile.spec.azure.as_mut().unwrap().credentials_secret = Some("blob-key".into());
        assert!(!profile.spec.uses_azure_workload_identity());
        profile.spec.azure = None;
        assert!(!profile.spec.uses_azure_workload_identity());
        assert!(azure_config(&profile, AzureCredentials::WorkloadIdentity).is_none());
    }

    #[test]
    fn a_gcs_profile_maps_to_its_config_with_immutability() {
        let mut profile = Profile::new(
            "gcs",
            ProfileSpec {
                gcs: Some(GcsProfileSpec {
                    bucket: "dr".into(),
                    prefix: "/cluster-a/".into(),
                    endpoint: Some("http://127.0.0.1:4443".into()),
                    replica: true,
                    credentials_secret: None,
                }),
                immutability: Some(Immutability { protection_days: 30 }),
                ..Default::default()
            },
        );
        let config = gcs_config(&profile, GcsCredentials::MetadataServer).unwrap();
        assert_eq!((config.bucket.as_str(), config.prefix.as_str(), config.endpoint.as_deref()), ("dr", "cluster-a", Some("http://127.0.0.1:4443")));
        assert_eq!((config.immutable_days, config.replica), (Some(30), true));
        assert!(matches!(config.credentials, GcsCredentials::MetadataServer));
        // GKE workload identity goes through the metadata server: no pod label, unlike Azure's.
        assert!(!profile.spec.uses_azure_workload_identity());
        profile.spec.gcs = None;
        assert!(gcs_config(&profile, GcsCredentials::MetadataServer).is_none());
    }
}
