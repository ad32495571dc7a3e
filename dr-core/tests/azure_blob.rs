//! Restore points in Azure Blob Storage, against Azurite (the Azure Blob emulator, npm): the
//! requests are signed with the account's Shared Key (Azurite checks the signature) or carry a
//! SAS made by Azure's own Python SDK. What Azurite does not model — blob versions and
//! immutability — is said in docs/emulators.md; the parts of the location that read versions
//! are unit-tested on the service's documented listing instead (`location/azure.rs`).

use dr_test_support as support;

use dr_core::failure::{Classify, ErrorKind};
use dr_core::format::crypto::Passphrase;
use dr_core::location::{AzureConfig, AzureCredentials, History, Location, LocationConfig, LocationError};
use dr_core::point::{self, Unlocker};
use dr_core::resources::Retention;
use support::fault_proxy::{Fault, FaultProxy};
use support::{azure_setup, azurite, moto, moto_setup, sample_entries, write_point};
use zeroize::Zeroizing;

const CLUSTER: &str = "0e5b7a3c-9f1d-4c2b-8a6e-1d2c3b4a5f60";

fn pass() -> Passphrase {
    Passphrase::new("correct horse battery staple".into()).unwrap()
}

fn config(server: &support::Server, container: &str, credentials: AzureCredentials) -> AzureConfig {
    AzureConfig {
        account: support::AZURITE_ACCOUNT.into(),
        container: container.into(),
        prefix: "dr/prod".into(),
        endpoint: Some(server.url.clone()),
        credentials,
        ..Default::default()
    }
}

fn shared_key() -> AzureCredentials {
    AzureCredentials::SharedKey(Zeroizing::new(support::AZURITE_KEY.into()))
}

async fn connect(cfg: AzureConfig) -> Location {
    Location::connect(&LocationConfig::Azure(cfg)).await.unwrap()
}

fn sas(server: &support::Server, container: &str, permissions: &str) -> AzureCredentials {
    let out: serde_json::Value = serde_json::from_slice(&azure_setup(server, &["sas", container, permissions], b"")).unwrap();
    AzureCredentials::Sas(Zeroizing::new(out["sas"].as_str().unwrap().to_owned()))
}

#[tokio::test]
async fn points_are_written_create_only_then_listed_verified_and_read_back() {
    let server = azurite();
    azure_setup(&server, &["container", "points"], b"");
    let loc = connect(config(&server, "points", shared_key())).await;
    loc.validate().await.unwrap();
    // One point small enough for Put Blob, one whose archive goes up as blocks.
    let small = write_point(&loc, CLUSTER, &pass(), &sample_entries(100, 50)).await;
    let entries = sample_entries(30_000, 500);
    let big = write_point(&loc, CLUSTER, &pass(), &entries).await;
    assert!(big.archive.stored_bytes > dr_core::location::PART_SIZE as u64, "{}", big.archive.stored_bytes);

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

    // What a backup wrote is never written over: a second create of either kind is refused.
    let archive = point::object_key(CLUSTER, &small.point_id, point::ARCHIVE_OBJECT);
    let err = loc.put(&archive, b"other bytes".to_vec()).await.unwrap_err();
    assert!(matches!(err, LocationError::AlreadyExists { .. }), "{err}");
    let mut upload = loc.create(&point::object_key(CLUSTER, &big.point_id, point::ARCHIVE_OBJECT)).await.unwrap();
    upload.write(&vec![7u8; dr_core::location::PART_SIZE + 1]).await.unwrap();
    let err = upload.finish().await.unwrap_err();
    assert!(matches!(err, LocationError::AlreadyExists { .. }), "{err}");
    assert_eq!(point::verify_point(&loc, CLUSTER, &big.point_id, &unlocker).await.unwrap(), entries.len() as u64);

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

    // Azurite keeps no versions: the listing says only what is current is known.
    let inventory = loc.inventory(&point::points_prefix(CLUSTER)).await.unwrap();
    match inventory.history {
        History::CurrentOnly { why } => assert!(why.contains("versioning is off"), "{why}"),
        other => panic!("Azurite lists no versions, yet the history says {other:?}"),
    }
    assert_eq!(inventory.keys.len(), 4);
}

