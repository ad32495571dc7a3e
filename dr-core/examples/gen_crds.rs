//! Writes the CRD manifests generated from the Rust types to `deploy/crds/`:
//! `cargo run --release --example gen_crds`.

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, yaml) in dr_core::resources::crd_manifests() {
        std::fs::write(
            dir.join(&name),
            format!("# Generated from dr-core/src/resources/ (profile.rs, policy.rs) by `cargo run -p dr-core --example gen_crds`; do not edit.\n{yaml}"),
        )
        .unwrap();
        println!("wrote deploy/crds/{name}");
    }
}
