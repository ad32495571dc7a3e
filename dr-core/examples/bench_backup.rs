//! Backup benchmark: `cargo run --release -p dr-core --example bench_backup`.
//!
//! For 10,000 and 40,000 objects (ConfigMaps, Secrets and a custom resource's objects, about
//! 1 KiB each, across five namespaces) served by the in-process test API server, it runs a
//! full backup into a directory location and reports wall time, the backup's own CPU time
//! (the product's overhead: the API server runs in another process) and its peak RSS.

use dr_test_support::apiserver;

// As the shipped static binaries do (restore-job/src/main.rs), so a musl run measures them.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Instant;

use dr_core::backup;
use dr_core::catalog::Mode;
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::resources::Selection;
use dr_test_support::measure::{self, cpu_seconds, proc_status};
use serde_json::{json, Value};

async fn serve(n: usize) {
    let api = apiserver::ApiServer::start().await;
    api.install_dr_crds();
    api.seed(json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "carts.shop.example.com"},
                    "spec": {"group": "shop.example.com", "names": {"kind": "Cart", "plural": "carts"}, "scope": "Namespaced",
                             "versions": [{"name": "v1", "served": true, "storage": true}]}}));
    for ns in ["kasten-io", "ns-0", "ns-1", "ns-2", "ns-3", "ns-4"] {
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    let filler = "x".repeat(700);
    for i in 0..n {
        let ns = format!("ns-{}", i % 5);
        let obj = match i % 3 {
            0 => {
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": ns, "labels": {"app": "shop"}}, "data": {"config": filler, "n": i.to_string()}})
            }
            1 => {
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("secret-{i}"), "namespace": ns}, "data": {"token": "c2VjcmV0LXZhbHVlLWZvci1iZW5jaG1hcmtz", "pad": filler}})
            }
            _ => {
                json!({"apiVersion": "shop.example.com/v1", "kind": "Cart", "metadata": {"name": format!("cart-{i}"), "namespace": ns}, "spec": {"items": [filler.clone()], "n": i}})
            }
        };
        api.seed(obj);
    }
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    match args.get(1).map(String::as_str) {
        Some("--serve") => return rt.block_on(serve(args[2].parse().unwrap())),
        Some("--backup") => return rt.block_on(backup(&args[2])),
        _ => {}
    }
    let me = std::env::current_exe().unwrap();
    println!("| objects | wall time | backup CPU time (own overhead) | per 10,000 objects | backup peak RSS |\n| --- | --- | --- | --- | --- |");
    for n in [10_000usize, 40_000] {
        let mut server = Command::new(&me).args(["--serve", &n.to_string()]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut url = String::new();
        std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut url).unwrap();
        let out = Command::new(&me).args(["--backup", url.trim()]).output().unwrap();
        drop(server.stdin.take());
        let _ = server.wait();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let objects = r["objects"].as_f64().unwrap();
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {:.1} MiB |",
            r["objects"],
            r["wallSeconds"].as_f64().unwrap(),
            r["cpuSeconds"].as_f64().unwrap(),
            r["cpuSeconds"].as_f64().unwrap() / objects * 10_000.0,
            r["peakRssMib"].as_f64().unwrap()
        );
    }
}
