//! The job image as a thing to copy: image references, the OCI archive `scripts/image` writes,
//! and a small client of the OCI distribution API, so `kubectl dr images mirror` can fill a
//! private registry for air-gapped clusters without docker, skopeo or crane; and the restore
//! chart as the OCI artifact Helm pulls (`chart`), pushed beside the image.
//!
//! Every blob and manifest is checked against its digest as it is read (from the archive or
//! from a registry), so a mirror holds exactly the bytes that were built: the digest that
//! `kubectl dr images` prints is the digest the mirror serves.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod chart;
mod registry;

pub use chart::ChartArtifact;
pub use registry::{Registry, RegistryOptions};

/// Media types of manifests: OCI and Docker, single images and indexes.
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// An archive is read into memory; the job image is about 10 MB, so this bounds a wrong file.
const MAX_ARCHIVE_BYTES: u64 = 2 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0:?} is not an image reference: use REGISTRY/PATH/NAME[:TAG][@sha256:DIGEST], e.g. registry.example.com:5000/mirror/dr-job:0.1.0")]
    BadReference(String),
    #[error("cannot read the image archive {path}: {detail}")]
    Archive { path: PathBuf, detail: String },
    #[error("the image archive {path} is damaged: {detail}")]
    ArchiveDamaged { path: PathBuf, detail: String },
    #[error("cannot reach the registry {registry}: {detail}. Check the address, the network path{hint}")]
    Unreachable { registry: String, detail: String, hint: &'static str },
    #[error(
        "the registry {registry} refused {what} ({status}): {detail}. Log in first (podman login / docker login write the credentials this command reads)"
    )]
    Denied { registry: String, what: String, status: u16, detail: String },
    #[error("the registry {registry} has no {what}")]
    NotFound { registry: String, what: String },
    #[error("the registry {registry} answered {status} to {what}: {detail}")]
    Registry { registry: String, what: String, status: u16, detail: String },
    #[error("cannot package the chart: {detail}")]
    ChartPackage { detail: String },
    #[error("{what} from {from} does not match its digest {digest} (got {actual}): the copy was damaged or tampered with")]
    DigestMismatch { what: String, from: String, digest: String, actual: String },
}

/// `registry/repository[:tag][@digest]`, as Kubernetes and the registries read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference; a first component without `.` or `:` (and not `localhost`) is a
    /// Docker Hub path, as docker and the kubelet read it.
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let bad = || ImageError::BadReference(s.to_owned());
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) if is_digest(d) => (r, Some(d.to_owned())),
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_owned())),
            _ => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => (first.to_owned(), path.to_owned()),
            Some(_) => ("docker.io".to_owned(), name.to_owned()),
            None => ("docker.io".to_owned(), format!("library/{name}")),
        };
        let valid_path = !repository.is_empty()
            && repository.split('/').all(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)));
        let valid_tag = tag.as_ref().is_none_or(|t| !t.is_empty() && t.len() <= 128 && t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
        if registry.is_empty() || !valid_path || !valid_tag {
            return Err(bad());
        }
        Ok(Self { registry, repository, tag, digest })
    }

    /// The repository without tag or digest: `registry/path/name`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same image under another registry and path, keeping the last path segment (the
    /// chart's `airgapped.repository` does the same): `mirror.example.com/dr` + `.../dr-job`
    /// gives `mirror.example.com/dr/dr-job`.
    pub fn moved_to(&self, prefix: &str) -> Result<Self, ImageError> {
        let last = self.repository.rsplit('/').next().unwrap_or(&self.repository);
        let mut moved = ImageRef::parse(&format!("{}/{last}", prefix.trim_end_matches('/')))?;
        moved.tag = self.tag.clone();
        moved.digest = self.digest.clone();
        Ok(moved)
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)))
}

fn check_digest(bytes: &[u8], digest: &str, what: &str, from: &str) -> Result<(), ImageError> {
    let actual = digest_of(bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch { what: what.into(), from: from.into(), digest: digest.into(), actual });
    }
    Ok(())
}

