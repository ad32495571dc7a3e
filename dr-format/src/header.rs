//! The header every restore-point file starts with: magic, version, role, the cluster and point it
//! belongs to, the key derivation's parameters and a key check, authenticated as the first
//! chunk's associated data.

use super::{
    Binding, FormatError, Role, FIXED_LEN, KDF_CLUSTER_PBKDF2_HKDF_SHA256, KDF_PBKDF2_SHA256, LEGACY_VERSION, MAGIC, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE,
    NONCE_PREFIX_LEN, READ_VERSIONS, VERSION,
};
use std::io::{self, Read};

use aws_lc_rs::{constant_time, digest, hmac};

use super::crypto::{cluster_salt, FileKeys, KdfParams, MasterKey, CLUSTER_ITERATIONS, KEY_CHECK_LEN, MAX_ITERATIONS, SALT_LEN};

/// A parsed header. Parsing checks structure and checksum only; the key checks happen in
/// [`Header::check_key`] and [`DecryptReader::new`].
#[derive(Clone, Debug)]
pub struct Header {
    pub(super) raw: Vec<u8>,
    pub(super) version: u8,
    role: Role,
    kdf: KdfParams,
    pub(super) chunk_size: u32,
    pub(super) nonce_prefix: [u8; NONCE_PREFIX_LEN],
    cluster_id: String,
    point_id: String,
    key_check_at: usize,
}

impl Header {
    pub(super) fn build(binding: &Binding, key: &MasterKey, keys: &FileKeys, chunk_size: u32) -> Self {
        let kdf = key.params();
        // The key decides the version: version 3 for a cluster master's point key (what
        // kubectl-dr writes), version 2 for legacy per-point parameters (tests and vectors).
        let (version, kdf_byte) = match kdf.cluster_salt {
            Some(salt) => {
                assert!(salt == cluster_salt(&binding.cluster_id), "a version 3 key is bound to the cluster it was derived for");
                (VERSION, KDF_CLUSTER_PBKDF2_HKDF_SHA256)
            }
            None => (LEGACY_VERSION, KDF_PBKDF2_SHA256),
        };
        // Random per file. Version 2 uses it as the file's identity only (through the header
        // digest every chunk authenticates), so two files under one key never swap chunks.
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        crate::crypto::fill_random(&mut nonce_prefix);
        let mut raw = Vec::with_capacity(256);
        raw.extend_from_slice(&MAGIC);
        raw.extend_from_slice(&[version, binding.role as u8, kdf_byte, 0]);
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
            version,
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
        let iterations = u32::from_be_bytes(raw[12..16].try_into().expect("4 bytes"));
        if version < 3 {
            if raw[10] != KDF_PBKDF2_SHA256 {
                return Err(FormatError::HeaderInvalid { field: "key derivation function" });
            }
            if iterations == 0 || iterations > MAX_ITERATIONS {
                return Err(FormatError::HeaderInvalid { field: "iteration count" });
            }
        }
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&raw[16..32]);
        let chunk_size = u32::from_be_bytes(raw[32..36].try_into().expect("4 bytes"));
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(FormatError::HeaderInvalid { field: "chunk size" });
        }
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&raw[36..43]);
        let text = |range: std::ops::Range<usize>, field| String::from_utf8(raw[range].to_vec()).map_err(|_| FormatError::HeaderInvalid { field });
        let cluster_id = text(ids[0].clone(), "cluster ID")?;
        let point_id = text(ids[1].clone(), "restore point ID")?;
        if version >= 3 {
            // Exactly what a version 3 writer writes, or nothing is derived: another count
            // would cost a second cluster master (or a slower one) per forged header.
            if raw[10] != KDF_CLUSTER_PBKDF2_HKDF_SHA256 {
                return Err(FormatError::KdfNotWriters { detail: "the key derivation function is not version 3's" });
            }
            if iterations != CLUSTER_ITERATIONS {
                return Err(FormatError::KdfNotWriters { detail: "the iteration count is not 600,000" });
            }
        }
        // Version 3's cluster salt is not stored: it is the cluster ID's, so a header can
        // only name the cluster master of the cluster it claims to belong to, which
        // `check_binding` holds to the cluster being read.
        let cluster_salt = (version >= 3).then(|| cluster_salt(&cluster_id));
        Ok(Header { version, role, kdf: KdfParams { iterations, salt, cluster_salt }, chunk_size, nonce_prefix, cluster_id, point_id, key_check_at, raw })
    }

    /// The KDF parameters a reader needs to derive the key. Check the binding first
    /// ([`Header::check_binding`]): a version 3 header's cluster salt is that of the cluster
    /// ID it names.
    pub fn kdf(&self) -> KdfParams {
        self.kdf
    }
    /// Whether the file's key is a PBKDF2 of its own (versions 1 and 2), costing a full
    /// derivation to accept or reject, rather than version 3's HKDF of the cluster master.
    /// Known before deriving anything, so a reader can refuse a legacy header where a
    /// version 3 point says the writer had upgraded (`docs/format.md`, "Upgrading").
    pub fn is_legacy_kdf(&self) -> bool {
        self.kdf.is_legacy()
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
            return Err(FormatError::WrongCluster { found: self.cluster_id.clone(), expected: expected.cluster_id.clone() });
        }
        if self.point_id != expected.point_id {
            return Err(FormatError::WrongPoint { found: self.point_id.clone(), expected: expected.point_id.clone() });
        }
        if self.role != expected.role {
            return Err(FormatError::WrongRole { found: self.role.as_str(), expected: expected.role.as_str() });
        }
        Ok(())
    }

    /// SHA-256 of the whole header, part of every chunk's associated data: it binds the
    /// chunks to the header's KDF parameters, chunk size, nonce prefix, cluster ID, point ID
    /// and role.
    pub(super) fn digest(&self) -> [u8; 32] {
        let mut d = [0u8; 32];
        d.copy_from_slice(digest::digest(&digest::SHA256, &self.raw).as_ref());
        d
    }

    /// Checks `key` against the header alone (key check value, then header MAC): what a
    /// reader asks before downloading the rest of a file, so that a file written without the
    /// passphrase costs its header to refuse, never its body. [`DecryptReader::new`] checks
    /// the same again.
    ///
    /// [`DecryptReader::new`]: crate::DecryptReader::new
    pub fn check_key(&self, key: &MasterKey) -> Result<(), FormatError> {
        self.verify_keys(&key.file_keys())
    }

    /// The header as stored: a reader that fetched it ahead of the body holds the body's copy
    /// to these bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    pub(super) fn verify_keys(&self, keys: &FileKeys) -> Result<(), FormatError> {
        let at = self.key_check_at;
        let stored_check = &self.raw[at..at + KEY_CHECK_LEN];
        if constant_time::verify_slices_are_equal(stored_check, &keys.key_check).is_err() {
            return Err(FormatError::WrongPassphrase);
        }
        let mac_at = at + KEY_CHECK_LEN;
        hmac::verify(&keys.mac, &self.raw[..mac_at], &self.raw[mac_at..mac_at + 32]).map_err(|_| FormatError::HeaderTampered)
    }
}

fn read_exact_or(r: &mut impl Read, buf: &mut [u8], eof: FormatError) -> Result<(), FormatError> {
    r.read_exact(buf).map_err(|e| if e.kind() == io::ErrorKind::UnexpectedEof { eof } else { FormatError::from_io(e) })
}
