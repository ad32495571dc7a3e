//! Benchmarks of the restore-point format: `cargo run --release --example bench`.
//!
//! Each phase runs in its own child process so its peak RSS (VmHWM) is its own:
//! - `pbkdf2`: key derivation at the writers' 600,000 iterations;
//! - `aead-encrypt` / `aead-decrypt`: the chunked AES-256-GCM stream alone, 1 GiB;
//! - `point-write`: a 1 GiB catalog of Kubernetes-like objects written as a restore point
//!   (JSON, zstd, AES-GCM, file location);
//! - `point-decrypt`: that point's archive decrypted and decompressed, discarding the output;
//! - `point-read`: the same plus parsing every catalog entry (what verify and restore do);
//! - `forged-points`: one genuine point beside 1,000 forged format 3 points (headers with a
//!   random salt and a correct checksum, what anyone with the write credentials can plant)
//!   at a directory location: how long judging every manifest (`point::judge_all`, what a
//!   listing, `verify` and `prune` do) and choosing the newest point (a restore) take, and
//!   how many PBKDF2 runs they cost; then the same with 1,000 forged format 2 headers dated
//!   after the genuine point added (refused unread by the upgrade rule, docs/format.md).
//!
//! Sizes are in the catalog's (uncompressed) bytes unless the phase says otherwise.
//! `DR_BENCH_MIB` sets the size (default 1024).

// As the shipped static binaries do (restore-job/src/main.rs), so a musl run measures them.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use dr_core::catalog::{Category, Entry, Mode};
use dr_core::format::crypto::{KdfParams, MasterKey, Passphrase};
use dr_core::format::{Binding, DecryptReader, EncryptWriter, Header, Role, DEFAULT_CHUNK_SIZE};
use dr_core::location::{Location, LocationConfig};
use dr_core::point::{self, PointWriter, Unlocker};
use serde_json::{json, Value};

const CLUSTER: &str = "bench-cluster";
const PASSPHRASE: &str = "benchmark passphrase";

fn mib() -> u64 {
    std::env::var("DR_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn pass() -> Passphrase {
    Passphrase::new(PASSPHRASE.into()).unwrap()
}

fn binding() -> Binding {
    Binding { cluster_id: CLUSTER.into(), point_id: "20261121T000000.000Z-bench000".into(), role: Role::Archive }
}

/// Cheap deterministic noise, so data neither compresses away nor costs much to make.
struct Noise(u64);
impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(self.0 & 63) as usize];
        }
    }
}

/// A ConfigMap-like object of about 4 KiB: labels, annotations, a config file (repetitive
/// text, like real configuration) and a 1 KiB base64-looking blob (like a certificate).
fn object(i: u64, noise: &mut Noise) -> Value {
    let mut blob = vec![0u8; 1024];
    noise.fill(&mut blob);
    let config: String = (0..40).map(|l| format!("setting_{l} = value-{}-{}\n", i % 97, l * 7)).collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("app-config-{i}"),
            "namespace": format!("team-{}", i % 50),
            "labels": {"app.kubernetes.io/name": format!("service-{}", i % 300), "app.kubernetes.io/part-of": "shop", "tier": "backend"},
            "annotations": {"owner": "platform-team@example.com", "revision": (i % 17).to_string()},
        },
        "data": {"application.properties": config, "ca.crt": String::from_utf8(blob).unwrap()},
    })
}

fn report(phase: &str, bytes: u64, secs: f64, extra: Value) {
    let line = json!({
        "phase": phase,
        "bytes": bytes,
        "seconds": secs,
        "mbPerSec": bytes as f64 / secs / 1e6,
        "peakRssMib": peak_rss_mib(),
        "extra": extra,
    });
    println!("{line}");
}

fn phase_pbkdf2() {
    let p = pass();
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(MasterKey::derive(&p, KdfParams::generate(CLUSTER)));
    }
    let per = start.elapsed().as_secs_f64() / runs as f64;
    report("pbkdf2", 0, per, json!({"iterations": dr_core::format::crypto::MIN_ITERATIONS, "msPerDerivation": per * 1e3}));
}

