//! Reading a point: its manifest (telling a forged point from a wrong passphrase), then its
//! catalog, decrypted and decompressed on their own threads, checked against the manifest.

use super::{PointSummary, Counts, MANIFEST_OBJECT, MANIFEST_VERSION, MAX_CATALOG_LINE, MAX_MANIFEST_BYTES, Manifest, PointError, Unlocker, object_key, rfc3339};
use std::io::{self, BufRead, Read};
use std::sync::Arc;

use aws_lc_rs::digest;

use crate::format::blocks::{self};
use crate::catalog::Entry;
use crate::format::crypto::MasterKey;
use crate::format::{self, Binding, DecryptReader, FormatError, Header, Role};
use crate::location::{Location, LocationError};

/// Other points tried when a point does not open with the passphrase, before the
/// passphrase is called wrong (each costs one key derivation, about 80 ms).
const POINTS_TRIED: usize = 50;

/// Reads the manifest of `chosen`, one of `points`. A point whose manifest does not open with
/// this passphrase may be forged (a writer to the location can add points with any name and
/// key) or the passphrase may be wrong: it is wrong only if no other point of the cluster
/// opens either. When another does, the error names the newest older one that opens.
pub async fn open_manifest(location: &Location, cluster_id: &str, points: &[PointSummary], chosen: &PointSummary, unlocker: &Arc<Unlocker>) -> Result<Manifest, PointError> {
    let err = match read_manifest(location, cluster_id, &chosen.id, unlocker).await {
        Ok(m) => return Ok(m),
        Err(e) if e.is_wrong_passphrase() => e,
        Err(e) => return Err(e),
    };
    // The older points first, newest first: the one to suggest; then the newer ones.
    let older = points.iter().filter(|p| p.complete && p.id != chosen.id && p.time <= chosen.time);
    let newer = points.iter().filter(|p| p.complete && p.id != chosen.id && p.time > chosen.time);
    for other in older.chain(newer).take(POINTS_TRIED) {
        if read_manifest(location, cluster_id, &other.id, unlocker).await.is_ok() {
            tracing::warn!(point = %chosen.id, opens = %other.id, "a point does not open with the passphrase while another does: damaged or forged");
            return Err(PointError::DoesNotOpen { point: chosen.id.clone(), opens: other.id.clone(), at: rfc3339(other.time) });
        }
    }
    Err(err)
}

/// Opens the manifest of every complete point of `points` (4 at a time, one key derivation
/// each), in their order; `None` for an incomplete point. As in [`open_manifest`], a point
/// that does not open is the passphrase's fault only when none opens: then this fails with
/// the wrong passphrase. Otherwise such a point is damaged or forged (`DoesNotOpen`, naming
/// the newest point that opens) and only its entry carries the error.
pub async fn open_manifests(
    location: &Location,
    cluster_id: &str,
    points: &[PointSummary],
    unlocker: &Arc<Unlocker>,
) -> Result<Vec<Option<Result<Manifest, PointError>>>, PointError> {
    use futures::{stream, StreamExt};
    let mut opened: Vec<Option<Result<Manifest, PointError>>> = stream::iter(points)
        .map(|p| async move {
            if p.complete {
                Some(read_manifest(location, cluster_id, &p.id, unlocker).await)
            } else {
                None
            }
        })
        .buffered(4)
        .collect()
        .await;
    let newest_open = points.iter().zip(&opened).find(|(_, m)| matches!(m, Some(Ok(_)))).map(|(p, _)| p);
    for slot in opened.iter_mut() {
        if !matches!(slot, Some(Err(e)) if e.is_wrong_passphrase()) {
            continue;
        }
        let Some(Err(e)) = slot.take() else { unreachable!("matched above") };
        let Some(opens) = newest_open else { return Err(e) };
        let PointError::Format { point, .. } = e else { unreachable!("a wrong passphrase is a format error") };
        *slot = Some(Err(PointError::DoesNotOpen { point, opens: opens.id.clone(), at: rfc3339(opens.time) }));
    }
    Ok(opened)
}

/// Reads and decrypts a point's manifest. When the current version does not authenticate and
/// the location keeps versions (a versioned, Object Lock bucket), the older versions are
/// tried, oldest first: kubectl-dr never overwrites, so a newer version is someone else's
/// write over the genuine one, which Object Lock still holds.
pub async fn read_manifest(
    location: &Location,
    cluster_id: &str,
    point_id: &str,
    unlocker: &Arc<Unlocker>,
) -> Result<Manifest, PointError> {
    let key = object_key(cluster_id, point_id, MANIFEST_OBJECT);
    let current = match location.open(&key).await {
        Ok(r) => r,
        Err(LocationError::NotFound { .. }) => return Err(PointError::Incomplete { point: point_id.into() }),
        Err(e) => return Err(e.into()),
    };
    let err = match open_manifest_bytes(current, cluster_id, point_id, unlocker).await {
        Ok(m) => return Ok(m),
        Err(e @ PointError::Location(_)) => return Err(e),
        Err(e) => e,
    };
    let versions = location.versions(&key).await;
    for version in versions.iter().take(versions.len().saturating_sub(1)) {
        let Ok(reader) = location.open_version(&key, version).await else { continue };
        if let Ok(m) = open_manifest_bytes(reader, cluster_id, point_id, unlocker).await {
            tracing::warn!(
                point = point_id,
                version = %version.id,
                newer_versions = versions.len() - 1,
                "the current version of this point's manifest does not authenticate ({err}); it was overwritten, and the older version kubectl-dr wrote is read instead"
            );
            return Ok(m);
        }
    }
    Err(err)
}

