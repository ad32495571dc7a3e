//! Whole restore points at a directory location: write, list, select, verify, and a clear,
//! distinct error for every way a point can be wrong.

use dr_test_support as support;

use std::sync::{Arc, Mutex};

use dr_core::catalog::Entry;
use dr_core::format::crypto::{Passphrase, MIN_ITERATIONS};
use dr_core::format::{FormatError, Header};
use dr_core::location::{Location, LocationConfig, LocationError};
use dr_core::point::{self, PointError, Unlocker};
use support::{sample_entries, write_point};

const CLUSTER: &str = "0e5b7a3c-9f1d-4c2b-8a6e-1d2c3b4a5f60";

fn pass() -> Passphrase {
    Passphrase::new("correct horse battery staple".into()).unwrap()
}

async fn dir_location() -> (tempfile::TempDir, Location) {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::connect(&LocationConfig::File { path: dir.path().to_owned() }).await.unwrap();
    (dir, loc)
}

async fn read_all(loc: &Location, point_id: &str, passphrase: Passphrase) -> Result<Vec<Entry>, PointError> {
    let unlocker = Unlocker::new(passphrase);
    let manifest = point::choose(loc, CLUSTER, point::Which::Id(point_id), &unlocker).await?.manifest;
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    point::read_entries(loc, &manifest, &unlocker, move |e| {
        sink.lock().unwrap().push(e);
        Ok(())
    })
    .await?;
    let v = got.lock().unwrap().clone();
    Ok(v)
}

fn archive_path(dir: &tempfile::TempDir, point_id: &str) -> std::path::PathBuf {
    dir.path().join(point::object_key(CLUSTER, point_id, point::ARCHIVE_OBJECT))
}

#[tokio::test]
async fn a_point_round_trips_and_its_manifest_tells_what_it_holds() {
    let (dir, loc) = dir_location().await;
    let entries = sample_entries(500, 200);
    let manifest = write_point(&loc, CLUSTER, &pass(), &entries).await;
    assert_eq!(manifest.counts.total, 504);
    assert_eq!(manifest.counts.by_kind["ConfigMap"], 500);
    assert_eq!(manifest.counts.by_category[&dr_core::catalog::Category::Profiles], 1);
    let stored = std::fs::read(archive_path(&dir, &manifest.point_id)).unwrap();
    assert_eq!(stored.len() as u64, manifest.archive.stored_bytes);
    assert!(manifest.archive.compressed_bytes < manifest.archive.catalog_bytes);
    // Writers always use at least 600,000 PBKDF2 iterations.
    assert!(Header::read(&mut &stored[..]).unwrap().kdf().iterations >= MIN_ITERATIONS);
    assert_eq!(read_all(&loc, &manifest.point_id, pass()).await.unwrap(), entries);
    assert_eq!(point::verify_point(&loc, CLUSTER, &manifest.point_id, &Unlocker::new(pass())).await.unwrap(), 504);
}

#[tokio::test]
async fn listing_is_newest_first_and_selection_honours_point_in_time_and_completeness() {
    let (_dir, loc) = dir_location().await;
    let entries = sample_entries(3, 10);
    let first = write_point(&loc, CLUSTER, &pass(), &entries).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = write_point(&loc, CLUSTER, &pass(), &entries).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // A backup killed between uploading its archive and writing its manifest.
    let broken_id = point::new_point_id(time::OffsetDateTime::now_utc());
    loc.put(&point::object_key(CLUSTER, &broken_id, point::ARCHIVE_OBJECT), vec![1, 2, 3]).await.unwrap();

    let points = point::list_points(&loc, CLUSTER).await.unwrap();
    let ids: Vec<_> = points.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, [broken_id.as_str(), second.point_id.as_str(), first.point_id.as_str()]);
    assert!(!points[0].complete && points[1].complete && points[2].complete);
    // Newest complete point, skipping the incomplete one.
    assert_eq!(point::select_point(&points, None, CLUSTER, &loc).unwrap().id, second.point_id);
    // At or before a time between the two points.
    let between = points[2].time + (points[1].time - points[2].time) / 2;
    assert_eq!(point::select_point(&points, Some(between), CLUSTER, &loc).unwrap().id, first.point_id);
    // Before any point: an error that lists what exists.
    let err = point::select_point(&points, Some(points[2].time - time::Duration::hours(1)), CLUSTER, &loc).unwrap_err().to_string();
    assert!(err.contains("no complete restore point at or before") && err.contains(&first.point_id) && err.contains("incomplete"), "{err}");
    // Reading the incomplete point says why it cannot be used.
    let err = read_all(&loc, &broken_id, pass()).await.unwrap_err();
    assert!(matches!(err, PointError::Incomplete { .. }), "{err}");
    // Another cluster ID has nothing.
    assert!(point::list_points(&loc, "another").await.unwrap().is_empty());
}

