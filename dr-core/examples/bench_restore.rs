//! Restore benchmark: `cargo run --release -p dr-core --example bench_restore`.
//!
//! Writes a restore point of 10,000 and of 40,000 objects (ConfigMaps and Secrets of about
//! 1 KiB across five namespaces, plus the namespaces) into a directory location, then restores
//! each onto an empty in-process test API server running in another process, with the
//! restore's default concurrency and rate limit. It reports wall time, objects per second, the
//! restore's own CPU time and its peak RSS (flat in the number of objects: the point is
//! streamed once per tier, never held whole).

#[path = "../tests/support/apiserver.rs"]
#[allow(dead_code)]
mod apiserver;

// As the shipped static binaries do (restore-job/src/main.rs), so a musl run measures them.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "common/measure.rs"]
mod measure;

use dr_core::catalog::{Category, Entry, Mode};
use measure::{cpu_seconds, proc_status};
use dr_core::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::point::PointWriter;
use dr_core::restore::{self, RestoreSettings};
use serde_json::{json, Value};

const PASS: &str = "benchmark passphrase";
const CLUSTER: &str = "bench-source";

/// An empty target cluster with the DR namespace, a file profile and k10-dr-secret.
async fn serve() {
    let api = apiserver::ApiServer::start().await;
    api.install_dr_crds();
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": "kasten-io"}, "spec": {"file": {"claimName": "dr-nfs"}}}));
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": "kasten-io"}, "data": {"key": apiserver::base64(PASS.as_bytes(), false)}}));
    measure::serve_until_stdin_closes(&api.url).await;
}

async fn write_point(dir: &std::path::Path, n: usize) {
    let loc = Location::connect(&LocationConfig::File { path: dir.to_owned() }).await.unwrap();
    let mut w = PointWriter::begin(&loc, CLUSTER, &Passphrase::new(PASS.into()).unwrap(), Mode::Full, "k10-disaster-recovery-policy").await.unwrap();
    for ns in 0..5 {
        w.add(&Entry { category: Category::Cluster, object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{ns}")}}), source_uid: None }).await.unwrap();
    }
    let filler = "x".repeat(700);
    for i in 0..n {
        let ns = format!("ns-{}", i % 5);
        let object = if i % 2 == 0 {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": ns, "labels": {"app": "shop"}}, "data": {"config": filler, "n": i.to_string()}})
        } else {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("secret-{i}"), "namespace": ns}, "data": {"token": "c2VjcmV0", "pad": filler}})
        };
        w.add(&Entry { category: Category::Applications, object, source_uid: Some(format!("uid-{i}")) }).await.unwrap();
    }
    w.finish().await.unwrap();
}

async fn restore(url: &str, dir: &str) {
    dr_core::init_crypto_provider();
    let client = dr_core::kube_client(kube::Config::new(url.parse().unwrap())).unwrap();
    let mut settings = RestoreSettings::new("kasten-io", CLUSTER, "offsite");
    settings.location_mount = Some(dir.into());
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let report = restore::run_restore(&client, &settings).await.unwrap();
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!("{}", json!({"objects": report.objects, "restored": report.restored, "wallSeconds": wall, "cpuSeconds": cpu, "peakRssMib": proc_status("VmHWM:")}));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    match args.get(1).map(String::as_str) {
        Some("--serve") => return rt.block_on(serve()),
        Some("--restore") => return rt.block_on(restore(&args[2], &args[3])),
        _ => {}
    }
    let me = std::env::current_exe().unwrap();
    println!("| objects | wall time | objects/s | restore CPU time (own) | restore peak RSS |\n| --- | --- | --- | --- | --- |");
    for n in [10_000usize, 40_000] {
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(write_point(dir.path(), n));
        let mut server = Command::new(&me).arg("--serve").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let mut url = String::new();
        std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut url).unwrap();
        let out = Command::new(&me).args(["--restore", url.trim(), dir.path().to_str().unwrap()]).output().unwrap();
        drop(server.stdin.take());
        let _ = server.wait();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["restored"], r["objects"].as_u64().unwrap(), "every object restored: {r}");
        let wall = r["wallSeconds"].as_f64().unwrap();
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} s | {:.1} MiB |",
            r["objects"],
            wall,
            r["objects"].as_f64().unwrap() / wall,
            r["cpuSeconds"].as_f64().unwrap(),
            r["peakRssMib"].as_f64().unwrap()
        );
    }
}
