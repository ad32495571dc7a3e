//! Kubernetes manifests on disk: reading a directory of YAML/JSON into catalog entries (to
//! make a point without a cluster) and writing a point back out as one YAML file per object.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::catalog::{classify, is_cluster_scoped_kind, Entry};
use crate::local_file::{Links, LocalFileError};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A manifest that is not a regular file, or too large.
    #[error(transparent)]
    File(#[from] LocalFileError),
    #[error("{path}: document {doc} is not valid YAML or JSON: {detail}")]
    Parse { path: PathBuf, doc: usize, detail: String },
    #[error("{path}: document {doc} is not a Kubernetes object (it needs apiVersion, kind and metadata.name)")]
    NotAnObject { path: PathBuf, doc: usize },
    #[error("{dir} holds no Kubernetes manifests (*.yaml, *.yml, *.json)")]
    Empty { dir: PathBuf },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Metadata the API server sets, which a restore cannot and must not send back.
const SERVER_SET_METADATA: &[&str] =
    &["uid", "resourceVersion", "generation", "managedFields", "creationTimestamp", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"];

/// Removes the fields the API server sets on an object.
pub fn strip_server_fields(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_SET_METADATA {
            meta.remove(*f);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
}

/// The most read from one manifest file (16 MiB, as a point's manifest): a Kubernetes object
/// is at most about 1.5 MiB, so only a mistake or a planted file comes near it.
pub const MAX_MANIFEST_FILE_BYTES: u64 = crate::local_file::MAX_FILE_BYTES;

/// Reads every `*.yaml`, `*.yml` and `*.json` file under `dir` (recursively, in path order)
/// into catalog entries. Objects without a namespace get `default_namespace` unless their
/// kind is cluster-scoped; `List` objects are expanded.
///
/// Each file is read once, only when it is a regular file of at most
/// [`MAX_MANIFEST_FILE_BYTES`]; a symbolic link is followed only when it stays inside `dir`
/// and does not lead back into a directory being read (see [`manifest_files`]).
pub fn read_dir(dir: &Path, dr_namespace: &str, default_namespace: &str) -> Result<Vec<Entry>, ManifestError> {
    let mut entries = Vec::new();
    for file in manifest_files(dir)? {
        let path = &file.path;
        // Opened where the walk resolved it to, refusing links: the walker has judged them.
        let bytes = crate::local_file::read(&file.open, "manifest", MAX_MANIFEST_FILE_BYTES, Links::Refuse).map_err(|e| match e {
            // Named as found in the directory (a link's target is named by the walk's warning).
            LocalFileError::Io { what, source, .. } => LocalFileError::Io { what, path: path.clone(), source },
            LocalFileError::NotRegular { what, kind, .. } => LocalFileError::NotRegular { what, path: path.clone(), kind },
            LocalFileError::TooLarge { what, limit, .. } => LocalFileError::TooLarge { what, path: path.clone(), limit },
        })?;
        let text = String::from_utf8(bytes).map_err(|e| ManifestError::Parse {
            path: path.clone(),
            doc: 1,
            detail: format!("it is not UTF-8 text ({})", e.utf8_error()),
        })?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value: Value =
                serde::Deserialize::deserialize(doc).map_err(|e| ManifestError::Parse { path: path.clone(), doc: i + 1, detail: e.to_string() })?;
            if value.is_null() {
                continue;
            }
            let items = match value.get("kind").and_then(Value::as_str) {
                Some(k) if k.ends_with("List") && value.get("items").is_some() => value["items"].as_array().cloned().unwrap_or_default(),
                _ => vec![value],
            };
            for mut object in items {
                let valid = object.get("apiVersion").and_then(Value::as_str).is_some()
                    && object.get("kind").and_then(Value::as_str).is_some()
                    && object.pointer("/metadata/name").and_then(Value::as_str).is_some();
                if !valid {
                    return Err(ManifestError::NotAnObject { path: path.clone(), doc: i + 1 });
                }
                strip_server_fields(&mut object);
                let kind = object["kind"].as_str().unwrap_or_default().to_owned();
                let cluster_scoped = is_cluster_scoped_kind(&kind);
                if cluster_scoped {
                    object["metadata"].as_object_mut().expect("checked").remove("namespace");
                } else if object.pointer("/metadata/namespace").and_then(Value::as_str).is_none() {
                    object["metadata"]["namespace"] = Value::String(default_namespace.to_owned());
                }
                let category = classify(&object, cluster_scoped, dr_namespace);
                entries.push(Entry { category, object, source_uid: None });
            }
        }
    }
    if entries.is_empty() {
        return Err(ManifestError::Empty { dir: dir.to_owned() });
    }
    Ok(entries)
}

/// One manifest file found under the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFile {
    /// As found: under the directory given, through any links.
    pub path: PathBuf,
    /// Where it is: the path without links, inside the directory.
    pub open: PathBuf,
}

/// The manifest files under `dir`, in path order, each file once.
///
/// Symbolic links (docs/decisions.md, "Links in --from-manifests"): a link is followed only
/// when its target is inside `dir`; a link that leaves `dir` (`up -> ..`, `zero.yaml ->
/// /dev/zero`), that leads back into a directory being read (`me -> .`, a loop), or that
/// leads nowhere is skipped with a warning naming why. A file reached by two ways (a link
/// to another manifest, a directory link next to its target) is read once, so every object
/// is in the point once.
pub fn manifest_files(dir: &Path) -> Result<Vec<ManifestFile>, ManifestError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ManifestError::Io { path, source }
    };
    let root = std::fs::canonicalize(dir).map_err(io(dir))?;
    let mut walk = Walk { given: dir.to_owned(), root: root.clone(), dirs: HashSet::new(), files: Vec::new() };
    let id = file_id(&std::fs::metadata(&root).map_err(io(dir))?);
    walk.dirs.insert(id);
    walk.dir(dir, &root, false, &mut vec![id])?;
    // Each file once: found directly rather than through a link, then first in path order.
    walk.files.sort_by(|a, b| (a.via_link, &a.file.path).cmp(&(b.via_link, &b.file.path)));
    let mut seen = HashSet::new();
    let mut files: Vec<ManifestFile> = walk.files.into_iter().filter(|f| seen.insert(f.id)).map(|f| f.file).collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// (device, inode): what a file is, whatever the path to it.
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

