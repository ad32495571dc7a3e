//! S3 on a bad day (docs/faults.md): real moto behind the scripted fault proxy
//! (`test-support/src/fault_proxy.rs`), which resets connections, cuts and stalls downloads,
//! answers 5xx, 412 or nothing at all, and goes away for a minute. Each test checks what the
//! product did about it and that nothing reads as a point that is not one.

use std::time::{Duration, Instant};

use dr_test_support as support;

use dr_core::failure::{Classify, ErrorKind};
use dr_core::format::crypto::Passphrase;
use dr_core::location::{Location, LocationConfig, S3Config, StaticCredentials};
use dr_core::point::{self, Unlocker};
use support::fault_proxy::{Fault, FaultProxy, RequestHead};
use support::{moto, moto_setup, sample_entries, write_point};
use zeroize::Zeroizing;

const CLUSTER: &str = "7d1c9b2e-4a3f-4e5d-9c8b-1a2b3c4d5e6f";

fn pass() -> Passphrase {
    Passphrase::new("correct horse battery staple".into()).unwrap()
}

async fn connect(endpoint: &str, bucket: &str) -> Location {
    support::moto_bucket::s3_location_at(endpoint, bucket, "test", "test", None).await
}

/// Two points written one after the other: the newer one's ID.
async fn older_and_newest(loc: &Location) -> String {
    let older = write_point(loc, CLUSTER, &pass(), &sample_entries(10, 10)).await;
    let newest = write_point(loc, CLUSTER, &pass(), &sample_entries(20, 10)).await;
    assert!(newest.point_id > older.point_id);
    newest.point_id
}

/// A bucket on its own moto, and a proxy in front of it.
fn bucket(name: &str) -> (support::Server, FaultProxy) {
    let s3 = moto();
    moto_setup(&s3, &["bucket", name], None);
    let proxy = FaultProxy::start(&s3.url);
    (s3, proxy)
}

fn archive(h: &RequestHead) -> bool {
    h.path().ends_with(point::ARCHIVE_OBJECT)
}

fn manifest(h: &RequestHead) -> bool {
    h.path().ends_with(point::MANIFEST_OBJECT)
}

fn upload_part(h: &RequestHead) -> bool {
    h.method == "PUT" && archive(h) && h.query().contains("partNumber=")
}

/// Entries whose archive is over one 8 MiB part, so it goes up as a multipart upload.
fn multipart_entries() -> Vec<dr_core::catalog::Entry> {
    sample_entries(30_000, 500)
}

async fn complete_points(loc: &Location) -> Vec<String> {
    point::list_points(loc, CLUSTER).await.unwrap().into_iter().filter(|p| p.complete).map(|p| p.id).collect()
}

#[tokio::test]
async fn resets_and_server_errors_during_an_upload_are_retried() {
    let (_s3, proxy) = bucket("bumpy");
    let loc = connect(&proxy.url, "bumpy").await;
    // The first part's connection reset; the second part answered 500 twice; the manifest's
    // PutObject throttled (503 SlowDown) once; CreateMultipartUpload answered 502 once.
    proxy.on(|h| upload_part(h) && h.query().contains("partNumber=1&") || upload_part(h) && h.query().ends_with("partNumber=1"), Fault::Reset, 1);
    proxy.on(|h| upload_part(h) && h.query().contains("partNumber=2"), Fault::s3_error(500, "InternalError", "We encountered an internal error."), 2);
    proxy.on(|h| h.method == "PUT" && manifest(h), Fault::s3_error(503, "SlowDown", "Please reduce your request rate."), 1);
    proxy.on(|h| h.method == "POST" && archive(h) && h.query().contains("uploads"), Fault::s3_error(502, "BadGateway", "Bad Gateway"), 1);
    let entries = multipart_entries();
    let m = write_point(&loc, CLUSTER, &pass(), &entries).await;
    assert_eq!(proxy.applied("Reset"), 1, "{:?}", proxy.seen());
    assert_eq!(proxy.applied("Respond"), 4, "{:?}", proxy.seen());
    assert_eq!(point::verify_point(&loc, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), entries.len() as u64);
}

