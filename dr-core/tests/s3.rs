//! Restore points in S3, against a real S3 implementation (moto): Object Lock retention,
//! multipart uploads, PutObject-only credentials, and clear errors.

use dr_test_support as support;

use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig, LocationError, S3Config, StaticCredentials};
use dr_core::point::{self, Unlocker};
use support::{moto, moto_setup, moto_with, sample_entries, write_point};
use zeroize::Zeroizing;

const CLUSTER: &str = "0e5b7a3c-9f1d-4c2b-8a6e-1d2c3b4a5f60";

fn pass() -> Passphrase {
    Passphrase::new("correct horse battery staple".into()).unwrap()
}

fn creds(id: &str, secret: &str) -> Option<StaticCredentials> {
    Some(StaticCredentials { access_key_id: id.into(), secret_access_key: Zeroizing::new(secret.into()), session_token: None })
}

fn config(endpoint: &str, bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        prefix: "dr/prod".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        credentials: creds("test", "test"),
        ..Default::default()
    }
}

async fn connect(cfg: S3Config) -> Location {
    Location::connect(&LocationConfig::S3(cfg)).await.unwrap()
}

#[tokio::test]
async fn immutable_points_are_written_with_compliance_retention_and_read_back() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "locked", "lock"], None);
    let loc = connect(S3Config { immutable_days: Some(7), ..config(&s3.url, "locked") }).await;
    loc.validate().await.unwrap();
    let before = time::OffsetDateTime::now_utc();
    let small = write_point(&loc, CLUSTER, &pass(), &sample_entries(100, 50)).await;
    assert!(small.retained_until.is_some());
    for object in [point::ARCHIVE_OBJECT, point::MANIFEST_OBJECT] {
        let info = loc.head(&point::object_key(CLUSTER, &small.point_id, object), None).await.unwrap();
        let (mode, until) = info.retention.unwrap_or_else(|| panic!("{object} has no retention"));
        assert_eq!(mode, "COMPLIANCE");
        let hours = (until - before).whole_hours();
        assert!((7 * 24 - 1..=7 * 24 + 1).contains(&hours), "{object} retained for {hours} h");
    }
    // Over one 8 MiB part of incompressible data, so the archive goes up as a multipart upload
    // (whose CreateMultipartUpload carries the same retention headers; moto 5 drops them when
    // it completes the upload, so only the manifest's retention can be checked here).
    let entries = sample_entries(30_000, 500);
    let big = write_point(&loc, CLUSTER, &pass(), &entries).await;
    assert!(big.archive.stored_bytes > dr_core::location::PART_SIZE as u64, "{}", big.archive.stored_bytes);
    let manifest = loc.head(&point::object_key(CLUSTER, &big.point_id, point::MANIFEST_OBJECT), None).await.unwrap();
    assert_eq!(manifest.retention.map(|r| r.0).as_deref(), Some("COMPLIANCE"));
    let points = point::list_points(&loc, CLUSTER).await.unwrap();
    assert_eq!(points.len(), 2);
    assert!(points.iter().all(|p| p.complete));
    let objects = point::verify_point(&loc, CLUSTER, &big.point_id, &Unlocker::new(pass())).await.unwrap();
    assert_eq!(objects, entries.len() as u64);
}

#[tokio::test]
async fn immutability_needs_a_bucket_with_object_lock() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "plain"], None);
    let loc = connect(S3Config { immutable_days: Some(7), ..config(&s3.url, "plain") }).await;
    let err = loc.validate().await.unwrap_err();
    assert!(matches!(err, LocationError::ObjectLockDisabled { .. }), "{err}");
    assert!(err.to_string().contains("Object Lock"), "{err}");
    // The same bucket is fine without immutability.
    connect(config(&s3.url, "plain")).await.validate().await.unwrap();
    // And a protection period outside 1..=90 days is refused up front.
    let err = Location::connect(&LocationConfig::S3(S3Config { immutable_days: Some(91), ..config(&s3.url, "plain") })).await.unwrap_err();
    assert!(err.to_string().contains("1 to 90 days"), "{err}");
}