struct Found {
    file: ManifestFile,
    id: (u64, u64),
    via_link: bool,
}

struct Walk {
    given: PathBuf,
    root: PathBuf,
    /// Every directory read so far: a second link to one adds nothing.
    dirs: HashSet<(u64, u64)>,
    files: Vec<Found>,
}

impl Walk {
    /// Reads the directory `real` (a path without links), found as `shown`; `ancestors` are
    /// the directories on the way to it, which a link must not lead back into.
    /// `via_link`: a link led here.
    fn dir(&mut self, shown: &Path, real: &Path, via_link: bool, ancestors: &mut Vec<(u64, u64)>) -> Result<(), ManifestError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ManifestError::Io { path, source }
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(real).map_err(io(shown))? {
            names.push(entry.map_err(io(shown))?.file_name());
        }
        names.sort();
        for name in names {
            let shown = shown.join(&name);
            let mut real = real.join(&name);
            let mut meta = std::fs::symlink_metadata(&real).map_err(io(&shown))?;
            let mut linked = via_link;
            if meta.file_type().is_symlink() {
                let target = match std::fs::canonicalize(&real) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!("{}: skipped: a symbolic link that leads nowhere readable ({e})", shown.display());
                        continue;
                    }
                };
                if !target.starts_with(&self.root) {
                    tracing::warn!("{}: skipped: a symbolic link to {}, which is outside {}", shown.display(), target.display(), self.given.display());
                    continue;
                }
                meta = std::fs::symlink_metadata(&target).map_err(io(&shown))?;
                real = target;
                linked = true;
            }
            if meta.is_dir() {
                let id = file_id(&meta);
                if ancestors.contains(&id) {
                    tracing::warn!("{}: skipped: a symbolic link to {}, a directory it is inside (a loop)", shown.display(), real.display());
                    continue;
                }
                // A directory reached again through a link has been read (or is read on
                // its own way); its files would only be read twice.
                if !self.dirs.insert(id) && linked {
                    continue;
                }
                ancestors.push(id);
                self.dir(&shown, &real, linked, ancestors)?;
                ancestors.pop();
            } else if matches!(Path::new(&name).extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
                self.files.push(Found { id: file_id(&meta), file: ManifestFile { path: shown, open: real }, via_link: linked });
            }
        }
        Ok(())
    }
}

/// Where `export` puts an object, relative to the output directory:
/// `cluster/<kind>[.<group>]/<name>.yaml` or `namespaces/<ns>/<kind>[.<group>]/<name>.yaml`.
pub fn export_path(entry: &Entry) -> PathBuf {
    let kind_dir = safe_segment(&entry.kind_key().to_lowercase());
    let file = format!("{}.yaml", safe_segment(entry.name()));
    match entry.namespace() {
        "" => PathBuf::from("cluster").join(kind_dir).join(file),
        ns => PathBuf::from("namespaces").join(safe_segment(ns)).join(kind_dir).join(file),
    }
}

