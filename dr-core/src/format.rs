//! The encrypted file format of restore points: an authenticated header followed by
//! AES-256-GCM chunks (a STREAM construction). Pure and synchronous.
//!
//! Version 2 (written) stores a random IV drawn by the crypto module in front of every
//! chunk and binds the chunk's index and last-chunk flag as associated data, so encryption
//! is the module's approved randomized-nonce service (FIPS builds can write backups).
//! Version 1 (read only) built each nonce from a per-file prefix, the index and the flag.
//!
//! `docs/format.md` is the specification; keep the two in step.

use std::io::{self, Read, Write};

use aws_lc_rs::{aead, constant_time, digest, hmac};
use zeroize::Zeroize;

use crate::crypto::{FileKeys, KdfParams, MasterKey, KEY_CHECK_LEN, MAX_ITERATIONS, SALT_LEN};

/// First bytes of every file; the CR LF catches text-mode mangling.
pub const MAGIC: [u8; 8] = *b"KDR-RP\r\n";
/// The format version this code writes.
pub const VERSION: u8 = 2;
/// The format versions this code reads.
pub const READ_VERSIONS: std::ops::RangeInclusive<u8> = 1..=2;
/// Length of the random IV in front of every version 2 chunk.
pub const IV_LEN: usize = aead::NONCE_LEN;
/// Plaintext bytes per chunk that writers use.
pub const DEFAULT_CHUNK_SIZE: u32 = 256 * 1024;
/// Bounds a reader accepts for the chunk size (the upper one bounds its memory).
pub const MIN_CHUNK_SIZE: u32 = 64;
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Length of the AES-GCM tag that ends each chunk.
pub const TAG_LEN: usize = 16;
/// Random bytes, unique per file: the front of every version 1 chunk nonce; in version 2,
/// bound into every chunk through the header digest.
pub const NONCE_PREFIX_LEN: usize = 7;
/// How far from its position a chunk is looked for when it fails to authenticate.
const MISPLACED_SEARCH: u32 = 64;
const KDF_PBKDF2_SHA256: u8 = 1;
/// Fixed part of the header up to the cluster ID's length byte.
const FIXED_LEN: usize = 43;

/// Which file of a restore point an encrypted stream is; part of the authenticated header, so
/// a manifest cannot be passed off as an archive or the other way round.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Archive = 1,
    Manifest = 2,
}

impl Role {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Role::Archive),
            2 => Some(Role::Manifest),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Archive => "archive",
            Role::Manifest => "manifest",
        }
    }
}

/// Where a file belongs: checked against its header when read, and bound into every chunk.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Binding {
    pub cluster_id: String,
    pub point_id: String,
    pub role: Role,
}

