//! `dr-job self-check`: what an image needs to work, checked inside it (CI runs it in the
//! built image with `buildah run`; an operator can run it with `kubectl run`).
//!
//! - the crypto module opens a committed test vector of each version of the restore-point
//!   format, 1 to 3 (a known-answer test of PBKDF2, HKDF, HMAC, SHA-256 and AES-GCM: the
//!   image reads points every other build wrote);
//! - the system's CA certificates load (without them S3, AWS Secrets Manager, STS and a
//!   public Vault cannot be reached over TLS from a `scratch` image);
//! - whether the crypto module runs in FIPS mode.

use serde::Serialize;

use crate::format::crypto::{MasterKey, Passphrase};
use crate::format::{open_all, Binding, Role};

/// One vector per format version: the file and the index that says what it holds.
const VECTORS: &[(&[u8], &str)] = &[
    (include_bytes!("../tests/vectors/v1/three-chunks.kdr"), include_str!("../tests/vectors/v1/vectors.json")),
    (include_bytes!("../tests/vectors/v2/three-chunks.kdr"), include_str!("../tests/vectors/v2/vectors.json")),
    // Version 3 adds the per-cluster PBKDF2 and the point's HKDF under it.
    (include_bytes!("../tests/vectors/v3/three-chunks.kdr"), include_str!("../tests/vectors/v3/vectors.json")),
];

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfCheck {
    pub version: &'static str,
    pub crypto: &'static str,
    pub fips_mode: bool,
    /// The format's known-answer test: "ok", or what failed.
    pub format_vector: String,
    pub ca_certificates: crate::tls::SystemRoots,
    /// The user the process runs as (the image's is 65532).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    pub ok: bool,
}

pub fn run() -> SelfCheck {
    let format_vector = match known_answer() {
        Ok(()) => "ok".to_owned(),
        Err(e) => e,
    };
    let ca_certificates = crate::tls::system_roots();
    let ok = format_vector == "ok" && ca_certificates.certificates > 0;
    SelfCheck {
        version: env!("CARGO_PKG_VERSION"),
        crypto: "aws-lc-rs",
        fips_mode: crate::format::crypto::fips_mode(),
        format_vector,
        ca_certificates,
        uid: process_uid(),
        ok,
    }
}

fn known_answer() -> Result<(), String> {
    VECTORS.iter().try_for_each(|(vector, index)| known_answer_of(vector, index))
}

fn known_answer_of(vector: &[u8], index: &str) -> Result<(), String> {
    let index: serde_json::Value = serde_json::from_str(index).map_err(|e| e.to_string())?;
    let v = index["streams"].as_array().and_then(|s| s.iter().find(|v| v["file"] == "three-chunks.kdr")).ok_or("the vector index lacks three-chunks.kdr")?;
    let pass = Passphrase::new(index["passphrase"].as_str().unwrap_or_default().into()).map_err(|e| e.to_string())?;
    let role = if v["role"] == "manifest" { Role::Manifest } else { Role::Archive };
    let binding = Binding { cluster_id: v["clusterId"].as_str().unwrap_or_default().into(), point_id: v["pointId"].as_str().unwrap_or_default().into(), role };
    let plain =
        open_all(vector, &binding, |kdf| MasterKey::derive(&pass, kdf)).map_err(|e| format!("the format vector does not open: {}", crate::error_text(&e)))?;
    if hex::encode(plain) != v["plaintextHex"].as_str().unwrap_or_default() {
        return Err("the format vector opened to the wrong plaintext".into());
    }
    Ok(())
}

/// The real user ID, from /proc (no libc call needed).
fn process_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|l| l.split_whitespace().next()).and_then(|u| u.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_answer_test_passes_here() {
        assert_eq!(known_answer(), Ok(()));
    }

    #[test]
    fn every_version_a_reader_reads_has_a_vector() {
        let versions: Vec<u8> = VECTORS.iter().map(|(v, _)| crate::format::Header::read(&mut &v[..]).unwrap().version()).collect();
        assert_eq!(versions, crate::format::READ_VERSIONS.collect::<Vec<_>>());
    }

    #[test]
    fn a_damaged_vector_fails_the_check() {
        for (vector, index) in VECTORS {
            let mut bad = vector.to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(known_answer_of(&bad, index).is_err());
        }
    }
}
