//! A Helm chart as an OCI artifact, as `helm push` lays one out: a config blob with Helm's
//! config media type holding the chart's metadata (Chart.yaml as JSON), one layer with Helm's
//! chart media type holding the packaged chart (`<name>-<version>.tgz`), and an OCI image
//! manifest naming both, tagged with the chart's version. `helm pull` / `helm install
//! oci://REGISTRY/PATH/<name> --version <version>` read exactly this.
//!
//! The package is reproducible (entries sorted, owner 0, a fixed time, gzip without a name or
//! time), so the same chart files always give the same digests: `kubectl dr images` prints the
//! chart's digest without building anything, and a mirror serves that digest.

use std::io::Write;

use serde_json::{json, Value};

use super::{digest_of, ImageError, ImageRef, Manifest, Registry, RegistryOptions};

/// Helm's media type of a chart's config blob (its metadata as JSON).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
/// Helm's media type of the packaged chart layer.
pub const CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The modification time every entry of the package carries (the tar header needs one; a
/// fixed one keeps the digest the same from build to build): 2000-01-01T00:00:00Z.
const PACKAGE_MTIME: u64 = 946_684_800;

/// A packaged chart and its OCI artifact.
#[derive(Clone, Debug)]
pub struct ChartArtifact {
    pub name: String,
    pub version: String,
    /// The `.tgz` `helm package` would write (same layout: `<name>/<file>`).
    pub package: Vec<u8>,
    /// Chart.yaml as JSON: the config blob.
    pub config: Vec<u8>,
    pub manifest: Manifest,
}

impl ChartArtifact {
    /// Packages a chart from its files (paths relative to the chart's directory, Chart.yaml
    /// among them). Name and version come from Chart.yaml.
    pub fn package<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<Self, ImageError> {
        let bad = |detail: String| ImageError::ChartPackage { detail };
        let mut files: Vec<(&str, &[u8])> = files.into_iter().collect();
        files.sort_by_key(|(path, _)| *path);
        let chart_yaml = files.iter().find(|(p, _)| *p == "Chart.yaml").ok_or_else(|| bad("the chart has no Chart.yaml".into()))?.1;
        let metadata: Value = serde_yaml::from_slice(chart_yaml).map_err(|e| bad(format!("Chart.yaml is not YAML: {e}")))?;
        let field = |key: &str| metadata[key].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let name = field("name").ok_or_else(|| bad("Chart.yaml names no chart (name:)".into()))?;
        let version = field("version").ok_or_else(|| bad("Chart.yaml gives no version (version:)".into()))?;

        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes) in &files {
            if path.starts_with('/') || path.split('/').any(|c| c == ".." || c.is_empty()) {
                return Err(bad(format!("{path:?} is not a path inside the chart")));
            }
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(PACKAGE_MTIME);
            header.set_uid(0);
            header.set_gid(0);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, format!("{name}/{path}"), *bytes).map_err(|e| bad(format!("{path}: {e}")))?;
        }
        let tar = tar.into_inner().map_err(|e| bad(e.to_string()))?;
        // No file name and no time in the gzip header: the bytes depend on the content only.
        let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
        gz.write_all(&tar).map_err(|e| bad(e.to_string()))?;
        let package = gz.finish().map_err(|e| bad(e.to_string()))?;

        let config = serde_json::to_vec(&metadata).map_err(|e| bad(format!("Chart.yaml as JSON: {e}")))?;
        let mut annotations = serde_json::Map::new();
        annotations.insert("org.opencontainers.image.title".into(), name.clone().into());
        annotations.insert("org.opencontainers.image.version".into(), version.clone().into());
        if let Some(description) = field("description") {
            annotations.insert("org.opencontainers.image.description".into(), description.into());
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest_of(&config), "size": config.len()},
            "layers": [{"mediaType": CHART_LAYER_MEDIA_TYPE, "digest": digest_of(&package), "size": package.len()}],
            "annotations": annotations,
        });
        let manifest = Manifest { media_type: OCI_MANIFEST.into(), bytes: serde_json::to_vec(&manifest).expect("JSON values serialise") };
        Ok(Self { name, version, package, config, manifest })
    }

    /// The manifest's digest: what `helm pull` prints as `Digest:` and what a pinned
    /// `oci://...@sha256:...` names.
    pub fn digest(&self) -> String {
        self.manifest.digest()
    }

    /// The tag Helm looks the version up by (`+` is not allowed in a tag; Helm writes `_`).
    pub fn tag(&self) -> String {
        self.version.replace('+', "_")
    }

    /// `<name>-<version>.tgz`, as `helm package` names it.
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