/// What can be wrong with an encrypted file. Each variant is a different cause, so a user
/// is told whether to fix the passphrase, the location, or the point itself.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("not a kubectl-dr restore point file (bad magic bytes): the object was replaced or is not a restore point")]
    NotARestorePoint,
    #[error("restore point format version {0} is not supported by this kubectl-dr (it reads versions 1 and 2): upgrade kubectl-dr")]
    UnsupportedVersion(u8),
    #[error("the restore point header is cut short: the file is truncated")]
    HeaderTruncated,
    #[error("the restore point header is damaged (checksum mismatch): the stored file was corrupted; pick another restore point")]
    HeaderDamaged,
    #[error("the restore point header has an invalid {field}: the file was corrupted or forged")]
    HeaderInvalid { field: &'static str },
    #[error("this restore point was written for cluster ID {found}, not {expected}: it was copied to another cluster's location; use --cluster-id {found} or pick a point of this cluster")]
    WrongCluster { found: String, expected: String },
    #[error("this file belongs to restore point {found}, not {expected}: restore points cannot be renamed; use the original name")]
    WrongPoint { found: String, expected: String },
    #[error("this file is the {found} of its restore point, expected the {expected}: the point's files were swapped")]
    WrongRole { found: &'static str, expected: &'static str },
    #[error("wrong passphrase: this restore point was encrypted with a different DR passphrase; use the passphrase (or passphrase source) given when DR was enabled on the source cluster")]
    WrongPassphrase,
    #[error("the restore point header failed authentication although the passphrase is right: the header was altered; do not trust this point")]
    HeaderTampered,
    #[error("the restore point is truncated: it ends after {chunks} chunk(s) without its final chunk; the upload was interrupted or the file was cut")]
    Truncated { chunks: u32 },
    #[error("chunk {index} of the restore point failed authentication: the data was corrupted or altered; pick another restore point")]
    ChunkDamaged { index: u32 },
    #[error("the last chunk ({index}) of the restore point failed authentication: the file is damaged or was cut short")]
    FinalChunkInvalid { index: u32 },
    #[error("chunk {position} of the restore point is chunk {belongs_at} of the same point: chunks were reordered")]
    ChunkOutOfPlace { position: u32, belongs_at: u32 },
    #[error("the restore point has data after its final chunk {after_chunk}: something was appended to it")]
    TrailingData { after_chunk: u32 },
    #[error("the restore point is too large for this format (2^32 chunks)")]
    TooManyChunks,
    #[error("I/O error while reading or writing the restore point: {0}")]
    Io(#[from] io::Error),
}

impl FormatError {
    /// Unwraps a `FormatError` carried through `std::io::Read`/`Write`, or wraps a real I/O error.
    pub fn from_io(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|inner| inner.is::<FormatError>()) {
            *e.into_inner().expect("checked").downcast::<FormatError>().expect("checked")
        } else {
            FormatError::Io(e)
        }
    }
    fn into_io(self) -> io::Error {
        match self {
            FormatError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// A parsed header. Parsing checks structure and checksum only; the key checks happen in
/// [`DecryptReader::new`].
#[derive(Clone, Debug)]
pub struct Header {
    raw: Vec<u8>,
    version: u8,
    role: Role,
    kdf: KdfParams,
    chunk_size: u32,
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    cluster_id: String,
    point_id: String,
    key_check_at: usize,
}

impl Header {
    fn build(binding: &Binding, key: &MasterKey, keys: &FileKeys, chunk_size: u32) -> Self {
        let kdf = key.params();
        // Random per file. Version 2 uses it as the file's identity only (through the header
        // digest every chunk authenticates), so two files under one key never swap chunks.
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        crate::crypto::fill_random(&mut nonce_prefix);
        let mut raw = Vec::with_capacity(256);
        raw.extend_from_slice(&MAGIC);
        raw.extend_from_slice(&[VERSION, binding.role as u8, KDF_PBKDF2_SHA256, 0]);
        raw.extend_from_slice(&kdf.iterations.to_be_bytes());
        raw.extend_from_slice(&kdf.salt);
        raw.extend_from_slice(&chunk_size.to_be_bytes());
        raw.extend_from_slice(&nonce_prefix);
        for id in [&binding.cluster_id, &binding.point_id] {
            assert!(!id.is_empty() && id.len() <= 255, "IDs are 1..=255 bytes");
            raw.push(id.len() as u8);
            raw.extend_from_slice(id.as_bytes());
        }
        let key_check_at = raw.len();
        raw.extend_from_slice(&keys.key_check);
        let mac = hmac::sign(&keys.mac, &raw);
        raw.extend_from_slice(mac.as_ref());
        let sum = digest::digest(&digest::SHA256, &raw);
        raw.extend_from_slice(sum.as_ref());
        Header {
            raw,
            version: VERSION,
            role: binding.role,
            kdf,
            chunk_size,
            nonce_prefix,
            cluster_id: binding.cluster_id.clone(),
            point_id: binding.point_id.clone(),
            key_check_at,
        }
    }

    /// Reads and parses a header, checking magic, version, layout and checksum.
    pub fn read(r: &mut impl Read) -> Result<Self, FormatError> {
        let mut raw = vec![0u8; FIXED_LEN];
        read_exact_or(r, &mut raw[..8], FormatError::HeaderTruncated)?;
        if raw[..8] != MAGIC {
            return Err(FormatError::NotARestorePoint);
        }
        read_exact_or(r, &mut raw[8..], FormatError::HeaderTruncated)?;
        let version = raw[8];
        if !READ_VERSIONS.contains(&version) {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let mut ids = Vec::with_capacity(2);
        for _ in 0..2 {
            let len_at = raw.len();
            raw.push(0);
            read_exact_or(r, &mut raw[len_at..], FormatError::HeaderTruncated)?;
            let len = raw[len_at] as usize;
            raw.resize(len_at + 1 + len, 0);
            read_exact_or(r, &mut raw[len_at + 1..], FormatError::HeaderTruncated)?;
            ids.push(len_at + 1..len_at + 1 + len);
        }
        let key_check_at = raw.len();
        raw.resize(key_check_at + KEY_CHECK_LEN + 32 + 32, 0);
        read_exact_or(r, &mut raw[key_check_at..], FormatError::HeaderTruncated)?;
        let sum_at = raw.len() - 32;
        let sum = digest::digest(&digest::SHA256, &raw[..sum_at]);
        if constant_time::verify_slices_are_equal(sum.as_ref(), &raw[sum_at..]).is_err() {
            return Err(FormatError::HeaderDamaged);
        }
        // The checksum matched, so the fields are as written: anything odd now was forged.
        let role = Role::from_byte(raw[9]).ok_or(FormatError::HeaderInvalid { field: "role" })?;
        if raw[10] != KDF_PBKDF2_SHA256 {
            return Err(FormatError::HeaderInvalid { field: "key derivation function" });
        }
        let iterations = u32::from_be_bytes(raw[12..16].try_into().expect("4 bytes"));
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(FormatError::HeaderInvalid { field: "iteration count" });
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&raw[16..32]);
        let chunk_size = u32::from_be_bytes(raw[32..36].try_into().expect("4 bytes"));
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(FormatError::HeaderInvalid { field: "chunk size" });
        }
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&raw[36..43]);
        let text = |range: std::ops::Range<usize>, field| {
            String::from_utf8(raw[range].to_vec()).map_err(|_| FormatError::HeaderInvalid { field })
        };
        let cluster_id = text(ids[0].clone(), "cluster ID")?;
        let point_id = text(ids[1].clone(), "restore point ID")?;
        Ok(Header {
            version,
            role,
            kdf: KdfParams { iterations, salt },
            chunk_size,
            nonce_prefix,
            cluster_id,
            point_id,
            key_check_at,
            raw,
        })
    }

    /// The KDF parameters a reader needs to derive the key.
    pub fn kdf(&self) -> KdfParams {
        self.kdf
    }
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }
    pub fn point_id(&self) -> &str {
        &self.point_id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }
    /// The format version of the file.
    pub fn version(&self) -> u8 {
        self.version
    }
    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.raw.len()
    }
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Checks the header says it belongs where it was found.
    pub fn check_binding(&self, expected: &Binding) -> Result<(), FormatError> {
        if self.cluster_id != expected.cluster_id {
            return Err(FormatError::WrongCluster {
                found: self.cluster_id.clone(),
                expected: expected.cluster_id.clone(),
            });
        }
        if self.point_id != expected.point_id {
            return Err(FormatError::WrongPoint {
                found: self.point_id.clone(),
                expected: expected.point_id.clone(),
            });
        }
        if self.role != expected.role {
            return Err(FormatError::WrongRole {
                found: self.role.as_str(),
                expected: expected.role.as_str(),
            });
        }
        Ok(())
    }

    /// SHA-256 of the whole header, part of every chunk's associated data: it binds the
    /// chunks to the header's KDF parameters, chunk size, nonce prefix, cluster ID, point ID
    /// and role.
    fn digest(&self) -> [u8; 32] {
        let mut d = [0u8; 32];
        d.copy_from_slice(digest::digest(&digest::SHA256, &self.raw).as_ref());
        d
    }

    fn verify_keys(&self, keys: &FileKeys) -> Result<(), FormatError> {
        let at = self.key_check_at;
        let stored_check = &self.raw[at..at + KEY_CHECK_LEN];
        if constant_time::verify_slices_are_equal(stored_check, &keys.key_check).is_err() {
            return Err(FormatError::WrongPassphrase);
        }
        let mac_at = at + KEY_CHECK_LEN;
        hmac::verify(&keys.mac, &self.raw[..mac_at], &self.raw[mac_at..mac_at + 32])
            .map_err(|_| FormatError::HeaderTampered)
    }
}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], eof: FormatError) -> Result<(), FormatError> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            eof
        } else {
            FormatError::from_io(e)
        }
    })
}

