//! Writes the current format version's test vectors under `dr-core/tests/vectors/v<N>/` (or
//! into the directory given). Run once when the format changes:
//! `cargo run --release --example make_vectors`. The vectors are random (salt,
//! IVs), so regenerating changes every byte; the test only checks that the committed ones
//! decrypt to their expected content.

use std::io::Write;
use std::path::PathBuf;

use dr_core::format::crypto::{KdfParams, MasterKey, Passphrase};
use dr_core::format::{seal_all, Binding, Role};
use dr_core::location::{Location, LocationConfig};
use serde_json::json;

const PASSPHRASE: &str = "kubectl-dr test vector passphrase";
const CLUSTER: &str = "5f1c0a2e-7b3d-4e8f-9a6b-0c1d2e3f4a5b";

#[tokio::main]
async fn main() {
    // Each format version keeps its own vectors; this writes the current version's, or into
    // the directory given (scripts/fips-interop: vectors written by the other build).
    let root = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/vectors/v{}", dr_core::format::VERSION)),
    };
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let pass = Passphrase::new(PASSPHRASE.into()).unwrap();

    // Streams: the format alone, at the writer's iteration count, with a small chunk size so
    // a short vector spans several chunks.
    let key = MasterKey::derive(&pass, KdfParams::generate(CLUSTER));
    let mut streams = Vec::new();
    for (name, plain, role) in [
        ("empty", Vec::new(), Role::Archive),
        ("one-chunk", b"exactly sixty-four bytes of plaintext fill this single chunk....".to_vec(), Role::Archive),
        ("three-chunks", b"kubectl-dr test vector: ".repeat(6), Role::Manifest),
    ] {
        let binding = Binding { cluster_id: CLUSTER.into(), point_id: format!("20261121T000000.000Z-{name}"), role };
        let sealed = seal_all(&plain, &key, &binding, 64);
        std::fs::write(root.join(format!("{name}.kdr")), &sealed).unwrap();
        streams.push(json!({
            "file": format!("{name}.kdr"),
            "clusterId": binding.cluster_id,
            "pointId": binding.point_id,
            "role": role.as_str(),
            "plaintextHex": hex::encode(&plain),
        }));
    }

    // A whole restore point in a directory location, made from examples/manifests.
    let manifests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests");
    let entries = dr_core::manifests::read_dir(&manifests, "kasten-io", "default").unwrap();
    let loc = Location::connect(&LocationConfig::File { path: root.join("location") }).await.unwrap();
    std::fs::create_dir_all(root.join("location")).unwrap();
    let mut w = dr_core::point::PointWriter::begin(&loc, CLUSTER, &pass, dr_core::catalog::Mode::Full, "k10-disaster-recovery-policy").await.unwrap();
    let mut expected = std::fs::File::create(root.join("point-catalog.ndjson")).unwrap();
    for e in &entries {
        w.add(e).await.unwrap();
        serde_json::to_writer(&mut expected, e).unwrap();
        expected.write_all(b"\n").unwrap();
    }
    let manifest = w.finish().await.unwrap();

    let index = json!({
        "passphrase": PASSPHRASE,
        "streams": streams,
        "point": {"location": "location", "clusterId": CLUSTER, "pointId": manifest.point_id, "catalog": "point-catalog.ndjson"},
    });
    std::fs::write(root.join("vectors.json"), serde_json::to_string_pretty(&index).unwrap() + "\n").unwrap();
    println!("wrote {} (format version {}, FIPS mode: {})", root.display(), dr_core::format::VERSION, dr_core::format::crypto::fips_mode());
}