#[tokio::test]
async fn sas_credentials_do_what_their_permissions_allow_and_say_what_is_missing() {
    let server = azurite();
    azure_setup(&server, &["container", "offsite"], b"");
    // Create and write only: what a backup needs, and what an attacker who owned the
    // source cluster holds.
    let writer = connect(config(&server, "offsite", sas(&server, "offsite", "cw"))).await;
    let m = write_point(&writer, CLUSTER, &pass(), &sample_entries(50, 50)).await;
    let err = point::list_points(&writer, CLUSTER).await.unwrap_err();
    assert!(err.to_string().contains("List Blobs") && err.to_string().contains("not allowed listing"), "{err}");
    // Read and list: a restore's.
    let reader = connect(config(&server, "offsite", sas(&server, "offsite", "rl"))).await;
    reader.validate().await.unwrap();
    assert_eq!(point::verify_point(&reader, CLUSTER, &m.point_id, &Unlocker::new(pass())).await.unwrap(), 54);
    let err = reader.put(&point::object_key(CLUSTER, "20261121T000000.000Z-00000000", "x"), vec![1]).await.unwrap_err();
    assert!(matches!(&err, LocationError::Refused { status: 403, .. }) && err.to_string().contains("creating blobs"), "{err}");
    assert_eq!(err.kind(), ErrorKind::BadInput);
}