/// A version 1 chunk's nonce.
fn nonce(prefix: &[u8; NONCE_PREFIX_LEN], counter: u32, last: bool) -> aead::Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    n[NONCE_PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = last as u8;
    aead::Nonce::assume_unique_for_key(n)
}

/// Associated data of a chunk. Version 1: the header's digest (the index and flag are in the
/// nonce). Version 2: the digest, the index (big-endian) and the last-chunk flag.
fn chunk_aad(version: u8, header_digest: &[u8; 32], counter: u32, last: bool) -> ([u8; 37], usize) {
    let mut aad = [0u8; 37];
    aad[..32].copy_from_slice(header_digest);
    if version == 1 {
        return (aad, 32);
    }
    aad[32..36].copy_from_slice(&counter.to_be_bytes());
    aad[36] = last as u8;
    (aad, 37)
}

/// Bytes a chunk adds to its plaintext.
fn chunk_overhead(version: u8) -> usize {
    if version == 1 {
        TAG_LEN
    } else {
        IV_LEN + TAG_LEN
    }
}

/// Encrypts a stream into `inner`. Write plaintext, then call [`EncryptWriter::finish`]:
/// without it the stream has no final chunk and every reader reports it as truncated.
pub struct EncryptWriter<W: Write> {
    /// Always `Some` until `finish` takes it.
    inner: Option<W>,
    keys: FileKeys,
    header_digest: [u8; 32],
    counter: u32,
    chunk_size: usize,
    buf: Vec<u8>,
}