/// A manifest as bytes (its digest is over exactly these bytes) and its media type.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Manifest {
    pub fn digest(&self) -> String {
        digest_of(&self.bytes)
    }

    fn json(&self, from: &str) -> Result<Value, ImageError> {
        serde_json::from_slice(&self.bytes).map_err(|e| ImageError::ArchiveDamaged { path: from.into(), detail: format!("a manifest is not JSON: {e}") })
    }

    fn is_index(&self) -> bool {
        self.media_type.contains("index") || self.media_type.contains("manifest.list")
    }
}

/// Where images are copied from: an OCI archive (`scripts/image`'s output) or a registry.
pub trait ImageSource {
    /// The manifest of the image the source holds (for an archive, its one image).
    fn manifest(&mut self, reference: &str) -> impl std::future::Future<Output = Result<Manifest, ImageError>>;
    fn blob(&mut self, digest: &str) -> impl std::future::Future<Output = Result<Vec<u8>, ImageError>>;
    fn describe(&self) -> String;
}

/// An OCI image layout in a tar file (`buildah push IMAGE oci-archive:FILE`, `skopeo copy`).
pub struct OciArchive {
    path: PathBuf,
    files: HashMap<String, Vec<u8>>,
    index: Value,
}

impl OciArchive {
    pub fn open(path: &Path) -> Result<Self, ImageError> {
        let err = |detail: String| ImageError::Archive { path: path.into(), detail };
        let (file, _) = crate::local_file::open_regular(path, "the image archive", crate::local_file::Links::Follow).map_err(|e| err(crate::error_text(&e)))?;
        let mut files = HashMap::new();
        let mut tar = tar::Archive::new(file.take(MAX_ARCHIVE_BYTES));
        for entry in tar.entries().map_err(|e| err(e.to_string()))? {
            let mut entry = entry.map_err(|e| err(e.to_string()))?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().map_err(|e| err(e.to_string()))?.to_string_lossy().trim_start_matches("./").to_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(|e| err(e.to_string()))?;
            files.insert(name, bytes);
        }
        let damaged = |detail: &str| ImageError::ArchiveDamaged { path: path.into(), detail: detail.into() };
        if !files.contains_key("oci-layout") {
            return Err(damaged("no oci-layout file: it is not an OCI archive (scripts/image writes one; docker save archives are not OCI layouts)"));
        }
        let index = files.get("index.json").ok_or_else(|| damaged("no index.json"))?;
        let index: Value = serde_json::from_slice(index).map_err(|_| damaged("index.json is not JSON"))?;
        Ok(Self { path: path.into(), files, index })
    }

    /// The name the image was given when the archive was written
    /// (`org.opencontainers.image.ref.name`), when it has one.
    pub fn ref_name(&self) -> Option<String> {
        self.index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].as_str().map(str::to_owned)
    }

    fn read_blob(&self, digest: &str, what: &str) -> Result<Vec<u8>, ImageError> {
        let damaged = |detail: String| ImageError::ArchiveDamaged { path: self.path.clone(), detail };
        if !is_digest(digest) {
            return Err(damaged(format!("{digest:?} is not a sha256 digest")));
        }
        let bytes = self.files.get(&format!("blobs/sha256/{}", &digest[7..])).ok_or_else(|| damaged(format!("{what} {digest} is missing")))?;
        check_digest(bytes, digest, what, &self.path.display().to_string())?;
        Ok(bytes.clone())
    }
}

impl ImageSource for OciArchive {
    /// The image index.json names (its first: `scripts/image` writes one, an image or an
    /// index), or by digest any manifest the archive holds: an index's images are blobs that
    /// index.json does not list.
    async fn manifest(&mut self, reference: &str) -> Result<Manifest, ImageError> {
        let manifests = self.index["manifests"].as_array().cloned().unwrap_or_default();
        let entry = if is_digest(reference) { manifests.iter().find(|m| m["digest"] == reference) } else { manifests.first() };
        let (digest, listed_type) = match entry {
            Some(entry) => (entry["digest"].as_str().unwrap_or_default().to_owned(), entry["mediaType"].as_str().map(str::to_owned)),
            None if is_digest(reference) => (reference.to_owned(), None),
            None => return Err(ImageError::ArchiveDamaged { path: self.path.clone(), detail: "index.json lists no image".into() }),
        };
        let bytes = self.read_blob(&digest, "manifest")?;
        // The type index.json gives, else the manifest's own mediaType (OCI and Docker
        // manifests carry one), else an OCI image manifest.
        let own_type = || serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v["mediaType"].as_str().map(str::to_owned));
        let media_type = listed_type.or_else(own_type).unwrap_or_else(|| MANIFEST_TYPES[0].to_owned());
        Ok(Manifest { media_type, bytes })
    }

    async fn blob(&mut self, digest: &str) -> Result<Vec<u8>, ImageError> {
        self.read_blob(digest, "blob")
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// What a copy did.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// Where the image now is, pinned: `registry/path/name:tag@sha256:...`.
    pub image: String,
    pub digest: String,
    /// The platforms (`os/architecture[/variant]`) an index holds an image for; empty for a
    /// single image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    pub blobs_uploaded: usize,
    pub blobs_present: usize,
    pub bytes_uploaded: u64,
}