#[tokio::test]
async fn a_wrong_key_a_missing_container_and_no_service_get_clear_errors() {
    let server = azurite();
    azure_setup(&server, &["container", "points"], b"");
    // Another valid key: Azurite checks the signature, as Azure does.
    let wrong = AzureCredentials::SharedKey(Zeroizing::new("bm90IHRoZSBrZXkgb2YgdGhpcyBhY2NvdW50IGF0IGFsbCEhIQ==".into()));
    let err = connect(config(&server, "points", wrong)).await.validate().await.unwrap_err();
    assert!(err.to_string().contains("credentials were not accepted") && err.to_string().contains("azure_storage_key"), "{err}");
    assert!(!err.to_string().contains("Eby8") && !err.to_string().contains("bm90IHRo"), "no key in messages: {err}");

    let err = connect(config(&server, "missing", shared_key())).await.validate().await.unwrap_err();
    assert!(err.to_string().contains("container missing does not exist"), "{err}");
    assert_eq!(err.kind(), ErrorKind::BadInput);

    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let err = connect(AzureConfig { endpoint: Some(format!("{closed}/{}", support::AZURITE_ACCOUNT)), ..config(&server, "points", shared_key()) })
        .await
        .validate()
        .await
        .unwrap_err();
    assert!(matches!(err, LocationError::ServiceUnreachable { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Transient);
    // A SAS rides in each request's URL: a transport error never says it.
    let sas = AzureCredentials::Sas(Zeroizing::new("sv=2023-11-03&sr=c&sp=rl&sig=SECRETSIGNATURE".into()));
    let err = connect(AzureConfig { endpoint: Some(format!("{closed}/{}", support::AZURITE_ACCOUNT)), ..config(&server, "points", sas) })
        .await
        .validate()
        .await
        .unwrap_err();
    assert!(matches!(err, LocationError::ServiceUnreachable { .. }) && !format!("{err} {err:?}").contains("SECRETSIGNATURE"), "{err:?}");

    // Bad settings are refused before anything is sent.
    for (cfg, says) in [
        (AzureConfig { account: "Not_An_Account".into(), ..config(&server, "points", shared_key()) }, "is not an Azure storage account name"),
        (AzureConfig { container: "dr".into(), ..config(&server, "points", shared_key()) }, "is not an Azure container name"),
        (config(&server, "points", AzureCredentials::SharedKey(Zeroizing::new("not base64!".into()))), "is not base64"),
        (AzureConfig { immutable_days: Some(91), ..config(&server, "points", shared_key()) }, "1 to 90 days"),
        (AzureConfig { endpoint: Some("http://blob.example.com/acct".into()), ..config(&server, "points", shared_key()) }, "is plain http"),
    ] {
        let err = Location::connect(&LocationConfig::Azure(cfg)).await.unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    // Azurite has no version-level immutability: an immutable profile is refused there, as
    // on a container without it.
    let err = connect(AzureConfig { immutable_days: Some(7), ..config(&server, "points", shared_key()) }).await.validate().await.unwrap_err();
    assert!(matches!(err, LocationError::ImmutabilityUnsupported { .. }), "{err}");
}

#[tokio::test]
async fn points_replicate_between_s3_and_azure_and_prune_there() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "primary"], None);
    let primary = support::moto_bucket::s3_location(&s3, "primary", "test", "test", None).await;
    let server = azurite();
    azure_setup(&server, &["container", "offsite"], b"");
    let offsite = connect(config(&server, "offsite", shared_key())).await;
    let mut written = Vec::new();
    for n in [10, 20, 30] {
        written.push(write_point(&primary, CLUSTER, &pass(), &sample_entries(n, 40)).await.point_id);
    }
    let unlocker = Unlocker::new(pass());
    let report = dr_core::replicate::replicate(&primary, &offsite, &offsite.as_replica(), CLUSTER, None, &unlocker).await.unwrap();
    assert_eq!(report.problems(), 0, "{:?}", report.points);
    assert_eq!(report.points.len(), 3);
    // The copies carry the source's receipt time (`-` in metadata names is sent as `_`).
    let head = offsite.head(&point::object_key(CLUSTER, &written[0], point::MANIFEST_OBJECT), None).await.unwrap();
    assert!(head.metadata.contains_key(point::SOURCE_STORED_AT), "{:?}", head.metadata);
    let replica = offsite.as_replica();
    assert_eq!(point::verify_point(&replica, CLUSTER, &written[2], &unlocker).await.unwrap(), 34);
    // And back the other way, onto a fresh bucket.
    moto_setup(&s3, &["bucket", "back"], None);
    let back = support::moto_bucket::s3_location(&s3, "back", "test", "test", None).await;
    let report = dr_core::replicate::replicate(&replica, &back, &back.as_replica(), CLUSTER, None, &unlocker).await.unwrap();
    assert_eq!((report.problems(), report.points.len()), (0, 3), "{:?}", report.points);

    // Prune on Azure: one point an hour is kept, the two older ones of this hour go.
    let retention = Retention { hourly: 1, daily: 0, weekly: 0, monthly: 0, yearly: 0 };
    let (kept, _) = dr_core::retention::prune(&replica, CLUSTER, &retention, &unlocker, time::OffsetDateTime::now_utc(), false).await.unwrap();
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![written[2].clone()]);
    let left: Vec<String> = point::list_points(&replica, CLUSTER).await.unwrap().into_iter().map(|p| p.id).collect();
    assert_eq!(left, vec![written[2].clone()]);
    assert!(offsite.list(&point::points_prefix(CLUSTER)).await.unwrap().iter().all(|o| o.key.contains(&written[2])));
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_recognised_by_its_nonce_and_another_writers_blob_is_not() {
    let server = azurite();
    azure_setup(&server, &["container", "points"], b"");
    let proxy = FaultProxy::start(server.url.trim_end_matches(&format!("/{}", support::AZURITE_ACCOUNT)));
    let through = |credentials| AzureConfig { endpoint: Some(format!("{}/{}", proxy.url, support::AZURITE_ACCOUNT)), ..config(&server, "points", credentials) };
    let loc = connect(through(shared_key())).await;
    // Put Blob and Put Block List reach the service, and their answers are lost: the retry is
    // refused (409), and the blob carrying this upload's nonce counts as written.
    proxy.on(|h| h.method == "PUT" && h.target.contains("small") && !h.query().contains("comp="), Fault::ResetAfterForward, 1);
    proxy.on(|h| h.method == "PUT" && h.query().contains("comp=blocklist"), Fault::ResetAfterForward, 1);
    loc.put("lost/small", b"small".to_vec()).await.unwrap();
    let mut big = loc.create("lost/big").await.unwrap();
    big.write(&vec![3u8; dr_core::location::PART_SIZE + 10]).await.unwrap();
    big.finish().await.unwrap();
    assert_eq!(proxy.applied("ResetAfterForward"), 2);
    let statuses: Vec<Option<u16>> = proxy.seen().iter().filter(|s| s.method == "PUT" && s.target.contains("comp=blocklist")).map(|s| s.status).collect();
    assert_eq!(statuses, vec![None, Some(409)], "the retry met the first write");
    assert_eq!(loc.head("lost/big", None).await.unwrap().size, (dr_core::location::PART_SIZE + 10) as u64);

    // Another writer's blob at the key is not taken for this write.
    azure_setup(&server, &["put", "points", "dr/prod/taken"], b"theirs");
    let err = loc.put("taken", b"mine".to_vec()).await.unwrap_err();
    assert!(matches!(err, LocationError::AlreadyExists { .. }), "{err}");
    // Credentials that may only create cannot tell: the write counts as failed, said so.
    let writer = connect(through(sas(&server, "points", "cw"))).await;
    proxy.on(|h| h.method == "PUT" && h.target.contains("unconfirmed"), Fault::ResetAfterForward, 1);
    let err = writer.put("unconfirmed", b"x".to_vec()).await.unwrap_err();
    assert!(matches!(err, LocationError::WriteUnconfirmed { .. }), "{err}");
}
