//! Restore points in Google Cloud Storage, against fake-gcs-server (the GCS JSON API emulator,
//! from its PyPI wheel) behind `gcs_gateway.py`: Google's side of authentication (an OAuth
//! token endpoint that verifies the service account's signed JWT, a metadata server) and a
//! gateway that lets through only requests carrying a token it issued — fake-gcs-server
//! itself checks none. What the emulator does not model (create-only resumable uploads,
//! deletes by generation, object retention) is said in docs/emulators.md and pinned in
//! `gcs_emulator.rs`; here each gap's consequence for the product is tested as it shows.

use dr_test_support as support;

use dr_core::failure::{Classify, ErrorKind};
use dr_core::format::crypto::Passphrase;
use dr_core::location::{GcsConfig, GcsCredentials, History, Location, LocationConfig, LocationError, PART_SIZE};
use dr_core::point::{self, Unlocker};
use dr_core::resources::Retention;
use support::fault_proxy::{Fault, FaultProxy};
use support::{fake_gcs, gcs_bucket, gcs_gateway, moto, moto_setup, sample_entries, write_point};
use zeroize::Zeroizing;

const CLUSTER: &str = "0e5b7a3c-9f1d-4c2b-8a6e-1d2c3b4a5f60";

fn pass() -> Passphrase {
    Passphrase::new("correct horse battery staple".into()).unwrap()
}

/// fake-gcs-server with one bucket, and the gateway in front of it with its service account key.
struct Gcs {
    emulator: support::Server,
    gateway: support::Server,
    key: String,
}

impl Gcs {
    fn start(versioning: bool) -> Self {
        let emulator = fake_gcs();
        gcs_bucket(&emulator, "dr-points", versioning);
        let (gateway, key) = gcs_gateway(&emulator);
        Gcs { emulator, gateway, key }
    }

    fn config(&self) -> GcsConfig {
        GcsConfig {
            bucket: "dr-points".into(),
            prefix: "dr/prod".into(),
            endpoint: Some(self.gateway.url.clone()),
            credentials: GcsCredentials::ServiceAccountKey(Zeroizing::new(self.key.clone())),
            ..Default::default()
        }
    }

    async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/gateway/stats", self.gateway.url)).await.unwrap().json().await.unwrap()
    }
}

async fn connect(cfg: GcsConfig) -> Location {
    Location::connect(&LocationConfig::Gcs(cfg)).await.unwrap()
}

#[tokio::test]
async fn points_are_written_create_only_then_listed_verified_and_read_back() {
    let gcs = Gcs::start(true);
    let loc = connect(gcs.config()).await;
    loc.validate().await.unwrap();
    // One point small enough for a multipart upload, one whose archive goes up in a
    // resumable session's chunks.
    let small = write_point(&loc, CLUSTER, &pass(), &sample_entries(100, 50)).await;
    let entries = sample_entries(30_000, 500);
    let big = write_point(&loc, CLUSTER, &pass(), &entries).await;
    assert!(big.archive.stored_bytes > PART_SIZE as u64, "{}", big.archive.stored_bytes);

    let points = point::list_points(&loc, CLUSTER).await.unwrap();
    assert_eq!(
        points.iter().map(|p| (p.id.clone(), p.complete)).collect::<Vec<_>>(),
        vec![(big.point_id.clone(), true), (small.point_id.clone(), true)],
        "newest first"
    );
    let unlocker = Unlocker::new(pass());
    assert_eq!(point::verify_point(&loc, CLUSTER, &big.point_id, &unlocker).await.unwrap(), entries.len() as u64);
    assert_eq!(point::verify_point(&loc, CLUSTER, &small.point_id, &unlocker).await.unwrap(), 104);
    let chosen = point::choose(&loc, CLUSTER, point::Which::Newest, &unlocker).await.unwrap();
    assert_eq!(chosen.manifest.point_id, big.point_id);

    // What a backup wrote is never written over by a multipart create: ifGenerationMatch=0.
    let archive = point::object_key(CLUSTER, &small.point_id, point::ARCHIVE_OBJECT);
    let err = loc.put(&archive, b"other bytes".to_vec()).await.unwrap_err();
    assert!(matches!(err, LocationError::AlreadyExists { .. }), "{err}");

    // A ranged read of the first bytes, and of an object shorter than asked.
    let (total, mut start) = loc.open_start(&archive, None, 16).await.unwrap();
    let mut first = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut start, &mut first).await.unwrap();
    assert_eq!((first.len(), total), (16, points[1].archive.as_ref().unwrap().size));
    loc.put("dr-test/short", b"abc".to_vec()).await.unwrap();
    let (total, mut start) = loc.open_start("dr-test/short", None, 16).await.unwrap();
    let mut all = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut start, &mut all).await.unwrap();
    assert_eq!((all.as_slice(), total), (&b"abc"[..], 3));

    // A versioned bucket: every generation is listed, one per object so far.
    let inventory = loc.inventory(&point::points_prefix(CLUSTER)).await.unwrap();
    assert_eq!(inventory.history, History::Versions);
    assert_eq!(inventory.keys.len(), 4);
    assert!(inventory.keys.values().all(|h| h.versions.len() == 1 && !h.versions[0].id.is_empty()), "{:?}", inventory.keys);

    // Every request went through the gateway with a token it issued: one token, kept.
    let stats = gcs.stats().await;
    assert_eq!((stats["issued"].as_u64(), stats["refused"].as_u64()), (Some(1), Some(0)), "{stats}");
}

