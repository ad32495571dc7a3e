//! Reading a point: its manifest (the version kubectl-dr wrote), then its
//! catalog, decrypted and decompressed on their own threads, checked against the manifest.

use super::{object_key, Counts, Manifest, PointError, PointSummary, Unlocker, MANIFEST_OBJECT, MANIFEST_VERSION, MAX_CATALOG_LINE, MAX_MANIFEST_BYTES};
use std::io::{self, BufRead, Read};
use std::sync::Arc;

use aws_lc_rs::digest;

use crate::catalog::Entry;
use crate::format::blocks::{self};
use crate::format::crypto::MasterKey;
use crate::format::{self, Binding, DecryptReader, FormatError, Header, Role};
use crate::location::{History, Location, LocationError};

/// Reads and decrypts the manifest of a listed point: the version kubectl-dr wrote (see
/// [`PointSummary::manifest`]), whatever was written over it since. Where the listing could
/// not see versions, the current object is all there is.
pub async fn read_manifest(location: &Location, cluster_id: &str, point: &PointSummary, unlocker: &Arc<Unlocker>) -> Result<Manifest, PointError> {
    let head = read_manifest_head(location, cluster_id, point).await?;
    head.decrypt(location, unlocker).await
}

/// A manifest's size and header, fetched ahead of its body: what a reader checks (the binding,
/// the KDF scheme, then the key) before it downloads the rest. Anyone holding the write
/// credentials can plant points with manifests of any size; one that was not written with the
/// passphrase costs a ranged read of its header to refuse, never its body.
pub(super) struct ManifestHead {
    point: PointSummary,
    cluster_id: String,
    size: u64,
    pub(super) header: Header,
}

/// Reads the header of a listed point's manifest (the version kubectl-dr wrote, where the
/// listing saw versions) and checks it was written for this point, without deriving a key.
pub(super) async fn read_manifest_head(location: &Location, cluster_id: &str, point: &PointSummary) -> Result<ManifestHead, PointError> {
    let point_id = point.id.as_str();
    let fmt_err = |source| PointError::Format { point: point_id.into(), file: "manifest", source };
    let (size, mut reader) = open_manifest(location, cluster_id, point, Some(format::MAX_HEADER_LEN as u64)).await?;
    // Refused from its size alone, before anything is read.
    if size > MAX_MANIFEST_BYTES {
        return Err(PointError::ManifestTooLarge { point: point_id.into() });
    }
    let mut start = Vec::with_capacity(format::MAX_HEADER_LEN);
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut start).await.map_err(|e| fmt_err(FormatError::Io(e)))?;
    let header = Header::read(&mut &start[..]).map_err(fmt_err)?;
    let expected = Binding { cluster_id: cluster_id.into(), point_id: point_id.into(), role: Role::Manifest };
    header.check_binding(&expected).map_err(|e| match e {
        // Found under this cluster's ID but naming another: planted or moved. Never advice to
        // restore the other cluster.
        FormatError::WrongCluster { found, .. } => PointError::NamesAnotherCluster { point: point_id.into(), found },
        e => fmt_err(e),
    })?;
    Ok(ManifestHead { point: point.clone(), cluster_id: cluster_id.into(), size, header })
}

/// Opens a listed point's manifest: the version kubectl-dr wrote where the listing saw
/// versions, else the current object; its first `first` bytes only when given.
async fn open_manifest(
    location: &Location,
    cluster_id: &str,
    point: &PointSummary,
    first: Option<u64>,
) -> Result<(u64, crate::location::ObjectReader), PointError> {
    let key = object_key(cluster_id, &point.id, MANIFEST_OBJECT);
    let Some(version) = &point.manifest else { return Err(PointError::Incomplete { point: point.id.clone() }) };
    let version = point.versions_seen.then_some(version);
    let opened = match (first, version) {
        (Some(n), version) => location.open_start(&key, version, n).await,
        (None, Some(version)) => location.open_version(&key, version).await,
        (None, None) => location.open(&key).await,
    };
    match opened {
        Ok(r) => Ok(r),
        Err(LocationError::NotFound { .. }) => Err(PointError::Incomplete { point: point.id.clone() }),
        Err(e) => Err(e.into()),
    }
}

