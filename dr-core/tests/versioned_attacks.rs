//! What someone holding the backup's write credentials can do to a versioned S3 bucket, against
//! a real S3 implementation (moto, with its IAM policies enforced): each attack planted as that
//! writer would plant it, then the genuine point listed, chosen, read and kept, and the attack
//! reported.
//!
//! Credentials, as `test-support/moto_setup.py` makes them: `writer` may only PutObject (what a
//! backup needs, and what an attacker who owned the source cluster holds); `reader` lists and
//! reads every version; `pruner` also reads retention and deletes by version; `lister` lists and
//! reads current objects only, no versions. The attacker's own requests are plain PutObject and
//! DeleteObject calls with no `If-None-Match`, sent with the SDK directly.
//!
//! moto does not model: bucket default retention on a non-empty bucket, lock headers on a
//! completed multipart upload (every point here is small enough for one PutObject, and the
//! retention checked is the one each PutObject carries), or concurrent writes of one key (it
//! loses versions; the flood here is written one at a time).

use std::sync::Arc;

use dr_test_support as support;

use dr_core::catalog::{Entry, Mode};
use dr_core::format::crypto::Passphrase;
use dr_core::location::{History, Location, LocationConfig};
use dr_core::point::{self, PointWriter, Standing, Unlocker, ARCHIVE_OBJECT, MANIFEST_OBJECT};
use dr_core::replicate::{self, PointCopy};
use dr_core::resources::Retention;
use dr_core::retention::{prune, Pruned};
use serde_json::json;
use support::moto_bucket::{MotoBucket as Bucket, PREFIX};
use support::{sample_entries, write_point};

const CLUSTER: &str = "7d1e2f3a-4b5c-4d6e-8f70-9a8b7c6d5e4f";

fn pass() -> Passphrase {
    Passphrase::new("correct horse battery staple".into()).unwrap()
}

fn key(point_id: &str, object: &str) -> String {
    point::object_key(CLUSTER, point_id, object)
}

async fn read(location: &Location, key: &str) -> Vec<u8> {
    let (_, mut reader) = location.open(key).await.unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes).await.unwrap();
    bytes
}

async fn read_version(location: &Location, key: &str, version: &dr_core::location::ObjectVersion) -> Vec<u8> {
    let (_, mut reader) = location.open_version(key, version).await.unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut bytes).await.unwrap();
    bytes
}

/// The same point ID written again with the passphrase, holding `entries`: what an attacker who
/// has the passphrase puts over a genuine point. Written to a directory; the bytes returned.
async fn authenticated_forgery(point_id: &str, created: time::OffsetDateTime, entries: &[Entry]) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::connect(&LocationConfig::File { path: dir.path().to_path_buf() }).await.unwrap();
    let mut w = PointWriter::begin_as(&loc, CLUSTER, &pass(), Mode::Full, "k10-disaster-recovery-policy", point_id.to_owned(), created).await.unwrap();
    for e in entries {
        w.add(e).await.unwrap();
    }
    w.finish().await.unwrap();
    let file = |object| std::fs::read(dir.path().join(key(point_id, object))).unwrap();
    (file(ARCHIVE_OBJECT), file(MANIFEST_OBJECT))
}

fn created(m: &point::Manifest) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(&m.created_at, &time::format_description::well_known::Rfc3339).unwrap()
}

fn evil_entries() -> Vec<Entry> {
    let mut entries = sample_entries(5, 10);
    entries.push(Entry {
        category: dr_core::catalog::Category::Applications,
        object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "planted", "namespace": "kasten-io"}, "data": {"evil": "yes"}}),
        source_uid: None,
    });
    entries
}