/// The longest path segment kept as it is; with `.yaml` it stays under the 255 bytes file
/// systems allow (Kubernetes names go up to 253).
const MAX_SEGMENT: usize = 200;

/// A path segment for `s`: `s` itself when it is safe and short; otherwise a safe, shortened
/// form with `~` and a hash of `s`, so two names never share a file (`foo@bar` and `foo#bar`
/// used to overwrite each other). `~` is never in a kept name, so the forms cannot meet.
fn safe_segment(s: &str) -> String {
    let cleaned: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || "._:-".contains(c) { c } else { '_' }).collect();
    if cleaned == s && s.len() <= MAX_SEGMENT && !matches!(s, "" | "." | "..") {
        return cleaned;
    }
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    let keep: String = cleaned.chars().take(MAX_SEGMENT - 9).collect();
    format!("{keep}~{}", hex::encode(&hash.as_ref()[..4]))
}

/// Writes one object as YAML under `root`.
pub fn write_object(root: &Path, entry: &Entry) -> Result<PathBuf, ManifestError> {
    let rel = export_path(entry);
    let path = root.join(&rel);
    let dir = path.parent().expect("has a parent");
    // Exports hold Secrets in clear: readable by their owner only.
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| ManifestError::Write { path: dir.to_owned(), source })?;
    let yaml = serde_yaml::to_string(&entry.object).expect("JSON values serialize as YAML");
    // create_new: never overwrite another object's file.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| ManifestError::Write { path: path.clone(), source })?;
    file.write_all(yaml.as_bytes()).map_err(|source| ManifestError::Write { path: path.clone(), source })?;
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Category;
    use serde_json::json;

    #[test]
    fn export_paths_are_browsable_and_safe() {
        let e = |object| Entry { category: Category::Applications, object, source_uid: None };
        assert_eq!(
            export_path(&e(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}))),
            PathBuf::from("namespaces/shop/deployment.apps/web.yaml")
        );
        assert_eq!(
            export_path(&e(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:view"}}))),
            PathBuf::from("cluster/clusterrole.rbac.authorization.k8s.io/system:view.yaml")
        );
        let odd = export_path(&e(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "..", "namespace": "a/b"}})));
        assert!(odd.starts_with("namespaces") && odd.components().count() == 4, "{odd:?}");
        assert!(!odd.to_string_lossy().contains("/../") && odd.to_string_lossy().contains("a_b~"), "{odd:?}");
        // Names made safe never share a file, and long names fit a file system.
        let at = export_path(&e(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foo@bar", "namespace": "shop"}})));
        let hash = export_path(&e(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foo#bar", "namespace": "shop"}})));
        let plain = export_path(&e(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foo_bar", "namespace": "shop"}})));
        assert!(at != hash && at != plain && hash != plain, "{at:?} {hash:?} {plain:?}");
        let long = export_path(&e(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a".repeat(253), "namespace": "shop"}})));
        assert!(long.file_name().unwrap().len() < 255, "{long:?}");
    }

    #[test]
    fn links_between_sibling_directories_are_read_once_and_never_loop() {
        // x/to-y -> ../y and y/to-x -> ../x: neither target is an ancestor of its link in
        // the tree, but following both would walk x/to-y/to-x/to-y/... without end.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["x", "y"] {
            std::fs::create_dir(root.join(d)).unwrap();
            std::fs::write(root.join(d).join(format!("{d}.yaml")), "kind: ConfigMap").unwrap();
        }
        std::os::unix::fs::symlink("../y", root.join("x/to-y")).unwrap();
        std::os::unix::fs::symlink("../x", root.join("y/to-x")).unwrap();
        std::os::unix::fs::symlink("x/x.yaml", root.join("same.yaml")).unwrap();
        let files = manifest_files(root).unwrap();
        let found: Vec<PathBuf> = files.iter().map(|f| f.path.strip_prefix(root).unwrap().to_owned()).collect();
        assert_eq!(found, [PathBuf::from("x/x.yaml"), PathBuf::from("y/y.yaml")], "each file once, by its own path");
        let canonical = root.canonicalize().unwrap();
        assert!(files.iter().all(|f| f.open.starts_with(&canonical)), "{files:?}");
    }

    #[test]
    fn server_fields_are_stripped() {
        let mut o = json!({"metadata": {"name": "x", "uid": "u", "resourceVersion": "1", "managedFields": [], "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}});
        strip_server_fields(&mut o);
        assert_eq!(o, json!({"metadata": {"name": "x"}}));
    }
}