impl ManifestHead {
    /// Whether the header's key derivation is the per-point one of format versions 1 and 2
    /// (one full PBKDF2 for this point alone), rather than version 3's per-cluster one.
    pub(super) fn legacy_kdf(&self) -> bool {
        self.header.is_legacy_kdf()
    }

    /// Whether the header passes the key check with this passphrase (nothing more is read).
    pub(super) async fn key_checks(&self, unlocker: &Arc<Unlocker>) -> bool {
        self.header.check_key(&*unlocker.key(self.header.kdf()).await).is_ok()
    }

    /// Derives the key, checks it against the header (a wrong passphrase, a forged or altered
    /// header stop here), and only then downloads the manifest whole, holds its header to the
    /// one checked, and decrypts it.
    pub(super) async fn decrypt(self, location: &Location, unlocker: &Arc<Unlocker>) -> Result<Manifest, PointError> {
        let point_id = self.point.id.as_str();
        let fmt_err = |source| PointError::Format { point: point_id.into(), file: "manifest", source };
        let master = unlocker.key(self.header.kdf()).await;
        self.header.check_key(&master).map_err(fmt_err)?;
        super::MANIFEST_READS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (_, reader) = open_manifest(location, &self.cluster_id, &self.point, None).await?;
        let mut bytes = Vec::with_capacity(self.size.min(MAX_MANIFEST_BYTES) as usize);
        // Read no more than the cap, whatever the size said.
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::AsyncReadExt::take(reader, MAX_MANIFEST_BYTES + 1), &mut bytes)
            .await
            .map_err(|e| fmt_err(FormatError::Io(e)))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(PointError::ManifestTooLarge { point: point_id.into() });
        }
        // The same header as the one the key was checked against (a pinned version cannot
        // change; a current object written over in between is read as what it now is: refused).
        let header = self.header.as_bytes();
        if !bytes.starts_with(header) {
            return Err(PointError::Unreadable { point: point_id.into(), detail: "its manifest changed while it was read".into() });
        }
        let mut plain = Vec::new();
        DecryptReader::new(&bytes[header.len()..], &self.header, &master)
            .map_err(fmt_err)?
            .read_to_end(&mut plain)
            .map_err(|e| fmt_err(FormatError::from_io(e)))?;
        let manifest: Result<Manifest, PointError> =
            serde_json::from_slice(&plain).map_err(|e| PointError::Unreadable { point: point_id.into(), detail: format!("manifest: {e}") });
        zeroize::Zeroize::zeroize(&mut plain);
        let manifest = manifest?;
        if manifest.format_version != MANIFEST_VERSION {
            return Err(PointError::UnsupportedManifest { point: point_id.into(), version: manifest.format_version });
        }
        if manifest.cluster_id != self.cluster_id || manifest.point_id != point_id {
            return Err(PointError::Unreadable { point: point_id.into(), detail: "manifest names another point".into() });
        }
        Ok(manifest)
    }
}

/// Opens the archive a manifest describes: the version kubectl-dr wrote, where the location
/// lists versions (the first; any later one is someone else's write, reported by the
/// listing), else the current object.
async fn open_archive(location: &Location, manifest: &Manifest) -> Result<(u64, crate::location::ObjectReader), PointError> {
    let point = &manifest.point_id;
    let key = object_key(&manifest.cluster_id, point, &manifest.archive.object);
    let (history, seen) = location.history(&key).await?;
    let opened = match history.pinned() {
        Some(version) if seen == History::Versions => {
            if let Some(later) = history.later().first() {
                tracing::warn!(point = %point, object = %key, later_version = %later.id, "this point's archive was written over after kubectl-dr wrote it; the first version is read");
            }
            location.open_version(&key, version).await
        }
        None if seen == History::Versions => return Err(PointError::ArchiveMissing { point: point.clone() }),
        _ => location.open(&key).await,
    };
    match opened {
        Ok(r) => Ok(r),
        Err(LocationError::NotFound { .. }) => Err(PointError::ArchiveMissing { point: point.clone() }),
        Err(e) => Err(e.into()),
    }
}

