//! Creating a location profile (`kubectl dr profile create`): the Profile, with the Secret
//! and ConfigMap it names when their contents are given here; the location is checked before
//! anything is saved, so a profile that cannot work is never written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret};
use kube::{Api, Client};

use super::{apply, install_crds, InstallError};
use crate::location::{CaBundle, Location, LocationConfig, StaticCredentials};
use crate::resources::{self, Profile, ProfileSpec, ResourceError};

/// A CA bundle given here (`--s3-ca-bundle FILE`): `from` names it in messages.
pub struct GivenCaBundle {
    pub from: String,
    pub pem: String,
}

pub struct NewProfile {
    pub name: String,
    pub namespace: String,
    pub spec: ProfileSpec,
    /// S3 credentials given here (a file, the environment): saved as the Secret
    /// `<name>-credentials`, which the profile then names.
    pub credentials: Option<StaticCredentials>,
    /// A CA bundle given here: saved as the ConfigMap `<name>-ca-bundle` (key `ca.crt`),
    /// which the profile then names.
    pub ca_bundle: Option<GivenCaBundle>,
    /// Check the location first: an S3 bucket is listed, written and read as the backups
    /// will; a file profile's PVC must exist. Off for write-only credentials, which cannot list.
    pub validate: bool,
}

fn credentials_secret(name: &str, namespace: &str, creds: &StaticCredentials) -> Secret {
    let mut data = BTreeMap::from([
        (resources::ACCESS_KEY_ID_KEY.to_owned(), k8s_openapi::ByteString(creds.access_key_id.clone().into_bytes())),
        (resources::SECRET_ACCESS_KEY_KEY.to_owned(), k8s_openapi::ByteString(creds.secret_access_key.as_bytes().to_vec())),
    ]);
    if let Some(t) = &creds.session_token {
        data.insert(resources::SESSION_TOKEN_KEY.to_owned(), k8s_openapi::ByteString(t.as_bytes().to_vec()));
    }
    let mut secret = Secret { data: Some(data), ..Default::default() };
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
    match profile.spec.s3.as_mut() {
        Some(s3) => {
            if let Some(creds) = &new.credentials {
                let name = format!("{}-credentials", new.name);
                secret = Some(credentials_secret(&name, ns, creds));
                s3.credentials_secret = Some(name);
            }
            if let Some(bundle) = &new.ca_bundle {
                let name = format!("{}-ca-bundle", new.name);
                config_map = Some(resources::ca_bundle_config_map(&name, ns, bundle.pem.clone()));
                s3.ca_bundle_config_map = Some(name);
            }
        }
        None if profile.spec.file.is_none() => return Err(ResourceError::ProfileEmpty { name: new.name.clone() }.into()),
        None => {}
    }

    if new.validate {
        if profile.spec.s3.is_some() {
            // What is given here is not in the cluster yet: the check uses it as given; what
            // the profile names in the cluster is read the way the Job reads it.
            let mut checked = profile.clone();
            let s3 = checked.spec.s3.as_mut().expect("an S3 profile");
            if new.credentials.is_some() {
                s3.credentials_secret = None;
            }
            if new.ca_bundle.is_some() {
                s3.ca_bundle_config_map = None;
            }
            let LocationConfig::S3(mut config) = resources::location_config(client, ns, &checked, None).await? else {
                unreachable!("an S3 profile maps to an S3 location")
            };
            if let Some(creds) = &new.credentials {
                config.credentials = Some(creds.clone());
            }
            if let Some(bundle) = &new.ca_bundle {
                config.ca_bundle = Some(CaBundle::Pem { from: bundle.from.clone(), pem: bundle.pem.clone().into_bytes() });
            }
            let location = Location::connect(&LocationConfig::S3(config)).await?;
            location.validate().await.map_err(|source| InstallError::Unusable { location: location.describe(), source })?;
        } else if let Some(file) = &profile.spec.file {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
            let found = pvcs.get_opt(&file.claim_name).await.map_err(super::api_err(format!("reading PersistentVolumeClaim {}", file.claim_name)))?;
            if found.is_none() {
                return Err(InstallError::ClaimMissing { claim: file.claim_name.clone(), namespace: ns.clone() });
            }
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