#[tokio::test]
async fn a_part_that_keeps_failing_fails_the_backup_leaving_no_complete_point_and_the_next_run_succeeds() {
    let (_s3, proxy) = bucket("failing");
    let loc = connect(&proxy.url, "failing").await;
    proxy.on(|h| upload_part(h) && h.query().contains("partNumber=2"), Fault::s3_error(500, "InternalError", "We encountered an internal error."), 1_000);
    let mut w = point::PointWriter::begin(&loc, CLUSTER, &pass(), dr_core::catalog::Mode::Full, "p").await.unwrap();
    let mut failed = None;
    for e in multipart_entries() {
        if let Err(e) = w.add(&e).await {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => w.finish().await.expect_err("the backup must fail while every try of part 2 fails"),
    };
    let text = err.to_string();
    assert!(text.contains("UploadPart") && text.contains("failing"), "the error names the call and the bucket: {text}");
    assert_eq!(err.kind(), ErrorKind::Transient, "{text}");
    // The SDK tried six times (the first and five retries), not once and not for ever.
    assert_eq!(proxy.applied("Respond"), 6, "{:?}", proxy.seen().iter().map(|s| &s.target).collect::<Vec<_>>());
    assert!(complete_points(&loc).await.is_empty(), "a failed backup never looks complete");
    // The store answers again: the next run makes the one complete point.
    proxy.clear();
    let m = write_point(&loc, CLUSTER, &pass(), &sample_entries(100, 100)).await;
    assert_eq!(complete_points(&loc).await, vec![m.point_id]);
}

#[tokio::test]
async fn downloads_cut_mid_body_resume_where_they_stopped() {
    let (_s3, proxy) = bucket("cut");
    let loc = connect(&proxy.url, "cut").await;
    let entries = multipart_entries();
    let m = write_point(&loc, CLUSTER, &pass(), &entries).await;
    // The archive's download is cut twice (after 1 MiB, then 3 MiB more), the manifest's once.
    proxy.on(|h| h.method == "GET" && archive(h), Fault::CutBody { after: 1 << 20 }, 1);
    proxy.on(|h| h.method == "GET" && archive(h), Fault::CutBody { after: 3 << 20 }, 1);
    proxy.on(|h| h.method == "GET" && manifest(h), Fault::CutBody { after: 100 }, 1);
    assert_eq!(point::verify_point(&loc, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), entries.len() as u64);
    assert_eq!(proxy.applied("CutBody"), 3);
    // Each resumption asked for the rest only: the ranges start where the cuts were.
    let ranges: Vec<String> = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.target.contains(point::ARCHIVE_OBJECT))
        .filter_map(|s| s.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert!(ranges[0].starts_with("bytes=") && ranges[0] != "bytes=0-", "{ranges:?}");
    let start = |r: &str| r.trim_start_matches("bytes=").trim_end_matches('-').parse::<u64>().unwrap();
    assert!(start(&ranges[0]) >= 1 << 20 && start(&ranges[1]) >= start(&ranges[0]) + (3 << 20), "{ranges:?}");
}

#[tokio::test]
async fn a_stalled_download_is_given_up_after_the_grace_period_and_resumed() {
    let (_s3, proxy) = bucket("stall");
    let loc = connect(&proxy.url, "stall").await;
    let entries = multipart_entries();
    let m = write_point(&loc, CLUSTER, &pass(), &entries).await;
    // The server sends 2 MiB of the archive and then nothing, the connection held open.
    proxy.on(|h| h.method == "GET" && archive(h), Fault::StallBody { after: 2 << 20 }, 1);
    let started = Instant::now();
    assert_eq!(point::verify_point(&loc, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), entries.len() as u64);
    let took = started.elapsed();
    assert_eq!(proxy.applied("StallBody"), 1);
    // The SDK's stalled-stream protection ends the transfer once no byte has come for its
    // grace period (seconds: about 7 s here); the rest is then asked for.
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(90), "took {took:?}");
    let ranges = proxy
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.target.contains(point::ARCHIVE_OBJECT))
        .filter_map(|s| s.header("range").map(str::to_owned))
        .count();
    assert_eq!(ranges, 1, "the rest was asked for once");
}

