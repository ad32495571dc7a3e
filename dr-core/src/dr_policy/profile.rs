//! Creating a location profile (`kubectl dr profile create`): the Profile, with the Secret
//! and ConfigMap it names when their contents are given here; the location is checked before
//! anything is saved, so a profile that cannot work is never written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use kube::{Api, Client};
use zeroize::Zeroizing;

use super::{apply, install_crds, InstallError};
use crate::location::{AzureCredentials, CaBundle, GcsCredentials, Location, LocationConfig, StaticCredentials};
use crate::resources::{self, Profile, ProfileSpec};

/// A CA bundle given here (`--s3-ca-bundle FILE`): `from` names it in messages.
pub struct GivenCaBundle {
    pub from: String,
    pub pem: String,
}

/// Credentials given here (a file, the environment), of the profile's own kind. Never printed.
pub enum GivenCredentials {
    /// An S3 access key pair.
    S3(StaticCredentials),
    /// An Azure storage account's access key (Shared Key).
    AzureSharedKey(Zeroizing<String>),
    /// An Azure shared access signature.
    AzureSas(Zeroizing<String>),
    /// A Google Cloud service account's JSON key, the whole file.
    GcsServiceAccountKey(Zeroizing<String>),
}

impl std::fmt::Debug for GivenCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GivenCredentials::S3(creds) => write!(f, "S3({creds:?})"),
            GivenCredentials::AzureSharedKey(_) => f.write_str("AzureSharedKey([redacted])"),
            GivenCredentials::AzureSas(_) => f.write_str("AzureSas([redacted])"),
            GivenCredentials::GcsServiceAccountKey(_) => f.write_str("GcsServiceAccountKey([redacted])"),
        }
    }
}

impl GivenCredentials {
    /// The kind of profile these credentials are for.
    fn kind(&self) -> &'static str {
        match self {
            GivenCredentials::S3(_) => "s3",
            GivenCredentials::AzureSharedKey(_) | GivenCredentials::AzureSas(_) => "azure",
            GivenCredentials::GcsServiceAccountKey(_) => "gcs",
        }
    }

    /// The credentials Secret's data.
    fn secret_data(&self) -> BTreeMap<String, k8s_openapi::ByteString> {
        let bytes = |v: &str| k8s_openapi::ByteString(v.as_bytes().to_vec());
        match self {
            GivenCredentials::S3(creds) => {
                let mut data = BTreeMap::from([
                    (resources::ACCESS_KEY_ID_KEY.to_owned(), bytes(&creds.access_key_id)),
                    (resources::SECRET_ACCESS_KEY_KEY.to_owned(), bytes(&creds.secret_access_key)),
                ]);
                if let Some(t) = &creds.session_token {
                    data.insert(resources::SESSION_TOKEN_KEY.to_owned(), bytes(t));
                }
                data
            }
            GivenCredentials::AzureSharedKey(key) => BTreeMap::from([(resources::AZURE_STORAGE_KEY_KEY.to_owned(), bytes(key))]),
            GivenCredentials::AzureSas(sas) => BTreeMap::from([(resources::AZURE_SAS_TOKEN_KEY.to_owned(), bytes(sas))]),
            GivenCredentials::GcsServiceAccountKey(key) => BTreeMap::from([(resources::GCS_SERVICE_ACCOUNT_KEY.to_owned(), bytes(key))]),
        }
    }
}

pub struct NewProfile {
    pub name: String,
    pub namespace: String,
    pub spec: ProfileSpec,
    /// Credentials given here (a file, the environment): saved as the Secret
    /// `<name>-credentials`, which the profile then names. They must be of the profile's kind.
    pub credentials: Option<GivenCredentials>,
    /// A CA bundle given here: saved as the ConfigMap `<name>-ca-bundle` (key `ca.crt`),
    /// which the profile then names.
    pub ca_bundle: Option<GivenCaBundle>,
    /// Check the location first: a bucket or container is listed, written and read as the
    /// backups will; a file profile's PVC must exist. Off for write-only credentials, which
    /// cannot list.
    pub validate: bool,
}

fn credentials_secret(name: &str, namespace: &str, creds: &GivenCredentials) -> Secret {
    let mut secret = Secret { data: Some(creds.secret_data()), ..Default::default() };
    secret.metadata.name = Some(name.into());
    secret.metadata.namespace = Some(namespace.into());
    secret
}

