//! Restore benchmark: `cargo run --release --example bench_restore` (the S3 row
//! needs moto from the tests' virtual environment: run `./scripts/venv` once;
//! `DR_BENCH_OBJECTS=40000` for other sizes of the large rows, 1,000,000 by default).
//!
//! Writes restore points (ConfigMaps, Secrets and a custom resource's objects, about 1 KiB
//! each, across 100 namespaces, plus the namespaces and the CRD: `dr_test_support::measure`)
//! into a directory location: 10,000 objects restored with the restore's default rate limit,
//! then the large ones without it; and 10,000 into an S3 bucket (moto, on loopback). Each is
//! restored onto an empty in-process test API server running in another process.
//! Beside each restore, against a fresh server of the same kind in the same run, a bare
//! create loop with the same 16 connections measures the server's own raw create rate: the
//! limit the restore is compared with. It reports wall time, objects per second and its
//! ratio to the raw rate, the restore's own CPU time, its peak RSS (flat in the number of
//! objects: the point is read once into a sealed spill, never held whole), and how many
//! times the point's archive was opened (downloaded, on S3). The rows of 1,000,000 objects
//! are compared with the targets: at least 0.95 of the raw rate, at most 64 MiB, read once.

use dr_test_support as support;

// As the shipped static binaries do (restore-job/src/main.rs), so a musl run measures them.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::Command;
use std::time::Instant;

use dr_core::catalog::{Category, Entry, Mode};
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig, S3Config, StaticCredentials};
use dr_core::point::PointWriter;
use dr_core::restore::{self, RestoreSettings};
use dr_test_support::measure::{self, cpu_seconds, proc_status, ServerProcess};
use futures::StreamExt;
use serde_json::{json, Value};
use support::apiserver;

const PASS: &str = "benchmark passphrase";
const CLUSTER: &str = "bench-source";
const BUCKET: &str = "dr-bench";
/// Connections of the raw create loop: the restore's default concurrency.
const RAW_CONNECTIONS: usize = restore::DEFAULT_CONCURRENCY;
const TARGET_OBJECTS: usize = 1_000_000;
const TARGET_RATIO: f64 = 0.95;
const TARGET_RSS_MIB: f64 = 64.0;

/// An empty target cluster with the DR namespace, a file profile, an S3 profile for
/// `s3_endpoint` and k10-dr-secret.
async fn serve(s3_endpoint: Option<String>) {
    let api = apiserver::ApiServer::start().await;
    api.install_dr_crds();
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}}));
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": "kasten-io"}, "spec": {"file": {"claimName": "dr-nfs"}}}));
    if let Some(endpoint) = s3_endpoint {
        api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "s3", "namespace": "kasten-io"},
                        "spec": {"s3": {"bucket": BUCKET, "region": "us-east-1", "endpoint": endpoint, "pathStyle": true, "credentialsSecret": "s3-creds"}}}));
        let b = |s: &str| apiserver::base64(s.as_bytes(), false);
        api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-creds", "namespace": "kasten-io"},
                        "data": {"aws_access_key_id": b("test"), "aws_secret_access_key": b("test")}}));
    }
    api.seed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k10-dr-secret", "namespace": "kasten-io"}, "data": {"key": apiserver::base64(PASS.as_bytes(), false)}}));
    measure::serve_until_stdin_closes(&api.url).await;
}

async fn write_point(loc: &Location, n: usize) {
    let mut w = PointWriter::begin(loc, CLUSTER, &Passphrase::new(PASS.into()).unwrap(), Mode::Full, "k10-disaster-recovery-policy").await.unwrap();
    for (kind, plural) in [
        ("Namespace", "namespaces"),
        ("CustomResourceDefinition.apiextensions.k8s.io", "customresourcedefinitions"),
        ("ConfigMap", "configmaps"),
        ("Secret", "secrets"),
        ("Cart.shop.example.com", "carts"),
    ] {
        w.note_resource(kind, plural);
    }
    w.add(&Entry { category: Category::Cluster, object: measure::cart_crd(), source_uid: Some("uid-crd".into()) }).await.unwrap();
    for ns in measure::namespaces() {
        w.add(&Entry { category: Category::Cluster, object: ns, source_uid: None }).await.unwrap();
    }
    for i in 0..n {
        w.add(&Entry { category: Category::Applications, object: measure::object(i), source_uid: Some(format!("uid-{i}")) }).await.unwrap();
    }
    w.finish().await.unwrap();
}