async fn open_manifest_bytes(
    (len, mut reader): (u64, crate::location::ObjectReader),
    cluster_id: &str,
    point_id: &str,
    unlocker: &Arc<Unlocker>,
) -> Result<Manifest, PointError> {
    let fmt_err = |source| PointError::Format { point: point_id.into(), file: "manifest", source };
    if len > MAX_MANIFEST_BYTES {
        return Err(fmt_err(FormatError::NotARestorePoint));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // Read no more than the cap, whatever the size said.
    tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::AsyncReadExt::take(&mut reader, MAX_MANIFEST_BYTES + 1), &mut bytes)
        .await
        .map_err(|e| fmt_err(FormatError::Io(e)))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(fmt_err(FormatError::NotARestorePoint));
    }
    let expected = Binding { cluster_id: cluster_id.into(), point_id: point_id.into(), role: Role::Manifest };
    let header = Header::read(&mut &bytes[..]).map_err(fmt_err)?;
    header.check_binding(&expected).map_err(fmt_err)?;
    let master = unlocker.key(header.kdf()).await;
    let mut plain = Vec::new();
    DecryptReader::new(&bytes[header.len()..], &header, &master)
        .map_err(fmt_err)?
        .read_to_end(&mut plain)
        .map_err(|e| fmt_err(FormatError::from_io(e)))?;
    let manifest: Manifest = serde_json::from_slice(&plain)
        .map_err(|e| PointError::Unreadable { point: point_id.into(), detail: format!("manifest: {e}") })?;
    zeroize::Zeroize::zeroize(&mut plain);
    if manifest.format_version != MANIFEST_VERSION {
        return Err(PointError::UnsupportedManifest { point: point_id.into(), version: manifest.format_version });
    }
    if manifest.cluster_id != cluster_id || manifest.point_id != point_id {
        return Err(PointError::Unreadable { point: point_id.into(), detail: "manifest names another point".into() });
    }
    Ok(manifest)
}

/// Opens the archive a manifest describes. Where the location keeps versions and the archive
/// has more than one, someone wrote over it: the oldest version whose SHA-256 is the
/// manifest's is read (one extra download of each candidate), and the choice is logged.
async fn open_archive(location: &Location, manifest: &Manifest) -> Result<(u64, crate::location::ObjectReader), PointError> {
    let point = &manifest.point_id;
    let key = object_key(&manifest.cluster_id, point, &manifest.archive.object);
    let versions = location.versions(&key).await;
    if versions.len() > 1 {
        for version in versions.iter().filter(|v| v.size == manifest.archive.stored_bytes) {
            let Ok((_, mut reader)) = location.open_version(&key, version).await else { continue };
            let hashed = crate::location::sha256(&mut reader).await.ok().map(|(_, sum)| hex::encode(sum));
            if hashed.as_deref() == Some(manifest.archive.sha256.as_str()) {
                if version.id != versions.last().expect("not empty").id {
                    tracing::warn!(
                        point = %point,
                        version = %version.id,
                        newer_versions = versions.len() - 1,
                        "this point's archive was overwritten; the version whose hash its manifest names is read instead"
                    );
                }
                return location.open_version(&key, version).await.map_err(Into::into);
            }
        }
    }
    match location.open(&key).await {
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
pub async fn read_entries<F>(
    location: &Location,
    manifest: &Manifest,
    unlocker: &Arc<Unlocker>,
    mut on_entry: F,
) -> Result<Counts, PointError>
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
        header
            .check_binding(&Binding { cluster_id: manifest.cluster_id.clone(), point_id: point.clone(), role: Role::Archive })
            .map_err(fmt_err)?;
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
fn decrypt_on_own_thread<R: Read + Send + 'static>(
    mut decrypt: DecryptReader<R>,
) -> (QueueReader, std::thread::JoinHandle<io::Result<R>>) {
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

/// Decrypts a point in full and checks it against its manifest; returns its object count.
pub async fn verify_point(
    location: &Location,
    cluster_id: &str,
    point_id: &str,
    unlocker: &Arc<Unlocker>,
) -> Result<u64, PointError> {
    let manifest = read_manifest(location, cluster_id, point_id, unlocker).await?;
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
