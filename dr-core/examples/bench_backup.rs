//! Backup benchmark: `cargo run --release --example bench_backup`
//! (`DR_BENCH_OBJECTS=10000,40000` for other sizes; 1,000,000 by default).
//!
//! The test API server, in its own process as a real one is, is seeded with that many objects
//! (ConfigMaps, Secrets and a custom resource's objects in turn, about 1 KiB each, across 100
//! namespaces: `dr_test_support::measure::object`); a full backup of it into a directory
//! location then runs in this process. It reports wall time, the backup's own CPU time (the
//! product's overhead: the server's is its own), its peak RSS, and compares them with the
//! targets for 1,000,000 objects: under 60 s, at most 64 MiB.

use dr_test_support::apiserver;

// As the shipped static binaries do (restore-job/src/main.rs), so a musl run measures them.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::Command;
use std::time::Instant;

use dr_core::backup;
use dr_core::catalog::Mode;
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::resources::Selection;
use dr_test_support::measure::{self, cpu_seconds, proc_status, ServerProcess};
use serde_json::{json, Value};

const TARGET_SECONDS: f64 = 60.0;
const TARGET_RSS_MIB: f64 = 64.0;
const TARGET_OBJECTS: usize = 1_000_000;

async fn serve(n: usize) {
    let api = apiserver::ApiServer::start().await;
    api.install_dr_crds();
    api.seed(measure::cart_crd());
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}}));
    for ns in measure::namespaces() {
        api.seed(ns);
    }
    let start = Instant::now();
    for i in 0..n {
        api.seed(measure::object(i));
    }
    eprintln!("seeded {n} objects in {:.1} s", start.elapsed().as_secs_f64());
    measure::serve_until_stdin_closes(&api.url).await;
}

async fn backup(url: &str) {
    dr_core::init_crypto_provider();
    let client = dr_core::kube_client(kube::Config::new(url.parse().unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::connect(&LocationConfig::File { path: dir.path().to_owned() }).await.unwrap();
    let pass = Passphrase::new("benchmark passphrase".into()).unwrap();
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let report =
        backup::backup(&client, &loc, "bench", &pass, "kasten-io", Mode::Full, &Selection { cluster_scoped: true, ..Default::default() }).await.unwrap();
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{}",
        json!({"objects": report.manifest.counts.total, "wallSeconds": wall, "cpuSeconds": cpu, "peakRssMib": proc_status("VmHWM:"), "storedBytes": report.manifest.archive.stored_bytes})
    );
}

fn met(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    match args.get(1).map(String::as_str) {
        Some("--serve") => return rt.block_on(serve(args[2].parse().unwrap())),
        Some("--backup") => return rt.block_on(backup(&args[2])),
        _ => {}
    }
    let me = std::env::current_exe().unwrap();
    println!("| objects | wall time | backup CPU time (own overhead) | per 10,000 objects | backup peak RSS | server peak RSS (not the product's) | targets at 1,000,000: < 60 s, ≤ 64 MiB |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for n in measure::object_counts(&[TARGET_OBJECTS]) {
        let server = ServerProcess::start(&me, &["--serve", &n.to_string()]);
        let out = Command::new(&me).args(["--backup", &server.url]).output().unwrap();
        let server_rss = server.stop();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let objects = r["objects"].as_u64().unwrap();
        // Every seeded object, plus what the cluster itself holds (namespaces, the CRDs, the
        // root-CA ConfigMaps): a backup that missed pages would fall short.
        assert!(objects >= n as u64, "{objects} objects backed up of {n} seeded");
        let (wall, cpu, rss) = (r["wallSeconds"].as_f64().unwrap(), r["cpuSeconds"].as_f64().unwrap(), r["peakRssMib"].as_f64().unwrap());
        let verdict = if n >= TARGET_OBJECTS {
            format!("{} {wall:.1} s, {} {rss:.1} MiB", met(wall < TARGET_SECONDS), met(rss <= TARGET_RSS_MIB))
        } else {
            "— (smaller run)".to_owned()
        };
        println!("| {objects} | {wall:.2} s | {cpu:.2} s | {:.2} s | {rss:.1} MiB | {server_rss:.0} MiB | {verdict} |", cpu / objects as f64 * 10_000.0,);
    }
}