#[tokio::test]
async fn a_junk_overwrite_of_a_locked_point_leaves_prune_with_protected_and_no_delete_marker() {
    let bucket = Bucket::new("locked", "lock");
    let writer = bucket.location("writer", Some(1)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(write_point(&writer, CLUSTER, &pass(), &sample_entries(3, 10)).await.point_id);
    }
    // The writer puts junk over the oldest point's manifest (no If-None-Match).
    bucket.overwrite("writer", &key(&ids[0], MANIFEST_OBJECT), b"KDR-RP\r\njunk".to_vec()).await;

    let reader = bucket.location("reader", None).await;
    let listed = point::list_points(&reader, CLUSTER).await.unwrap();
    let oldest = listed.iter().find(|p| p.id == ids[0]).unwrap();
    let later = reader.history(&key(&ids[0], MANIFEST_OBJECT)).await.unwrap().0.later()[0].id.clone();
    assert!(oldest.tampered.iter().any(|t| t.contains(&later) && t.starts_with("manifest.kdr has a later version")), "{:?}", oldest.tampered);

    let pruner = bucket.location("pruner", None).await;
    let keep_newest = Retention { hourly: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    let (kept, outcomes) = prune(&pruner, CLUSTER, &keep_newest, &Unlocker::new(pass()), time::OffsetDateTime::now_utc(), false).await.unwrap();
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![ids[2].clone()]);
    // The overwritten point's own versions are locked, whatever the junk on top says.
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Pruned::Protected { .. })), "{outcomes:?}");
    // Nothing hidden: no delete marker anywhere, every point still listed and complete.
    let inventory = reader.inventory(&point::points_prefix(CLUSTER)).await.unwrap();
    assert!(inventory.keys.values().flat_map(|h| &h.versions).all(|v| !v.delete_marker), "{inventory:?}");
    let after = point::list_points(&reader, CLUSTER).await.unwrap();
    assert_eq!(after.iter().filter(|p| p.complete).count(), 3);
    // And the genuine oldest point is still what its ID opens.
    let chosen = point::choose(&reader, CLUSTER, point::Which::Id(&ids[0]), &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.point.id, ids[0]);
}

#[tokio::test]
async fn prune_on_a_versioned_bucket_deletes_every_version_by_id_and_lays_no_marker() {
    let bucket = Bucket::new("versioned", "versioned");
    let writer = bucket.location("writer", None).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(write_point(&writer, CLUSTER, &pass(), &sample_entries(3, 10)).await.point_id);
    }
    bucket.overwrite("writer", &key(&ids[0], MANIFEST_OBJECT), b"junk".to_vec()).await;
    let pruner = bucket.location("pruner", None).await;
    let keep_newest = Retention { hourly: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    let (_, outcomes) = prune(&pruner, CLUSTER, &keep_newest, &Unlocker::new(pass()), time::OffsetDateTime::now_utc(), false).await.unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, Pruned::Deleted { .. })), "{outcomes:?}");
    assert_eq!(outcomes.len(), 2);
    // Gone for good: no version of the pruned points left, the junk included, and no marker.
    let reader = bucket.location("reader", None).await;
    let inventory = reader.inventory(&point::points_prefix(CLUSTER)).await.unwrap();
    assert_eq!(inventory.history, History::Versions);
    assert!(inventory.keys.keys().all(|k| k.contains(&ids[2])), "{:?}", inventory.keys.keys().collect::<Vec<_>>());
    assert!(inventory.keys.values().flat_map(|h| &h.versions).all(|v| !v.delete_marker), "{inventory:?}");
}

#[tokio::test]
async fn an_overwrite_that_authenticates_is_never_read_and_is_reported_by_version() {
    let bucket = Bucket::new("locked", "lock");
    let writer = bucket.location("writer", Some(1)).await;
    let entries = sample_entries(20, 30);
    let genuine = write_point(&writer, CLUSTER, &pass(), &entries).await;
    let id = genuine.point_id.clone();
    // An attacker with the passphrase writes the same point again, holding a planted object,
    // and puts both files over the genuine ones.
    let (archive, manifest) = authenticated_forgery(&id, created(&genuine), &evil_entries()).await;
    bucket.overwrite("writer", &key(&id, ARCHIVE_OBJECT), archive).await;
    bucket.overwrite("writer", &key(&id, MANIFEST_OBJECT), manifest.clone()).await;

    let reader = bucket.location("reader", None).await;
    // The current object is the forgery, and it does authenticate…
    assert_eq!(read(&reader, &key(&id, MANIFEST_OBJECT)).await, manifest);
    // …but the point is what kubectl-dr wrote: the first version, whatever is on top.
    let unlocker = Unlocker::new(pass());
    for which in [point::Which::Newest, point::Which::Id(&id), point::Which::AtOrBefore(time::OffsetDateTime::now_utc())] {
        let chosen = point::choose(&reader, CLUSTER, which, &unlocker).await.unwrap();
        assert_eq!(chosen.manifest, genuine, "{which:?}");
    }
    let read_back = point::read_all_entries(&reader, &genuine, &unlocker).await.unwrap();
    assert_eq!(read_back.len(), entries.len());
    assert!(read_back.iter().all(|e| e.object["metadata"]["name"] != "planted"), "the planted object is never read");
    // Reported, naming each file and the version written over it.
    let listed = point::list_points(&reader, CLUSTER).await.unwrap();
    assert_eq!(listed.len(), 1);
    for object in [ARCHIVE_OBJECT, MANIFEST_OBJECT] {
        let later = reader.history(&key(&id, object)).await.unwrap().0.later()[0].id.clone();
        assert!(listed[0].tampered.iter().any(|t| t.starts_with(object) && t.contains(&later)), "{object}: {:?}", listed[0].tampered);
    }
    // A reader without version rights sees only the forgery, and is told it cannot tell.
    let lister = bucket.location("lister", None).await;
    let inventory = lister.inventory(&point::points_prefix(CLUSTER)).await.unwrap();
    let History::CurrentOnly { why } = &inventory.history else { panic!("the lister may not list versions: {:?}", inventory.history) };
    assert!(why.contains("ListBucketVersions"), "{why}");
    let current = point::list_points(&lister, CLUSTER).await.unwrap();
    assert!(!current[0].versions_seen && current[0].tampered.is_empty());
}

