//! Forged, planted and dated points in the way of genuine ones (issue #22, classes 2 and 3),
//! planted as an attacker who owned the source cluster would: with the backup's write
//! credentials (any file or object under the cluster's prefix) and, for the dated points, the
//! passphrase too. Each test shows the genuine point listed, chosen and kept by prune, and the
//! attack reported. Directory locations here; S3 (moto) for the store's own times.

use dr_test_support as support;

use std::time::Instant;

use dr_core::catalog::Mode;
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig};
use dr_core::point::{self, PointError, PointWriter, Standing, Unlocker, Which};
use dr_core::resources::Retention;
use dr_core::retention::{self, Pruned};
use support::{plant_forged_point, sample_entries, write_point};
use time::{Duration, OffsetDateTime};

const CLUSTER: &str = "0e5b7a3c-9f1d-4c2b-8a6e-1d2c3b4a5f60";
const OTHER: &str = "11111111-2222-3333-4444-555555555555";

fn pass() -> Passphrase {
    Passphrase::new("correct horse battery staple".into()).unwrap()
}

async fn dir_location() -> (tempfile::TempDir, Location) {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::connect(&LocationConfig::File { path: dir.path().to_owned() }).await.unwrap();
    (dir, loc)
}

/// A point written with the passphrase, its ID and creation time chosen by the writer.
async fn dated_point(loc: &Location, id_time: OffsetDateTime, created: OffsetDateTime) -> point::Manifest {
    let id = point::new_point_id(id_time);
    let mut w = PointWriter::begin_as(loc, CLUSTER, &pass(), Mode::Full, "k10-disaster-recovery-policy", id, created).await.unwrap();
    for e in sample_entries(2, 10) {
        w.add(&e).await.unwrap();
    }
    w.finish().await.unwrap()
}

fn passed_over<'a>(chosen: &'a point::Chosen, id: &str) -> Option<&'a str> {
    chosen.passed_over.iter().find(|(p, _)| p == id).map(|(_, why)| why.as_str())
}

#[tokio::test]
async fn a_forgery_at_a_genuine_points_millisecond_is_never_chosen_and_the_genuine_one_stays_selectable() {
    let (dir, loc) = dir_location().await;
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    // The same millisecond with a tag that sorts after the genuine one's: the first a time
    // selection would look at.
    let (stamp, _) = genuine.point_id.split_once('-').unwrap();
    let forged = format!("{stamp}-ffffffff");
    plant_forged_point(dir.path(), CLUSTER, dr_core::format::VERSION, &forged);
    let at = point::point_time(&genuine.point_id).unwrap();
    for which in [Which::Newest, Which::AtOrBefore(at), Which::Id(&genuine.point_id)] {
        let chosen = point::choose(&loc, CLUSTER, which, &Unlocker::new(pass())).await.unwrap();
        assert_eq!(chosen.point.id, genuine.point_id, "{which:?}");
        assert_eq!(chosen.manifest, genuine);
    }
    let chosen = point::choose(&loc, CLUSTER, Which::AtOrBefore(at), &Unlocker::new(pass())).await.unwrap();
    assert!(passed_over(&chosen, &forged).is_some_and(|why| why.contains("does not open")), "{:?}", chosen.passed_over);
    // Named, the forgery is refused with the genuine point's ID as the way out (a time would
    // select the forgery's millisecond again).
    let err = point::choose(&loc, CLUSTER, Which::Id(&forged), &Unlocker::new(pass())).await.unwrap_err();
    assert!(err.to_string().contains(&format!("--point {}", genuine.point_id)), "{err}");
    assert!(!err.to_string().contains("--point-in-time"), "{err}");
}