#[tokio::test]
async fn put_object_only_credentials_can_write_a_point_and_nothing_else() {
    // moto enforces IAM policies after the 7 set-up requests (bucket + two users).
    let s3 = moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "7".into())]);
    moto_setup(&s3, &["bucket", "offsite", "lock"], None);
    let users = moto_setup(&s3, &["users", "offsite"], None);
    let user = |name: &str| creds(users[name]["access_key_id"].as_str().unwrap(), users[name]["secret_access_key"].as_str().unwrap());

    let writer = connect(S3Config { credentials: user("writer"), immutable_days: Some(1), ..config(&s3.url, "offsite") }).await;
    // Large enough for a multipart upload: CreateMultipartUpload/UploadPart/Complete are
    // all authorized as s3:PutObject.
    let entries = sample_entries(30_000, 500);
    let m = write_point(&writer, CLUSTER, &pass(), &entries).await;

    // The writer can do nothing but create: no listing, no reading.
    let err = point::list_points(&writer, CLUSTER).await.unwrap_err();
    assert!(err.to_string().contains("access denied") && err.to_string().contains("s3:ListBucket"), "{err}");
    let err = writer.open(&point::object_key(CLUSTER, &m.point_id, point::MANIFEST_OBJECT)).await.err().unwrap();
    assert!(matches!(err, LocationError::AccessDenied { .. }), "{err}");

    // Read credentials see a complete, sound point.
    let reader = connect(S3Config { credentials: user("reader"), ..config(&s3.url, "offsite") }).await;
    reader.validate().await.unwrap();
    let points = point::list_points(&reader, CLUSTER).await.unwrap();
    assert_eq!(points.len(), 1);
    assert!(points[0].complete);
    assert_eq!(point::verify_point(&reader, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), entries.len() as u64);
    // The reader cannot write.
    let err = reader.put(&point::object_key(CLUSTER, "20261121T000000.000Z-00000000", "x"), vec![1]).await.unwrap_err();
    assert!(matches!(err, LocationError::AccessDenied { permission: "s3:PutObject", .. }), "{err}");
}

#[tokio::test]
async fn unreachable_missing_and_forbidden_buckets_get_clear_errors() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "exists"], None);
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let err = connect(config(&closed, "exists")).await.validate().await.unwrap_err();
    assert!(matches!(err, LocationError::Unreachable { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&closed) && msg.contains("exists") && msg.contains("endpoint URL"), "{msg}");

    let err = connect(config(&s3.url, "missing")).await.validate().await.unwrap_err();
    assert!(matches!(err, LocationError::NoSuchBucket { .. }), "{err}");
    assert!(err.to_string().contains("missing"));

    let err = point::list_points(&connect(config(&s3.url, "missing")).await, CLUSTER).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn an_interrupted_backup_leaves_no_point_that_looks_complete() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "bkt"], None);
    let loc = connect(config(&s3.url, "bkt")).await;
    let mut w = point::PointWriter::begin(&loc, CLUSTER, &pass(), dr_core::catalog::Mode::Full, "p").await.unwrap();
    for e in sample_entries(30_000, 500) {
        w.add(&e).await.unwrap();
    }
    let id = w.point_id().to_owned();
    w.abort().await;
    let points = point::list_points(&loc, CLUSTER).await.unwrap();
    assert!(points.iter().all(|p| !p.complete), "{points:?}");
    let err = point::select_point(&points, None, CLUSTER, &loc).unwrap_err();
    assert!(matches!(err, point::PointError::NoPoints { .. } | point::PointError::NoneAtOrBefore { .. }), "{err} ({id})");
}

#[tokio::test]
async fn a_self_signed_endpoint_needs_skip_tls_verify_and_then_works() {
    let s3 = support::moto_tls();
    moto_setup(&s3, &["bucket", "lab"], None);
    // Verified (the default): refused, and the error says both ways out.
    let err = connect(config(&s3.url, "lab")).await.validate().await.unwrap_err();
    assert!(matches!(err, LocationError::TlsUntrusted { .. }), "{err}");
    assert!(err.to_string().contains("--s3-ca-bundle") && err.to_string().contains("--s3-skip-tls-verify"), "{err}");
    // Unverified: the whole point round trip works over TLS.
    let loc = connect(S3Config { skip_tls_verify: true, ..config(&s3.url, "lab") }).await;
    loc.validate().await.unwrap();
    let entries = sample_entries(20_000, 500); // multipart too
    let m = write_point(&loc, CLUSTER, &pass(), &entries).await;
    assert_eq!(point::verify_point(&loc, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), entries.len() as u64);
}

