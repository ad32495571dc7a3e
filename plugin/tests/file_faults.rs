//! A directory location that fails mid-backup, through the real `kubectl-dr` binary: a full
//! disk (a small tmpfs: ENOSPC) and a failing one (an LD_PRELOAD shim: EIO on write and on
//! fsync). A failed backup never leaves a point that reads as complete, the error names the
//! location and what to do, a restore never chooses what was half-written, and the next run,
//! once the fault is gone, succeeds.

use dr_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::disk_faults::{tmpfs, EioFault};

const CLUSTER: &str = "7d3f0c1e-5a2b-4c9d-8e1f-0a2b3c4d5e6f";
const PASS: &str = "correct horse battery staple";

/// Manifests of `n` ConfigMaps holding 64 KiB of random base64 each: about `n` × 48 KiB once
/// compressed, so the archive is large enough to fail partway.
fn bulky_manifests(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        let mut raw = vec![0u8; 48 * 1024];
        dr_core::format::crypto::fill_random(&mut raw);
        let blob = support::apiserver::base64(&raw, false);
        std::fs::write(
            dir.path().join(format!("cm-{i}.yaml")),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: shop\ndata:\n  blob: {blob}\n"),
        )
        .unwrap();
    }
    dir
}

/// Runs kubectl-dr on the location `loc` with the passphrase on stdin, a fault set up by `fault`.
fn dr(loc: &Path, args: &[&str], fault: Option<&EioFault>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"));
    cmd.args(args).args(["--cluster-id", CLUSTER, "--path"]).arg(loc).args(["--passphrase-file", "-"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DR_LOCATION_PATH", "KUBECONFIG", "LD_PRELOAD"] {
        cmd.env_remove(var);
    }
    if let Some(f) = fault {
        f.apply(&mut cmd);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASS}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn backup(loc: &Path, manifests: &Path, fault: Option<&EioFault>) -> Output {
    dr(loc, &["backup", "--from-manifests", &manifests.display().to_string()], fault)
}

/// The stderr of a run that must have failed with `code`.
fn failed(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stdout: {}\nstderr: {stderr}", String::from_utf8_lossy(&out.stdout));
    stderr
}

/// `restore-points -o json` as (id, status) pairs, newest first; empty when the location holds
/// no point of the cluster at all (what a backup that failed before its archive leaves).
fn points(loc: &Path) -> Vec<(String, String)> {
    let out = dr(loc, &["restore-points", "-o", "json"], None);
    if out.status.code() == Some(2) && String::from_utf8_lossy(&out.stderr).contains("no restore points for cluster ID") {
        return Vec::new();
    }
    let json: serde_json::Value = serde_json::from_str(&support::succeeded(&out)).unwrap();
    json.as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap().to_owned(), r["status"].as_str().unwrap().to_owned())).collect()
}

/// Every file under `dir`, hidden ones included.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// No temporary upload is left behind at the location.
fn no_partial_files(loc: &Path) {
    let partial: Vec<PathBuf> = files_under(loc).into_iter().filter(|p| p.to_string_lossy().contains(".partial-")).collect();
    assert!(partial.is_empty(), "half-written files left: {partial:?}");
}

/// The point `export` chooses (the newest complete one that opens): what a restore reads.
fn chosen(loc: &Path) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("export");
    support::succeeded(&dr(loc, &["export", "--output-dir", &target.display().to_string()], None));
    let exported: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(target.join("restore-point.json")).unwrap()).unwrap();
    exported["pointId"].as_str().unwrap().to_owned()
}

fn archive_bytes(loc: &Path, point: &str) -> u64 {
    std::fs::metadata(loc.join(CLUSTER).join("restore-points").join(point).join("archive.kdr")).unwrap().len()
}

