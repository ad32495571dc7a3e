//! A full disk under the Job's own binary: the backup's file location (the NFS share's mount)
//! and the restore's spill (its sealed plan, in the pod's /tmp emptyDir), each a small tmpfs
//! mounted for the test. The failed run leaves nothing that reads as complete and nothing
//! half-written, says what is full and what to do, and the next run, with space, finishes.

use dr_test_support as support;

use std::path::Path;

use dr_core::catalog::Mode;
use dr_core::failure::ErrorKind;
use dr_core::location::{Location, LocationConfig};
use dr_core::point;
use serde_json::{json, Value};
use support::apiserver::ApiServer;
use support::disk_faults::tmpfs;
use support::restore_fixture::*;

/// The fixture's source cluster with `n` ConfigMaps of 8 KiB of random data each (about
/// `n` × 8 KiB in the point, compressed or not).
async fn bulky_source(n: usize) -> ApiServer {
    let api = source_cluster().await;
    for i in 0..n {
        let mut raw = vec![0u8; 6 * 1024];
        dr_core::format::crypto::fill_random(&mut raw);
        api.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("bulk-{i}"), "namespace": "shop"},
                        "data": {"blob": support::apiserver::base64(&raw, false)}}));
    }
    api
}

/// Every file under `dir`, hidden ones included.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_backup_to_a_full_location_fails_clearly_and_the_next_run_succeeds() {
    let api = bulky_source(200).await;
    // 512 KiB for a point of about 1.6 MiB.
    let disk = tmpfs(512 << 10);
    let (out, message) = tokio::task::block_in_place(|| backup_job(&api, &disk.path));
    assert_eq!(out.status.code(), Some(i32::from(ErrorKind::BadInput.exit_code())), "{message}");
    assert!(message.contains(&format!("location file://{}", disk.path.display())) && message.contains(" is full writing "), "{message}");
    assert!(message.contains("the system said: No space left on device") && message.matches("No space left").count() == 1, "{message}");
    assert!(message.contains("free space there"), "{message}");
    // The run is recorded as failed, with the same words.
    let policy = api.objects("dr.kubectl-dr.io", "policies").pop().unwrap();
    let run = &policy["status"]["lastRuns"][0];
    assert_eq!(run["result"], "Failed", "{run}");
    assert!(run.to_string().contains("is full"), "{run}");
    // Nothing half-written, nothing that reads as a point.
    assert_eq!(files_under(&disk.path), Vec::<std::path::PathBuf>::new());

    disk.resize(64 << 20);
    let (out, message) = tokio::task::block_in_place(|| backup_job(&api, &disk.path));
    assert!(out.status.success(), "{message}\n{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cluster_id = summary["clusterId"].as_str().unwrap();
    let location = Location::connect(&LocationConfig::File { path: disk.path.clone() }).await.unwrap();
    let points = point::list_points(&location, cluster_id).await.unwrap();
    assert_eq!(points.len(), 1, "{points:?}");
    assert!(points[0].complete && points[0].id == summary["restorePoint"].as_str().unwrap(), "{points:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_tmp_is_full_fails_before_writing_and_the_next_pod_finishes() {
    let source = bulky_source(200).await;
    let loc = tempfile::tempdir().unwrap();
    let (cluster_id, point_id) = backup(&source, loc.path(), Mode::Full).await;
    let target = target_cluster(raw_secret(PASS)).await;
    target.enforce_rbac();
    let before = object_count(&target);
    // The pod's /tmp emptyDir: 256 KiB for a plan of about 1.6 MiB.
    let tmp = tmpfs(256 << 10);
    let root = tempfile::tempdir().unwrap();
    let mut pod = install_chart(&target, &values(&cluster_id, json!({})), loc.path(), root.path());
    pod.env.push(("TMPDIR".into(), tmp.path.display().to_string()));
    let out = tokio::task::block_in_place(|| spawn(&pod).wait_with_output().unwrap());
    let outcome = dr_core::restore::RestoreOutcome::parse(&std::fs::read_to_string(&pod.termination).unwrap());
    // Transient: the Job's next pod gets a new emptyDir.
    assert_eq!(out.status.code(), Some(1), "{}", outcome.error);
    assert_eq!(outcome.kind, Some(ErrorKind::Transient));
    assert!(outcome.error.contains("the restore's temporary files") && outcome.error.contains("No space left on device"), "{}", outcome.error);
    assert!(outcome.error.contains("check the space of the Job's /tmp volume"), "{}", outcome.error);
    assert_eq!(outcome.error.matches("No space left").count(), 1, "said once: {}", outcome.error);
    assert_eq!(object_count(&target), before, "nothing was written");
    assert_eq!(files_under(&tmp.path), Vec::<std::path::PathBuf>::new(), "the spill was removed");

    // The next pod, with room: the whole restore.
    tmp.resize(64 << 20);
    let out = tokio::task::block_in_place(|| spawn(&pod).wait_with_output().unwrap());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["restorePoint"], point_id.as_str());
    assert_eq!(report["failed"], 0, "{report}");
    let configmaps = target.objects("", "configmaps");
    for i in 0..200 {
        assert!(configmaps.iter().any(|c| c["metadata"]["name"] == format!("bulk-{i}").as_str()), "bulk-{i} was not restored");
    }
}
