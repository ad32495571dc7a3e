//! Passphrases and the keys derived from them. Everything here zeroizes itself on drop.
//!
//! `docs/format.md` is the specification; this module implements its "Keys" section.

use std::fmt;
use std::num::NonZeroU32;

use aws_lc_rs::{aead, digest, hkdf, hmac, pbkdf2, rand::SecureRandom};
use zeroize::{Zeroize, Zeroizing};

use super::FormatError;

/// PBKDF2 iterations every writer uses, and the floor it may never go below (OWASP 2023 for
/// PBKDF2-HMAC-SHA256).
pub const MIN_ITERATIONS: u32 = 600_000;
/// The iteration count of a version 3 cluster master: exactly this, written and read. A
/// reader refuses any other count before deriving, so a forged header can neither make it
/// spin nor make it derive a second cluster master. Raising it is a new format version.
pub const CLUSTER_ITERATIONS: u32 = MIN_ITERATIONS;
/// Domain separation of the version 3 cluster salt and point key.
const CLUSTER_SALT_LABEL: &[u8] = b"kubectl-dr v3 cluster salt";
const POINT_LABEL: &[u8] = b"kubectl-dr v3 point";
/// The most a reader accepts in a legacy (version 1 or 2) header: ten times what writers
/// used (about 0.8 s of PBKDF2 here), so a forged header cannot make a reader spin (50
/// million took 7 s for each forged point).
pub const MAX_ITERATIONS: u32 = 10 * MIN_ITERATIONS;
/// Salt length in bytes.
pub const SALT_LEN: usize = 16;
/// Length of the key-check value stored in the header.
pub const KEY_CHECK_LEN: usize = 16;

/// The DR passphrase. Never printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase; surrounding whitespace (a trailing newline from a file or `echo`) is
    /// not part of it, and an empty passphrase is refused.
    pub fn new(mut raw: String) -> Result<Self, EmptyPassphrase> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            raw.zeroize();
            return Err(EmptyPassphrase);
        }
        let owned = Zeroizing::new(trimmed.to_owned());
        raw.zeroize();
        Ok(Self(owned))
    }

    /// Reads a passphrase from bytes (a file, stdin, a Secret's data); the bytes must be UTF-8.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, EmptyPassphrase> {
        match String::from_utf8(bytes) {
            Ok(s) => Self::new(s),
            Err(e) => {
                let mut bytes = e.into_bytes();
                bytes.zeroize();
                Err(EmptyPassphrase)
            }
        }
    }

    /// The passphrase's bytes, for writing it where it belongs (`k10-dr-secret`) and for the
    /// key derivation. Never log or print them.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The passphrase's text, for checks that need it (a strength estimate). Never print it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([redacted])")
    }
}

/// A passphrase that is empty, only whitespace, or not UTF-8.
#[derive(Debug, thiserror::Error)]
#[error("the DR passphrase is empty or not UTF-8 text: give the passphrase that was used when DR was enabled")]
pub struct EmptyPassphrase;

/// KDF parameters as stored in a header (and, in version 3, implied by its cluster ID).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KdfParams {
    /// PBKDF2 iterations: per point in versions 1 and 2, per cluster in version 3 (where it
    /// is always [`CLUSTER_ITERATIONS`]).
    pub iterations: u32,
    /// The header's random salt: PBKDF2's in versions 1 and 2, the point's HKDF salt in
    /// version 3.
    pub salt: [u8; SALT_LEN],
    /// Version 3: the salt of the cluster's one PBKDF2, [`cluster_salt`] of the cluster ID the
    /// header names. `None` for the legacy per-point PBKDF2 of versions 1 and 2.
    pub cluster_salt: Option<[u8; SALT_LEN]>,
}

impl KdfParams {
    /// Fresh parameters for a new restore point of `cluster_id` (format version 3): a random
    /// point salt under the cluster's PBKDF2 at [`CLUSTER_ITERATIONS`].
    pub fn generate(cluster_id: &str) -> Self {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt);
        Self { iterations: CLUSTER_ITERATIONS, salt, cluster_salt: Some(cluster_salt(cluster_id)) }
    }

    /// Legacy (version 1 and 2) parameters: one PBKDF2 of its own per point. Readers still
    /// meet them; kubectl-dr's point writer no longer makes them (tests and the vector
    /// generator do, to have legacy files to read).
    pub fn legacy(iterations: u32, salt: [u8; SALT_LEN]) -> Self {
        Self { iterations, salt, cluster_salt: None }
    }

    /// Whether these are the legacy per-point parameters (versions 1 and 2).
    pub fn is_legacy(&self) -> bool {
        self.cluster_salt.is_none()
    }
}