/// Copies the image `reference` of `source` to `dest` (its tag), manifests byte for byte, so
/// the digest stays the same. An index (several platforms) is copied with every image in it:
/// each image's config and layers, then its manifest by digest, then the index under the tag
/// (a registry refuses an index whose images it does not hold).
pub async fn copy(source: &mut impl ImageSource, reference: &str, dest: &ImageRef, options: &RegistryOptions) -> Result<CopyReport, ImageError> {
    let mut target = Registry::new(dest, options)?;
    let top = source.manifest(reference).await?;
    let mut report = CopyReport { image: String::new(), digest: top.digest(), platforms: vec![], blobs_uploaded: 0, blobs_present: 0, bytes_uploaded: 0 };
    let mut images = vec![];
    if top.is_index() {
        for m in top.json(&source.describe())?["manifests"].as_array().cloned().unwrap_or_default() {
            let digest = m["digest"].as_str().unwrap_or_default().to_owned();
            let p = &m["platform"];
            if let (Some(os), Some(arch)) = (p["os"].as_str(), p["architecture"].as_str()) {
                let variant = p["variant"].as_str().map(|v| format!("/{v}")).unwrap_or_default();
                report.platforms.push(format!("{os}/{arch}{variant}"));
            }
            let mut manifest = source.manifest(&digest).await?;
            if let Some(t) = m["mediaType"].as_str() {
                manifest.media_type = t.to_owned();
            }
            images.push((digest, manifest));
        }
    } else {
        images.push((top.digest(), top.clone()));
    }
    for (digest, manifest) in &images {
        let json = manifest.json(&source.describe())?;
        let blobs = std::iter::once(&json["config"]).chain(json["layers"].as_array().into_iter().flatten());
        for blob in blobs {
            let Some(d) = blob["digest"].as_str() else { continue };
            if target.has_blob(d).await? {
                report.blobs_present += 1;
                continue;
            }
            let bytes = source.blob(d).await?;
            report.bytes_uploaded += bytes.len() as u64;
            target.push_blob(d, bytes).await?;
            report.blobs_uploaded += 1;
        }
        if top.is_index() {
            target.push_manifest(digest, manifest).await?;
        }
    }
    let tag = dest.tag.clone().unwrap_or_else(|| report.digest.clone());
    target.push_manifest(&tag, &top).await?;
    let pinned = ImageRef { digest: Some(report.digest.clone()), ..dest.clone() };
    report.image = pinned.to_string();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::ImageRef;

    #[test]
    fn references_parse_as_the_kubelet_reads_them() {
        let r = ImageRef::parse("127.0.0.1:5000/mirror/dr-job:0.1.0").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), ("127.0.0.1:5000", "mirror/dr-job", Some("0.1.0")));
        let r = ImageRef::parse("localhost/kubectl-dr/dr-job").unwrap();
        assert_eq!((r.registry.as_str(), r.tag), ("localhost", None));
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox");
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = ImageRef::parse(&format!("ghcr.io/a/b:1@{d}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("ghcr.io/a/b:1@{d}"));
        for bad in ["", "Registry.example.com/UPPER:1", "ghcr.io/a/b@sha256:short", "ghcr.io//b", "ghcr.io/a/b:bad tag"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn moving_keeps_the_last_segment_like_the_chart() {
        let r = ImageRef::parse("localhost/kubectl-dr/dr-job:0.1.0").unwrap();
        assert_eq!(r.moved_to("mirror.example.com:5000/dr/").unwrap().to_string(), "mirror.example.com:5000/dr/dr-job:0.1.0");
    }
}
