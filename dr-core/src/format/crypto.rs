//! Passphrases and the keys derived from them. Everything here zeroizes itself on drop.
//!
//! `docs/format.md` is the specification; this module implements its "Keys" section.

use std::fmt;
use std::num::NonZeroU32;

use aws_lc_rs::{aead, hkdf, hmac, pbkdf2, rand::SecureRandom};
use zeroize::{Zeroize, Zeroizing};

/// PBKDF2 iterations every writer uses, and the floor it may never go below (OWASP 2023 for
/// PBKDF2-HMAC-SHA256).
pub const MIN_ITERATIONS: u32 = 600_000;
/// The most a reader accepts: ten times what writers use (about 0.8 s of PBKDF2 here), so a
/// forged header cannot make a reader spin (50 million took 7 s for each forged point). A
/// future writer that raises the count must raise this with it.
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

    pub(crate) fn expose(&self) -> &[u8] {
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

/// KDF parameters as stored in a header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KdfParams {
    pub iterations: u32,
    pub salt: [u8; SALT_LEN],
}

impl KdfParams {
    /// Fresh parameters for a new restore point: a random salt and [`MIN_ITERATIONS`].
    pub fn generate() -> Self {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt);
        Self { iterations: MIN_ITERATIONS, salt }
    }
}

/// The 32-byte key PBKDF2 derives from the passphrase; every other key is expanded from it.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
    params: KdfParams,
}

impl MasterKey {
    /// Runs PBKDF2-HMAC-SHA256 (about 80 ms at 600,000 iterations): call it once per point.
    pub fn derive(passphrase: &Passphrase, params: KdfParams) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        let iterations = NonZeroU32::new(params.iterations.max(1)).expect("non-zero");
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &params.salt,
            passphrase.expose(),
            bytes.as_mut(),
        );
        Self { bytes, params }
    }

    /// The parameters this key was derived with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    pub(crate) fn file_keys(&self) -> FileKeys {
        let payload = self.expand(b"kubectl-dr v1 payload");
        let mac = self.expand(b"kubectl-dr v1 header-mac");
        let check = self.expand(b"kubectl-dr v1 key-check");
        let mut key_check = [0u8; KEY_CHECK_LEN];
        key_check.copy_from_slice(&check[..KEY_CHECK_LEN]);
        FileKeys {
            aead: aead::LessSafeKey::new(
                aead::UnboundKey::new(&aead::AES_256_GCM, payload.as_ref()).expect("32-byte key"),
            ),
            sealing: aead::RandomizedNonceKey::new(&aead::AES_256_GCM, payload.as_ref()).expect("32-byte key"),
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac.as_ref()),
            key_check,
        }
    }

    fn expand(&self, info: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(self.bytes.as_ref());
        let info = [info];
        prk.expand(&info, Len32)
            .and_then(|okm| okm.fill(out.as_mut()))
            .expect("HKDF-SHA256 can expand 32 bytes");
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
    aws_lc_rs::rand::SystemRandom::new()
        .fill(buf)
        .expect("the system random number generator failed");
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
        let a = MasterKey::derive(&p, KdfParams { iterations: 1000, salt: [1; 16] });
        let b = MasterKey::derive(&p, KdfParams { iterations: 1000, salt: [2; 16] });
        assert_ne!(a.file_keys().key_check, b.file_keys().key_check);
    }
}