/// Saves the profile (installing the CRDs if needed) with what it names; returns it.
pub async fn create_profile(client: &Client, new: NewProfile) -> Result<Profile, InstallError> {
    let ns = &new.namespace;
    let mut profile = Profile::new(&new.name, new.spec);
    profile.metadata.namespace = Some(ns.clone());
    let mut secret = None;
    let mut config_map = None;
    resources::check_one_kind(&new.name, &profile.spec)?;
    if let Some(creds) = &new.credentials {
        let name = format!("{}-credentials", new.name);
        let spec = &mut profile.spec;
        let names = match (creds, spec.s3.as_mut(), spec.azure.as_mut(), spec.gcs.as_mut()) {
            (GivenCredentials::S3(_), Some(s3), _, _) => &mut s3.credentials_secret,
            (GivenCredentials::AzureSharedKey(_) | GivenCredentials::AzureSas(_), _, Some(azure), _) => &mut azure.credentials_secret,
            (GivenCredentials::GcsServiceAccountKey(_), _, _, Some(gcs)) => &mut gcs.credentials_secret,
            _ => {
                return Err(InstallError::CredentialsKind { name: new.name.clone(), given: creds.kind(), kind: profile.spec.kinds().join(", ") });
            }
        };
        *names = Some(name.clone());
        secret = Some(credentials_secret(&name, ns, creds));
    }
    if let Some(s3) = profile.spec.s3.as_mut() {
        if let Some(bundle) = &new.ca_bundle {
            let name = format!("{}-ca-bundle", new.name);
            config_map = Some(resources::ca_bundle_config_map(&name, ns, bundle.pem.clone()));
            s3.ca_bundle_config_map = Some(name);
        }
    }

    if new.validate {
        if let Some(file) = &profile.spec.file {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
            let found = pvcs.get_opt(&file.claim_name).await.map_err(super::api_err(format!("reading PersistentVolumeClaim {}", file.claim_name)))?;
            if found.is_none() {
                return Err(InstallError::ClaimMissing { claim: file.claim_name.clone(), namespace: ns.clone() });
            }
        } else {
            // A store (S3, Azure, GCS). What is given here is not in the cluster yet: the check uses
            // it as given; what the profile names in the cluster is read the way the Job reads it.
            let mut checked = profile.clone();
            if let Some(s3) = checked.spec.s3.as_mut() {
                if new.credentials.is_some() {
                    s3.credentials_secret = None;
                }
                if new.ca_bundle.is_some() {
                    s3.ca_bundle_config_map = None;
                }
            }
            if let Some(azure) = checked.spec.azure.as_mut() {
                if new.credentials.is_some() {
                    azure.credentials_secret = None;
                }
            }
            if let Some(gcs) = checked.spec.gcs.as_mut() {
                if new.credentials.is_some() {
                    gcs.credentials_secret = None;
                }
            }
            let mut config = resources::location_config(client, ns, &checked, None).await?;
            match (&mut config, &new.credentials) {
                (LocationConfig::S3(config), Some(GivenCredentials::S3(creds))) => config.credentials = Some(creds.clone()),
                (LocationConfig::Azure(config), Some(GivenCredentials::AzureSharedKey(key))) => config.credentials = AzureCredentials::SharedKey(key.clone()),
                (LocationConfig::Azure(config), Some(GivenCredentials::AzureSas(sas))) => config.credentials = AzureCredentials::Sas(sas.clone()),
                (LocationConfig::Gcs(config), Some(GivenCredentials::GcsServiceAccountKey(key))) => {
                    config.credentials = GcsCredentials::ServiceAccountKey(key.clone())
                }
                // None given, or (refused above) of another kind.
                _ => {}
            }
            if let (LocationConfig::S3(config), Some(bundle)) = (&mut config, &new.ca_bundle) {
                config.ca_bundle = Some(CaBundle::Pem { from: bundle.from.clone(), pem: bundle.pem.clone().into_bytes() });
            }
            let location = Location::connect(&config).await?;
            location.validate().await.map_err(|source| InstallError::Unusable { location: location.describe(), source })?;
        }
    }
    install_crds(client).await?;
    if let Some(map) = config_map {
        apply(&Api::<ConfigMap>::namespaced(client.clone(), ns), map).await?;
    }
    if let Some(secret) = secret {
        apply(&Api::<Secret>::namespaced(client.clone(), ns), secret).await?;
    }
    apply(&Api::<Profile>::namespaced(client.clone(), ns), profile).await
}