impl<W: Write> EncryptWriter<W> {
    /// Writes the header for `binding` and returns a writer for the payload.
    pub fn new(mut inner: W, key: &MasterKey, binding: &Binding, chunk_size: u32) -> io::Result<Self> {
        assert!((MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size), "chunk size out of range");
        let keys = key.file_keys();
        let header = Header::build(binding, key, &keys, chunk_size);
        inner.write_all(&header.raw)?;
        Ok(Self {
            inner: Some(inner),
            keys,
            header_digest: header.digest(),
            counter: 0,
            chunk_size: chunk_size as usize,
            buf: Vec::with_capacity(chunk_size as usize),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let (aad, aad_len) = chunk_aad(VERSION, &self.header_digest, self.counter, last);
        // The module draws the IV (its approved randomized-nonce AES-GCM).
        let (iv, tag) = self
            .keys
            .sealing
            .seal_in_place_separate_tag(aead::Aad::from(&aad[..aad_len]), &mut self.buf)
            .map_err(|_| io::Error::other("AES-GCM encryption failed"))?;
        let inner = self.inner.as_mut().expect("writer not finished");
        inner.write_all(iv.as_ref())?;
        inner.write_all(&self.buf)?;
        inner.write_all(tag.as_ref())?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| FormatError::TooManyChunks.into_io())?;
        Ok(())
    }

    /// Seals the final chunk and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        let mut inner = self.inner.take().expect("writer not finished");
        inner.flush()?;
        Ok(inner)
    }