/// Hashes what passes through.
struct Hashing<R> {
    inner: R,
    sha: digest::Context,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

/// Streams every entry of a point's archive to `on_entry` (called on a blocking thread),
/// after checking the archive's size against the manifest. Each chunk is authenticated
/// before its entries are handed out; the archive's SHA-256 and entry count are checked at
/// the end, so a caller that must not act on a damaged point should collect first and act
/// after this returns `Ok` (as `verify` and the restore do).
pub async fn read_entries<F>(location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>, mut on_entry: F) -> Result<Counts, PointError>
where
    F: FnMut(Entry) -> Result<(), String> + Send + 'static,
{
    let point = manifest.point_id.clone();
    let (len, reader) = open_archive(location, manifest).await?;
    let expected = manifest.archive.stored_bytes;
    if len < expected {
        return Err(PointError::ArchiveTruncated { point, expected, found: len });
    }
    if len > expected {
        return Err(PointError::ArchiveAppended { point, expected, extra: len - expected });
    }
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let unlocker = unlocker.clone();
    let manifest = manifest.clone();
    tokio::task::spawn_blocking(move || {
        let point = manifest.point_id.clone();
        let fmt_err = |source| PointError::Format { point: point.clone(), file: "archive", source };
        let mut hashing = Hashing { inner: bridge, sha: digest::Context::new(&digest::SHA256) };
        let header = Header::read(&mut hashing).map_err(fmt_err)?;
        header.check_binding(&Binding { cluster_id: manifest.cluster_id.clone(), point_id: point.clone(), role: Role::Archive }).map_err(fmt_err)?;
        let master = unlocker.key_blocking(header.kdf());
        let decrypt = DecryptReader::new(hashing, &header, &master).map_err(fmt_err)?;
        let (plaintext, decryptor) = decrypt_on_own_thread(decrypt);
        let mut lines = io::BufReader::with_capacity(1 << 20, blocks::parallel_reader(plaintext, decompression_threads()));
        let mut counts = Counts::default();
        let mut line = Vec::with_capacity(4096);
        let parsed = loop {
            line.clear();
            match (&mut lines).take(MAX_CATALOG_LINE as u64 + 1).read_until(b'\n', &mut line) {
                Ok(0) => break Ok(()),
                Ok(_) if line.len() > MAX_CATALOG_LINE => break Err(PointError::LineTooLong { point: point.clone(), line: counts.total + 1 }),
                Ok(_) => {}
                Err(e) => break Err(read_error(&point, e)),
            }
            let entry: Entry = match serde_json::from_slice(&line) {
                Ok(e) => e,
                Err(e) => break Err(PointError::Unreadable { point: point.clone(), detail: format!("catalog line {}: {e}", counts.total + 1) }),
            };
            counts.add(&entry);
            if let Err(e) = on_entry(entry) {
                break Err(PointError::Callback(e));
            }
        };
        // Dropping the reading side stops the decrypting thread if it is still running.
        drop(lines);
        let hashing = decryptor.join().expect("decrypting thread panicked");
        parsed?;
        let hashing = hashing.map_err(|e| read_error(&point, e))?;
        if hex::encode(hashing.sha.finish().as_ref()) != manifest.archive.sha256 {
            return Err(PointError::ArchiveHashMismatch { point });
        }
        if counts.total != manifest.counts.total {
            return Err(PointError::CountMismatch { point, expected: manifest.counts.total, found: counts.total });
        }
        Ok(counts)
    })
    .await
    .expect("archive reader panicked")
}

/// Threads that decompress catalog blocks: every core, up to four.
fn decompression_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4)
}

/// Plaintext chunks queued between the decrypting thread and the reader; bounds memory.
const DECRYPT_QUEUE: usize = 4;

