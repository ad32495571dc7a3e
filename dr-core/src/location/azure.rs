//! An Azure Blob Storage container. Being built (issue #25): every call fails for now.

use super::{AzureConfig, Inventory, LocationError, ObjectInfo, ObjectReader, StoredObject};

#[derive(Clone, Debug)]
pub struct AzureLocation {
    pub(super) account: String,
    pub(super) container: String,
    pub(super) prefix: String,
    pub(super) immutable_days: Option<u32>,
    pub(super) replica: bool,
}

fn unbuilt() -> LocationError {
    LocationError::Invalid("Azure Blob locations are not built yet".into())
}

impl AzureLocation {
    pub(super) fn connect(cfg: &AzureConfig) -> Result<Self, LocationError> {
        Ok(Self { account: cfg.account.clone(), container: cfg.container.clone(), prefix: cfg.prefix.clone(), immutable_days: cfg.immutable_days, replica: cfg.replica })
    }
    pub(super) fn describe(&self) -> String {
        format!("azure://{}/{}/{}", self.account, self.container, self.prefix)
    }
    pub(super) async fn validate(&self) -> Result<(), LocationError> {
        Err(unbuilt())
    }
    pub(super) async fn list(&self, _prefix: &str) -> Result<Vec<StoredObject>, LocationError> {
        Err(unbuilt())
    }
    pub(super) async fn open(&self, _key: &str, _version: Option<&str>) -> Result<(u64, ObjectReader), LocationError> {
        Err(unbuilt())
    }
    pub(super) async fn open_start(&self, _key: &str, _version: Option<&str>, _n: u64) -> Result<(u64, ObjectReader), LocationError> {
        Err(unbuilt())
    }
    pub(super) async fn inventory(&self, _prefix: &str) -> Result<Inventory, LocationError> {
        Err(unbuilt())
    }
    pub(super) async fn delete(&self, _key: &str, _version: Option<&str>) -> Result<(), LocationError> {
        Err(unbuilt())
    }
    pub(super) async fn head(&self, _key: &str, _version: Option<&str>) -> Result<ObjectInfo, LocationError> {
        Err(unbuilt())
    }
}

pub struct AzureUpload {}

impl AzureUpload {
    pub(super) fn new(_loc: AzureLocation, _key: &str, _metadata: std::collections::BTreeMap<String, String>) -> Self {
        Self {}
    }
    pub(super) async fn write(&mut self, _bytes: &[u8]) -> Result<(), LocationError> {
        Err(unbuilt())
    }
    pub(super) async fn finish(self) -> Result<(), LocationError> {
        Err(unbuilt())
    }
    pub(super) async fn abort(self) {}
}