#[tokio::test]
async fn a_large_create_asks_for_a_new_name_and_an_overwrite_the_emulator_lets_through_is_seen_and_not_read() {
    let gcs = Gcs::start(true);
    let proxy = FaultProxy::start(&gcs.gateway.url);
    let loc = connect(GcsConfig { endpoint: Some(proxy.url.clone()), ..gcs.config() }).await;
    let entries = sample_entries(30_000, 500);
    let m = write_point(&loc, CLUSTER, &pass(), &entries).await;
    let archive = point::object_key(CLUSTER, &m.point_id, point::ARCHIVE_OBJECT);
    // The resumable session is started create-only, as GCS honours it ...
    let starts: Vec<String> =
        proxy.seen().iter().filter(|s| s.target.contains("uploadType=resumable") && s.method == "POST").map(|s| s.target.clone()).collect();
    assert!(!starts.is_empty() && starts.iter().all(|t| t.contains("ifGenerationMatch=0")), "{starts:?}");
    // ... which fake-gcs-server ignores there (docs/emulators.md): a second large create of
    // the same name becomes a second generation. On GCS it is refused with 412.
    let mut upload = loc.create(&archive).await.unwrap();
    upload.write(&vec![7u8; PART_SIZE + 1]).await.unwrap();
    upload.finish().await.unwrap();
    // The overwrite is seen and the point's own generation is the one read.
    let (history, seen) = loc.history(&archive).await.unwrap();
    assert_eq!(seen, History::Versions);
    assert_eq!(history.versions.len(), 2, "{history:?}");
    assert_eq!(history.pinned().unwrap().size, m.archive.stored_bytes);
    let later = history.later()[0].id.clone();
    let listed = point::list_points(&loc, CLUSTER).await.unwrap();
    assert!(listed[0].tampered.iter().any(|t| t.starts_with(point::ARCHIVE_OBJECT) && t.contains(&later)), "{:?}", listed[0].tampered);
    let unlocker = Unlocker::new(pass());
    assert_eq!(point::verify_point(&loc, CLUSTER, &m.point_id, &unlocker).await.unwrap(), entries.len() as u64);
}

