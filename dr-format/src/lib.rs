//! kubectl-dr's restore-point format, on its own: the encrypted file format (an
//! authenticated header followed by AES-256-GCM chunks, a STREAM construction), the
//! catalog's entries and categories (`catalog`), its compression (`blocks`) and the
//! manifest's types (`manifest`). Pure and synchronous: no tokio, kube or AWS SDK, so a
//! reader of the format depends on this crate alone. `dr-core` re-exports it as
//! `dr_core::format` and `dr_core::catalog`.
//!
//! Version 3 (written) derives one PBKDF2 master per cluster (its salt comes from the
//! cluster ID) and each point's key from it by HKDF under the point's random salt, so a
//! reader pays one PBKDF2 per cluster, not per point: a forged header costs an HKDF and an
//! HMAC to reject. Its chunks are sealed as in version 2.
//! Version 2 (read only) stores a random IV drawn by the crypto module in front of every
//! chunk and binds the chunk's index and last-chunk flag as associated data, so encryption
//! is the module's approved randomized-nonce service (FIPS builds can write backups); its
//! key is a PBKDF2 of its own per point, as in version 1.
//! Version 1 (read only) built each nonce from a per-file prefix, the index and the flag.
//!
//! `docs/format.md` is the specification; keep the two in step.

use std::io;

use aws_lc_rs::aead;

pub mod blocks;
pub mod catalog;
pub mod crypto;
mod header;
pub mod manifest;
mod stream;

pub use header::Header;
pub use stream::{open_all, seal_all, DecryptReader, EncryptWriter};

/// First bytes of every file; the CR LF catches text-mode mangling.
pub const MAGIC: [u8; 8] = *b"KDR-RP\r\n";
/// The format version this code writes.
pub const VERSION: u8 = 3;
/// The last version whose key is a PBKDF2 of its own per point (written only from legacy
/// KDF parameters, which kubectl-dr's point writer no longer uses).
pub const LEGACY_VERSION: u8 = 2;
/// The format versions this code reads.
pub const READ_VERSIONS: std::ops::RangeInclusive<u8> = 1..=3;
/// Length of the random IV in front of every version 2 and 3 chunk.
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
/// The header's KDF byte in versions 1 and 2: PBKDF2-HMAC-SHA256 per point.
const KDF_PBKDF2_SHA256: u8 = 1;
/// The header's KDF byte in version 3: PBKDF2-HMAC-SHA256 per cluster, then HKDF-SHA256 per
/// point.
const KDF_CLUSTER_PBKDF2_HKDF_SHA256: u8 = 2;
/// Fixed part of the header up to the cluster ID's length byte.
const FIXED_LEN: usize = 43;
/// The longest header there can be (both IDs 255 bytes): a reader that fetches a header ahead
/// of the body asks for this many bytes.
pub const MAX_HEADER_LEN: usize = FIXED_LEN + 1 + 255 + 1 + 255 + 16 + 32 + 32;

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
    #[error("restore point format version {0} is not supported by this kubectl-dr (it reads versions 1 to 3): upgrade kubectl-dr")]
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
    #[error("the restore point header's key derivation parameters are not the ones kubectl-dr writes ({detail}): the file was forged, or written by another version of kubectl-dr; it is not used, pick another restore point")]
    KdfNotWriters { detail: &'static str },
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
    #[error("I/O error while reading or writing the restore point")]
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