#[tokio::test]
async fn a_download_cut_every_time_fails_as_transient_never_as_a_damaged_point() {
    let (_s3, proxy) = bucket("cuts");
    let loc = connect(&proxy.url, "cuts").await;
    let m = write_point(&loc, CLUSTER, &pass(), &multipart_entries()).await;
    // Every try is cut before a byte of the body arrives: no progress, so once 90 s pass that
    // way it gives up. (A download that gets further each time keeps going.)
    proxy.on(|h| h.method == "GET" && archive(h), Fault::CutBody { after: 0 }, 1_000);
    let err = point::verify_point(&loc, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap_err();
    let text = dr_core::error_text(&err);
    assert_eq!(err.kind(), ErrorKind::Transient, "a cut connection is not damage: {text}");
    assert!(text.contains("was cut") && text.contains(point::ARCHIVE_OBJECT) && text.contains("run again"), "{text}");
    assert!(proxy.applied("CutBody") >= 10, "it kept asking, with backoff: {}", proxy.applied("CutBody"));
    // With the store well again, the same point verifies: nothing was marked or lost.
    proxy.clear();
    point::verify_point(&loc, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap();
}

#[tokio::test]
async fn a_cut_manifest_download_stops_the_choice_instead_of_passing_over_the_newest_point() {
    let (_s3, proxy) = bucket("newest");
    let loc = connect(&proxy.url, "newest").await;
    let newest = older_and_newest(&loc).await;
    let newest_manifest = format!("{newest}/{}", point::MANIFEST_OBJECT);
    proxy.on(move |h| h.method == "GET" && h.path().ends_with(&newest_manifest), Fault::CutBody { after: 0 }, 1_000);
    let unlocker = Unlocker::new(pass());
    let err = point::choose(&loc, CLUSTER, point::Which::Newest, &unlocker).await.map(|c| c.manifest.point_id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    proxy.clear();
    let chosen = point::choose(&loc, CLUSTER, point::Which::Newest, &unlocker).await.unwrap();
    assert_eq!(chosen.manifest.point_id, newest);
}

#[tokio::test]
async fn the_store_gone_for_a_minute_mid_backup_fails_it_cleanly_and_the_next_run_succeeds() {
    let (_s3, proxy) = bucket("gone");
    let loc = connect(&proxy.url, "gone").await;
    let mut w = point::PointWriter::begin(&loc, CLUSTER, &pass(), dr_core::catalog::Mode::Full, "p").await.unwrap();
    let mut outage_started = None;
    let mut failed = None;
    for e in multipart_entries() {
        // Once the first part is up, the store goes away for a minute.
        if outage_started.is_none() && proxy.seen().iter().any(upload_part_seen) {
            proxy.refuse_for(Duration::from_secs(60));
            outage_started = Some(Instant::now());
        }
        if let Err(e) = w.add(&e).await {
            failed = Some(e);
            break;
        }
    }
    let outage_started = outage_started.expect("the first part went up during the backup");
    let err = match failed {
        Some(e) => e,
        None => w.finish().await.expect_err("a backup whose store is gone fails"),
    };
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Transient, "{text}");
    assert!(text.contains("gone") && text.contains(&proxy.url), "the error names the bucket and endpoint: {text}");
    // It gave up within the SDK's retries, well inside the outage, rather than hanging.
    assert!(outage_started.elapsed() < Duration::from_secs(55), "failed after {:?}", outage_started.elapsed());
    // Once the store is back: nothing from the failed run reads as a point, and the next run succeeds.
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(outage_started.elapsed()) + Duration::from_secs(1)).await;
    assert!(complete_points(&loc).await.is_empty());
    let m = write_point(&loc, CLUSTER, &pass(), &sample_entries(100, 100)).await;
    assert_eq!(complete_points(&loc).await, vec![m.point_id]);
}

fn upload_part_seen(s: &support::fault_proxy::Seen) -> bool {
    s.method == "PUT" && s.target.contains(point::ARCHIVE_OBJECT) && s.target.contains("partNumber=") && s.status == Some(200)
}

#[tokio::test]
async fn a_412_for_a_manifest_whose_first_write_landed_is_reported_and_the_point_stays_whole() {
    let (_s3, proxy) = bucket("lost");
    let loc = connect(&proxy.url, "lost").await;
    // The manifest's PutObject reaches the store, and its answer is lost: the SDK tries again,
    // and the store answers 412 Precondition Failed to the retry's If-None-Match: *.
    proxy.on(|h| h.method == "PUT" && manifest(h), Fault::ResetAfterForward, 1);
    let mut w = point::PointWriter::begin(&loc, CLUSTER, &pass(), dr_core::catalog::Mode::Full, "p").await.unwrap();
    for e in sample_entries(50, 50) {
        w.add(&e).await.unwrap();
    }
    let id = w.point_id().to_owned();
    let outcome = w.finish().await;
    assert_eq!(proxy.applied("ResetAfterForward"), 1);
    let puts: Vec<Option<u16>> = proxy.seen().iter().filter(|s| s.method == "PUT" && s.target.contains(point::MANIFEST_OBJECT)).map(|s| s.status).collect();
    assert_eq!(puts, vec![None, Some(412)], "the retry met the first write");
    match outcome {
        // The writer could tell the object at the key is the one it wrote.
        Ok(m) => assert_eq!(m.point_id, id),
        Err(e) => panic!("the manifest this backup wrote must count as written: {e}"),
    }
    assert_eq!(point::verify_point(&loc, CLUSTER, &id, &Unlocker::new(pass())).await.unwrap(), 54);
}

#[tokio::test]
async fn the_store_gone_for_a_minute_mid_restore_is_waited_for_and_the_read_finishes() {
    let (_s3, proxy) = bucket("away");
    let loc = connect(&proxy.url, "away").await;
    let entries = multipart_entries();
    let m = write_point(&loc, CLUSTER, &pass(), &entries).await;
    // The archive's download is cut after 2 MiB, and at that moment the store goes away for a
    // minute (connections refused).
    proxy.on(|h| h.method == "GET" && archive(h), Fault::CutBody { after: 2 << 20 }, 1);
    let unlocker = Unlocker::new(pass());
    let read = point::verify_point(&loc, CLUSTER, &m.point_id, &unlocker);
    let outage = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        // Once the cut is over: the store going away mid-cut would end the download
        // before the 2 MiB arrive (a cut at 0, rightly resumed from 0).
        while proxy.cuts_done() == 0 {
            assert!(Instant::now() < deadline, "the archive was never read");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.refuse_for(Duration::from_secs(60));
        Instant::now()
    };
    let (read, outage) = tokio::join!(read, outage);
    assert_eq!(read.unwrap(), entries.len() as u64, "the read finished once the store was back");
    assert!(outage.elapsed() >= Duration::from_secs(59), "it waited for the store: {:?}", outage.elapsed());
    let resumed = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.target.contains(point::ARCHIVE_OBJECT))
        .filter_map(|s| s.header("range").map(str::to_owned))
        .collect::<Vec<_>>();
    assert_eq!(resumed.len(), 1, "one resumed request once the store answered: {resumed:?}");
    assert!(resumed[0] != "bytes=0-", "from where it was cut: {resumed:?}");
}