    /// The writer the ciphertext goes to.
    pub fn get_mut(&mut self) -> &mut W {
        self.inner.as_mut().expect("writer not finished")
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            // A full buffer is sealed only once more data arrives, so the final chunk may be
            // full-sized and `finish` always has a chunk to mark as last.
            if self.buf.len() == self.chunk_size {
                self.seal(false)?;
            }
            let take = (self.chunk_size - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.get_mut().flush()
    }
}

impl<W: Write> Drop for EncryptWriter<W> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

/// Decrypts a stream, yielding plaintext only from chunks that authenticated.
pub struct DecryptReader<R: Read> {
    /// Always `Some` until `into_inner` takes it.
    inner: Option<R>,
    keys: FileKeys,
    version: u8,
    header_digest: [u8; 32],
    prefix: [u8; NONCE_PREFIX_LEN],
    counter: u32,
    chunk_size: usize,
    /// Ciphertext of the next chunk plus one byte of look-ahead that tells whether it is last.
    cbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    state: ReadState,
}

#[derive(PartialEq, Eq)]
enum ReadState {
    Reading,
    Done,
    Failed,
}

impl<R: Read> DecryptReader<R> {
    /// Checks the key against `header` (wrong passphrase, altered header) and returns a reader
    /// positioned at the first chunk. `inner` must be positioned just after the header.
    pub fn new(inner: R, header: &Header, key: &MasterKey) -> Result<Self, FormatError> {
        let keys = key.file_keys();
        header.verify_keys(&keys)?;
        let chunk_size = header.chunk_size as usize;
        Ok(Self {
            inner: Some(inner),
            keys,
            version: header.version,
            header_digest: header.digest(),
            prefix: header.nonce_prefix,
            counter: 0,
            chunk_size,
            cbuf: Vec::with_capacity(chunk_size + chunk_overhead(header.version) + 1),
            out: vec![0u8; chunk_size],
            out_pos: chunk_size,
            state: ReadState::Reading,
        })
    }

    /// Reads the header from `inner`, checks where it belongs, derives the key with `derive`
    /// (called with the header's KDF parameters) and returns the reader.
    pub fn open(
        mut inner: R,
        expected: &Binding,
        derive: impl FnOnce(KdfParams) -> MasterKey,
    ) -> Result<Self, FormatError> {
        let header = Header::read(&mut inner)?;
        header.check_binding(expected)?;
        let key = derive(header.kdf());
        Self::new(inner, &header, &key)
    }

    /// Opens one stored chunk (`ct`, at least [`chunk_overhead`] bytes) as chunk `counter`.
    fn try_open(&self, ct: &[u8], counter: u32, last: bool, out: &mut [u8]) -> bool {
        let (nonce, ct) = if self.version == 1 {
            (nonce(&self.prefix, counter, last), ct)
        } else {
            let (iv, rest) = ct.split_at(IV_LEN);
            (aead::Nonce::try_assume_unique_for_key(iv).expect("12 bytes"), rest)
        };
        let (body, tag) = ct.split_at(ct.len() - TAG_LEN);
        let (aad, aad_len) = chunk_aad(self.version, &self.header_digest, counter, last);
        self.keys
            .aead
            .open_separate_gather(nonce, aead::Aad::from(&aad[..aad_len]), body, tag, &mut out[..body.len()])
            .is_ok()
    }

    /// Returns the underlying reader (positioned after what was consumed).
    pub fn into_inner(mut self) -> R {
        self.inner.take().expect("reader not taken apart")
    }

    /// Names the position a chunk that failed to authenticate really belongs at, if it is a
    /// chunk of this stream near where it was found.
    fn find_misplaced(&self, ct: &[u8]) -> Option<u32> {
        let mut scratch = vec![0u8; ct.len()];
        let low = self.counter.saturating_sub(MISPLACED_SEARCH);
        let high = self.counter.saturating_add(MISPLACED_SEARCH);
        let found = (low..=high)
            .filter(|&j| j != self.counter)
            .find(|&j| self.try_open(ct, j, false, &mut scratch) || self.try_open(ct, j, true, &mut scratch));
        scratch.zeroize();
        found
    }