/// The salt of a cluster's PBKDF2 in format version 3: the first 16 bytes of
/// SHA-256("kubectl-dr v3 cluster salt" || 0x00 || cluster ID). It is public and fixed per
/// cluster on purpose: every point of a cluster shares one derivation, so a reader pays one
/// PBKDF2 per cluster however many points (genuine or forged) it meets. Cluster IDs are
/// random UIDs, so no two clusters share a salt.
pub fn cluster_salt(cluster_id: &str) -> [u8; SALT_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(CLUSTER_SALT_LABEL);
    ctx.update(&[0]);
    ctx.update(cluster_id.as_bytes());
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&ctx.finish().as_ref()[..SALT_LEN]);
    salt
}

/// A version 3 cluster master: PBKDF2-HMAC-SHA256(passphrase, cluster salt, 600,000), from
/// which every point of the cluster gets its key by one HKDF ([`ClusterKey::point_key`]).
pub struct ClusterKey {
    bytes: Zeroizing<[u8; 32]>,
    cluster_salt: [u8; SALT_LEN],
    iterations: u32,
}

impl ClusterKey {
    /// Runs PBKDF2-HMAC-SHA256 (about 80 ms at 600,000 iterations): call it once per
    /// cluster and passphrase, and keep the result (the `Unlocker` does).
    pub fn derive(passphrase: &Passphrase, cluster_salt: [u8; SALT_LEN], iterations: u32) -> Self {
        Self { bytes: pbkdf2_sha256(passphrase, &cluster_salt, iterations), cluster_salt, iterations }
    }

    /// The cluster master for the version 3 `params` (the salt and count they name).
    ///
    /// # Panics
    /// When `params` are legacy ones: those have no cluster master.
    pub fn derive_for(passphrase: &Passphrase, params: KdfParams) -> Self {
        let cluster_salt = params.cluster_salt.expect("version 3 parameters");
        Self::derive(passphrase, cluster_salt, params.iterations)
    }

    /// The point key for `params`: HKDF-SHA256(ikm = cluster master, salt = the point's
    /// salt, info = "kubectl-dr v3 point"), microseconds. Parameters of another cluster, of
    /// another iteration count, or legacy ones, are refused before anything is derived.
    pub fn point_key(&self, params: KdfParams) -> Result<MasterKey, FormatError> {
        if params.cluster_salt != Some(self.cluster_salt) || params.iterations != self.iterations {
            return Err(FormatError::KdfNotWriters { detail: "the cluster salt or iteration count is not this cluster's" });
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &params.salt).extract(self.bytes.as_ref());
        prk.expand(&[POINT_LABEL], Len32).and_then(|okm| okm.fill(bytes.as_mut())).expect("HKDF-SHA256 can expand 32 bytes");
        Ok(MasterKey { bytes, params })
    }

    /// The cluster salt and iteration count this key was derived with.
    pub fn params(&self) -> ([u8; SALT_LEN], u32) {
        (self.cluster_salt, self.iterations)
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey([redacted])")
    }
}

fn pbkdf2_sha256(passphrase: &Passphrase, salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    let iterations = NonZeroU32::new(iterations.max(1)).expect("non-zero");
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, passphrase.expose(), bytes.as_mut());
    bytes
}

/// A point's 32-byte master key; every key of its files is expanded from it. Versions 1
/// and 2: PBKDF2 of the passphrase under the point's salt. Version 3: HKDF of the cluster
/// master under the point's salt ([`ClusterKey::point_key`]).
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    params: KdfParams,
}

impl MasterKey {
    /// Derives a point's key from the passphrase alone: for legacy parameters one PBKDF2
    /// (about 80 ms at 600,000 iterations), for version 3 the cluster's PBKDF2 and then the
    /// point's HKDF. Readers of many points use `point::Unlocker`, which derives each
    /// cluster master once.
    pub fn derive(passphrase: &Passphrase, params: KdfParams) -> Self {
        match params.cluster_salt {
            None => Self { bytes: pbkdf2_sha256(passphrase, &params.salt, params.iterations), params },
            Some(_) => ClusterKey::derive_for(passphrase, params).point_key(params).expect("the cluster key was derived for these parameters"),
        }
    }

