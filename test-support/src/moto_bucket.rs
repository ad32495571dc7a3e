//! A bucket on its own moto server with IAM enforced, and its users as `moto_setup.py` makes
//! them: `writer` may only PutObject (what a backup needs, and what an attacker who owned the
//! source cluster holds), `reader` lists and reads every version, `pruner` also reads retention
//! and deletes by version, `lister` lists and reads current objects only. An attacker's own
//! requests go through [`MotoBucket::attacker`], the SDK with no `If-None-Match`.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use dr_core::location::{Location, LocationConfig, S3Config, StaticCredentials};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::{moto_setup, moto_with, Server};

/// The key prefix of every location made here.
pub const PREFIX: &str = "dr/prod";

pub struct MotoBucket {
    pub s3: Server,
    pub name: String,
    users: Value,
}

impl MotoBucket {
    /// `kind`: "lock" (Object Lock, so versioned) or "versioned".
    pub fn new(name: &str, kind: &str) -> Self {
        Self::with_settings(name, kind, &[])
    }

    /// The same, moto started with `settings` too (`MOTO_S3_DEFAULT_MAX_KEYS`, say).
    pub fn with_settings(name: &str, kind: &str, settings: &[(&str, String)]) -> Self {
        let roles = ["pruner", "lister"];
        // The bucket (1 request, or 2 with versioning) and 3 requests per user, then IAM holds.
        let setup = if kind == "versioned" { 2 } else { 1 } + 3 * (2 + roles.len());
        let s3 = moto_with(&[&[("INITIAL_NO_AUTH_ACTION_COUNT", setup.to_string())][..], settings].concat());
        moto_setup(&s3, &["bucket", name, kind], None);
        let users = moto_setup(&s3, &[&["users", name][..], &roles].concat(), None);
        MotoBucket { s3, name: name.into(), users }
    }

    pub fn creds(&self, user: &str) -> (String, String) {
        let u = &self.users[user];
        (u["access_key_id"].as_str().unwrap().to_owned(), u["secret_access_key"].as_str().unwrap().to_owned())
    }

    /// kubectl-dr's view of the bucket with `user`'s credentials.
    pub async fn location(&self, user: &str, immutable_days: Option<u32>) -> Location {
        let (id, secret) = self.creds(user);
        s3_location(&self.s3, &self.name, &id, &secret, immutable_days).await
    }

    /// The SDK with `user`'s credentials, as an attacker uses them.
    pub fn attacker(&self, user: &str) -> aws_sdk_s3::Client {
        let (id, secret) = self.creds(user);
        sdk(&self.s3, &id, &secret)
    }

    /// A plain PutObject over `key` (relative to the location), no `If-None-Match`.
    pub async fn overwrite(&self, user: &str, key: &str, body: Vec<u8>) {
        self.put(user, key, body, HashMap::new(), None).await
    }

    /// The same with user metadata and a storage class of the attacker's choosing.
    pub async fn put(&self, user: &str, key: &str, body: Vec<u8>, metadata: HashMap<String, String>, class: Option<aws_sdk_s3::types::StorageClass>) {
        self.attacker(user)
            .put_object()
            .bucket(&self.name)
            .key(format!("{PREFIX}/{key}"))
            .set_metadata(Some(metadata).filter(|m| !m.is_empty()))
            .set_storage_class(class)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }

    /// A plain DeleteObject (no version): on a versioned bucket, a delete marker.
    pub async fn delete_marker(&self, user: &str, key: &str) {
        self.attacker(user).delete_object().bucket(&self.name).key(format!("{PREFIX}/{key}")).send().await.unwrap();
    }
}

/// A location on `bucket` at `s3` under [`PREFIX`] with these credentials.
pub async fn s3_location(s3: &Server, bucket: &str, id: &str, secret: &str, immutable_days: Option<u32>) -> Location {
    s3_location_at(&s3.url, bucket, id, secret, immutable_days).await
}

/// [`s3_location`] at an endpoint given by its URL (a fault proxy in front of moto, say).
pub async fn s3_location_at(endpoint: &str, bucket: &str, id: &str, secret: &str, immutable_days: Option<u32>) -> Location {
    Location::connect(&LocationConfig::S3(S3Config {
        bucket: bucket.into(),
        prefix: PREFIX.into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        immutable_days,
        credentials: Some(StaticCredentials { access_key_id: id.into(), secret_access_key: Zeroizing::new(secret.into()), session_token: None }),
        ..Default::default()
    }))
    .await
    .unwrap()
}

/// The S3 SDK on `s3` with these credentials.
pub fn sdk(s3: &Server, id: &str, secret: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&s3.url)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(id, secret, None, None, "attacker"))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
