//! A location holding many points of one cluster:
//! `cargo run --release --example bench_points` (`DR_BENCH_POINTS=1000` for
//! another count; 10,000 by default).
//!
//! Writes that many genuine points of one cluster (one object each, an hour apart, the newest
//! an hour ago) into a directory location, then times, each with a fresh unlocker as a new
//! command would have (the cluster's key derived once, in the timing):
//! - listing: what `kubectl dr restore-points` does (list the points, then judge every
//!   manifest: decrypt it and check its dates);
//! - choosing: what a restore does to pick a point, the newest and by point in time (one in
//!   the middle of the history);
//! - `prune` with the default retention (24 hourly, 7 daily, 4 weekly, 12 monthly, 1
//!   yearly), which judges every point and deletes the rest.
//!
//! Target: each in seconds (read here as under 10 s).

use std::sync::Arc;
use std::time::Instant;

use dr_core::catalog::{Category, Entry, Mode};
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::point::{self, PointWriter, Unlocker, Which};
use dr_core::resources::Retention;
use dr_test_support::measure::proc_status;
use serde_json::json;
use time::OffsetDateTime;

const CLUSTER: &str = "5b1f0c9e-3a7d-4e2b-9c1a-0f8e7d6c5b4a";
const PASS: &str = "benchmark passphrase";
const TARGET_SECONDS: f64 = 10.0;

fn unlocker() -> Arc<Unlocker> {
    Unlocker::new(Passphrase::new(PASS.into()).unwrap())
}

async fn write_points(loc: &Location, n: usize, now: OffsetDateTime) {
    let writer_keys = unlocker();
    for i in 0..n {
        let created = now - time::Duration::hours((n - i) as i64);
        let mut w = PointWriter::begin_as_with(loc, CLUSTER, &writer_keys, Mode::Full, "k10-disaster-recovery-policy", point::new_point_id(created), created)
            .await
            .unwrap();
        let object =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": "shop"}, "data": {"n": i.to_string()}});
        w.add(&Entry { category: Category::Applications, object, source_uid: None }).await.unwrap();
        w.finish().await.unwrap();
    }
}

fn verdict(seconds: f64) -> String {
    format!("{} {seconds:.2} s", if seconds < TARGET_SECONDS { "**met**" } else { "**not met**" })
}

fn main() {
    let n: usize = std::env::var("DR_BENCH_POINTS").ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    dr_core::init_crypto_provider();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let loc = Location::connect(&LocationConfig::File { path: dir.path().to_owned() }).await.unwrap();
        let now = OffsetDateTime::now_utc();
        let start = Instant::now();
        write_points(&loc, n, now).await;
        eprintln!("wrote {n} points in {:.1} s", start.elapsed().as_secs_f64());

        println!("| operation ({n} points, directory location) | wall time | result | target: seconds (< {TARGET_SECONDS} s) |");
        println!("| --- | --- | --- | --- |");
        let start = Instant::now();
        let points = point::list_points(&loc, CLUSTER).await.unwrap();
        let list = start.elapsed().as_secs_f64();
        assert_eq!(points.len(), n, "every point listed");
        println!("| list the points (no decryption) | {list:.2} s | {} points | {} |", points.len(), verdict(list));

        let start = Instant::now();
        let points = point::list_points(&loc, CLUSTER).await.unwrap();
        let judged = point::judge_all(&loc, CLUSTER, &points, &unlocker()).await.unwrap();
        let listing = start.elapsed().as_secs_f64();
        let genuine = judged.iter().filter(|j| matches!(j.standing, point::Standing::Genuine(_))).count();
        assert_eq!(genuine, n, "every point judged genuine");
        println!("| `restore-points`: list, then judge every manifest | {listing:.2} s | {genuine} genuine | {} |", verdict(listing));

        let start = Instant::now();
        let chosen = point::choose(&loc, CLUSTER, Which::Newest, &unlocker()).await.unwrap();
        let newest = start.elapsed().as_secs_f64();
        assert_eq!(chosen.point.id, points[0].id, "the newest point chosen");
        println!("| choose the newest (a restore) | {newest:.2} s | {} | {} |", chosen.point.id, verdict(newest));

        let middle = &points[n / 2];
        let start = Instant::now();
        let chosen = point::choose(&loc, CLUSTER, Which::AtOrBefore(middle.time), &unlocker()).await.unwrap();
        let at = start.elapsed().as_secs_f64();
        assert_eq!(chosen.point.id, middle.id, "the point at that time chosen");
        println!("| choose by point in time (the middle of the history) | {at:.2} s | {} | {} |", chosen.point.id, verdict(at));

        let start = Instant::now();
        let (kept, outcomes) = dr_core::retention::prune(&loc, CLUSTER, &Retention::default(), &unlocker(), OffsetDateTime::now_utc(), false).await.unwrap();
        let prune = start.elapsed().as_secs_f64();
        let deleted = outcomes.iter().filter(|o| matches!(o, dr_core::retention::Pruned::Deleted { .. })).count();
        let left = point::list_points(&loc, CLUSTER).await.unwrap().len();
        assert_eq!(
            deleted + kept.len(),
            n,
            "every point kept or deleted: {:?}",
            outcomes.iter().find(|o| !matches!(o, dr_core::retention::Pruned::Deleted { .. }))
        );
        assert_eq!(left, kept.len(), "what prune kept is what is left");
        println!("| `prune`, default retention | {prune:.2} s | {} kept, {deleted} deleted | {} |", kept.len(), verdict(prune));
        eprintln!("peak RSS {:.1} MiB", proc_status("VmHWM:"));
    });
}