struct Discard(u64);
impl Write for Discard {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn phase_aead_encrypt(dir: &Path) {
    let total = mib() << 20;
    let key = MasterKey::derive(&pass(), KdfParams::generate(CLUSTER));
    let mut block = vec![0u8; 1 << 20];
    Noise(7).fill(&mut block);
    // Measured into a sink that discards, so storage speed does not count.
    let start = Instant::now();
    let mut w = EncryptWriter::new(Discard(0), &key, &binding(), DEFAULT_CHUNK_SIZE).unwrap();
    for _ in 0..(total >> 20) {
        w.write_all(&block).unwrap();
    }
    let sink = w.finish().unwrap();
    let secs = start.elapsed().as_secs_f64();
    // Then write the same stream to a file for the decrypt phase (not timed).
    let mut w = EncryptWriter::new(std::io::BufWriter::new(std::fs::File::create(dir.join("raw.kdr")).unwrap()), &key, &binding(), DEFAULT_CHUNK_SIZE).unwrap();
    for _ in 0..(total >> 20) {
        w.write_all(&block).unwrap();
    }
    w.finish().unwrap().flush().unwrap();
    report("aead-encrypt", total, secs, json!({"storedBytes": sink.0}));
}

/// Runs `f` `RUNS` times and keeps the fastest, so the figure reflects the code rather than
/// a noisy neighbour on a shared machine. `f` returns (bytes processed, seconds it timed).
const RUNS: usize = 5;
fn best_of(mut f: impl FnMut() -> (u64, f64)) -> (u64, f64) {
    (0..RUNS).map(|_| f()).min_by(|a, b| a.1.total_cmp(&b.1)).expect("at least one run")
}

fn phase_aead_decrypt(dir: &Path) {
    let (total, secs) = best_of(|| {
        let mut file = std::fs::File::open(dir.join("raw.kdr")).unwrap();
        let header = Header::read(&mut file).unwrap();
        let key = MasterKey::derive(&pass(), header.kdf());
        // Timed after the one-off key derivation, like point-decrypt.
        let start = Instant::now();
        let mut r = DecryptReader::new(file, &header, &key).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        (total, start.elapsed().as_secs_f64())
    });
    report("aead-decrypt", total, secs, json!({"note": "best of 5; includes reading the file from the page cache"}));
}

async fn location(dir: &Path) -> Location {
    let root = dir.join("location");
    std::fs::create_dir_all(&root).unwrap();
    Location::connect(&LocationConfig::File { path: root }).await.unwrap()
}

async fn phase_point_write(dir: &Path) {
    let total = mib() << 20;
    let loc = location(dir).await;
    let mut noise = Noise(42);
    let start = Instant::now();
    let mut w = PointWriter::begin(&loc, CLUSTER, &pass(), Mode::Full, "bench").await.unwrap();
    let mut i = 0;
    while w.catalog_bytes() < total {
        w.add(&Entry { category: Category::Applications, object: object(i, &mut noise), source_uid: None }).await.unwrap();
        i += 1;
    }
    let m = w.finish().await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    std::fs::write(dir.join("point-id"), &m.point_id).unwrap();
    report(
        "point-write",
        m.archive.catalog_bytes,
        secs,
        json!({"objects": m.counts.total, "storedBytes": m.archive.stored_bytes, "compressionRatio": m.archive.catalog_bytes as f64 / m.archive.compressed_bytes as f64, "note": "includes building and serializing the objects"}),
    );
}

async fn phase_point_decrypt(dir: &Path) {
    let loc = location(dir).await;
    let id = std::fs::read_to_string(dir.join("point-id")).unwrap();
    let unlocker = Unlocker::new(pass());
    let manifest = point::choose(&loc, CLUSTER, point::Which::Id(&id), &unlocker).await.unwrap().manifest;
    let path = dir.join("location").join(point::object_key(CLUSTER, &id, point::ARCHIVE_OBJECT));
    let (total, secs) = best_of(|| {
        let mut file = std::fs::File::open(&path).unwrap();
        let header = Header::read(&mut file).unwrap();
        let key = MasterKey::derive(&pass(), header.kdf());
        // Timed after the one-off key derivation, like aead-decrypt.
        let start = Instant::now();
        let bytes = point::decrypt_catalog_bytes(file, &header, &key).unwrap();
        (bytes, start.elapsed().as_secs_f64())
    });
    assert_eq!(total, manifest.archive.catalog_bytes);
    report("point-decrypt", total, secs, json!({"storedBytes": manifest.archive.stored_bytes, "note": "best of 5"}));
}

async fn phase_point_read(dir: &Path) {
    let loc = location(dir).await;
    let id = std::fs::read_to_string(dir.join("point-id")).unwrap();
    let unlocker = Unlocker::new(pass());
    let manifest = point::choose(&loc, CLUSTER, point::Which::Id(&id), &unlocker).await.unwrap().manifest;
    let start = Instant::now();
    let counts = point::read_entries(&loc, &manifest, &unlocker, |e| {
        std::hint::black_box(e);
        Ok(())
    })
    .await
    .unwrap();
    report("point-read", manifest.archive.catalog_bytes, start.elapsed().as_secs_f64(), json!({"objects": counts.total}));
}

/// Forged points beside the genuine one, and the forged format 2 points of the second round.
const FORGED: usize = 1000;

/// Forged format 2 points dated before the genuine point: the upgrade rule cannot refuse
/// those unread, so each costs a PBKDF2 (few, to keep the run short).
const FORGED_BEFORE: usize = 20;

/// Plants `count` points of `version`, dated one millisecond apart from `from` on.
fn plant(root: &Path, version: u8, from: time::OffsetDateTime, count: usize) {
    for i in 0..count {
        let id = point::new_point_id(from + time::Duration::milliseconds(i as i64));
        dr_test_support::plant_forged_point(root, CLUSTER, version, &id);
    }
}

/// Times judging every point and choosing the newest, each with a fresh unlocker (a process
/// of its own would have one). Returns (points, judge seconds, its PBKDF2 runs, choose
/// seconds, its PBKDF2 runs, genuine points found).
async fn judge_and_choose(loc: &Location, genuine: &str) -> (usize, f64, u64, f64, u64, usize) {
    let unlocker = Unlocker::new(pass());
    let start = Instant::now();
    let points = point::list_points(loc, CLUSTER).await.unwrap();
    let judged = point::judge_all(loc, CLUSTER, &points, &unlocker).await.unwrap();
    let judge_secs = start.elapsed().as_secs_f64();
    let opened = judged.iter().filter(|j| j.standing.manifest().is_some()).count();
    let judge_runs = unlocker.pbkdf2_runs();
    let unlocker = Unlocker::new(pass());
    let start = Instant::now();
    let chosen = point::choose(loc, CLUSTER, point::Which::Newest, &unlocker).await.unwrap();
    let choose_secs = start.elapsed().as_secs_f64();
    assert_eq!(chosen.point.id, genuine, "the restore chooses the one genuine point");
    (points.len(), judge_secs, judge_runs, choose_secs, unlocker.pbkdf2_runs(), opened)
}

async fn phase_forged_points(dir: &Path) {
    let root = dir.join("forged");
    std::fs::create_dir_all(&root).unwrap();
    let loc = Location::connect(&LocationConfig::File { path: root.clone() }).await.unwrap();
    let mut w = PointWriter::begin(&loc, CLUSTER, &pass(), Mode::Full, "bench").await.unwrap();
    let mut noise = Noise(3);
    for i in 0..100 {
        w.add(&Entry { category: Category::Applications, object: object(i, &mut noise), source_uid: None }).await.unwrap();
    }
    let genuine = w.finish().await.unwrap().point_id;
    let genuine_time = point::point_time(&genuine).unwrap();
    // Newer than the genuine point, so the restore's choice meets every forgery first.
    plant(&root, dr_core::format::VERSION, genuine_time + time::Duration::milliseconds(1), FORGED);
    let (points, judge_secs, judge_runs, choose_secs, choose_runs, opened) = judge_and_choose(&loc, &genuine).await;
    assert_eq!((points, opened), (FORGED + 1, 1));
    report(
        "forged-points",
        0,
        judge_secs,
        json!({"points": points, "forgedV3": FORGED, "judgeAllSeconds": judge_secs, "judgeAllPbkdf2Runs": judge_runs, "chooseNewestSeconds": choose_secs, "chooseNewestPbkdf2Runs": choose_runs}),
    );
    plant(&root, dr_core::format::LEGACY_VERSION, genuine_time + time::Duration::milliseconds(1 + FORGED as i64), FORGED);
    let (points, judge_secs, judge_runs, choose_secs, choose_runs, opened) = judge_and_choose(&loc, &genuine).await;
    assert_eq!((points, opened), (2 * FORGED + 1, 1));
    report(
        "forged-points-and-legacy",
        0,
        judge_secs,
        json!({"points": points, "forgedV3": FORGED, "forgedV2AfterUpgrade": FORGED, "judgeAllSeconds": judge_secs, "judgeAllPbkdf2Runs": judge_runs, "chooseNewestSeconds": choose_secs, "chooseNewestPbkdf2Runs": choose_runs}),
    );
    plant(&root, dr_core::format::LEGACY_VERSION, genuine_time - time::Duration::hours(1), FORGED_BEFORE);
    let (points, judge_secs, judge_runs, choose_secs, choose_runs, opened) = judge_and_choose(&loc, &genuine).await;
    assert_eq!((points, opened), (2 * FORGED + FORGED_BEFORE + 1, 1));
    report(
        "forged-legacy-before-upgrade",
        0,
        judge_secs,
        json!({"points": points, "forgedV3": FORGED, "forgedV2AfterUpgrade": FORGED, "forgedV2BeforeUpgrade": FORGED_BEFORE, "judgeAllSeconds": judge_secs, "judgeAllPbkdf2Runs": judge_runs, "chooseNewestSeconds": choose_secs, "chooseNewestPbkdf2Runs": choose_runs}),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--phase" {
        let dir = PathBuf::from(&args[3]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        match args[2].as_str() {
            "pbkdf2" => phase_pbkdf2(),
            "aead-encrypt" => phase_aead_encrypt(&dir),
            "aead-decrypt" => phase_aead_decrypt(&dir),
            "point-write" => rt.block_on(phase_point_write(&dir)),
            "point-decrypt" => rt.block_on(phase_point_decrypt(&dir)),
            "point-read" => rt.block_on(phase_point_read(&dir)),
            "forged-points" => rt.block_on(phase_forged_points(&dir)),
            other => panic!("unknown phase {other}"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let me = std::env::current_exe().unwrap();
    let mut results = Vec::new();
    // DR_BENCH_PHASES=pbkdf2,forged-points runs only those.
    let only = std::env::var("DR_BENCH_PHASES").ok();
    let phases = ["pbkdf2", "aead-encrypt", "aead-decrypt", "point-write", "point-decrypt", "point-read", "forged-points"];
    for phase in phases.into_iter().filter(|p| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == *p))) {
        let out = Command::new(&me).args(["--phase", phase]).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{phase} failed: {}", String::from_utf8_lossy(&out.stderr));
        // A phase may report more than one line.
        for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.starts_with('{')) {
            let v: Value = serde_json::from_str(line).unwrap();
            eprintln!("{v}");
            results.push(v);
        }
    }
    let get = |p: &str| results.iter().find(|r| r["phase"] == p);
    println!("\n| phase | size | time | throughput | peak RSS |\n| --- | --- | --- | --- | --- |");
    for r in &results {
        let size = if r["bytes"].as_u64().unwrap() > 0 { format!("{} MiB", r["bytes"].as_u64().unwrap() >> 20) } else { "-".into() };
        let tput = if r["bytes"].as_u64().unwrap() > 0 { format!("{:.0} MB/s", r["mbPerSec"].as_f64().unwrap()) } else { "-".into() };
        println!(
            "| {} | {size} | {:.3} s | {tput} | {:.1} MiB |",
            r["phase"].as_str().unwrap(),
            r["seconds"].as_f64().unwrap(),
            r["peakRssMib"].as_f64().unwrap()
        );
    }
    if let Some(p) = get("pbkdf2") {
        println!("\nPBKDF2-HMAC-SHA256 600k: {:.1} ms", p["extra"]["msPerDerivation"].as_f64().unwrap());
    }
    if let Some(w) = get("point-write") {
        println!("compression ratio: {:.1}:1", w["extra"]["compressionRatio"].as_f64().unwrap());
    }
    if let (Some(raw), Some(point)) = (get("aead-decrypt"), get("point-decrypt")) {
        let ratio = raw["mbPerSec"].as_f64().unwrap() / point["mbPerSec"].as_f64().unwrap();
        println!("raw AES-GCM decrypt is {ratio:.2}x the speed of decrypt+decompress (target: <= 2x)");
    }
    for phase in ["forged-points", "forged-points-and-legacy", "forged-legacy-before-upgrade"] {
        let Some(f) = get(phase) else { continue };
        let x = &f["extra"];
        let mut legacy = x["forgedV2AfterUpgrade"].as_u64().map(|n| format!(", {n} forged format 2 points dated after it")).unwrap_or_default();
        legacy += &x["forgedV2BeforeUpgrade"].as_u64().map(|n| format!(", {n} forged format 2 points dated before it")).unwrap_or_default();
        println!(
            "one genuine point beside {} forged format 3 points{legacy}: judging every manifest {:.2} s ({} PBKDF2), choosing the newest {:.2} s ({} PBKDF2){}",
            x["forgedV3"],
            x["judgeAllSeconds"].as_f64().unwrap(),
            x["judgeAllPbkdf2Runs"],
            x["chooseNewestSeconds"].as_f64().unwrap(),
            x["chooseNewestPbkdf2Runs"],
            get("pbkdf2")
                .map(|p| format!(
                    "; one PBKDF2 is {:.1} ms (target: at most a few seconds for 1,000 forgeries)",
                    p["extra"]["msPerDerivation"].as_f64().unwrap()
                ))
                .unwrap_or_default(),
        );
    }
}
