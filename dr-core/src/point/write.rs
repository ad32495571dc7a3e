//! Writing a point: the catalog compressed, encrypted and uploaded as it is produced, then the
//! manifest, last, so that a point without one is incomplete.

use super::{
    io_unreadable, new_point_id, object_key, rfc3339, validate_cluster_id, ArchiveInfo, Counts, Manifest, PointError, ARCHIVE_OBJECT, MANIFEST_OBJECT,
    MANIFEST_VERSION,
};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::Arc;

use aws_lc_rs::digest;
use time::OffsetDateTime;

use crate::catalog::{Entry, Mode};
use crate::format::blocks::BlockWriter;
use crate::format::crypto::{KdfParams, MasterKey, Passphrase};
use crate::format::{self, Binding, EncryptWriter, Role};
use crate::location::{Location, ObjectUpload, PART_SIZE};

/// Collects the encrypted archive for upload while hashing it.
struct UploadBuffer {
    pending: Vec<u8>,
    sha: digest::Context,
    bytes: u64,
}

impl Write for UploadBuffer {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(b);
        self.sha.update(b);
        self.bytes += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts bytes passing through.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type ArchiveEncoder = BlockWriter<Counting<EncryptWriter<UploadBuffer>>>;

/// Writes one restore point: `add` entries, then `finish`. Memory stays at about one upload
/// part whatever the number of entries. If it is dropped or fails before `finish`
/// returns, no manifest exists and the point stays incomplete.
pub struct PointWriter {
    location: Location,
    cluster_id: String,
    point_id: String,
    created_at: OffsetDateTime,
    /// The writer's clock against this machine's: zero but for [`PointWriter::begin_as`].
    clock: time::Duration,
    mode: Mode,
    policy: String,
    key: Arc<MasterKey>,
    upload: Option<ObjectUpload>,
    encoder: Option<ArchiveEncoder>,
    line: Vec<u8>,
    catalog_bytes: u64,
    counts: Counts,
    resources: BTreeMap<String, String>,
}

impl PointWriter {
    /// Starts a new point for `cluster_id` with a fresh salt under the cluster's master
    /// (format version 3: PBKDF2 at 600,000 iterations, then HKDF).
    pub async fn begin(location: &Location, cluster_id: &str, passphrase: &Passphrase, mode: Mode, policy: &str) -> Result<Self, PointError> {
        let created_at = OffsetDateTime::now_utc();
        Self::begin_as(location, cluster_id, passphrase, mode, policy, new_point_id(created_at), created_at).await
    }

    /// [`PointWriter::begin`] with the point's ID and creation time given: what a writer holding
    /// the passphrase can do to date a point as it likes (its clock set to `created_at`, so the
    /// completion it states follows as long after). For tests of what readers make of such
    /// points; the product's writers use `begin`.
    #[doc(hidden)]
    pub async fn begin_as(
        location: &Location,
        cluster_id: &str,
        passphrase: &Passphrase,
        mode: Mode,
        policy: &str,
        point_id: String,
        created_at: OffsetDateTime,
    ) -> Result<Self, PointError> {
        validate_cluster_id(cluster_id)?;
        let pass = passphrase.clone();
        let params = KdfParams::generate(cluster_id);
        let key = tokio::task::spawn_blocking(move || Arc::new(MasterKey::derive(&pass, params))).await.expect("key derivation panicked");
        Self::start(location, cluster_id, key, mode, policy, point_id, created_at).await
    }

    /// [`PointWriter::begin_as`] with the cluster's key from `unlocker`, derived once for every
    /// point it writes (each point still has its own salt and key): for benchmarks and tests
    /// that write thousands of points, which would otherwise run PBKDF2 for each. The
    /// product's writers write one point per run and use `begin`.
    #[doc(hidden)]
    pub async fn begin_as_with(
        location: &Location,
        cluster_id: &str,
        unlocker: &Arc<super::Unlocker>,
        mode: Mode,
        policy: &str,
        point_id: String,
        created_at: OffsetDateTime,
    ) -> Result<Self, PointError> {
        validate_cluster_id(cluster_id)?;
        let key = unlocker.key(KdfParams::generate(cluster_id)).await;
        Self::start(location, cluster_id, key, mode, policy, point_id, created_at).await
    }

