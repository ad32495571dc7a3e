//! The `Profile` custom resource: where restore points go (an S3 bucket or a file volume), and
//! whether they are write-once.

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
    printcolumn = r#"{"name":"Claim","type":"string","jsonPath":".spec.file.claimName"}"#,
    printcolumn = r#"{"name":"Immutable days","type":"integer","jsonPath":".spec.immutability.protectionDays"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    /// An S3 or S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3ProfileSpec>,
    /// An NFS share or other volume, through a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileProfileSpec>,
    /// Write every object with an Object Lock retention (S3 only).
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