#[tokio::test]
async fn a_tls_connection_reset_mid_download_is_resumed() {
    // TLS cannot be read by the proxy: it forwards bytes and resets the connection itself.
    let s3 = support::moto_tls();
    moto_setup(&s3, &["bucket", "tls"], None);
    let proxy = FaultProxy::tls_passthrough(&s3.url);
    let tls = |endpoint: &str| S3Config {
        bucket: "tls".into(),
        prefix: "dr".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        path_style: true,
        skip_tls_verify: true,
        credentials: Some(StaticCredentials { access_key_id: "test".into(), secret_access_key: Zeroizing::new("test".into()), session_token: None }),
        ..Default::default()
    };
    let writer = Location::connect(&LocationConfig::S3(tls(&proxy.url))).await.unwrap();
    let entries = multipart_entries();
    let m = write_point(&writer, CLUSTER, &pass(), &entries).await;
    // A fresh client, whose first connection carries the listing, the manifest and the
    // archive: it is reset after 2 MiB from the server, inside the archive.
    proxy.on(|h| h.method == "CONNECT", Fault::CutBody { after: 2 << 20 }, 1);
    let reader = Location::connect(&LocationConfig::S3(tls(&proxy.url))).await.unwrap();
    assert_eq!(point::verify_point(&reader, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), entries.len() as u64);
    assert_eq!(proxy.applied("CutBody"), 1);
    assert!(proxy.seen().len() >= 2, "the download went on over a new connection");
}