#[tokio::test]
async fn a_thousand_forged_points_cost_no_key_derivation_and_never_make_the_passphrase_wrong() {
    let (dir, loc) = dir_location().await;
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    let from = point::point_time(&genuine.point_id).unwrap();
    // Newer than the genuine point: 1,000 forged format 3 points, and 100 forged format 2
    // ones (one PBKDF2 each, were they derived).
    for i in 0..1000 {
        plant_forged_point(dir.path(), CLUSTER, dr_core::format::VERSION, &point::new_point_id(from + Duration::milliseconds(1 + i)));
    }
    for i in 0..100 {
        plant_forged_point(dir.path(), CLUSTER, dr_core::format::LEGACY_VERSION, &point::new_point_id(from + Duration::seconds(10 + i)));
    }
    let unlocker = Unlocker::new(pass());
    let started = Instant::now();
    let chosen = point::choose(&loc, CLUSTER, Which::Newest, &unlocker).await.unwrap();
    let choose_secs = started.elapsed().as_secs_f64();
    assert_eq!(chosen.point.id, genuine.point_id);
    assert_eq!(chosen.passed_over.len(), 1100);
    assert_eq!(unlocker.pbkdf2_runs(), 1, "one derivation for the cluster, none per forgery");
    assert!(choose_secs < 10.0, "choosing took {choose_secs} s");

    let unlocker = Unlocker::new(pass());
    let listed = point::list_points(&loc, CLUSTER).await.unwrap();
    let judged = point::judge_all(&loc, CLUSTER, &listed, &unlocker).await.unwrap();
    assert_eq!(unlocker.pbkdf2_runs(), 1);
    let genuine_count = judged.iter().filter(|j| matches!(j.standing, Standing::Genuine(_))).count();
    let does_not_open =
        judged.iter().filter(|j| matches!(&j.standing, Standing::Refused(PointError::DoesNotOpen { opens, .. }) if *opens == genuine.point_id)).count();
    let legacy_refused = judged.iter().filter(|j| matches!(&j.standing, Standing::Refused(PointError::LegacyAfterUpgrade { .. }))).count();
    assert_eq!((genuine_count, does_not_open, legacy_refused), (1, 1000, 100));

    // Prune keeps the genuine point and counts no forgery.
    let (kept, outcomes) = retention::prune(
        &loc,
        CLUSTER,
        &Retention { hourly: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0 },
        &Unlocker::new(pass()),
        OffsetDateTime::now_utc(),
        false,
    )
    .await
    .unwrap();
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![genuine.point_id.clone()]);
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Pruned::Untrusted { .. })).count(), 1100);

    // A wrong passphrase is wrong: no point opens, however many forgeries there are.
    let err = point::choose(&loc, CLUSTER, Which::Newest, &Unlocker::new(Passphrase::new("not it".into()).unwrap())).await.unwrap_err();
    assert!(err.is_wrong_passphrase(), "{err}");
}

#[tokio::test]
async fn a_foreign_clusters_point_planted_as_the_newest_is_passed_over_without_advice() {
    let (dir, loc) = dir_location().await;
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    std::thread::sleep(std::time::Duration::from_millis(5));
    // A real point of another cluster (same passphrase), moved under this cluster's ID.
    let foreign = write_point(&loc, OTHER, &pass(), &sample_entries(1, 10)).await;
    let from = dir.path().join(point::points_prefix(OTHER)).join(&foreign.point_id);
    let to = dir.path().join(point::points_prefix(CLUSTER)).join(&foreign.point_id);
    std::fs::rename(from, to).unwrap();
    let chosen = point::choose(&loc, CLUSTER, Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.point.id, genuine.point_id);
    let why = passed_over(&chosen, &foreign.point_id).unwrap();
    assert!(why.contains(OTHER) && !why.contains("--cluster-id"), "{why}");
    let err = point::choose(&loc, CLUSTER, Which::Id(&foreign.point_id), &Unlocker::new(pass())).await.unwrap_err();
    assert!(matches!(&err, PointError::NamesAnotherCluster { found, .. } if found == OTHER), "{err}");
    assert!(!err.to_string().contains("--cluster-id"), "{err}");
}