#[tokio::test]
async fn a_reader_without_version_rights_passes_over_a_junk_overwrite_and_chooses_the_next() {
    let bucket = Bucket::new("locked", "lock");
    let writer = bucket.location("writer", Some(1)).await;
    let older = write_point(&writer, CLUSTER, &pass(), &sample_entries(3, 10)).await;
    let newest = write_point(&writer, CLUSTER, &pass(), &sample_entries(3, 10)).await;
    bucket.overwrite("writer", &key(&newest.point_id, MANIFEST_OBJECT), b"KDR-RP\r\njunk".to_vec()).await;
    let lister = bucket.location("lister", None).await;
    let chosen = point::choose(&lister, CLUSTER, point::Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.point.id, older.point_id);
    assert!(chosen.passed_over.iter().any(|(id, _)| *id == newest.point_id), "{:?}", chosen.passed_over);
    // With version rights, the newest is read from the version kubectl-dr wrote.
    let reader = bucket.location("reader", None).await;
    let chosen = point::choose(&reader, CLUSTER, point::Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.manifest, newest);
}

#[tokio::test]
async fn a_delete_marker_over_a_point_hides_it_from_no_reader() {
    let bucket = Bucket::new("locked", "lock");
    let writer = bucket.location("writer", Some(1)).await;
    let older = write_point(&writer, CLUSTER, &pass(), &sample_entries(3, 10)).await;
    let newest = write_point(&writer, CLUSTER, &pass(), &sample_entries(4, 10)).await;
    // Credentials that may DeleteObject lay a marker over both files of the newest point.
    let attacker = bucket.attacker("pruner");
    for object in [ARCHIVE_OBJECT, MANIFEST_OBJECT] {
        attacker.delete_object().bucket(&bucket.name).key(format!("{PREFIX}/{}", key(&newest.point_id, object))).send().await.unwrap();
    }
    let reader = bucket.location("reader", None).await;
    let listed = point::list_points(&reader, CLUSTER).await.unwrap();
    let hidden = listed.iter().find(|p| p.id == newest.point_id).expect("the hidden point is still listed");
    assert!(hidden.complete);
    assert_eq!(hidden.tampered.iter().filter(|t| t.contains("hidden by a delete marker")).count(), 2, "{:?}", hidden.tampered);
    let chosen = point::choose(&reader, CLUSTER, point::Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.manifest, newest, "the newest genuine point is still the one chosen");
    assert_eq!(point::verify_entries(&reader, &chosen.manifest, &Unlocker::new(pass())).await.unwrap(), sample_entries(4, 10).len() as u64);
    assert_ne!(older.point_id, newest.point_id);
}