#[tokio::test]
async fn wrong_passphrase_is_told_apart_from_damage() {
    let (_dir, loc) = dir_location().await;
    let m = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    let err = read_all(&loc, &m.point_id, Passphrase::new("Tr0ub4dor&3".into()).unwrap()).await.unwrap_err();
    assert!(err.is_wrong_passphrase(), "{err}");
    assert!(!dr_core::error_text(&err).contains("Tr0ub4dor"));
}

#[tokio::test]
async fn damaged_truncated_and_appended_archives_are_reported_distinctly() {
    let (dir, loc) = dir_location().await;
    let m = write_point(&loc, CLUSTER, &pass(), &sample_entries(4000, 400)).await;
    let path = archive_path(&dir, &m.point_id);
    let good = std::fs::read(&path).unwrap();
    assert!(good.len() > 3 * dr_core::format::DEFAULT_CHUNK_SIZE as usize, "needs several chunks");
    // The stored files are write-once (read-only is not enforced on a directory); replace
    // them in place as an attacker or a failing disk would.
    let replace = |bytes: &[u8]| std::fs::write(&path, bytes).unwrap();

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x04;
    replace(&flipped);
    let err = read_all(&loc, &m.point_id, pass()).await.unwrap_err();
    assert!(matches!(err, PointError::Format { source: FormatError::ChunkDamaged { .. }, .. }), "{err}");

    replace(&good[..good.len() - 1000]);
    let err = read_all(&loc, &m.point_id, pass()).await.unwrap_err();
    assert!(matches!(err, PointError::ArchiveTruncated { found, expected, .. } if expected == good.len() as u64 && found == expected - 1000), "{err}");
    assert!(err.to_string().contains("truncated"));

    let mut appended = good.clone();
    appended.extend_from_slice(&good[200..300]);
    replace(&appended);
    let err = read_all(&loc, &m.point_id, pass()).await.unwrap_err();
    assert!(matches!(err, PointError::ArchiveAppended { extra: 100, .. }), "{err}");

    replace(&good);
    assert_eq!(read_all(&loc, &m.point_id, pass()).await.unwrap().len(), 4004);
}