#[tokio::test]
async fn an_unversioned_bucket_says_only_what_is_current_is_known_and_points_replicate_and_prune_there() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "primary"], None);
    let primary = support::moto_bucket::s3_location(&s3, "primary", "test", "test", None).await;
    // fake-gcs-server deletes the live object whatever generation a delete names, so prune is
    // tested on a bucket without versioning, where that is what a delete does on GCS too.
    let gcs = Gcs::start(false);
    let offsite = connect(gcs.config()).await;
    let mut written = Vec::new();
    for n in [10, 20, 30] {
        written.push(write_point(&primary, CLUSTER, &pass(), &sample_entries(n, 40)).await.point_id);
    }
    let unlocker = Unlocker::new(pass());
    let report = dr_core::replicate::replicate(&primary, &offsite, &offsite.as_replica(), CLUSTER, None, &unlocker).await.unwrap();
    assert_eq!(report.problems(), 0, "{:?}", report.points);
    assert_eq!(report.points.len(), 3);
    // The copies carry the source's receipt time.
    let head = offsite.head(&point::object_key(CLUSTER, &written[0], point::MANIFEST_OBJECT), None).await.unwrap();
    assert!(head.metadata.contains_key(point::SOURCE_STORED_AT), "{:?}", head.metadata);
    let replica = offsite.as_replica();
    assert_eq!(point::verify_point(&replica, CLUSTER, &written[2], &unlocker).await.unwrap(), 34);
    match replica.inventory(&point::points_prefix(CLUSTER)).await.unwrap().history {
        History::CurrentOnly { why } => assert!(why.contains("object versioning is off"), "{why}"),
        other => panic!("an unversioned bucket, yet the history says {other:?}"),
    }
    // And back the other way, onto a fresh bucket.
    moto_setup(&s3, &["bucket", "back"], None);
    let back = support::moto_bucket::s3_location(&s3, "back", "test", "test", None).await;
    let report = dr_core::replicate::replicate(&replica, &back, &back.as_replica(), CLUSTER, None, &unlocker).await.unwrap();
    assert_eq!((report.problems(), report.points.len()), (0, 3), "{:?}", report.points);

    // Prune on GCS: one point an hour is kept, the two older ones of this hour go.
    let retention = Retention { hourly: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    let (kept, _) = dr_core::retention::prune(&replica, CLUSTER, &retention, &unlocker, time::OffsetDateTime::now_utc(), false).await.unwrap();
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![written[2].clone()]);
    let left: Vec<String> = point::list_points(&replica, CLUSTER).await.unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(left, vec![written[2].clone()]);
    assert!(offsite.list(&point::points_prefix(CLUSTER)).await.unwrap().iter().all(|o| o.key.contains(&written[2])));
}