#[test]
fn a_full_location_fails_the_backup_clearly_and_the_next_run_succeeds() {
    let manifests = bulky_manifests(40);
    // 1 MiB for an archive of about 2 MiB: the disk fills mid-archive.
    let disk = tmpfs(1 << 20);
    let loc = disk.path.join("location");
    std::fs::create_dir(&loc).unwrap();
    let location = format!("file://{}", loc.display());

    // A full disk is bad input (2): space must be made before a retry can help.
    let err = failed(&backup(&loc, manifests.path(), None), 2);
    assert!(err.contains(&format!("location {location} is full")) && err.contains("No space left on device"), "{err}");
    assert!(err.contains("archive.kdr") && err.contains("free space there"), "{err}");
    assert_eq!(err.matches("No space left on device").count(), 1, "said once: {err}");
    no_partial_files(&loc);
    assert!(points(&loc).iter().all(|(_, status)| status != "complete"), "{:?}", points(&loc));

    // Space made: the next run succeeds, and it is the only complete point.
    disk.resize(64 << 20);
    support::succeeded(&backup(&loc, manifests.path(), None));
    let listed = points(&loc);
    let complete: Vec<&String> = listed.iter().filter(|(_, s)| s == "complete").map(|(id, _)| id).collect();
    assert_eq!(complete.len(), 1, "{listed:?}");
    let first = complete[0].clone();
    let archive = archive_bytes(&loc, &first);

    // The disk fills again with exactly room for the next archive (the same objects make the
    // same size): the archive lands, its manifest does not.
    disk.fill_leaving(archive.div_ceil(4096) * 4096);
    let err = failed(&backup(&loc, manifests.path(), None), 2);
    assert!(err.contains(&format!("location {location} is full")) && err.contains("manifest.kdr"), "{err}");
    no_partial_files(&loc);
    let listed = points(&loc);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].1, "incomplete", "the failed backup's point, newest: {listed:?}");
    assert_eq!(listed[1], (first.clone(), "complete".to_owned()), "{listed:?}");
    // A restore reads the last complete point, never the one without a manifest.
    assert_eq!(chosen(&loc), first);
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("export").display().to_string();
    let err = failed(&dr(&loc, &["export", "--point", &listed[0].0, "--output-dir", &target], None), 4);
    assert!(err.contains("is incomplete (it has no manifest)"), "{err}");

    std::fs::remove_file(disk.path.join("filler")).unwrap();
    let out = support::succeeded(&backup(&loc, manifests.path(), None));
    assert!(out.contains("40 objects"), "{out}");
    let listed = points(&loc);
    assert_eq!(listed.iter().filter(|(_, s)| s == "complete").count(), 2, "{listed:?}");
    assert_eq!(chosen(&loc), listed[0].0, "the new point is the newest and is chosen");
    support::succeeded(&dr(&loc, &["verify"], None));
}

#[test]
fn a_failing_disk_fails_the_backup_clearly_and_the_next_run_succeeds() {
    let manifests = bulky_manifests(20);
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().canonicalize().unwrap().join("location");
    std::fs::create_dir(&loc).unwrap();
    let location = format!("file://{}", loc.display());
    let disk_failed = |err: &str, key: &str| {
        assert!(err.contains(&format!("the disk of location {location} failed")) && err.contains("Input/output error"), "{err}");
        assert!(err.contains(key) && err.contains("check the disk or the NFS share"), "{err}");
        assert_eq!(err.matches("Input/output error").count(), 1, "said once: {err}");
    };

    // EIO 100 KB into the archive; then on fsync with every write passing. A disk error may
    // pass (an NFS server back), so it is transient (1).
    let err = failed(&backup(&loc, manifests.path(), Some(&EioFault::after(&loc, 100_000))), 1);
    disk_failed(&err, "archive.kdr");
    no_partial_files(&loc);
    let err = failed(&backup(&loc, manifests.path(), Some(&EioFault::on_fsync(&loc))), 1);
    disk_failed(&err, "archive.kdr");
    no_partial_files(&loc);
    assert!(points(&loc).iter().all(|(_, status)| status != "complete"), "{:?}", points(&loc));

    // The disk back: the next run succeeds.
    support::succeeded(&backup(&loc, manifests.path(), None));
    let listed = points(&loc);
    let first = listed.iter().find(|(_, s)| s == "complete").expect("a complete point").0.clone();
    let archive = archive_bytes(&loc, &first);

    // EIO once the archive is written: its manifest fails.
    let err = failed(&backup(&loc, manifests.path(), Some(&EioFault::after(&loc, archive))), 1);
    disk_failed(&err, "manifest.kdr");
    no_partial_files(&loc);
    let listed = points(&loc);
    assert_eq!(listed[0].1, "incomplete", "{listed:?}");
    assert_eq!(chosen(&loc), first, "a restore reads the last complete point");

    support::succeeded(&backup(&loc, manifests.path(), None));
    let listed = points(&loc);
    assert_eq!(listed.iter().filter(|(_, s)| s == "complete").count(), 2, "{listed:?}");
    assert_eq!(chosen(&loc), listed[0].0);
    support::succeeded(&dr(&loc, &["verify"], None));
}