    fn next_chunk(&mut self) -> Result<(), FormatError> {
        let overhead = chunk_overhead(self.version);
        let full = self.chunk_size + overhead;
        while self.cbuf.len() < full + 1 {
            let have = self.cbuf.len();
            self.cbuf.resize(full + 1, 0);
            let inner = self.inner.as_mut().expect("reader not taken apart");
            let n = match inner.read(&mut self.cbuf[have..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    self.cbuf.truncate(have);
                    return Err(FormatError::from_io(e));
                }
            };
            self.cbuf.truncate(have + n);
            if n == 0 {
                break;
            }
        }
        let index = self.counter;
        let mut out = std::mem::take(&mut self.out);
        let result = if self.cbuf.len() > full {
            // More follows, so this must be a non-final chunk.
            let ct = &self.cbuf[..full];
            if self.try_open(ct, index, false, &mut out) {
                self.out_pos = 0;
                Ok(false)
            } else if self.try_open(ct, index, true, &mut out) {
                out.zeroize();
                Err(FormatError::TrailingData { after_chunk: index })
            } else if let Some(belongs_at) = self.find_misplaced(ct) {
                Err(FormatError::ChunkOutOfPlace { position: index, belongs_at })
            } else {
                Err(FormatError::ChunkDamaged { index })
            }
        } else if self.cbuf.len() < overhead {
            Err(if self.cbuf.is_empty() {
                FormatError::Truncated { chunks: index }
            } else {
                FormatError::FinalChunkInvalid { index }
            })
        } else {
            let ct = &self.cbuf[..];
            let len = ct.len() - overhead;
            if self.try_open(ct, index, true, &mut out) {
                out.truncate(len);
                self.out_pos = 0;
                Ok(true)
            } else if ct.len() == full && self.try_open(ct, index, false, &mut out) {
                out.zeroize();
                Err(FormatError::Truncated { chunks: index + 1 })
            } else if let Some(belongs_at) = self.find_misplaced(ct) {
                Err(FormatError::ChunkOutOfPlace { position: index, belongs_at })
            } else {
                Err(FormatError::FinalChunkInvalid { index })
            }
        };
        self.out = out;
        match result {
            Ok(last) => {
                if last {
                    self.cbuf.clear();
                    self.state = ReadState::Done;
                } else {
                    self.cbuf.drain(..full);
                    self.counter = self.counter.checked_add(1).ok_or(FormatError::TooManyChunks)?;
                }
                Ok(())
            }
            Err(e) => {
                self.state = ReadState::Failed;
                self.out_pos = self.out.len();
                Err(e)
            }
        }
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_pos < self.out.len() {
                let n = (self.out.len() - self.out_pos).min(buf.len());
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            match self.state {
                ReadState::Done => return Ok(0),
                ReadState::Failed => return Err(io::Error::other("restore point stream already failed")),
                ReadState::Reading => {
                    self.out.resize(self.chunk_size, 0);
                    self.next_chunk().map_err(FormatError::into_io)?;
                }
            }
        }
    }
}

impl<R: Read> Drop for DecryptReader<R> {
    fn drop(&mut self) {
        self.out.zeroize();
    }
}

/// Encrypts `plaintext` in one go (for small files such as the manifest).
pub fn seal_all(plaintext: &[u8], key: &MasterKey, binding: &Binding, chunk_size: u32) -> Vec<u8> {
    let mut w = EncryptWriter::new(Vec::with_capacity(plaintext.len() + 256), key, binding, chunk_size)
        .expect("writing to a Vec cannot fail");
    w.write_all(plaintext).expect("writing to a Vec cannot fail");
    w.finish().expect("writing to a Vec cannot fail")
}

/// Decrypts a whole small file.
pub fn open_all(
    ciphertext: &[u8],
    expected: &Binding,
    derive: impl FnOnce(KdfParams) -> MasterKey,
) -> Result<Vec<u8>, FormatError> {
    let mut r = DecryptReader::open(ciphertext, expected, derive)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(FormatError::from_io)?;
    Ok(out)
}