#[tokio::test]
async fn a_wrong_key_a_revoked_token_the_metadata_server_a_missing_bucket_and_no_service() {
    let gcs = Gcs::start(true);
    // Another service account's key, sent to this token endpoint: the JWT's signature fails.
    let other = Gcs::start(true);
    let mut wrong: serde_json::Value = serde_json::from_str(&other.key).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&gcs.key).unwrap();
    wrong["token_uri"] = ours["token_uri"].clone();
    wrong["client_email"] = ours["client_email"].clone();
    let err = connect(GcsConfig { credentials: GcsCredentials::ServiceAccountKey(Zeroizing::new(wrong.to_string())), ..gcs.config() })
        .await
        .validate()
        .await
        .unwrap_err();
    let said = dr_core::error_text(&err);
    assert!(said.contains("credentials were not accepted") && said.contains("Invalid JWT Signature"), "{said}");
    assert!(!said.contains("PRIVATE KEY") && !format!("{err:?}").contains("PRIVATE KEY"), "no key in messages: {said}");
    assert_eq!(err.kind(), ErrorKind::BadInput);

    // A token revoked while it is kept: the 401 gets a fresh one, once.
    let loc = connect(gcs.config()).await;
    loc.put("probe/one", b"1".to_vec()).await.unwrap();
    reqwest::Client::new().post(format!("{}/gateway/revoke", gcs.gateway.url)).send().await.unwrap();
    loc.put("probe/two", b"2".to_vec()).await.unwrap();
    let stats = gcs.stats().await;
    assert_eq!((stats["issued"].as_u64(), stats["refused"].as_u64()), (Some(2), Some(1)), "{stats}");

    // GKE's workload identity: the token comes from the metadata server.
    std::env::set_var("GCE_METADATA_HOST", gcs.gateway.url.trim_start_matches("http://"));
    let from_metadata = connect(GcsConfig { credentials: GcsCredentials::MetadataServer, ..gcs.config() }).await;
    from_metadata.validate().await.unwrap();
    assert_eq!(from_metadata.list("probe/").await.unwrap().len(), 2);
    std::env::set_var("GCE_METADATA_HOST", format!("127.0.0.1:{}", support::free_port()));
    let err = connect(GcsConfig { credentials: GcsCredentials::MetadataServer, ..gcs.config() }).await.validate().await.unwrap_err();
    assert!(dr_core::error_text(&err).contains("metadata server"), "{}", dr_core::error_text(&err));
    std::env::remove_var("GCE_METADATA_HOST");

    let err = connect(GcsConfig { bucket: "missing".into(), ..gcs.config() }).await.validate().await.unwrap_err();
    assert!(err.to_string().contains("bucket missing does not exist"), "{err}");
    assert_eq!(err.kind(), ErrorKind::BadInput);

    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let err = connect(GcsConfig { endpoint: Some(closed), ..gcs.config() }).await.validate().await.unwrap_err();
    assert!(matches!(err, LocationError::ServiceUnreachable { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Transient);

    // Bad settings are refused before anything is sent.
    for (cfg, says) in [
        (GcsConfig { bucket: "Not A Bucket".into(), ..gcs.config() }, "is not a GCS bucket name"),
        (GcsConfig { immutable_days: Some(91), ..gcs.config() }, "1 to 90 days"),
        (GcsConfig { endpoint: Some("http://storage.example.com".into()), ..gcs.config() }, "is plain http"),
        (
            GcsConfig { credentials: GcsCredentials::ServiceAccountKey(Zeroizing::new("{\"type\": \"authorized_user\"}".into())), ..gcs.config() },
            "service account",
        ),
        (
            GcsConfig { credentials: GcsCredentials::ServiceAccountKey(Zeroizing::new("not json at all".into())), ..gcs.config() },
            "is not a service account's JSON key",
        ),
    ] {
        let err = Location::connect(&LocationConfig::Gcs(cfg)).await.unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    // fake-gcs-server has no object retention: an immutable profile is refused there, as on a
    // bucket without it. Its writes still carry the locked retention, which the emulator keeps.
    let immutable = connect(GcsConfig { immutable_days: Some(7), ..gcs.config() }).await;
    let err = immutable.validate().await.unwrap_err();
    assert!(matches!(err, LocationError::RetentionUnsupported { .. }), "{err}");
    immutable.put("locked/one", b"1".to_vec()).await.unwrap();
    let (mode, until) = immutable.head("locked/one", None).await.unwrap().retention.expect("a retention");
    assert_eq!(mode, "Locked");
    let days = (until - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((6 * 24..=7 * 24).contains(&days), "{until}");
    drop(gcs.emulator);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_recognised_by_its_nonce_and_another_writers_object_is_not() {
    let gcs = Gcs::start(true);
    let proxy = FaultProxy::start(&gcs.gateway.url);
    let loc = connect(GcsConfig { endpoint: Some(proxy.url.clone()), ..gcs.config() }).await;
    // The multipart upload and the resumable session's last chunk reach the service, and their
    // answers are lost: the retry is refused (412) or finds the session over, and the object
    // carrying this upload's nonce counts as written.
    proxy.on(|h| h.method == "POST" && h.query().contains("uploadType=multipart") && h.body_contains("lost/small"), Fault::ResetAfterForward, 1);
    proxy.on(|h| h.method == "PUT" && h.header("content-range").is_some_and(|r| !r.ends_with("/*")), Fault::ResetAfterForward, 1);
    loc.put("lost/small", b"small".to_vec()).await.unwrap();
    let mut big = loc.create("lost/big").await.unwrap();
    big.write(&vec![3u8; PART_SIZE + 10]).await.unwrap();
    big.finish().await.unwrap();
    assert_eq!(proxy.applied("ResetAfterForward"), 2);
    let statuses: Vec<Option<u16>> =
        proxy.seen().iter().filter(|s| s.method == "POST" && s.target.contains("uploadType=multipart")).map(|s| s.status).collect();
    assert_eq!(statuses, vec![None, Some(412)], "the retry met the first write");
    assert_eq!(loc.head("lost/big", None).await.unwrap().size, (PART_SIZE + 10) as u64);
    assert_eq!(loc.history("lost/big").await.unwrap().0.versions.len(), 1, "one generation: the chunk was not sent twice into a new object");

    // Another writer's object at the name is not taken for this write.
    let theirs = connect(gcs.config()).await;
    theirs.put("taken", b"theirs".to_vec()).await.unwrap();
    let err = loc.put("taken", b"mine".to_vec()).await.unwrap_err();
    assert!(matches!(err, LocationError::AlreadyExists { .. }), "{err}");
    // A transient failure (503) is tried again and the write goes through.
    proxy.on(
        |h| h.method == "POST" && h.body_contains("retried"),
        Fault::json(503, serde_json::json!({"error": {"code": 503, "message": "Backend Error"}})),
        2,
    );
    loc.put("retried", b"x".to_vec()).await.unwrap();
    assert_eq!(proxy.applied("Respond"), 2);
}