/// What pushing a chart did.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartPushReport {
    /// Where the chart now is, pinned: `registry/path/name:version@sha256:...`.
    pub chart: String,
    pub digest: String,
    /// What to give `helm install` / `helm pull`: `oci://registry/path/name`.
    pub oci: String,
    pub version: String,
    pub blobs_uploaded: usize,
    pub blobs_present: usize,
    pub bytes_uploaded: u64,
}

/// Pushes `chart` to the repository `<prefix>/<chart name>` (its version as the tag), blobs
/// first, then the manifest byte for byte, so the registry serves [`ChartArtifact::digest`].
pub async fn push(chart: &ChartArtifact, prefix: &str, options: &RegistryOptions) -> Result<ChartPushReport, ImageError> {
    let mut dest = ImageRef::parse(&format!("{}/{}", prefix.trim_end_matches('/'), chart.name))?;
    dest.tag = Some(chart.tag());
    let mut target = Registry::new(&dest, options)?;
    let mut report = ChartPushReport {
        chart: String::new(),
        digest: chart.digest(),
        oci: format!("oci://{}", dest.name()),
        version: chart.version.clone(),
        blobs_uploaded: 0,
        blobs_present: 0,
        bytes_uploaded: 0,
    };
    for blob in [&chart.config, &chart.package] {
        let digest = digest_of(blob);
        if target.has_blob(&digest).await? {
            report.blobs_present += 1;
        } else {
            target.push_blob(&digest, blob.clone()).await?;
            report.blobs_uploaded += 1;
            report.bytes_uploaded += blob.len() as u64;
        }
    }
    target.push_manifest(&chart.tag(), &chart.manifest).await?;
    report.chart = ImageRef { digest: Some(report.digest.clone()), ..dest }.to_string();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHART: &str = "apiVersion: v2\nname: demo\nversion: 1.2.3\ndescription: a demo\n";

    fn files() -> Vec<(&'static str, &'static [u8])> {
        vec![("values.yaml", b"a: 1\n".as_slice()), ("Chart.yaml", CHART.as_bytes()), ("templates/cm.yaml", b"kind: ConfigMap\n".as_slice())]
    }

    #[test]
    fn the_package_is_reproducible_and_laid_out_as_helm_package_writes_it() {
        let one = ChartArtifact::package(files()).unwrap();
        let mut reversed = files();
        reversed.reverse();
        let two = ChartArtifact::package(reversed).unwrap();
        assert_eq!(one.package, two.package, "the same files give the same bytes, in any order");
        assert_eq!(one.digest(), two.digest());
        assert_eq!((one.name.as_str(), one.version.as_str(), one.file_name()), ("demo", "1.2.3", "demo-1.2.3.tgz".to_owned()));

        let tar = flate2::read::GzDecoder::new(&one.package[..]);
        let mut archive = tar::Archive::new(tar);
        let names: Vec<String> = archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        assert_eq!(names, ["demo/Chart.yaml", "demo/templates/cm.yaml", "demo/values.yaml"]);

        let config: Value = serde_json::from_slice(&one.config).unwrap();
        assert_eq!((config["name"].as_str(), config["version"].as_str(), config["apiVersion"].as_str()), (Some("demo"), Some("1.2.3"), Some("v2")));
        let manifest: Value = serde_json::from_slice(&one.manifest.bytes).unwrap();
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["config"]["digest"], digest_of(&one.config));
        assert_eq!(manifest["layers"][0]["mediaType"], CHART_LAYER_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["digest"], digest_of(&one.package));
        assert_eq!(manifest["layers"][0]["size"], one.package.len());
    }

    #[test]
    fn a_chart_without_name_or_version_or_with_a_path_outside_it_is_refused() {
        let err = ChartArtifact::package([("values.yaml", b"a: 1\n".as_slice())]).unwrap_err().to_string();
        assert!(err.contains("no Chart.yaml"), "{err}");
        let err = ChartArtifact::package([("Chart.yaml", b"name: x\n".as_slice())]).unwrap_err().to_string();
        assert!(err.contains("no version"), "{err}");
        let err = ChartArtifact::package([("Chart.yaml", CHART.as_bytes()), ("../escape", b"".as_slice())]).unwrap_err().to_string();
        assert!(err.contains("not a path inside the chart"), "{err}");
    }

    #[test]
    fn a_version_with_build_metadata_is_tagged_as_helm_tags_it() {
        let chart = ChartArtifact::package([("Chart.yaml", b"name: x\nversion: 1.0.0+abc\n".as_slice())]).unwrap();
        assert_eq!(chart.tag(), "1.0.0_abc");
    }
}
