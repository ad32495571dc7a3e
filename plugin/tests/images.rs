//! `kubectl dr images` and `kubectl dr images mirror` against a real OCI registry (Debian's
//! docker-registry, the CNCF distribution registry) on loopback: the mirrored image is served
//! byte for byte under the digest the archive holds, and the chart rendered with
//! `airgapped.repository` names a manifest that registry serves.

use dr_test_support as support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn dr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-dr"))
        .args(args)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    dr_core::images::digest_of(bytes)
}

/// A small image for `arch`: a layer, a config, a manifest (each as bytes).
fn image_blobs(arch: &str) -> [Vec<u8>; 3] {
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    let body = if arch == "amd64" { b"#!/bin/true\n".to_vec() } else { format!("#!/bin/true {arch}\n").into_bytes() };
    header.set_size(body.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    layer.append_data(&mut header, "dr-job", &body[..]).unwrap();
    let layer = layer.into_inner().unwrap();
    let config = serde_json::to_vec(&json!({"architecture": arch, "os": "linux", "config": {"User": "65532:65532", "Entrypoint": ["/dr-job"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]}}))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}]}))
    .unwrap();
    [layer, config, manifest]
}

/// An OCI layout in a tar file: index.json naming `top` (of `media_type`) as `name`, and the blobs.
fn write_layout(path: &Path, name: &str, media_type: &str, top: &[u8], blobs: &[&[u8]]) {
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": media_type,
        "digest": sha256(top), "size": top.len(), "annotations": {"org.opencontainers.image.ref.name": name}}]}))
    .unwrap();
    let mut archive = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut add = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        archive.append_data(&mut h, name, bytes).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    for blob in blobs {
        add(&format!("blobs/sha256/{}", &sha256(blob)[7..]), blob);
    }
    archive.finish().unwrap();
}

/// A small OCI image archive, laid out as `buildah push ... oci-archive:` writes one: a layer,
/// a config, a manifest, index.json naming the image. Returns the manifest's bytes.
fn write_archive(path: &Path, name: &str) -> Vec<u8> {
    let [layer, config, manifest] = image_blobs("amd64");
    write_layout(path, name, "application/vnd.oci.image.manifest.v1+json", &manifest, &[&layer, &config, &manifest]);
    manifest
}

