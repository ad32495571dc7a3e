//! The `Profile` custom resource: where restore points go (an S3 bucket, an Azure Blob
//! container, a Google Cloud Storage bucket or a file volume), and whether they are write-once.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A location profile: where restore points go.
#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[kube(
    group = "dr.kubectl-dr.io",
    version = "v1alpha1",
    kind = "Profile",
    namespaced,
    status = "ProfileStatus",
    shortname = "drprofile",
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.s3.bucket"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".spec.azure.account"}"#,
    printcolumn = r#"{"name":"Container","type":"string","jsonPath":".spec.azure.container"}"#,
    printcolumn = r#"{"name":"GCS bucket","type":"string","jsonPath":".spec.gcs.bucket"}"#,
    printcolumn = r#"{"name":"Claim","type":"string","jsonPath":".spec.file.claimName"}"#,
    printcolumn = r#"{"name":"Immutable days","type":"integer","jsonPath":".spec.immutability.protectionDays"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    /// An S3 or S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3ProfileSpec>,
    /// An Azure Blob Storage container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<AzureProfileSpec>,
    /// A Google Cloud Storage bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<GcsProfileSpec>,
    /// An NFS share or other volume, through a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileProfileSpec>,
    /// Write every object write-once for a protection period (S3, Azure and GCS): on S3 with
    /// an Object Lock retention (COMPLIANCE), on Azure with a locked version-level immutability
    /// policy, on GCS with a locked object retention (the bucket must have object retention
    /// enabled). Not for a file volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutability: Option<Immutability>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3ProfileSpec {
    pub bucket: String,
    /// Key prefix inside the bucket.
    #[serde(default)]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub path_style: bool,
    /// The bucket holds copies made by `kubectl dr replicate` (an off-site copy): a copy's dates
    /// are judged by the source store's receipt time it carries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
    #[serde(default, rename = "skipTLSVerify")]
    pub skip_tls_verify: bool,
    /// Secret in the DR namespace with aws_access_key_id and aws_secret_access_key (and
    /// optionally aws_session_token); the default AWS chain (IRSA) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// ConfigMap in the DR namespace whose key `ca.crt` holds extra CA certificates (PEM) to
    /// trust for the endpoint: a private CA in front of the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_config_map: Option<String>,
}

/// An Azure Blob Storage container.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureProfileSpec {
    /// The storage account's name.
    pub account: String,
    /// The blob container inside the account.
    pub container: String,
    /// Blob name prefix inside the container.
    #[serde(default)]
    pub prefix: String,
    /// The Blob service's URL (an emulator, a sovereign cloud, a private endpoint);
    /// `https://<account>.blob.core.windows.net` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The container holds copies made by `kubectl dr replicate` (an off-site copy): a copy's
    /// dates are judged by the source store's receipt time it carries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
    /// Secret in the DR namespace with azure_storage_key (the storage account's access key:
    /// Shared Key) or azure_storage_sas_token (a shared access signature), not both; Microsoft
    /// Entra workload identity when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// A Google Cloud Storage bucket.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsProfileSpec {
    /// The bucket's name.
    pub bucket: String,
    /// Object name prefix inside the bucket.
    #[serde(default)]
    pub prefix: String,
    /// The JSON API's base URL (an emulator, a private endpoint);
    /// `https://storage.googleapis.com` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket holds copies made by `kubectl dr replicate` (an off-site copy): a copy's
    /// dates are judged by the source store's receipt time it carries.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replica: bool,
    /// Secret in the DR namespace with service-account.json (a service account's JSON key; a
    /// project-id key beside it, as Kasten's GCS profiles have, is ignored); the metadata
    /// server (GKE workload identity) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

/// The pod label AKS's workload identity webhook looks for: only pods carrying it get the
/// federated token and the `AZURE_*` variables.
pub const AZURE_WORKLOAD_IDENTITY_LABEL: (&str, &str) = ("azure.workload.identity/use", "true");

impl ProfileSpec {
    /// Whether the jobs reach this location with Azure workload identity (an Azure profile
    /// without a credentials Secret): their pods then carry [`AZURE_WORKLOAD_IDENTITY_LABEL`].
    pub fn uses_azure_workload_identity(&self) -> bool {
        self.azure.as_ref().is_some_and(|a| a.credentials_secret.is_none())
    }