#[tokio::test]
async fn a_point_directory_turned_into_a_link_or_a_manifest_into_a_directory_is_reported_as_tampered() {
    let (dir, loc) = dir_location().await;
    let linked = write_point(&loc, CLUSTER, &pass(), &sample_entries(2, 10)).await;
    let emptied = write_point(&loc, CLUSTER, &pass(), &sample_entries(2, 10)).await;
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(2, 10)).await;
    let points = dir.path().join(point::points_prefix(CLUSTER));
    // The first point's directory moved away and replaced by a link to it.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::rename(points.join(&linked.point_id), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, points.join(&linked.point_id)).unwrap();
    // The second point's manifest replaced by a directory.
    let manifest = points.join(&emptied.point_id).join(point::MANIFEST_OBJECT);
    std::fs::remove_file(&manifest).unwrap();
    std::fs::create_dir(&manifest).unwrap();

    let listed = point::list_points(&loc, CLUSTER).await.unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let of = |id: &str| listed.iter().find(|p| p.id == id).unwrap();
    assert!(of(&linked.point_id).tampered.iter().any(|t| t.contains("symbolic link")), "{:?}", of(&linked.point_id));
    assert!(of(&emptied.point_id).tampered.iter().any(|t| t.contains("manifest.kdr is a directory")), "{:?}", of(&emptied.point_id));
    assert!(of(&genuine.point_id).tampered.is_empty());
    // Not "incomplete": tampered, named so when asked for.
    let err = point::choose(&loc, CLUSTER, Which::Id(&emptied.point_id), &Unlocker::new(pass())).await.unwrap_err();
    assert!(matches!(err, PointError::Tampered { .. }), "{err}");
    assert_eq!(point::choose(&loc, CLUSTER, Which::Newest, &Unlocker::new(pass())).await.unwrap().point.id, genuine.point_id);
    // Prune neither counts nor deletes them.
    let (_, outcomes) = retention::prune(
        &loc,
        CLUSTER,
        &Retention { hourly: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0 },
        &Unlocker::new(pass()),
        OffsetDateTime::now_utc(),
        false,
    )
    .await
    .unwrap();
    for id in [&linked.point_id, &emptied.point_id] {
        assert!(outcomes.iter().any(|o| matches!(o, Pruned::Untrusted { point, reason } if point == id && reason.contains("tampered"))), "{outcomes:?}");
    }
    assert!(elsewhere.join(point::MANIFEST_OBJECT).exists());
}

#[tokio::test]
async fn points_with_impossible_dates_are_suspect_never_newest_and_not_counted_by_retention() {
    let (_dir, loc) = dir_location().await;
    let now = OffsetDateTime::now_utc();
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(2, 10)).await;
    // Dated 2099, ID and manifest alike; and one whose ID is a day old but whose manifest
    // says it was made now.
    let future = dated_point(&loc, now + Duration::days(365 * 70), now + Duration::days(365 * 70)).await;
    let mismatched = dated_point(&loc, now - Duration::days(1), now).await;

    let chosen = point::choose(&loc, CLUSTER, Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.point.id, genuine.point_id);
    assert!(passed_over(&chosen, &future.point_id).is_some_and(|w| w.contains("in the future")), "{:?}", chosen.passed_over);
    // By time, the mismatched one is not chosen either: nothing older opens cleanly.
    let at = point::point_time(&mismatched.point_id).unwrap();
    let err = point::choose(&loc, CLUSTER, Which::AtOrBefore(at), &Unlocker::new(pass())).await.unwrap_err();
    assert!(matches!(err, PointError::NoneAtOrBefore { .. }), "{err}");
    assert!(err.to_string().contains("suspect"), "{err}");
    // Named by its ID, a suspect point opens, with the reason said.
    let named = point::choose(&loc, CLUSTER, Which::Id(&mismatched.point_id), &Unlocker::new(pass())).await.unwrap();
    assert!(passed_over(&named, &mismatched.point_id).is_some_and(|w| w.contains("suspect")), "{:?}", named.passed_over);

    let (kept, outcomes) =
        retention::prune(&loc, CLUSTER, &Retention { hourly: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0 }, &Unlocker::new(pass()), now, true).await.unwrap();
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![genuine.point_id.clone()]);
    for id in [&future.point_id, &mismatched.point_id] {
        assert!(outcomes.iter().any(|o| matches!(o, Pruned::Untrusted { point, reason } if point == id && reason.starts_with("suspect"))), "{outcomes:?}");
    }
}