fn s3_config(endpoint: &str) -> S3Config {
    S3Config {
        bucket: BUCKET.into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        credentials: Some(StaticCredentials { access_key_id: "test".into(), secret_access_key: zeroize::Zeroizing::new("test".into()), session_token: None }),
        ..Default::default()
    }
}

/// The restore, in this process: prints its measurements as JSON.
async fn restore(url: &str, profile: &str, dir: &str, qps: u32) {
    dr_core::init_crypto_provider();
    let client = dr_core::kube_client(kube::Config::new(url.parse().unwrap())).unwrap();
    let mut settings = RestoreSettings::new("kasten-io", CLUSTER, profile);
    settings.location_mount = Some(dir.into());
    settings.qps = qps;
    let cpu0 = cpu_seconds();
    let opened0 = dr_core::location::objects_opened();
    let start = Instant::now();
    let opened = restore::open_point(&client, &settings, None).await.unwrap();
    let report = restore::run_restore(&client, &settings, opened).await.unwrap();
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{}",
        json!({"objects": report.objects, "restored": report.restored, "wallSeconds": wall, "cpuSeconds": cpu, "peakRssMib": proc_status("VmHWM:"),
               "archiveReads": report.archive_reads, "objectsOpened": dr_core::location::objects_opened() - opened0})
    );
}

#[derive(serde::Deserialize)]
struct Created {
    metadata: CreatedMetadata,
}

#[derive(serde::Deserialize)]
struct CreatedMetadata {
    uid: Option<String>,
}