    /// The kinds of location set (`s3`, `azure`, `gcs`, `file`, in that order): a usable
    /// profile sets exactly one.
    pub fn kinds(&self) -> Vec<&'static str> {
        [("s3", self.s3.is_some()), ("azure", self.azure.is_some()), ("gcs", self.gcs.is_some()), ("file", self.file.is_some())]
            .into_iter()
            .filter_map(|(kind, set)| set.then_some(kind))
            .collect()
    }

    /// The profile's kind and where it points, as `kubectl dr profile list` shows them:
    /// `s3://BUCKET/PREFIX`, `azure://ACCOUNT/CONTAINER/PREFIX`, `gs://BUCKET/PREFIX` or
    /// `pvc/CLAIM[:PATH]`; `None` unless exactly one kind is set.
    pub fn location_url(&self) -> Option<(&'static str, String)> {
        if self.kinds().len() != 1 {
            return None;
        }
        let joined = |scheme: &str, parts: &[&str]| {
            let path: Vec<&str> = parts.iter().map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()).collect();
            format!("{scheme}://{}", path.join("/"))
        };
        if let Some(s3) = &self.s3 {
            return Some(("s3", joined("s3", &[&s3.bucket, &s3.prefix])));
        }
        if let Some(azure) = &self.azure {
            return Some(("azure", joined("azure", &[&azure.account, &azure.container, &azure.prefix])));
        }
        if let Some(gcs) = &self.gcs {
            return Some(("gcs", joined("gs", &[&gcs.bucket, &gcs.prefix])));
        }
        let file = self.file.as_ref()?;
        Some(("file", format!("pvc/{}{}", file.claim_name, if file.path.is_empty() { String::new() } else { format!(":{}", file.path) })))
    }
}

/// The key of a profile's `caBundleConfigMap` that holds the PEM bundle.
pub const CA_BUNDLE_KEY: &str = "ca.crt";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileProfileSpec {
    /// PersistentVolumeClaim in the DR namespace (an NFS share, ReadWriteMany).
    pub claim_name: String,
    /// Directory inside the volume.
    #[serde(default)]
    pub path: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Immutability {
    /// Protection period in days: 1 to 90.
    #[schemars(range(min = 1, max = 90))]
    pub protection_days: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileStatus {
    /// Whether the last validation reached the location (and found Object Lock when asked).
    #[serde(default)]
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_profile_says_where_it_points() {
        let s3 = ProfileSpec { s3: Some(S3ProfileSpec { bucket: "dr".into(), prefix: "a/".into(), ..Default::default() }), ..Default::default() };
        assert_eq!(s3.location_url(), Some(("s3", "s3://dr/a".into())));
        let azure =
            ProfileSpec { azure: Some(AzureProfileSpec { account: "acct".into(), container: "dr".into(), ..Default::default() }), ..Default::default() };
        assert_eq!(azure.location_url(), Some(("azure", "azure://acct/dr".into())));
        let mut prefixed = azure.clone();
        prefixed.azure.as_mut().unwrap().prefix = "cluster-a".into();
        assert_eq!(prefixed.location_url(), Some(("azure", "azure://acct/dr/cluster-a".into())));
        let gcs = ProfileSpec { gcs: Some(GcsProfileSpec { bucket: "dr".into(), ..Default::default() }), ..Default::default() };
        assert_eq!(gcs.location_url(), Some(("gcs", "gs://dr".into())));
        let mut prefixed = gcs.clone();
        prefixed.gcs.as_mut().unwrap().prefix = "/cluster-a/".into();
        assert_eq!(prefixed.location_url(), Some(("gcs", "gs://dr/cluster-a".into())));
        let file = ProfileSpec { file: Some(FileProfileSpec { claim_name: "nfs".into(), path: "a".into() }), ..Default::default() };
        assert_eq!(file.location_url(), Some(("file", "pvc/nfs:a".into())));
        // None, or more than one: no single place.
        assert_eq!(ProfileSpec::default().location_url(), None);
        let both = ProfileSpec { s3: s3.s3.clone(), azure: azure.azure.clone(), ..Default::default() };
        assert_eq!(both.kinds(), ["s3", "azure"]);
        assert_eq!(both.location_url(), None);
        let gcs_and_azure = ProfileSpec { gcs: gcs.gcs.clone(), azure: azure.azure.clone(), ..Default::default() };
        assert_eq!(gcs_and_azure.kinds(), ["azure", "gcs"]);
        assert_eq!(gcs_and_azure.location_url(), None);
    }

    #[test]
    fn a_gcs_spec_reads_and_writes_the_camel_case_fields() {
        let spec: ProfileSpec = serde_json::from_value(serde_json::json!({"gcs": {"bucket": "dr", "credentialsSecret": "gcs-credentials"}})).unwrap();
        let gcs = spec.gcs.as_ref().unwrap();
        assert_eq!((gcs.prefix.as_str(), gcs.credentials_secret.as_deref(), gcs.replica, gcs.endpoint.as_deref()), ("", Some("gcs-credentials"), false, None));
        assert_eq!(serde_json::to_value(&spec).unwrap(), serde_json::json!({"gcs": {"bucket": "dr", "prefix": "", "credentialsSecret": "gcs-credentials"}}));
    }

    #[test]
    fn an_azure_spec_reads_and_writes_the_camel_case_fields() {
        let spec: ProfileSpec =
            serde_json::from_value(serde_json::json!({"azure": {"account": "acct", "container": "dr", "credentialsSecret": "blob-credentials"}})).unwrap();
        let azure = spec.azure.as_ref().unwrap();
        assert_eq!((azure.prefix.as_str(), azure.credentials_secret.as_deref(), azure.replica), ("", Some("blob-credentials"), false));
        // replica is left out while false, as for S3.
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            serde_json::json!({"azure": {"account": "acct", "container": "dr", "prefix": "", "credentialsSecret": "blob-credentials"}})
        );
    }
}