/// Runs `decrypt` on its own thread, handing plaintext over through a small queue, so
/// decryption and decompression use two cores. The thread returns the underlying reader
/// (for its hash) once the stream ends, or the first error, which the reader also sees.
fn decrypt_on_own_thread<R: Read + Send + 'static>(mut decrypt: DecryptReader<R>) -> (QueueReader, std::thread::JoinHandle<io::Result<R>>) {
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(DECRYPT_QUEUE);
    let handle = std::thread::spawn(move || {
        loop {
            let mut buf = vec![0u8; format::DEFAULT_CHUNK_SIZE as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match decrypt.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => {
                        let kind = e.kind();
                        let _ = tx.send(Err(e));
                        return Err(io::Error::new(kind, "the archive stream failed (reported by the reader)"));
                    }
                }
            }
            if filled == 0 {
                return Ok(decrypt.into_inner());
            }
            buf.truncate(filled);
            if tx.send(Ok(buf)).is_err() {
                // The reader stopped early; it reports its own reason.
                return Ok(decrypt.into_inner());
            }
        }
    });
    (QueueReader { rx, cur: Vec::new(), pos: 0 }, handle)
}

/// The reading end of [`decrypt_on_own_thread`].
struct QueueReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for QueueReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    self.cur = next;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decrypts and decompresses an archive (positioned after `header`), discarding the
/// catalog; returns its size. For benchmarks: the read path without parsing or storage.
pub fn decrypt_catalog_bytes<R: Read + Send + 'static>(archive: R, header: &Header, key: &MasterKey) -> Result<u64, FormatError> {
    let (plaintext, decryptor) = decrypt_on_own_thread(DecryptReader::new(archive, header, key)?);
    let mut catalog = blocks::parallel_reader(plaintext, decompression_threads());
    let n = io::copy(&mut catalog, &mut io::sink()).map_err(FormatError::from_io)?;
    decryptor.join().expect("decrypting thread panicked").map_err(FormatError::from_io)?;
    Ok(n)
}

fn read_error(point: &str, e: io::Error) -> PointError {
    match FormatError::from_io(e) {
        FormatError::Io(e) if e.kind() == io::ErrorKind::Other || e.kind() == io::ErrorKind::InvalidData => {
            // Decompression reports its errors as plain I/O errors; authenticated data that does not
            // decompress means a faulty writer, not storage damage.
            PointError::Unreadable { point: point.into(), detail: e.to_string() }
        }
        source => PointError::Format { point: point.into(), file: "archive", source },
    }
}

/// Decrypts a point, named by ID, in full and checks it against its manifest; returns its
/// object count. The point is opened as [`super::Which::Id`] opens one.
pub async fn verify_point(location: &Location, cluster_id: &str, point_id: &str, unlocker: &Arc<Unlocker>) -> Result<u64, PointError> {
    let manifest = super::choose(location, cluster_id, super::Which::Id(point_id), unlocker).await?.manifest;
    verify_entries(location, &manifest, unlocker).await
}

/// Decrypts the archive a (decrypted) manifest describes in full and checks it against the
/// manifest's counts; returns its object count.
pub async fn verify_entries(location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>) -> Result<u64, PointError> {
    read_checked_entries(location, manifest, unlocker, |_| Ok(())).await
}

/// Every object of the point, in memory, once it has been read whole and checked
/// ([`read_checked_entries`]): for `diff` and drills, which compare points as a whole.
pub async fn read_all_entries(location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>) -> Result<Vec<Entry>, PointError> {
    let entries = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = entries.clone();
    read_checked_entries(location, manifest, unlocker, move |e| {
        sink.lock().expect("not poisoned").push(e);
        Ok(())
    })
    .await?;
    let entries = std::mem::take(&mut *entries.lock().expect("not poisoned"));
    Ok(entries)
}

/// [`read_entries`], then the counts checked against the manifest's; returns the object count.
/// The caller may use what it was handed only once this succeeds.
pub async fn read_checked_entries<F>(location: &Location, manifest: &Manifest, unlocker: &Arc<Unlocker>, on_entry: F) -> Result<u64, PointError>
where
    F: FnMut(Entry) -> Result<(), String> + Send + 'static,
{
    let counts = read_entries(location, manifest, unlocker, on_entry).await?;
    if counts != manifest.counts {
        return Err(PointError::CountMismatch { point: manifest.point_id.clone(), expected: manifest.counts.total, found: counts.total });
    }
    Ok(counts.total)
}
