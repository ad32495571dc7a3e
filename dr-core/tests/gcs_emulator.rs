//! What fake-gcs-server (the GCS JSON API emulator the tests will run a GCS location against,
//! issue #25) models of the rules restore points rely on, and what it does not
//! (`docs/emulators.md`). Each gap is asserted as the emulator's behaviour, so an emulator
//! upgrade that closes one fails here and the test written around the gap can be revisited.

use dr_test_support as support;

use reqwest::StatusCode;
use serde_json::{json, Value};

const BUCKET: &str = "dr-points";

struct Gcs {
    _server: support::Server,
    url: String,
    http: reqwest::Client,
}

impl Gcs {
    /// A fresh emulator with one bucket, versioning on (as a GCS location's bucket must be).
    async fn start() -> Self {
        dr_core::init_crypto_provider();
        let server = support::fake_gcs();
        let gcs = Gcs { url: server.url.clone(), _server: server, http: reqwest::Client::new() };
        let made = gcs
            .http
            .post(format!("{}/storage/v1/b?project=test", gcs.url))
            .json(&json!({"name": BUCKET, "versioning": {"enabled": true}}))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), StatusCode::OK, "{}", made.text().await.unwrap());
        gcs
    }

    /// A multipart upload (metadata and media in one request) of `name`, create-only when
    /// `create_only` (`ifGenerationMatch=0`), with `metadata` fields added to the object's.
    async fn upload(&self, name: &str, body: &str, create_only: bool, metadata: Value) -> reqwest::Response {
        let mut resource = json!({"name": name});
        resource.as_object_mut().unwrap().extend(metadata.as_object().cloned().unwrap_or_default());
        let multipart =
            format!("--b\r\nContent-Type: application/json\r\n\r\n{resource}\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n{body}\r\n--b--\r\n");
        let condition = if create_only { "&ifGenerationMatch=0" } else { "" };
        self.http
            .post(format!("{}/upload/storage/v1/b/{BUCKET}/o?uploadType=multipart{condition}", self.url))
            .header("Content-Type", "multipart/related; boundary=b")
            .body(multipart)
            .send()
            .await
            .unwrap()
    }

    /// Every generation of `name`, oldest first: (generation, deleted).
    async fn generations(&self, name: &str) -> Vec<(String, bool)> {
        let listed: Value =
            self.http.get(format!("{}/storage/v1/b/{BUCKET}/o?versions=true&prefix={name}", self.url)).send().await.unwrap().json().await.unwrap();
        let mut found: Vec<(String, bool)> = listed["items"]
            .as_array()
            .map(|items| items.iter().map(|i| (i["generation"].as_str().unwrap().to_owned(), i.get("timeDeleted").is_some())).collect())
            .unwrap_or_default();
        found.sort_by_key(|(g, _)| g.parse::<u64>().unwrap());
        found
    }
}

#[tokio::test]
async fn fake_gcs_server_models_create_only_uploads_generations_and_ranged_reads_of_one() {
    let gcs = Gcs::start().await;
    // Create-only (what a point's files are): the second write of the key is refused.
    assert_eq!(gcs.upload("p/manifest.kdr", "first", true, json!({})).await.status(), StatusCode::OK);
    assert_eq!(gcs.upload("p/manifest.kdr", "second", true, json!({})).await.status(), StatusCode::PRECONDITION_FAILED);
    // An unconditional write over it (what an attacker with write rights can do) makes a second
    // generation; the first stays listed and readable by its number.
    assert_eq!(gcs.upload("p/manifest.kdr", "forged", false, json!({})).await.status(), StatusCode::OK);
    let generations = gcs.generations("p/manifest.kdr").await;
    assert_eq!(generations.len(), 2, "{generations:?}");
    assert_eq!(generations.iter().map(|(_, deleted)| *deleted).collect::<Vec<_>>(), vec![true, false], "the first is noncurrent");
    let first = &generations[0].0;
    let ranged = gcs
        .http
        .get(format!("{}/storage/v1/b/{BUCKET}/o/p%2Fmanifest.kdr?alt=media&generation={first}", gcs.url))
        .header("Range", "bytes=0-2")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.headers()["content-range"], "bytes 0-2/5");
    assert_eq!(ranged.text().await.unwrap(), "fir");
    // User metadata round-trips (a copy's carried evidence).
    let stored: Value =
        gcs.upload("p/copy.kdr", "x", true, json!({"metadata": {"kubectl-dr-source-stored-at": "2026-12-07T10:00:00Z"}})).await.json().await.unwrap();
    assert_eq!(stored["metadata"]["kubectl-dr-source-stored-at"], "2026-12-07T10:00:00Z");
}

#[tokio::test]
async fn fake_gcs_server_does_not_model_create_only_media_or_resumable_uploads_delete_by_generation_or_retention() {
    let gcs = Gcs::start().await;
    // Gap 1: `ifGenerationMatch=0` is ignored on a media upload (and on a resumable one's
    // initiation): a second generation is written where GCS answers 412.
    for _ in 0..2 {
        let sent =
            gcs.http.post(format!("{}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name=m&ifGenerationMatch=0", gcs.url)).body("x").send().await.unwrap();
        assert_eq!(sent.status(), StatusCode::OK);
    }
    assert_eq!(
        gcs.generations("m").await.len(),
        2,
        "fake-gcs-server now honours ifGenerationMatch on media uploads: test the location's own upload against it"
    );
    for _ in 0..2 {
        let started = gcs
            .http
            .post(format!("{}/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable&name=r&ifGenerationMatch=0", gcs.url))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), StatusCode::OK);
        let session = started.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(gcs.http.put(session).body("part").send().await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(gcs.generations("r").await.len(), 2, "fake-gcs-server now honours ifGenerationMatch on resumable uploads");

    // Gap 2: a DELETE naming a noncurrent generation removes the live object instead (GCS
    // deletes exactly that generation): prune by generation cannot be tested here.
    assert_eq!(gcs.upload("d", "one", true, json!({})).await.status(), StatusCode::OK);
    assert_eq!(gcs.upload("d", "two", false, json!({})).await.status(), StatusCode::OK);
    let before = gcs.generations("d").await;
    let deleted = gcs.http.delete(format!("{}/storage/v1/b/{BUCKET}/o/d?generation={}", gcs.url, before[0].0)).send().await.unwrap();
    assert!(deleted.status().is_success());
    let after = gcs.generations("d").await;
    assert_eq!(
        after.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>(),
        before.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>(),
        "both generations are still there"
    );
    assert!(after.iter().all(|(_, deleted)| *deleted), "the live generation was made noncurrent instead: {after:?}");

    // Gap 3: an object's retention is stored but not enforced: a locked object deletes.
    let held: Value =
        gcs.upload("held", "x", true, json!({"retention": {"mode": "Locked", "retainUntilTime": "2099-01-01T00:00:00Z"}})).await.json().await.unwrap();
    assert_eq!(held["retention"]["mode"], "Locked");
    let deleted = gcs.http.delete(format!("{}/storage/v1/b/{BUCKET}/o/held", gcs.url)).send().await.unwrap();
    assert!(deleted.status().is_success(), "fake-gcs-server now enforces retention: test immutability against it");
}
