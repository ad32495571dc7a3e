//! S3 listings page to the end, against a real S3 implementation (moto): a location holding
//! more than 1,000 keys (the most one ListObjectsV2 page holds) and more than 1,000 versions
//! (the most one ListObjectVersions page holds). A listing that stopped at the first page
//! would miss points, and the evidence of the versions written over them.

use std::collections::BTreeSet;

use dr_core::location::History;
use dr_core::point;
use dr_test_support::moto_bucket::{s3_location, sdk, PREFIX};
use dr_test_support::{moto, moto_setup};
use futures::StreamExt;

const CLUSTER: &str = "7c2d9e4f-1b3a-4c5d-8e6f-0a1b2c3d4e5f";
/// 1,100 keys: two files per point.
const POINTS: usize = 550;

#[tokio::test]
async fn listing_pages_past_1000_keys_and_1000_versions() {
    let s3 = moto();
    moto_setup(&s3, &["bucket", "paged", "versioned"], None);
    let client = sdk(&s3, "test", "test");
    let now = time::OffsetDateTime::now_utc();
    // Point IDs in time order (a minute apart), so key order is point order.
    let ids: Vec<String> = (0..POINTS).map(|i| point::new_point_id(now - time::Duration::minutes((POINTS - i) as i64))).collect();
    let put = |key: String, body: &'static [u8]| {
        let client = client.clone();
        async move {
            client.put_object().bucket("paged").key(format!("{PREFIX}/{key}")).body(body.to_vec().into()).send().await.unwrap();
        }
    };
    let files = ids.iter().flat_map(|id| [point::ARCHIVE_OBJECT, point::MANIFEST_OBJECT].map(|f| point::object_key(CLUSTER, id, f)));
    futures::stream::iter(files).for_each_concurrent(8, |key| put(key, b"first")).await;
    // A second version of some manifests, spread over the whole listing: the last points'
    // are after the 1,000th version, on a later page.
    let overwritten: BTreeSet<String> = ids.iter().enumerate().filter(|(i, _)| i % 25 == 0 || *i >= POINTS - 3).map(|(_, id)| id.clone()).collect();
    futures::stream::iter(overwritten.iter().map(|id| point::object_key(CLUSTER, id, point::MANIFEST_OBJECT)))
        .for_each_concurrent(8, |key| put(key, b"later"))
        .await;
    let versions = 2 * POINTS + overwritten.len();

    // One page of each listing does not hold everything: paging is needed.
    let first = client.list_objects_v2().bucket("paged").prefix(PREFIX).send().await.unwrap();
    assert_eq!((first.contents().len(), first.is_truncated()), (1000, Some(true)), "one ListObjectsV2 page holds 1,000 keys");
    let first = client.list_object_versions().bucket("paged").prefix(PREFIX).send().await.unwrap();
    assert_eq!(first.is_truncated(), Some(true), "one ListObjectVersions page holds {} of {versions} versions", first.versions().len());

    let loc = s3_location(&s3, "paged", "test", "test", None).await;
    let listed = loc.list(&point::points_prefix(CLUSTER)).await.unwrap();
    assert_eq!(listed.len(), 2 * POINTS, "every key listed");

    let inventory = loc.inventory(&point::points_prefix(CLUSTER)).await.unwrap();
    assert_eq!(inventory.history, History::Versions);
    assert_eq!(inventory.keys.len(), 2 * POINTS, "every key's versions listed");
    assert_eq!(inventory.keys.values().map(|h| h.versions.len()).sum::<usize>(), versions, "every version listed");

    let points = point::list_points(&loc, CLUSTER).await.unwrap();
    assert_eq!(points.len(), POINTS, "every point listed");
    assert!(points.iter().all(|p| p.complete && p.versions_seen), "each point's manifest and archive found");
    assert_eq!(points[0].id, ids[POINTS - 1], "the newest point (on the last page) listed first");
    let tampered: BTreeSet<String> = points.iter().filter(|p| !p.tampered.is_empty()).map(|p| p.id.clone()).collect();
    assert_eq!(tampered, overwritten, "the later versions on every page are evidence on their points");
    // What is read is still the first version, wherever its page.
    let newest = &points[0];
    let (_, mut reader) = loc.open_version(&point::object_key(CLUSTER, &newest.id, point::MANIFEST_OBJECT), newest.manifest.as_ref().unwrap()).await.unwrap();
    let mut body = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut body).await.unwrap();
    assert_eq!(body, b"first");
}