/// The server's own limit: the same objects created by a bare loop on `RAW_CONNECTIONS`
/// concurrent requests, no rate limit, no reading of a point. Objects per second (the CRD
/// and the namespaces, created first, are counted, as the restore counts them).
async fn raw_creates(url: &str, n: usize) -> f64 {
    use kube::api::{Api, ApiResource, DynamicObject, PostParams};
    let client = dr_core::kube_client(kube::Config::new(url.parse().unwrap())).unwrap();
    let start = Instant::now();
    let crds: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(&()));
    crds.create(&PostParams::default(), &serde_json::from_value(measure::cart_crd()).unwrap()).await.unwrap();
    let namespace_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in measure::namespaces() {
        namespace_api.create(&PostParams::default(), &serde_json::from_value(ns).unwrap()).await.unwrap();
    }
    let cart = ApiResource {
        group: "shop.example.com".into(),
        version: "v1".into(),
        api_version: "shop.example.com/v1".into(),
        kind: "Cart".into(),
        plural: "carts".into(),
    };
    let config_map = ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&());
    let secret = ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&());
    futures::stream::iter(0..n)
        .for_each_concurrent(RAW_CONNECTIONS, |i| {
            let client = client.clone();
            let resource = match i % 3 {
                0 => &config_map,
                1 => &secret,
                _ => &cart,
            };
            // As lean as a client can be, as the restore's own create is: the object sent as
            // it is, only the UID read of the answer.
            async move {
                let url = <DynamicObject as kube::Resource>::url_path(resource, Some(&measure::namespace_of(i)));
                let body = serde_json::to_vec(&measure::object(i)).unwrap();
                let request = kube::core::Request::new(url).create(&PostParams::default(), body).unwrap();
                let created: Created = client.request(request).await.unwrap();
                assert!(created.metadata.uid.is_some(), "the server answers the created object");
            }
        })
        .await;
    (n + measure::NAMESPACES + 1) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    match args.get(1).map(String::as_str) {
        Some("--serve") => return rt.block_on(serve(args.get(2).cloned())),
        Some("--restore") => return rt.block_on(restore(&args[2], &args[3], &args[4], args[5].parse().unwrap())),
        Some("--raw") => {
            let cpu0 = cpu_seconds();
            let rate = rt.block_on(raw_creates(&args[2], args[3].parse().unwrap()));
            return println!("{rate} {}", cpu_seconds() - cpu0);
        }
        _ => {}
    }
    let me = std::env::current_exe().unwrap();
    // S3 from moto, when the tests' virtual environment is there.
    let moto = support::venv_bin_if_present("moto_server").map(|_| support::moto());
    if let Some(s3) = &moto {
        support::moto_setup(s3, &["bucket", BUCKET], None);
    } else {
        eprintln!("no .venv with moto (./scripts/venv makes it): the S3 rows are left out");
    }
    println!("| location | objects | client rate limit | wall time | objects/s | server's raw create rate | ratio | restore CPU time (own) | raw loop's CPU time | restore peak RSS | archive reads | targets at 1,000,000: ≥ 0.95, ≤ 64 MiB, read once |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    // The default limit (2,000 requests/s) first; then without it, which compares the
    // engine itself with the server's limit (this test server creates faster than 2,000/s).
    const UNLIMITED: u32 = 1_000_000;
    let mut runs: Vec<(&str, usize, u32)> = vec![("directory", 10_000, restore::DEFAULT_QPS)];
    if moto.is_some() {
        runs.push(("S3 (moto)", 10_000, UNLIMITED));
    }
    runs.extend(measure::object_counts(&[TARGET_OBJECTS]).into_iter().map(|n| ("directory", n, UNLIMITED)));
    for (kind, n, qps) in runs {
        let dir = tempfile::tempdir().unwrap();
        let s3_url = moto.as_ref().map(|m| m.url.clone());
        let profile = if kind == "directory" {
            rt.block_on(async { write_point(&Location::connect(&LocationConfig::File { path: dir.path().to_owned() }).await.unwrap(), n).await });
            "offsite"
        } else {
            let url = s3_url.clone().unwrap();
            rt.block_on(async { write_point(&Location::connect(&LocationConfig::S3(s3_config(&url))).await.unwrap(), n).await });
            "s3"
        };
        // The limit first, on a server of its own.
        let raw_server = ServerProcess::start(&me, &["--serve"]);
        let raw = Command::new(&me).args(["--raw", &raw_server.url, &n.to_string()]).output().unwrap();
        raw_server.stop();
        assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
        let raw_out = String::from_utf8_lossy(&raw.stdout).into_owned();
        let (raw_rate, raw_cpu) = raw_out.trim().split_once(' ').map(|(r, c)| (r.parse::<f64>().unwrap(), c.parse::<f64>().unwrap())).unwrap();
        // Then the restore.
        let mut serve_args = vec!["--serve"];
        serve_args.extend(s3_url.as_deref());
        let restore_server = ServerProcess::start(&me, &serve_args);
        let out = Command::new(&me).args(["--restore", &restore_server.url, profile, dir.path().to_str().unwrap(), &qps.to_string()]).output().unwrap();
        restore_server.stop();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["restored"], r["objects"].as_u64().unwrap(), "every object restored: {r}");
        let wall = r["wallSeconds"].as_f64().unwrap();
        let rate = r["objects"].as_f64().unwrap() / wall;
        let (ratio, rss, reads) = (rate / raw_rate, r["peakRssMib"].as_f64().unwrap(), r["archiveReads"].as_u64().unwrap());
        let met = |ok: bool| if ok { "**met**" } else { "**not met**" };
        let verdict = if n >= TARGET_OBJECTS {
            format!("{} {ratio:.2}, {} {rss:.1} MiB, {} {reads}", met(ratio >= TARGET_RATIO), met(rss <= TARGET_RSS_MIB), met(reads == 1))
        } else {
            "— (smaller run)".to_owned()
        };
        println!(
            "| {kind} | {} | {} | {:.2} s | {:.0} | {:.0} | {:.2} | {:.2} s | {raw_cpu:.2} s | {:.1} MiB | {} | {verdict} |",
            r["objects"],
            if qps == UNLIMITED { "none".to_owned() } else { format!("{qps}/s") },
            wall,
            rate,
            raw_rate,
            rate / raw_rate,
            r["cpuSeconds"].as_f64().unwrap(),
            r["peakRssMib"].as_f64().unwrap(),
            r["archiveReads"]
        );
        if kind != "directory" && moto.is_some() {
            // A new point for the next run must not see this one: empty the bucket's prefix.
            rt.block_on(async {
                let loc = Location::connect(&LocationConfig::S3(s3_config(s3_url.as_deref().unwrap()))).await.unwrap();
                for o in loc.list("").await.unwrap() {
                    loc.delete(&o.key, None).await.unwrap();
                }
            });
        }
    }
}