/// An OCI archive holding an image index over a linux/amd64 and a linux/arm64 image, laid out
/// as `buildah manifest push --all ... oci-archive:` (scripts/image) writes one: index.json
/// names the index only, the images' manifests are blobs. Returns the index's bytes and the
/// images' manifests.
fn write_index_archive(path: &Path, name: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let images: Vec<[Vec<u8>; 3]> = ["amd64", "arm64"].into_iter().map(image_blobs).collect();
    let descriptors: Vec<Value> = ["amd64", "arm64"]
        .iter()
        .zip(&images)
        .map(|(arch, [_, _, m])| {
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(m), "size": m.len(),
                "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descriptors})).unwrap();
    let mut blobs: Vec<&[u8]> = images.iter().flat_map(|i| i.iter().map(Vec::as_slice)).collect();
    blobs.push(&index);
    write_layout(path, name, "application/vnd.oci.image.index.v1+json", &index, &blobs);
    let manifests = images.into_iter().map(|[_, _, m]| m).collect();
    (index, manifests)
}

/// GET a manifest from the registry: status, Docker-Content-Digest, body. Accepts an image
/// or an index (a registry asked for an image only would answer an index with one of its images).
async fn get_manifest(registry: &str, repository: &str, reference: &str) -> (u16, String, Vec<u8>) {
    dr_core::init_crypto_provider();
    let resp = reqwest::Client::new()
        .get(format!("{registry}/v2/{repository}/manifests/{reference}"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
        .send()
        .await
        .unwrap();
    let digest = resp.headers().get("docker-content-digest").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (resp.status().as_u16(), digest, resp.bytes().await.unwrap().to_vec())
}

/// Renders the chart with the Helm library and returns the restore Job's image.
fn rendered_image(values: &Value) -> String {
    let rendered = support::render_chart("kasten-io", "k10-restore", values).unwrap_or_else(|e| panic!("render: {e}"));
    let job = rendered["manifests"].as_array().unwrap().iter().find(|m| m["kind"] == "Job").unwrap().clone();
    job["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn images_lists_the_job_image_this_build_deploys() {
    let out = dr(&["images", "-o", "json"]);
    let listed: Value = serde_json::from_slice(&support::succeeded(&out).into_bytes()).unwrap();
    assert_eq!(listed[0]["tag"], VERSION);
    assert!(listed[0]["usedBy"].as_str().unwrap().contains("CronJob"));
    let out = dr(&["images", "--fips", "-o", "json"]);
    let listed: Value = serde_json::from_slice(&support::succeeded(&out).into_bytes()).unwrap();
    assert_eq!(listed[0]["tag"], format!("{VERSION}-fips"));
    let version: Value = serde_json::from_slice(&support::succeeded(&dr(&["version", "-o", "json"])).into_bytes()).unwrap();
    assert_eq!(version["version"], VERSION);
    assert_eq!(version["jobImage"], listed[0]["reference"].as_str().unwrap().replace("-fips", ""));
    // Completion scripts name the subcommands.
    for shell in ["bash", "zsh", "fish"] {
        let script = support::succeeded(&dr(&["completion", shell]));
        assert!(script.contains("restore-points") && script.contains("mirror"), "{shell}");
    }
}

#[tokio::test]
async fn mirror_fills_a_registry_the_airgapped_chart_then_pulls_from() {
    let registry = support::registry();
    let host = registry.url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("dr-job.oci.tar");
    let manifest = write_archive(&archive, &format!("localhost/kubectl-dr/dr-job:{VERSION}"));
    let digest = sha256(&manifest);

    let to = format!("{host}/mirror");
    let out = dr(&["images", "mirror", "--to", &to, "--from-archive", archive.to_str().unwrap(), "--plain-http", "-o", "json"]);
    let report: Value = serde_json::from_str(&support::succeeded(&out)).unwrap();
    assert_eq!(report["digest"], digest);
    assert_eq!(report["image"], format!("{host}/mirror/dr-job:{VERSION}@{digest}"));
    assert_eq!(report["blobsUploaded"], 2);

    // The registry serves the manifest byte for byte, by tag and by digest.
    for reference in [VERSION.to_owned(), digest.clone()] {
        let (status, served, body) = get_manifest(&registry.url, "mirror/dr-job", &reference).await;
        assert_eq!((status, served.as_str()), (200, digest.as_str()), "{reference}");
        assert_eq!(body, manifest);
    }

    // The chart with airgapped.repository names an image the registry serves: by tag, and
    // pinned by digest as the plugin pins a release build.
    for (values, reference) in [
        (json!({"sourceClusterID": "c", "profile": {"name": "p"}, "airgapped": {"repository": to}}), VERSION.to_owned()),
        (json!({"sourceClusterID": "c", "profile": {"name": "p"}, "airgapped": {"repository": to}, "image": {"digest": digest}}), digest.clone()),
    ] {
        let image = rendered_image(&values);
        let expected = if reference.starts_with("sha256:") { format!("{to}/dr-job@{reference}") } else { format!("{to}/dr-job:{reference}") };
        assert_eq!(image, expected);
        let (status, served, _) = get_manifest(&registry.url, "mirror/dr-job", &reference).await;
        assert_eq!((status, served.as_str()), (200, digest.as_str()));
    }

    // Again: nothing to upload.
    let report: Value = serde_json::from_str(&support::succeeded(&dr(&[
        "images",
        "mirror",
        "--to",
        &to,
        "--from-archive",
        archive.to_str().unwrap(),
        "--plain-http",
        "-o",
        "json",
    ])))
    .unwrap();
    assert_eq!((report["blobsUploaded"].as_u64(), report["blobsPresent"].as_u64()), (Some(0), Some(2)));

    // Registry to registry (a second mirror fed from the first), digest kept.
    let from = format!("{host}/mirror/dr-job:{VERSION}");
    let out = dr(&["images", "mirror", "--to", &format!("{host}/second"), "--from", &from, "--source-plain-http", "--plain-http", "-o", "json"]);
    let report: Value = serde_json::from_str(&support::succeeded(&out)).unwrap();
    assert_eq!(report["digest"], digest);
    let (status, served, _) = get_manifest(&registry.url, "second/dr-job", VERSION).await;
    assert_eq!((status, served.as_str()), (200, digest.as_str()));
}

#[tokio::test]
async fn mirror_copies_a_multi_arch_index_with_every_image_in_it() {
    let registry = support::registry();
    let host = registry.url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("dr-job.oci.tar");
    let (index, manifests) = write_index_archive(&archive, &format!("localhost/kubectl-dr/dr-job:{VERSION}"));
    let digest = sha256(&index);

    let to = format!("{host}/mirror");
    let out = dr(&["images", "mirror", "--to", &to, "--from-archive", archive.to_str().unwrap(), "--plain-http", "--no-chart", "-o", "json"]);
    let report: Value = serde_json::from_str(&support::succeeded(&out)).unwrap();
    assert_eq!(report["digest"], digest, "the index's digest, the one the plugin and the chart pin");
    assert_eq!(report["image"], format!("{host}/mirror/dr-job:{VERSION}@{digest}"));
    assert_eq!(report["platforms"], json!(["linux/amd64", "linux/arm64"]));
    assert_eq!(report["blobsUploaded"], 4, "each image's config and layer");

    // The index, by tag and by digest, byte for byte; each image by its digest, with its blobs.
    for reference in [VERSION.to_owned(), digest.clone()] {
        let (status, served, body) = get_manifest(&registry.url, "mirror/dr-job", &reference).await;
        assert_eq!((status, served.as_str()), (200, digest.as_str()), "{reference}");
        assert_eq!(body, index);
    }
    for manifest in &manifests {
        let (status, served, body) = get_manifest(&registry.url, "mirror/dr-job", &sha256(manifest)).await;
        assert_eq!((status, served, &body), (200, sha256(manifest), manifest));
        let manifest: Value = serde_json::from_slice(manifest).unwrap();
        for blob in std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap()) {
            let url = format!("{}/v2/mirror/dr-job/blobs/{}", registry.url, blob["digest"].as_str().unwrap());
            let resp = reqwest::Client::new().get(&url).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{url}");
            assert_eq!(sha256(&resp.bytes().await.unwrap()), blob["digest"].as_str().unwrap());
        }
    }
    // The table says which platforms the index holds.
    let table = dr(&["images", "mirror", "--to", &to, "--from-archive", archive.to_str().unwrap(), "--plain-http", "--no-chart"]);
    let said = String::from_utf8_lossy(&table.stderr);
    assert!(table.status.success() && said.contains("linux/amd64, linux/arm64") && said.contains("0 blob(s) uploaded"), "{said}");

    // Registry to registry: the whole index again, digest kept.
    let from = format!("{host}/mirror/dr-job:{VERSION}");
    let out = dr(&["images", "mirror", "--to", &format!("{host}/second"), "--from", &from, "--source-plain-http", "--plain-http", "--no-chart", "-o", "json"]);
    let report: Value = serde_json::from_str(&support::succeeded(&out)).unwrap();
    assert_eq!((report["digest"].as_str(), report["blobsUploaded"].as_u64()), (Some(digest.as_str()), Some(4)));
    for reference in std::iter::once(digest.clone()).chain(manifests.iter().map(|m| sha256(m))) {
        assert_eq!(get_manifest(&registry.url, "second/dr-job", &reference).await.0, 200, "{reference}");
    }

    // An index naming an image the archive does not hold is refused, and leaves no tag.
    let broken = dir.path().join("broken.oci.tar");
    let images: Vec<[Vec<u8>; 3]> = ["amd64", "arm64"].into_iter().map(image_blobs).collect();
    let (index, _) = write_index_archive(&dir.path().join("unused.oci.tar"), "x");
    let blobs: Vec<&[u8]> = images[0].iter().map(Vec::as_slice).chain([index.as_slice()]).collect();
    write_layout(&broken, "x", "application/vnd.oci.image.index.v1+json", &index, &blobs);
    let out = dr(&["images", "mirror", "--to", &format!("{host}/broken"), "--from-archive", broken.to_str().unwrap(), "--plain-http", "--no-chart"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains(&format!("manifest {} is missing", sha256(&images[1][2]))), "{err}");
    assert_eq!(get_manifest(&registry.url, "broken/dr-job", VERSION).await.0, 404);
}

#[tokio::test]
async fn mirror_refuses_a_tampered_archive_and_says_what_is_wrong() {
    let registry = support::registry();
    let host = registry.url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("dr-job.oci.tar");
    write_archive(&archive, "x");
    // Flip one byte of the layer's content ("#!/bin/true" -> "#!/bin/tru_").
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.windows(11).position(|w| w == b"#!/bin/true").unwrap() + 10;
    bytes[at] = b'_';
    std::fs::write(&archive, &bytes).unwrap();
    let out = dr(&["images", "mirror", "--to", &format!("{host}/m"), "--from-archive", archive.to_str().unwrap(), "--plain-http"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match its digest") && err.contains("tampered"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "printed once: {err}");
    // Nothing reached the registry under that name.
    assert_eq!(get_manifest(&registry.url, "m/dr-job", VERSION).await.0, 404);

    // A registry that is not there, and one that speaks HTTP asked over HTTPS.
    let closed = format!("127.0.0.1:{}/m", support::free_port());
    let good = dir.path().join("good.oci.tar");
    write_archive(&good, "x");
    let out = dr(&["images", "mirror", "--to", &closed, "--from-archive", good.to_str().unwrap(), "--plain-http"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the registry"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = dr(&["images", "mirror", "--to", &format!("{host}/m"), "--from-archive", good.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the registry") && err.contains("--plain-http"), "{err}");
    // The archive of another release, or of the FIPS image, is not mirrored under this tag.
    for (name, needle) in
        [("localhost/kubectl-dr/dr-job:9.9.9", "use the archive of this release"), (&*format!("localhost/kubectl-dr/dr-job:{VERSION}-fips"), "add --fips")]
    {
        let other = dir.path().join("other.oci.tar");
        write_archive(&other, name);
        let out = dr(&["images", "mirror", "--to", &format!("{host}/m"), "--from-archive", other.to_str().unwrap(), "--plain-http"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(2) && err.contains(needle), "{name}: {err}");
    }
    // Not an OCI archive.
    std::fs::write(dir.path().join("junk.tar"), b"junk").unwrap();
    let out = dr(&["images", "mirror", "--to", &format!("{host}/m"), "--from-archive", dir.path().join("junk.tar").to_str().unwrap(), "--plain-http"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_the_mirrored_chart_from_the_registry_and_its_job_names_the_mirrored_image() {
    let registry = support::registry();
    let host = registry.url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("dr-job.oci.tar");
    let image_digest = sha256(&write_archive(&archive, &format!("localhost/kubectl-dr/dr-job:{VERSION}")));
    let to = format!("{host}/mirror");

    // The mirror copies the chart beside the image, under the digest `kubectl dr images` lists.
    let out = dr(&["images", "mirror", "--to", &to, "--from-archive", archive.to_str().unwrap(), "--plain-http", "-o", "json"]);
    let report: Value = serde_json::from_str(&support::succeeded(&out)).unwrap();
    let listed: Value = serde_json::from_str(&support::succeeded(&dr(&["images", "-o", "json"]))).unwrap();
    let (image, chart) = (&listed[0], &listed[1]);
    assert_eq!((image["kind"].as_str(), chart["kind"].as_str()), (Some("image"), Some("chart")));
    assert_eq!(chart["image"], "localhost/kubectl-dr/dr-restore", "published beside the image");
    assert_eq!(chart["tag"], VERSION);
    let chart_digest = chart["digest"].as_str().unwrap().to_owned();
    assert_eq!(report["digest"], image_digest);
    assert_eq!(report["chart"]["digest"], chart_digest);
    assert_eq!(report["chart"]["chart"], format!("{to}/dr-restore:{VERSION}@{chart_digest}"));
    assert_eq!(report["chart"]["oci"], format!("oci://{to}/dr-restore"));
    assert_eq!(report["chart"]["blobsUploaded"], 2);

    // The registry serves it as Helm lays a chart out, the layer being `images package-chart`'s file.
    let (status, served, body) = get_manifest(&registry.url, "mirror/dr-restore", VERSION).await;
    assert_eq!((status, served.as_str()), (200, chart_digest.as_str()));
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.cncf.helm.config.v1+json");
    assert_eq!(manifest["layers"][0]["mediaType"], "application/vnd.cncf.helm.chart.content.v1.tar+gzip");
    let out = support::succeeded(&dr(&["images", "package-chart", "--destination", dir.path().to_str().unwrap()]));
    assert_eq!(out.trim(), dir.path().join(format!("dr-restore-{VERSION}.tgz")).display().to_string());
    assert_eq!(manifest["layers"][0]["digest"], sha256(&std::fs::read(out.trim()).unwrap()));
    let missing = dir.path().join("no-such-dir");
    let out = dr(&["images", "package-chart", "--destination", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && err.contains("is not a directory: create it first"), "{err}");

    // helm install oci://... --version, with airgapped.repository on the same registry (Helm's
    // own OCI client pulls the chart), against the test API server.
    let api = support::apiserver::ApiServer::start().await;
    api.install_dr_crds();
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kasten-io"}}));
    // The chart looks its profile up (a file profile's claim is mounted).
    api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "p", "namespace": "kasten-io"}, "spec": {"s3": {"bucket": "b"}}}));
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "kasten-io");
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, serde_json::to_string(&json!({"sourceClusterID": "c", "profile": {"name": "p"}, "airgapped": {"repository": to}})).unwrap())
        .unwrap();
    let path = format!("{}:{}", support::venv_bin("python").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let helm_release = |release: &str, chart: &str, version: Option<&str>| {
        Command::new(support::workspace_root().join("charts/tests/helm"))
            .args(["upgrade", "--install", release, chart, "--plain-http", "--namespace", "kasten-io"])
            .args(version.map(|v| ["--version", v]).into_iter().flatten())
            .args(["--values", values.to_str().unwrap(), "--kubeconfig", kubeconfig.to_str().unwrap()])
            .env("PATH", &path)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    let helm = |chart: &str, version: &str| helm_release("k10-restore", chart, Some(version));
    let oci = format!("oci://{to}/dr-restore");
    support::succeeded(&helm(&oci, VERSION));
    let jobs = api.objects("batch", "jobs");
    assert_eq!(jobs.len(), 1);
    let pulled = jobs[0]["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap().to_owned();
    assert_eq!(pulled, format!("{to}/dr-job:{VERSION}"));
    let (status, served, _) = get_manifest(&registry.url, "mirror/dr-job", VERSION).await;
    assert_eq!((status, served.as_str()), (200, image_digest.as_str()), "the registry serves the Job's image");

    // A version the registry does not hold is Helm's clear error.
    let out = helm(&oci, "9.9.9");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("9.9.9"), "{}", String::from_utf8_lossy(&out.stderr));

    // Whoever may push to the registry can move the tag to a chart of their own; the chart
    // pinned by digest, as `kubectl dr images` and `images mirror` give it, is still the one
    // this plugin shipped.
    let planted = dr_core::images::chart::ChartArtifact::package([
        ("Chart.yaml", format!("apiVersion: v2\nname: dr-restore\nversion: {VERSION}\n").as_bytes()),
        ("templates/planted.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: planted\n".as_slice()),
    ])
    .unwrap();
    let options = dr_core::images::RegistryOptions { plain_http: true, ca_bundle: None };
    let moved = dr_core::images::chart::push(&planted, &to, &options).await.unwrap();
    assert_ne!(moved.digest, chart_digest, "the tag now names another chart");
    support::succeeded(&helm_release("by-tag", &oci, Some(VERSION)));
    assert!(api.objects("", "configmaps").iter().any(|c| c["metadata"]["name"] == "planted"), "installing by tag took the planted chart");
    assert_eq!(chart["pinned"], format!("oci://localhost/kubectl-dr/dr-restore@{chart_digest}"));
    let pinned = format!("{oci}@{chart_digest}");
    support::succeeded(&helm_release("by-digest", &pinned, None));
    let jobs = api.objects("batch", "jobs");
    assert!(jobs.iter().any(|j| j["metadata"]["name"] == "by-digest"), "the pinned chart is the genuine one: its Job is there");
    // Mirroring puts the tag back, and says to install by digest.
    let table = dr(&["images", "mirror", "--to", &to, "--from-archive", archive.to_str().unwrap(), "--plain-http"]);
    let said = String::from_utf8_lossy(&table.stderr);
    assert!(table.status.success() && said.contains(&format!("helm install k10-restore {oci}@{chart_digest}")), "{said}");

    // Mirroring again uploads nothing; --no-chart leaves the chart out.
    let again: Value = serde_json::from_str(&support::succeeded(&dr(&[
        "images",
        "mirror",
        "--to",
        &to,
        "--from-archive",
        archive.to_str().unwrap(),
        "--plain-http",
        "-o",
        "json",
    ])))
    .unwrap();
    assert_eq!((again["chart"]["blobsUploaded"].as_u64(), again["chart"]["blobsPresent"].as_u64()), (Some(0), Some(2)));
    let other = format!("{host}/imageonly");
    let image_only: Value = serde_json::from_str(&support::succeeded(&dr(&[
        "images",
        "mirror",
        "--to",
        &other,
        "--from-archive",
        archive.to_str().unwrap(),
        "--plain-http",
        "--no-chart",
        "-o",
        "json",
    ])))
    .unwrap();
    assert!(image_only.get("chart").is_none());
    assert_eq!(get_manifest(&registry.url, "imageonly/dr-restore", VERSION).await.0, 404);
}
