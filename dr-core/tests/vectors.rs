//! The committed test vectors (tests/vectors/v1, v2, v3, see docs/format.md) decrypt to their
//! expected content: every reader must always open every version.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest;
use dr_core::catalog::Entry;
use dr_core::format::crypto::{MasterKey, Passphrase, CLUSTER_ITERATIONS, MIN_ITERATIONS};
use dr_core::format::{open_all, Binding, Header, Role};
use dr_core::location::{Location, LocationConfig};
use dr_core::point::{self, Unlocker};
use serde_json::Value;

/// The committed vectors of each version, and vectors another build wrote when
/// `DR_EXTRA_VECTORS` names their directory (`scripts/fips-interop` does: the FIPS build's
/// vectors read by the standard build).
fn vector_dirs() -> Vec<PathBuf> {
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut dirs = vec![committed.join("v1"), committed.join("v2"), committed.join("v3")];
    dirs.extend(std::env::var_os("DR_EXTRA_VECTORS").map(PathBuf::from));
    dirs
}

fn vectors(root: &std::path::Path) -> (PathBuf, Value) {
    let index = serde_json::from_slice(&std::fs::read(root.join("vectors.json")).unwrap()).unwrap();
    (root.to_owned(), index)
}

#[test]
fn stream_vectors_decrypt_to_their_plaintext() {
    for dir in vector_dirs() {
        stream_vectors_of(&dir);
    }
}

fn stream_vectors_of(dir: &std::path::Path) {
    let (root, index) = vectors(dir);
    let pass = Passphrase::new(index["passphrase"].as_str().unwrap().into()).unwrap();
    let streams = index["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 3);
    for v in streams {
        let bytes = std::fs::read(root.join(v["file"].as_str().unwrap())).unwrap();
        let header = Header::read(&mut &bytes[..]).unwrap();
        if let Some(version) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix('v')) {
            assert_eq!(header.version().to_string(), version, "{}", dir.display());
        }
        assert!(header.kdf().iterations >= MIN_ITERATIONS);
        if header.version() >= 3 {
            // Version 3: the cluster's PBKDF2 at exactly the writer's count, under the salt
            // docs/format.md gives, computed here from its text.
            assert!(!header.is_legacy_kdf());
            assert_eq!(header.kdf().iterations, CLUSTER_ITERATIONS);
            let mut documented = digest::Context::new(&digest::SHA256);
            documented.update(b"kubectl-dr v3 cluster salt\0");
            documented.update(v["clusterId"].as_str().unwrap().as_bytes());
            assert_eq!(header.kdf().cluster_salt.as_ref().map(|s| &s[..]), Some(&documented.finish().as_ref()[..16]));
        } else {
            assert!(header.is_legacy_kdf());
            assert_eq!(header.kdf().cluster_salt, None);
        }
        let role = if v["role"] == "manifest" { Role::Manifest } else { Role::Archive };
        let binding = Binding { cluster_id: v["clusterId"].as_str().unwrap().into(), point_id: v["pointId"].as_str().unwrap().into(), role };
        let plain = open_all(&bytes, &binding, |kdf| MasterKey::derive(&pass, kdf)).unwrap();
        assert_eq!(hex::encode(plain), v["plaintextHex"].as_str().unwrap(), "{}", v["file"]);
    }
}

#[tokio::test]
async fn point_vectors_restore_their_catalog() {
    for dir in vector_dirs() {
        point_vector_of(&dir).await;
    }
}

async fn point_vector_of(dir: &std::path::Path) {
    let (root, index) = vectors(dir);
    let pass = Passphrase::new(index["passphrase"].as_str().unwrap().into()).unwrap();
    let p = &index["point"];
    let cluster = p["clusterId"].as_str().unwrap();
    let loc = Location::connect(&LocationConfig::File { path: root.join(p["location"].as_str().unwrap()) }).await.unwrap();
    let points = point::list_points(&loc, cluster).await.unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].id, p["pointId"].as_str().unwrap());
    let unlocker = Unlocker::new(pass);
    let manifest = point::read_manifest(&loc, cluster, &points[0], &unlocker).await.unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    point::read_entries(&loc, &manifest, &unlocker, move |e| {
        sink.lock().unwrap().push(e);
        Ok(())
    })
    .await
    .unwrap();
    let expected: Vec<Entry> =
        std::fs::read_to_string(root.join(p["catalog"].as_str().unwrap())).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(*got.lock().unwrap(), expected);
    assert_eq!(manifest.counts.total, expected.len() as u64);
}
