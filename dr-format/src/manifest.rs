//! The manifest's types: what a point holds, readable without decrypting its archive. The
//! manifest is a small JSON document, encrypted in the format of this crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::{Category, Entry, Mode};

/// The manifest: what a point holds, readable without decrypting the archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    pub cluster_id: String,
    pub point_id: String,
    pub created_at: String,
    pub completed_at: String,
    pub mode: Mode,
    pub policy: String,
    /// The tool and version that wrote the point.
    pub written_by: String,
    pub archive: ArchiveInfo,
    pub counts: Counts,
    /// End of the Object Lock retention, when the location is immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<String>,
    /// The resource (plural) of each kind the point holds, keyed like `counts.byKind`, as
    /// the source cluster served it: what a restore's RBAC names. Empty in points written
    /// before it was recorded and in points made from files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveInfo {
    pub object: String,
    /// Size of the stored (encrypted) archive.
    pub stored_bytes: u64,
    /// Size after compression, before encryption.
    pub compressed_bytes: u64,
    /// Size of the catalog before compression.
    pub catalog_bytes: u64,
    /// SHA-256 of the stored archive, hex.
    pub sha256: String,
    pub chunk_size: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub total: u64,
    pub by_category: BTreeMap<Category, u64>,
    /// Keyed by `Kind` or `Kind.group`.
    pub by_kind: BTreeMap<String, u64>,
}

impl Counts {
    pub fn add(&mut self, entry: &Entry) {
        self.total += 1;
        *self.by_category.entry(entry.category).or_default() += 1;
        *self.by_kind.entry(entry.kind_key()).or_default() += 1;
    }
}