#[tokio::test]
async fn a_flood_of_versions_over_many_listing_pages_does_not_hide_the_first() {
    // S3 lists versions newest first, at most 1,000 a page. Here moto serves 2 a page, so 300
    // versions over a manifest take over 150 pages (the listing once gave up after 100) and
    // the version kubectl-dr wrote is on the last.
    let bucket = Bucket::with_settings("locked", "lock", &[("MOTO_S3_DEFAULT_MAX_KEYS", "2".into())]);
    let writer = bucket.location("writer", Some(1)).await;
    let genuine = write_point(&writer, CLUSTER, &pass(), &sample_entries(3, 10)).await;
    let manifest_key = key(&genuine.point_id, MANIFEST_OBJECT);
    let flood = 300;
    // One at a time: moto loses versions of one key written concurrently (seen: 615 of 1,100
    // kept with 8 at once), which S3 does not.
    for i in 0..flood {
        bucket.overwrite("writer", &manifest_key, format!("junk {i}").into_bytes()).await;
    }
    let reader = bucket.location("reader", None).await;
    let (history, seen) = reader.history(&manifest_key).await.unwrap();
    assert_eq!(seen, History::Versions);
    assert_eq!(history.versions.len(), flood + 1);
    let pinned = history.pinned().unwrap().clone();
    assert_eq!(pinned.size, read_version(&reader, &manifest_key, &pinned).await.len() as u64);
    let chosen = point::choose(&reader, CLUSTER, point::Which::Newest, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(chosen.manifest, genuine);
    assert_eq!(chosen.point.tampered.len(), flood, "every version written over it is named");
}

#[tokio::test]
async fn replicate_copies_the_version_kubectl_dr_wrote_passes_over_forgeries_and_authenticates_each_copy() {
    let source = Bucket::new("source", "lock");
    let dest = Bucket::new("offsite", "lock");
    let writer = source.location("writer", Some(1)).await;
    let plain = write_point(&writer, CLUSTER, &pass(), &sample_entries(4, 10)).await;
    let entries = sample_entries(6, 10);
    let overwritten = write_point(&writer, CLUSTER, &pass(), &entries).await;
    // The overwritten point's files replaced by an authenticated forgery of the same point…
    let (archive, manifest) = authenticated_forgery(&overwritten.point_id, created(&overwritten), &evil_entries()).await;
    source.overwrite("writer", &key(&overwritten.point_id, ARCHIVE_OBJECT), archive).await;
    source.overwrite("writer", &key(&overwritten.point_id, MANIFEST_OBJECT), manifest).await;
    // …and a forged point (no passphrase needed) planted as the newest.
    let forged_id = point::new_point_id(time::OffsetDateTime::now_utc() + time::Duration::seconds(1));
    for (object, role) in [(ARCHIVE_OBJECT, 1), (MANIFEST_OBJECT, 2)] {
        source.overwrite("writer", &key(&forged_id, object), support::forged_point_file(CLUSTER, 3, role, &forged_id)).await;
    }

    let from = source.location("reader", None).await;
    let to = dest.location("writer", Some(1)).await;
    let check = dest.location("reader", None).await;
    let unlocker: Arc<Unlocker> = Unlocker::new(pass());
    let report = replicate::replicate(&from, &to, &check, CLUSTER, None, &unlocker).await.unwrap();
    let outcome = |id: &str| report.points.iter().find(|(p, _)| p == id).map(|(_, c)| c.clone()).unwrap_or_else(|| panic!("{id} not in {report:?}"));
    assert!(matches!(outcome(&plain.point_id), PointCopy::Copied { ref tampered, .. } if tampered.is_empty()), "{report:?}");
    assert!(matches!(outcome(&overwritten.point_id), PointCopy::Copied { ref tampered, .. } if tampered.len() == 2), "{report:?}");
    assert!(matches!(outcome(&forged_id), PointCopy::PassedOver { .. }), "{report:?}");
    assert_eq!((report.problems(), report.passed_over()), (0, 1));

    // Off-site: the two genuine points, as kubectl-dr wrote them; the forgery never arrives.
    let there = point::list_points(&check, CLUSTER).await.unwrap();
    assert_eq!(there.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec![overwritten.point_id.as_str(), plain.point_id.as_str()]);
    let source_pinned = from.history(&key(&overwritten.point_id, MANIFEST_OBJECT)).await.unwrap().0.pinned().unwrap().clone();
    assert_eq!(
        read(&check, &key(&overwritten.point_id, MANIFEST_OBJECT)).await,
        read_version(&from, &key(&overwritten.point_id, MANIFEST_OBJECT), &source_pinned).await
    );
    let copied = point::read_all_entries(&check, &overwritten, &unlocker).await.unwrap();
    assert_eq!(copied.len(), entries.len());
    assert!(copied.iter().all(|e| e.object["metadata"]["name"] != "planted"));
    // Each copy carries when the source received it, and is judged genuine there.
    let info = check.head(&key(&overwritten.point_id, MANIFEST_OBJECT), None).await.unwrap();
    assert_eq!(info.metadata.get(point::SOURCE_STORED_AT), Some(&point::rfc3339(source_pinned.stored_at.unwrap())), "{:?}", info.metadata);
    let judged = point::judge_all(&check, CLUSTER, &there, &unlocker).await.unwrap();
    assert!(judged.iter().all(|j| matches!(j.standing, Standing::Genuine(_))), "{judged:?}");

    // Again: already there; the forgery passed over again.
    let again = replicate::replicate(&from, &to, &check, CLUSTER, None, &unlocker).await.unwrap();
    assert!(again.points.iter().all(|(id, c)| matches!(c, PointCopy::Present { .. }) || *id == forged_id), "{again:?}");
    // Naming the forgery is refused as what it is, not copied.
    let named = replicate::replicate(&from, &to, &check, CLUSTER, Some(&forged_id), &unlocker).await.unwrap();
    assert!(matches!(named.points[..], [(_, PointCopy::PassedOver { .. })]), "{named:?}");
    // A wrong passphrase copies nothing and says so.
    let err = replicate::replicate(&from, &to, &check, CLUSTER, None, &Unlocker::new(Passphrase::new("not the passphrase at all".into()).unwrap()))
        .await
        .unwrap_err();
    let text = dr_core::error_text(&err);
    assert!(text.contains("passphrase"), "{text}");
}

#[tokio::test]
async fn a_replica_of_an_old_point_from_a_directory_is_judged_by_the_evidence_it_carries() {
    // A point made two hours ago on a directory location (an NFS share, which keeps no receipt
    // time a reader trusts), copied off-site now: without the evidence it carries, the copy's
    // store time says it was written two hours after its creation, and it would be suspect.
    let dir = tempfile::tempdir().unwrap();
    let nfs = Location::connect(&LocationConfig::File { path: dir.path().to_path_buf() }).await.unwrap();
    let then = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let mut w = PointWriter::begin_as(&nfs, CLUSTER, &pass(), Mode::Full, "k10-disaster-recovery-policy", point::new_point_id(then), then).await.unwrap();
    for e in sample_entries(3, 10) {
        w.add(&e).await.unwrap();
    }
    let old = w.finish().await.unwrap();
    let dest = Bucket::new("offsite", "lock");
    let (to, check) = (dest.location("writer", Some(1)).await, dest.location("reader", None).await);
    let unlocker = Unlocker::new(pass());
    let report = replicate::replicate(&nfs, &to, &check, CLUSTER, None, &unlocker).await.unwrap();
    assert!(matches!(report.points[..], [(_, PointCopy::Copied { .. })]), "{report:?}");
    // Read as what it is, a replication destination (profile create --s3-replica), the copy
    // is judged by the evidence it carries…
    let chosen = point::choose(&check.as_replica(), CLUSTER, point::Which::Newest, &unlocker).await.unwrap();
    assert_eq!(chosen.manifest, old);
    assert!(chosen.passed_over.is_empty(), "{:?}", chosen.passed_over);
    // …and elsewhere the evidence is not believed (any writer can set metadata), with a hint.
    let err = point::choose(&check, CLUSTER, point::Which::Newest, &unlocker).await.unwrap_err();
    assert!(err.to_string().contains("dated back") && err.to_string().contains("--s3-replica"), "{err}");

    // The same bytes put there by another tool, without the evidence, are suspect.
    let other = Bucket::new("copied-by-hand", "lock");
    for object in [ARCHIVE_OBJECT, MANIFEST_OBJECT] {
        other.overwrite("writer", &key(&old.point_id, object), std::fs::read(dir.path().join(key(&old.point_id, object))).unwrap()).await;
    }
    let by_hand = other.location("reader", None).await;
    let listed = point::list_points(&by_hand, CLUSTER).await.unwrap();
    let judged = point::judge_all(&by_hand, CLUSTER, &listed, &unlocker).await.unwrap();
    assert!(matches!(&judged[0].standing, Standing::Suspect { reason, .. } if reason.contains("dated back")), "{judged:?}");
}