/// moto's STS session with its `<Expiration>` moved to 15 s from now: moto issues one-hour
/// sessions, and a test cannot wait for one to run out.
fn expiring_in_15_s(answer: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(answer);
    let (Some(start), Some(end)) = (text.find("<Expiration>"), text.find("</Expiration>")) else {
        panic!("moto's AssumeRoleWithWebIdentity answer has no Expiration: {text}")
    };
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(15)).replace_nanosecond(0).unwrap();
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    format!("{}<Expiration>{soon}{}", &text[..start], &text[end..]).into_bytes()
}

/// The access key a request to S3 was signed with (SigV4's `Credential=<key>/<scope>`).
fn signing_key(s: &support::fault_proxy::Seen) -> Option<String> {
    let auth = s.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("authorization"))?.1.clone();
    Some(auth.split("Credential=").nth(1)?.split('/').next()?.to_owned())
}

/// An STS session that runs out during a backup, as IRSA gives a pod (a web identity: the
/// profile names no keys, the SDK's default chain assumes the role). The SDK's identity cache
/// asks STS again shortly before the session it holds expires, and the backup's later
/// requests are signed with the new session. moto never refuses an expired session
/// (`moto/iam/access_control.py` checks keys, not expiry), so what this shows is the renewal:
/// a second AssumeRoleWithWebIdentity, and the later S3 requests signed with its key.
#[tokio::test]
async fn an_sts_session_expiring_mid_backup_is_renewed_and_later_requests_use_the_new_one() {
    let (_s3, proxy) = bucket("sessions");
    let token = std::env::temp_dir().join(format!("dr-web-identity-{}", std::process::id()));
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a2FzdGVuLWlvOmRyIn0.c2lnbmF0dXJl").unwrap();
    // The environment a pod with IRSA has, and nothing the chain would take first (each test
    // runs in its own process under nextest).
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
        std::env::remove_var(name);
    }
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent");
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_WEB_IDENTITY_TOKEN_FILE", &token);
    std::env::set_var("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/dr-backup");
    std::env::set_var("AWS_ROLE_SESSION_NAME", "kubectl-dr");
    std::env::set_var("AWS_ENDPOINT_URL_STS", &proxy.url);
    let is_sts = |h: &RequestHead| h.method == "POST" && h.body_contains("AssumeRoleWithWebIdentity");
    proxy.on(is_sts, Fault::Rewrite(expiring_in_15_s), usize::MAX);
    // Each part held 12 s: what the backup sends after its parts (CompleteMultipartUpload, the
    // manifest) is signed after the first session's last 10 s (the cache's renewal window).
    proxy.on(upload_part, Fault::Delay(Duration::from_secs(12)), usize::MAX);
    let cfg = S3Config {
        bucket: "sessions".into(),
        prefix: "dr".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(proxy.url.clone()),
        path_style: true,
        ..Default::default()
    };
    let loc = Location::connect(&LocationConfig::S3(cfg)).await.unwrap();
    let entries = multipart_entries();
    let start = Instant::now();
    let m = write_point(&loc, CLUSTER, &pass(), &entries).await;
    assert!(start.elapsed() > Duration::from_secs(12), "the backup ran into its first session's last seconds ({:?})", start.elapsed());
    let seen = proxy.seen();
    let sessions = seen.iter().filter(|s| s.fault.as_deref() == Some("Rewrite")).count();
    assert!(sessions >= 2, "a new session was asked for before the first expired: {sessions} AssumeRoleWithWebIdentity");
    let keys: Vec<String> = seen.iter().filter(|s| s.fault.as_deref() != Some("Rewrite")).filter_map(signing_key).collect();
    let (first, last) = (keys.first().unwrap(), keys.last().unwrap());
    assert_ne!(first, last, "the backup's last requests are signed with a newer session than its first: {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("ASIA")), "every S3 request signed with a key of an STS session (moto: ASIA…): {keys:?}");
    assert_eq!(point::verify_point(&loc, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), entries.len() as u64);
    std::fs::remove_file(&token).unwrap();
}