    async fn start(
        location: &Location,
        cluster_id: &str,
        key: Arc<MasterKey>,
        mode: Mode,
        policy: &str,
        point_id: String,
        created_at: OffsetDateTime,
    ) -> Result<Self, PointError> {
        let binding = Binding { cluster_id: cluster_id.into(), point_id: point_id.clone(), role: Role::Archive };
        let sink = UploadBuffer { pending: Vec::with_capacity(PART_SIZE + 1024 * 1024), sha: digest::Context::new(&digest::SHA256), bytes: 0 };
        let enc = EncryptWriter::new(sink, &key, &binding, format::DEFAULT_CHUNK_SIZE).map_err(io_unreadable(&point_id))?;
        let encoder = BlockWriter::new(Counting { inner: enc, bytes: 0 }).map_err(io_unreadable(&point_id))?;
        let upload = location.create(&object_key(cluster_id, &point_id, ARCHIVE_OBJECT)).await?;
        Ok(Self {
            location: location.clone(),
            cluster_id: cluster_id.into(),
            point_id,
            clock: created_at - OffsetDateTime::now_utc(),
            created_at,
            mode,
            policy: policy.into(),
            key,
            upload: Some(upload),
            encoder: Some(encoder),
            line: Vec::with_capacity(4096),
            catalog_bytes: 0,
            counts: Counts::default(),
            resources: BTreeMap::new(),
        })
    }

    pub fn point_id(&self) -> &str {
        &self.point_id
    }

    /// Entries added so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Records the resource (plural) that serves `kind_key` (`Kind` or `Kind.group`); the
    /// manifest lists it for the kinds the point holds.
    pub fn note_resource(&mut self, kind_key: &str, plural: &str) {
        self.resources.insert(kind_key.to_owned(), plural.to_owned());
    }

    /// Catalog bytes (before compression) added so far.
    pub fn catalog_bytes(&self) -> u64 {
        self.catalog_bytes
    }

    /// Appends one object to the catalog.
    pub async fn add(&mut self, entry: &Entry) -> Result<(), PointError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, entry).expect("JSON values serialize");
        self.line.push(b'\n');
        let encoder = self.encoder.as_mut().expect("writer not finished");
        encoder.write_all(&self.line).map_err(io_unreadable(&self.point_id))?;
        self.catalog_bytes += self.line.len() as u64;
        self.counts.add(entry);
        if self.pending().len() >= PART_SIZE {
            let mut part = std::mem::take(self.pending());
            self.upload.as_mut().expect("writer not finished").write(&part).await?;
            // Hand the emptied buffer back, so its capacity is reused for the next part.
            part.clear();
            *self.pending() = part;
        }
        Ok(())
    }

    /// Encrypted bytes waiting to be uploaded.
    fn pending(&mut self) -> &mut Vec<u8> {
        &mut self.encoder.as_mut().expect("writer not finished").get_mut().inner.get_mut().pending
    }

    /// Seals and uploads the archive, then writes the manifest, which makes the point complete.
    pub async fn finish(mut self) -> Result<Manifest, PointError> {
        let encoder = self.encoder.take().expect("writer not finished");
        let counting = encoder.finish().map_err(io_unreadable(&self.point_id))?;
        let compressed_bytes = counting.bytes;
        let sink = counting.inner.finish().map_err(io_unreadable(&self.point_id))?;
        let mut upload = self.upload.take().expect("writer not finished");
        let written = async {
            upload.write(&sink.pending).await?;
            upload.finish().await
        }
        .await;
        written?;
        let manifest = Manifest {
            format_version: MANIFEST_VERSION,
            cluster_id: self.cluster_id.clone(),
            point_id: self.point_id.clone(),
            created_at: rfc3339(self.created_at),
            completed_at: rfc3339(OffsetDateTime::now_utc() + self.clock),
            mode: self.mode,
            policy: self.policy.clone(),
            written_by: concat!("kubectl-dr ", env!("CARGO_PKG_VERSION")).into(),
            archive: ArchiveInfo {
                object: ARCHIVE_OBJECT.into(),
                stored_bytes: sink.bytes,
                compressed_bytes,
                catalog_bytes: self.catalog_bytes,
                sha256: hex::encode(sink.sha.finish().as_ref()),
                chunk_size: format::DEFAULT_CHUNK_SIZE,
            },
            resources: std::mem::take(&mut self.resources).into_iter().filter(|(k, _)| self.counts.by_kind.contains_key(k)).collect(),
            counts: std::mem::take(&mut self.counts),
            retained_until: self.location.immutable_days().map(|d| rfc3339(OffsetDateTime::now_utc() + time::Duration::days(d as i64))),
        };
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        let binding = Binding { cluster_id: self.cluster_id.clone(), point_id: self.point_id.clone(), role: Role::Manifest };
        let sealed = format::seal_all(&json, &self.key, &binding, format::DEFAULT_CHUNK_SIZE);
        self.location.put(&object_key(&self.cluster_id, &self.point_id, MANIFEST_OBJECT), sealed).await?;
        Ok(manifest)
    }

    /// Gives up on the point: no manifest is written, and the partial archive is removed
    /// where the credentials allow.
    pub async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort().await;
        }
    }
}