#[tokio::test]
async fn on_s3_a_point_written_now_and_dated_back_is_suspect_by_the_stores_own_time() {
    let s3 = support::moto();
    support::moto_setup(&s3, &["bucket", "dated"], None);
    let loc = support::moto_bucket::s3_location(&s3, "dated", "test", "test", None).await;
    let now = OffsetDateTime::now_utc();
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(2, 10)).await;
    // Consistent with itself (ID and createdAt three hours ago), but the store received it now.
    let back = dated_point(&loc, now - Duration::hours(3), now - Duration::hours(3)).await;
    let listed = point::list_points(&loc, CLUSTER).await.unwrap();
    assert!(listed.iter().all(|p| p.versions_seen && p.manifest.as_ref().is_some_and(|v| v.stored_at.is_some())), "{listed:?}");
    let judged = point::judge_all(&loc, CLUSTER, &listed, &Unlocker::new(pass())).await.unwrap();
    let standing = |id: &str| &judged.iter().find(|j| j.point.id == id).unwrap().standing;
    assert!(matches!(standing(&genuine.point_id), Standing::Genuine(_)));
    assert!(matches!(standing(&back.point_id), Standing::Suspect { reason, .. } if reason.contains("dated back")), "{:?}", standing(&back.point_id));
    let at = point::point_time(&back.point_id).unwrap() + Duration::minutes(1);
    assert!(point::choose(&loc, CLUSTER, Which::AtOrBefore(at), &Unlocker::new(pass())).await.is_err());
}

/// Planted points' manifests, as large as the cap allows, between the genuine newest point
/// and now: each is refused from a ranged read of its header, and only the genuine manifest is
/// downloaded whole, so a flood of them cannot slow choosing the newest point to a crawl.
#[tokio::test]
async fn planted_manifests_are_refused_from_their_header_and_never_downloaded_whole() {
    let (dir, loc) = dir_location().await;
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    let from = point::point_time(&genuine.point_id).unwrap();
    let manifest_path = |id: &str| dir.path().join(point::points_prefix(CLUSTER)).join(id).join(point::MANIFEST_OBJECT);
    // 40 forged manifests just under the 16 MiB cap (sparse files: no disk), one over it.
    let mut planted = Vec::new();
    for i in 0..40 {
        let id = point::new_point_id(from + Duration::milliseconds(1 + i));
        plant_forged_point(dir.path(), CLUSTER, dr_core::format::VERSION, &id);
        std::fs::OpenOptions::new().write(true).open(manifest_path(&id)).unwrap().set_len((16 << 20) - 1).unwrap();
        planted.push(id);
    }
    let oversized = point::new_point_id(from + Duration::milliseconds(100));
    plant_forged_point(dir.path(), CLUSTER, dr_core::format::VERSION, &oversized);
    std::fs::OpenOptions::new().write(true).open(manifest_path(&oversized)).unwrap().set_len(64 << 20).unwrap();

    let before = point::point_opens();
    let chosen = point::choose(&loc, CLUSTER, Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.point.id, genuine.point_id);
    assert_eq!(point::point_opens().manifest_reads - before.manifest_reads, 1, "only the genuine manifest is downloaded whole");
    for id in &planted {
        assert!(passed_over(&chosen, id).is_some_and(|why| why.contains("does not open")), "{id}: {:?}", chosen.passed_over);
    }
    assert!(passed_over(&chosen, &oversized).is_some_and(|why| why.contains("larger than")), "{:?}", chosen.passed_over);
}