#[tokio::test]
async fn throttling_is_retried_with_backoff() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "busy"], None);
    // Three 503 SlowDown answers in a row, then the real server.
    let proxy = support::fault_proxy::FaultProxy::start(&s3.url);
    proxy.on(|_| true, support::fault_proxy::Fault::s3_error(503, "SlowDown", "Please reduce your request rate."), 3);
    let loc = connect(config(&proxy.url, "busy")).await;
    let m = write_point(&loc, CLUSTER, &pass(), &sample_entries(10, 10)).await;
    assert_eq!(proxy.applied("Respond"), 3);
    assert_eq!(point::verify_point(&loc, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), 14);
}

#[tokio::test]
async fn prune_deletes_what_retention_drops_but_never_what_object_lock_protects() {
    use dr_core::resources::Retention;
    use dr_core::retention::{prune, Pruned};
    let s3 = moto();
    moto_setup(&s3, &["bucket", "locked", "lock"], None);
    moto_setup(&s3, &["bucket", "plain"], None);
    let keep_newest = Retention { hourly: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    for (bucket, days) in [("locked", Some(1)), ("plain", None)] {
        let loc = connect(S3Config { immutable_days: days, ..config(&s3.url, bucket) }).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(write_point(&loc, CLUSTER, &pass(), &sample_entries(3, 10)).await.point_id);
        }
        let now = time::OffsetDateTime::now_utc();
        // Dry run first: says, deletes nothing.
        let (_, dry) = prune(&loc, CLUSTER, &keep_newest, &Unlocker::new(pass()), now, true).await.unwrap();
        assert_eq!(point::list_points(&loc, CLUSTER).await.unwrap().len(), 3);
        let (kept, outcomes) = prune(&loc, CLUSTER, &keep_newest, &Unlocker::new(pass()), now, false).await.unwrap();
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![ids[2].clone()]);
        assert_eq!(outcomes.len(), 2);
        let left: Vec<String> = point::list_points(&loc, CLUSTER).await.unwrap().into_iter().map(|p| p.id).collect();
        if days.is_some() {
            assert!(outcomes.iter().all(|o| matches!(o, Pruned::Protected { .. })), "{outcomes:?}");
            assert!(dry.iter().all(|o| matches!(o, Pruned::Protected { .. })), "{dry:?}");
            assert_eq!(left.len(), 3, "protected points stay");
        } else {
            assert!(outcomes.iter().all(|o| matches!(o, Pruned::Deleted { .. })), "{outcomes:?}");
            assert!(dry.iter().all(|o| matches!(o, Pruned::WouldDelete { .. })), "{dry:?}");
            assert_eq!(left, vec![ids[2].clone()]);
        }
    }
}

#[tokio::test]
async fn a_point_written_over_on_a_locked_bucket_is_read_from_its_locked_version() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "locked", "lock"], None);
    let loc = connect(S3Config { immutable_days: Some(1), ..config(&s3.url, "locked") }).await;
    let entries = sample_entries(50, 40);
    let genuine = write_point(&loc, CLUSTER, &pass(), &entries).await;
    let key = |object| point::object_key(CLUSTER, &genuine.point_id, object);
    // kubectl-dr's own writes never replace a key (If-None-Match: *).
    let err = loc.put(&key(point::MANIFEST_OBJECT), b"again".to_vec()).await.unwrap_err();
    assert!(matches!(err, LocationError::AlreadyExists { .. }), "{err}");
    // A writer with PutObject alone puts new versions over both files: a manifest of junk and
    // an archive of the same size as the genuine one.
    let full = |object| format!("dr/prod/{}", key(object));
    moto_setup(&s3, &["put", "locked", &full(point::MANIFEST_OBJECT)], Some("KDR-RP\r\nnot a manifest"));
    let junk = "x".repeat(genuine.archive.stored_bytes as usize);
    moto_setup(&s3, &["put", "locked", &full(point::ARCHIVE_OBJECT)], Some(&junk));
    assert_eq!(loc.history(&key(point::ARCHIVE_OBJECT)).await.unwrap().0.versions.len(), 2);
    // The listing names both overwrites on the point.
    let listed = point::list_points(&loc, CLUSTER).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tampered.len(), 2, "{:?}", listed[0].tampered);
    assert!(listed[0].tampered.iter().any(|t| t.starts_with("manifest.kdr has a later version")), "{:?}", listed[0].tampered);
    // The genuine versions, which Object Lock keeps, are read instead.
    let unlocker = Unlocker::new(pass());
    let manifest = point::choose(&loc, CLUSTER, point::Which::Newest, &unlocker).await.unwrap().manifest;
    assert_eq!(manifest, genuine);
    assert_eq!(point::verify_entries(&loc, &manifest, &unlocker).await.unwrap(), entries.len() as u64);
}