    /// The parameters this key was derived with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// The keys of one file, expanded from the point's master as in every version (the
    /// labels still say v1: the master differs between versions, the expansion does not).
    pub(crate) fn file_keys(&self) -> FileKeys {
        let payload = self.expand(b"kubectl-dr v1 payload");
        let mac = self.expand(b"kubectl-dr v1 header-mac");
        let check = self.expand(b"kubectl-dr v1 key-check");
        let mut key_check = [0u8; KEY_CHECK_LEN];
        key_check.copy_from_slice(&check[..KEY_CHECK_LEN]);
        FileKeys {
            aead: aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, payload.as_ref()).expect("32-byte key")),
            sealing: aead::RandomizedNonceKey::new(&aead::AES_256_GCM, payload.as_ref()).expect("32-byte key"),
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac.as_ref()),
            key_check,
        }
    }

    fn expand(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(self.bytes.as_ref());
        let info = [info];
        prk.expand(&info, Len32).and_then(|okm| okm.fill(out.as_mut())).expect("HKDF-SHA256 can expand 32 bytes");
        out
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// The keys one encrypted file uses. aws-lc-rs wipes its own key schedules on drop.
pub(crate) struct FileKeys {
    /// Opens chunks, with the nonce the file gives.
    pub aead: aead::LessSafeKey,
    /// Seals chunks under an IV the module draws itself (format version 2).
    pub sealing: aead::RandomizedNonceKey,
    pub mac: hmac::Key,
    pub key_check: [u8; KEY_CHECK_LEN],
}

impl Drop for FileKeys {
    fn drop(&mut self) {
        self.key_check.zeroize();
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    aws_lc_rs::rand::SystemRandom::new().fill(buf).expect("the system random number generator failed");
}

/// Whether the crypto module runs in FIPS mode (only the `fips` build can).
pub fn fips_mode() -> bool {
    aws_lc_rs::try_fips_mode().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_is_trimmed_and_never_printed() {
        let p = Passphrase::new("  correct horse\n".into()).unwrap();
        assert_eq!(p.expose(), b"correct horse");
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn empty_or_binary_passphrase_is_refused() {
        assert!(Passphrase::new(" \n".into()).is_err());
        assert!(Passphrase::from_bytes(vec![0xff, 0xfe]).is_err());
    }

    #[test]
    fn derivation_depends_on_salt() {
        let p = Passphrase::new("x".into()).unwrap();
        let a = MasterKey::derive(&p, KdfParams::legacy(1000, [1; 16]));
        let b = MasterKey::derive(&p, KdfParams::legacy(1000, [2; 16]));
        assert_ne!(a.file_keys().key_check, b.file_keys().key_check);
    }

    fn v3(cluster: &str, salt: [u8; SALT_LEN]) -> KdfParams {
        KdfParams { iterations: 1000, salt, cluster_salt: Some(cluster_salt(cluster)) }
    }

    #[test]
    fn version_3_point_keys_come_from_one_cluster_master() {
        let p = Passphrase::new("x".into()).unwrap();
        let cluster = ClusterKey::derive_for(&p, v3("a", [0; 16]));
        let one = cluster.point_key(v3("a", [1; 16])).unwrap();
        let two = cluster.point_key(v3("a", [2; 16])).unwrap();
        // Each point has its own key, and the cluster master plus HKDF is what
        // MasterKey::derive computes from the passphrase alone.
        assert_ne!(one.file_keys().key_check, two.file_keys().key_check);
        assert_eq!(one.file_keys().key_check, MasterKey::derive(&p, v3("a", [1; 16])).file_keys().key_check);
        // Not the legacy derivation under the same point salt.
        assert_ne!(one.file_keys().key_check, MasterKey::derive(&p, KdfParams::legacy(1000, [1; 16])).file_keys().key_check);
    }

    #[test]
    fn a_cluster_master_refuses_another_clusters_or_counts_parameters() {
        let p = Passphrase::new("x".into()).unwrap();
        let cluster = ClusterKey::derive_for(&p, v3("a", [0; 16]));
        assert_ne!(cluster_salt("a"), cluster_salt("b"));
        for other in [v3("b", [1; 16]), KdfParams { iterations: 1001, ..v3("a", [1; 16]) }, KdfParams::legacy(1000, [1; 16])] {
            let r = cluster.point_key(other);
            assert!(matches!(r, Err(FormatError::KdfNotWriters { .. })), "{other:?}: {r:?}");
        }
    }
}
