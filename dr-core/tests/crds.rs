//! The committed CRD manifests match the Rust types they are generated from.

#[test]
fn committed_crds_are_current() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    let generated = dr_core::resources::crd_manifests();
    assert_eq!(generated.len(), 2);
    for (name, yaml) in generated {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        let body = committed.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
        assert_eq!(body, yaml, "deploy/crds/{name} is stale: run `cargo run --release --example gen_crds` and commit the result");
    }
}