/// The newest point's header authenticates, then the download of its whole manifest is cut
/// every time: a transport failure, which stops the choice (transient) instead of passing the
/// newest point over as damaged and restoring an older one.
#[tokio::test]
async fn a_manifest_cut_after_its_header_authenticated_stops_the_choice() {
    let (_s3, proxy) = bucket("body");
    let loc = connect(&proxy.url, "body").await;
    let newest = older_and_newest(&loc).await;
    let newest_manifest = format!("{newest}/{}", point::MANIFEST_OBJECT);
    let header_range = format!("bytes=0-{}", dr_core::format::MAX_HEADER_LEN - 1);
    proxy.on(
        move |h| h.method == "GET" && h.path().ends_with(&newest_manifest) && h.header("range") != Some(header_range.as_str()),
        Fault::CutBody { after: 0 },
        1_000,
    );
    let unlocker = Unlocker::new(pass());
    let err = point::choose(&loc, CLUSTER, point::Which::Newest, &unlocker).await.map(|c| c.manifest.point_id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(proxy.applied("CutBody") >= 2, "the whole manifest's download was cut and resumed: {}", proxy.applied("CutBody"));
    proxy.clear();
    let chosen = point::choose(&loc, CLUSTER, point::Which::Newest, &unlocker).await.unwrap();
    assert_eq!(chosen.manifest.point_id, newest);
}

/// A ranged read answered with bytes that are not the ones asked for (a faulty gateway) stops
/// the choice as a location failure, never making the newest point look damaged.
#[tokio::test]
async fn a_ranged_read_answered_with_other_bytes_stops_the_choice() {
    let (_s3, proxy) = bucket("lying");
    let loc = connect(&proxy.url, "lying").await;
    let newest = older_and_newest(&loc).await;
    let newest_manifest = format!("{newest}/{}", point::MANIFEST_OBJECT);
    proxy.on(
        move |h| h.method == "GET" && h.path().ends_with(&newest_manifest),
        Fault::Respond { status: 206, headers: vec![("Content-Range".into(), "bytes 100-734/5000".into())], body: vec![0; 635] },
        1,
    );
    let err = point::choose(&loc, CLUSTER, point::Which::Newest, &Unlocker::new(pass())).await.map(|c| c.manifest.point_id).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.to_string().contains("alters answers"), "{err}");
}