/// The same on S3 (moto behind the fault proxy, which records every request): a planted
/// manifest is asked for with `Range: bytes=0-634` only; the genuine one is read whole once,
/// its stored version pinned.
#[tokio::test]
async fn on_s3_planted_manifests_are_read_no_further_than_their_header() {
    let s3 = support::moto();
    support::moto_setup(&s3, &["bucket", "planted"], None);
    let proxy = support::fault_proxy::FaultProxy::start(&s3.url);
    let loc = support::moto_bucket::s3_location_at(&proxy.url, "planted", "test", "test", None).await;
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    let from = point::point_time(&genuine.point_id).unwrap();
    let mut planted = Vec::new();
    for i in 0..8 {
        let id = point::new_point_id(from + Duration::milliseconds(1 + i));
        let mut manifest = support::forged_point_file(CLUSTER, dr_core::format::VERSION, 2, &id);
        manifest.resize(4 << 20, 0);
        loc.put(&point::object_key(CLUSTER, &id, point::ARCHIVE_OBJECT), support::forged_point_file(CLUSTER, dr_core::format::VERSION, 1, &id)).await.unwrap();
        loc.put(&point::object_key(CLUSTER, &id, point::MANIFEST_OBJECT), manifest).await.unwrap();
        planted.push(id);
    }
    // And an empty manifest, which has no first byte for a ranged read (S3 answers 416).
    let empty = point::new_point_id(from + Duration::milliseconds(50));
    loc.put(&point::object_key(CLUSTER, &empty, point::ARCHIVE_OBJECT), support::forged_point_file(CLUSTER, dr_core::format::VERSION, 1, &empty))
        .await
        .unwrap();
    loc.put(&point::object_key(CLUSTER, &empty, point::MANIFEST_OBJECT), Vec::new()).await.unwrap();
    let before = point::point_opens();
    let chosen = point::choose(&loc, CLUSTER, Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.point.id, genuine.point_id);
    assert_eq!(chosen.manifest, genuine);
    // Read as the empty file it is (the 416 told from a faulty store by the object's size).
    assert!(passed_over(&chosen, &empty).is_some_and(|why| why.contains("cut short")), "{:?}", chosen.passed_over);
    assert_eq!(point::point_opens().manifest_reads - before.manifest_reads, 1);
    let manifest_gets = |id: &str| -> Vec<Option<String>> {
        proxy
            .seen()
            .iter()
            .filter(|s| s.method == "GET" && s.target.contains(&format!("{id}/{}", point::MANIFEST_OBJECT)))
            .map(|s| s.header("range").map(str::to_owned))
            .collect()
    };
    let header_range = format!("bytes=0-{}", dr_core::format::MAX_HEADER_LEN - 1);
    for id in &planted {
        assert_eq!(manifest_gets(id), vec![Some(header_range.clone())], "{id}");
    }
    assert_eq!(manifest_gets(&genuine.point_id), vec![Some(header_range.clone()), None]);
    assert!(
        proxy.seen().iter().filter(|s| s.method == "GET" && s.target.contains(&genuine.point_id)).all(|s| s.target.contains("versionId=")),
        "the genuine point's reads are pinned to the version kubectl-dr wrote"
    );
}

/// A point dated more than two clock skews ahead is passed over unread; when it is the only one
/// that opens (the writer's clock far ahead) and the others are forgeries, the passphrase is
/// still not called wrong.
#[tokio::test]
async fn points_dated_ahead_are_passed_over_unread_yet_still_prove_the_passphrase_right() {
    let (dir, loc) = dir_location().await;
    let now = OffsetDateTime::now_utc();
    let ahead = dated_point(&loc, now + Duration::hours(2), now + Duration::hours(2)).await;
    let forged = point::new_point_id(now - Duration::hours(1));
    plant_forged_point(dir.path(), CLUSTER, dr_core::format::VERSION, &forged);
    let before = point::point_opens();
    let err = point::choose(&loc, CLUSTER, Which::Newest, &Unlocker::new(pass())).await.unwrap_err();
    assert!(!err.is_wrong_passphrase(), "a point of the cluster opens: {err}");
    assert!(matches!(err, PointError::NoneAtOrBefore { .. }), "{err}");
    assert!(err.to_string().contains(&ahead.point_id) && err.to_string().contains("in the future"), "{err}");
    // Only its header was read to prove it (no whole manifest of a point dated ahead).
    assert_eq!(point::point_opens().manifest_reads - before.manifest_reads, 0);
    // Named by its ID, it opens (suspect), as before.
    let named = point::choose(&loc, CLUSTER, Which::Id(&ahead.point_id), &Unlocker::new(pass())).await.unwrap();
    assert_eq!(named.manifest, ahead);
}
