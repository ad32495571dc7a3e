//! The chunked AES-256-GCM stream after the header: [`EncryptWriter`] and [`DecryptReader`], and
//! whole-buffer helpers for small files.

use super::header::Header;
use super::{Binding, FormatError, IV_LEN, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, MISPLACED_SEARCH, NONCE_PREFIX_LEN, TAG_LEN};
use std::io::{self, Read, Write};

use aws_lc_rs::aead;
use zeroize::Zeroize;

use super::crypto::{FileKeys, KdfParams, MasterKey};

/// A version 1 chunk's nonce.
fn nonce(prefix: &[u8; NONCE_PREFIX_LEN], counter: u32, last: bool) -> aead::Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    n[NONCE_PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = last as u8;
    aead::Nonce::assume_unique_for_key(n)
}

/// Associated data of a chunk. Version 1: the header's digest (the index and flag are in the
/// nonce). Versions 2 and 3: the digest, the index (big-endian) and the last-chunk flag.
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
    /// The header's version (3, or 2 under legacy KDF parameters): chunks are sealed alike.
    version: u8,
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
            version: header.version,
            header_digest: header.digest(),
            counter: 0,
            chunk_size: chunk_size as usize,
            buf: Vec::with_capacity(chunk_size as usize),
        })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let (aad, aad_len) = chunk_aad(self.version, &self.header_digest, self.counter, last);
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
        self.counter = self.counter.checked_add(1).ok_or_else(|| FormatError::TooManyChunks.into_io())?;
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
    /// (called with the header's KDF parameters, only once the header's fields and binding
    /// passed) and returns the reader.
    pub fn open(mut inner: R, expected: &Binding, derive: impl FnOnce(KdfParams) -> MasterKey) -> Result<Self, FormatError> {
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
        self.keys.aead.open_separate_gather(nonce, aead::Aad::from(&aad[..aad_len]), body, tag, &mut out[..body.len()]).is_ok()
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
        let found =
            (low..=high).filter(|&j| j != self.counter).find(|&j| self.try_open(ct, j, false, &mut scratch) || self.try_open(ct, j, true, &mut scratch));
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
            Err(if self.cbuf.is_empty() { FormatError::Truncated { chunks: index } } else { FormatError::FinalChunkInvalid { index } })
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
    let mut w = EncryptWriter::new(Vec::with_capacity(plaintext.len() + 256), key, binding, chunk_size).expect("writing to a Vec cannot fail");
    w.write_all(plaintext).expect("writing to a Vec cannot fail");
    w.finish().expect("writing to a Vec cannot fail")
}

/// Decrypts a whole small file.
pub fn open_all(ciphertext: &[u8], expected: &Binding, derive: impl FnOnce(KdfParams) -> MasterKey) -> Result<Vec<u8>, FormatError> {
    let mut r = DecryptReader::open(ciphertext, expected, derive)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(FormatError::from_io)?;
    Ok(out)
}