#[tokio::test]
async fn a_point_moved_to_another_cluster_or_renamed_is_refused() {
    let (dir, loc) = dir_location().await;
    let m = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    let src = dir.path().join(CLUSTER).join("restore-points").join(&m.point_id);
    let copy = |to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for f in [point::ARCHIVE_OBJECT, point::MANIFEST_OBJECT] {
            std::fs::copy(src.join(f), to.join(f)).unwrap();
        }
    };
    // Copied under another cluster ID.
    let other = "11111111-2222-3333-4444-555555555555";
    copy(&dir.path().join(other).join("restore-points").join(&m.point_id));
    let unlocker = Unlocker::new(pass());
    let err = point::choose(&loc, other, point::Which::Id(&m.point_id), &unlocker).await.unwrap_err();
    assert!(matches!(&err, PointError::NamesAnotherCluster { found, .. } if found == CLUSTER), "{err}");
    // Found under the other cluster's ID, it is not advice to restore this one.
    assert!(!err.to_string().contains("--cluster-id"), "{err}");
    // Renamed to look newer.
    let renamed = "20991231T235959.000Z-deadbeef";
    copy(&dir.path().join(CLUSTER).join("restore-points").join(renamed));
    let err = point::choose(&loc, CLUSTER, point::Which::Id(renamed), &unlocker).await.unwrap_err();
    assert!(matches!(err, PointError::Format { source: FormatError::WrongPoint { .. }, .. }), "{err}");
    // Another point's archive put in place of this one's.
    let m2 = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    std::fs::copy(
        dir.path().join(point::object_key(CLUSTER, &m2.point_id, point::ARCHIVE_OBJECT)),
        dir.path().join(point::object_key(CLUSTER, &m.point_id, point::ARCHIVE_OBJECT)),
    )
    .unwrap();
    let manifest = point::choose(&loc, CLUSTER, point::Which::Id(&m.point_id), &unlocker).await.unwrap().manifest;
    let err = point::read_entries(&loc, &manifest, &unlocker, |_| Ok(())).await.unwrap_err();
    assert!(
        matches!(
            err,
            PointError::Format { source: FormatError::WrongPoint { .. }, .. } | PointError::ArchiveTruncated { .. } | PointError::ArchiveAppended { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn objects_are_never_overwritten() {
    let (_dir, loc) = dir_location().await;
    let key = point::object_key(CLUSTER, "20261121T000000.000Z-00000000", point::MANIFEST_OBJECT);
    loc.put(&key, b"first".to_vec()).await.unwrap();
    let err = loc.put(&key, b"second".to_vec()).await.unwrap_err();
    assert!(matches!(err, LocationError::AlreadyExists { .. }), "{err}");
    let (_, mut r) = loc.open(&key).await.unwrap();
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut got).await.unwrap();
    assert_eq!(got, b"first");
}

#[tokio::test]
async fn a_missing_location_directory_is_a_clear_error() {
    let loc = Location::connect(&LocationConfig::File { path: "/nonexistent/dr-location".into() }).await.unwrap();
    let err = loc.validate().await.unwrap_err().to_string();
    assert!(err.contains("/nonexistent/dr-location") && err.contains("NFS share is mounted"), "{err}");
    let err = point::list_points(&loc, CLUSTER).await.unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn cluster_ids_that_could_escape_the_location_are_refused() {
    for bad in ["", "..", "a/b", "x y", "../etc"] {
        assert!(point::validate_cluster_id(bad).is_err(), "{bad:?}");
    }
    point::validate_cluster_id("0e5b7a3c-9f1d-4c2b-8a6e-1d2c3b4a5f60").unwrap();
}

#[tokio::test]
async fn a_forged_newest_point_is_passed_over_and_not_taken_for_a_wrong_passphrase() {
    let (_dir, loc) = dir_location().await;
    let genuine = write_point(&loc, CLUSTER, &pass(), &sample_entries(5, 10)).await;
    std::thread::sleep(std::time::Duration::from_millis(5));
    // Someone with write access adds a newer point under their own key.
    let forged = write_point(&loc, CLUSTER, &Passphrase::new("the attacker's own key".into()).unwrap(), &sample_entries(1, 10)).await;
    // The newest point that authenticates is chosen; the forgery is passed over, and said.
    let chosen = point::choose(&loc, CLUSTER, point::Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.point.id, genuine.point_id);
    assert!(chosen.passed_over.iter().any(|(id, why)| *id == forged.point_id && why.contains("does not open")), "{:?}", chosen.passed_over);
    // Named by its ID, the forgery is refused as damaged or forged, with the genuine one's ID as advice.
    let err = point::choose(&loc, CLUSTER, point::Which::Id(&forged.point_id), &Unlocker::new(pass())).await.unwrap_err();
    assert!(matches!(&err, PointError::DoesNotOpen { point, opens } if *point == forged.point_id && *opens == genuine.point_id), "{err}");
    assert!(!err.is_wrong_passphrase());
    assert!(err.to_string().contains(&format!("--point {}", genuine.point_id)), "{err}");
    // When no point opens, the passphrase is wrong.
    let err = point::choose(&loc, CLUSTER, point::Which::Newest, &Unlocker::new(Passphrase::new("neither".into()).unwrap())).await.unwrap_err();
    assert!(err.is_wrong_passphrase(), "{err}");
}

#[tokio::test]
async fn prune_counts_only_points_that_authenticate() {
    use dr_core::resources::Retention;
    use dr_core::retention::{self, Pruned};
    let (dir, loc) = dir_location().await;
    let mut genuine = Vec::new();
    for _ in 0..3 {
        genuine.push(write_point(&loc, CLUSTER, &pass(), &sample_entries(2, 10)).await.point_id);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // An attacker with the backup's write credentials plants 50 points dated in the coming
    // days: two small files each, which is all a listing sees.
    let now = time::OffsetDateTime::now_utc();
    for i in 0..50 {
        let id = point::new_point_id(now + time::Duration::hours(i + 1));
        for object in [point::MANIFEST_OBJECT, point::ARCHIVE_OBJECT] {
            let path = dir.path().join(point::object_key(CLUSTER, &id, object));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"KDR-RP\r\nplanted").unwrap();
        }
    }
    let retention = Retention { hourly: 2, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    let exists = |id: &str| dir.path().join(point::object_key(CLUSTER, id, point::MANIFEST_OBJECT)).exists();

    // A wrong passphrase opens no point: prune refuses and deletes nothing.
    let err = retention::prune(&loc, CLUSTER, &retention, &Unlocker::new(Passphrase::new("not it".into()).unwrap()), now, false).await.unwrap_err();
    assert!(err.is_wrong_passphrase(), "{err}");
    assert!(genuine.iter().all(|id| exists(id)));

    let (kept, outcomes) = retention::prune(&loc, CLUSTER, &retention, &Unlocker::new(pass()), now, false).await.unwrap();
    // The two newest genuine points are kept, the oldest is pruned; no planted point counts.
    assert_eq!(kept, genuine[1..].iter().cloned().collect(), "{outcomes:?}");
    assert!(outcomes.contains(&Pruned::Deleted { point: genuine[0].clone() }), "{outcomes:?}");
    assert!(!exists(&genuine[0]) && exists(&genuine[1]) && exists(&genuine[2]));
    let untrusted = outcomes.iter().filter(|o| matches!(o, Pruned::Untrusted { .. })).count();
    assert_eq!(untrusted, 50, "every planted point is reported: {outcomes:?}");
    // They are left in place for the operator to look at.
    assert_eq!(point::list_points(&loc, CLUSTER).await.unwrap().len(), 52);
}
